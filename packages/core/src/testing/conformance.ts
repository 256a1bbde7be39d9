import assert from 'node:assert/strict'
import { DatabaseError } from '../errors/database-error'
import type { ErrorCode } from '../errors/error-codes'
import type { DatabasePool } from '../pool/database-pool'
import { sql } from '../sql/sql'
import { checkBadCallOptions } from './call-options-conformance'

/** The subset of a test framework the suite needs (jest, vitest and mocha all fit). */
export interface ConformanceTestApi {
  describe(name: string, fn: () => void): void
  it(name: string, fn: () => Promise<void>, timeoutMs?: number): void
  beforeAll(fn: () => Promise<void>, timeoutMs?: number): void
  afterAll(fn: () => Promise<void>, timeoutMs?: number): void
}

/** How a backend's test file plugs into the suite. */
export interface ConformanceSetup {
  /** A label for the describe block, e.g. `postgres 18`. */
  readonly name: string
  /** A fresh pool on a fresh, empty database. Closed by the suite. */
  createPool(): Promise<DatabasePool<unknown>>
}

async function expectCode(promise: Promise<unknown>, code: ErrorCode): Promise<DatabaseError> {
  try {
    await promise
  } catch (err) {
    assert.ok(DatabaseError.is(err), `expected a DatabaseError, got ${String(err)}`)
    assert.equal(err.code, code, `expected ${code}, got ${err.code}: ${err.message}`)
    return err
  }
  assert.fail(`expected ${code}, but the statement succeeded`)
}

/**
 * The behaviour every backend must show against a real database: queries and parameters,
 * transactions and savepoints, release hygiene, error codes, types and close.
 */
export function defineConformanceSuite(t: ConformanceTestApi, setup: ConformanceSetup): void {
  t.describe(`conformance: ${setup.name}`, () => {
    let pool: DatabasePool<unknown>

    t.beforeAll(async () => {
      pool = await setup.createPool()
      await pool.query('drop table if exists conf_items')
      await pool.query('drop table if exists conf_parents')
      await pool.query('create table conf_parents (id integer primary key)')
      await pool.query(
        'create table conf_items (id integer primary key, name text not null unique, qty integer check (qty >= 0), parent_id integer references conf_parents(id))',
      )
      await pool.query(sql`insert into conf_parents (id) values (${1})`)
    }, 60_000)

    t.afterAll(async () => {
      await pool?.close({ timeoutMs: 5_000 })
    }, 30_000)

    t.it('runs sql fragments with parameters and returns normalised rows', async () => {
      const r = await pool.query(sql`insert into conf_items (id, name, qty) values (${1}, ${'alpha'}, ${5})`)
      assert.equal(r.rowCount, 1)
      assert.ok(Array.isArray(r.rows))
      const { rows } = await pool.query<{ id: number; name: string; qty: number }>(
        sql`select id, name, qty from conf_items where id = ${1}`,
      )
      assert.deepEqual(
        rows.map((x) => ({ ...x, id: Number(x.id), qty: Number(x.qty) })),
        [{ id: 1, name: 'alpha', qty: 5 }],
      )
    })

    t.it('never splices values into the text', async () => {
      const evil = "x'); drop table conf_items; --"
      await pool.query(sql`insert into conf_items (id, name) values (${2}, ${evil})`)
      const { rows } = await pool.query<{ name: string }>(sql`select name from conf_items where id = ${2}`)
      assert.equal(rows[0]?.name, evil)
    })

    t.it('quotes identifiers with sql.id', async () => {
      const { rows } = await pool.query<{ n: number }>(sql`select count(*) as n from ${sql.id('conf_items')}`)
      assert.ok(Number(rows[0]?.n) >= 2)
    })

    t.it('round-trips nulls, unicode text and integers', async () => {
      await pool.query(sql`insert into conf_items (id, name, qty) values (${3}, ${'ünïcødé ✓'}, ${null})`)
      const { rows } = await pool.query<{ name: string; qty: unknown }>(sql`select name, qty from conf_items where id = ${3}`)
      assert.equal(rows[0]?.name, 'ünïcødé ✓')
      assert.equal(rows[0]?.qty, null)
    })

    t.it('commits a transaction', async () => {
      const out = await pool.transaction(async (tx) => {
        await tx.query(sql`insert into conf_items (id, name) values (${10}, ${'tx'})`)
        return 'done'
      })
      assert.equal(out, 'done')
      const { rows } = await pool.query(sql`select id from conf_items where id = ${10}`)
      assert.equal(rows.length, 1)
    })

    t.it('rolls back on error and rethrows the original error', async () => {
      const boom = new Error('boom')
      await assert.rejects(
        pool.transaction(async (tx) => {
          await tx.query(sql`insert into conf_items (id, name) values (${11}, ${'rolled back'})`)
          throw boom
        }),
        (err) => err === boom,
      )
      const { rows } = await pool.query(sql`select id from conf_items where id = ${11}`)
      assert.equal(rows.length, 0)
    })

    t.it('nests with savepoints', async () => {
      await pool.transaction(async (tx) => {
        await tx.query(sql`insert into conf_items (id, name) values (${12}, ${'outer'})`)
        await assert.rejects(
          tx.transaction(async (inner) => {
            await inner.query(sql`insert into conf_items (id, name) values (${13}, ${'inner'})`)
            throw new Error('inner fails')
          }),
        )
      })
      const { rows } = await pool.query<{ id: number }>(sql`select id from conf_items where id in (${12}, ${13}) order by id`)
      assert.deepEqual(
        rows.map((r) => Number(r.id)),
        [12],
      )
    })

    t.it('refuses COMMIT, ROLLBACK, END and BEGIN through tx.query() before running them: nothing is kept', async () => {
      const controls = ['COMMIT', 'rollback', 'END', "/* c */ commit; insert into conf_items (id, name) values (22, 'after')", 'BEGIN']
      for (const control of controls) {
        let refusal: unknown
        await assert.rejects(
          pool.transaction(async (tx) => {
            await tx.query(sql`insert into conf_items (id, name) values (${20}, ${'before'})`)
            refusal = await tx.query(control).then(
              () => undefined,
              (err: unknown) => err,
            )
            await tx.query(sql`insert into conf_items (id, name) values (${21}, ${'later'})`)
            throw new Error('the callback fails')
          }),
          // the statement was refused, so the transaction went on and rolled back on the callback's error
          (err) => err instanceof Error && err.message === 'the callback fails',
        )
        assert.ok(
          DatabaseError.is(refusal) &&
            refusal.code === 'QUERY_FAILED' &&
            /through tx\.query\(\) is refused and was not run/.test(refusal.message),
          `${control}: ${String(refusal)}`,
        )
        const { rows } = await pool.query(sql`select id from conf_items where id in (${20}, ${21}, ${22})`)
        assert.deepEqual(rows, [], `${control}: nothing may be kept`)
      }
      // a savepoint's ROLLBACK TO stays allowed
      await pool.transaction(async (tx) => {
        await tx.query('SAVEPOINT mine')
        await tx.query(sql`insert into conf_items (id, name) values (${23}, ${'undone'})`)
        await tx.query('ROLLBACK TO SAVEPOINT mine')
      })
      assert.deepEqual((await pool.query(sql`select id from conf_items where id = ${23}`)).rows, [])
    })

    t.it('a connection released inside an open transaction reaches the next borrower clean', async () => {
      await pool.withConnection(async (conn) => {
        await conn.query(pool.backend === 'sqlite' ? 'BEGIN IMMEDIATE' : 'BEGIN')
        await conn.query(sql`insert into conf_items (id, name) values (${20}, ${'uncommitted'})`)
      })
      const { rows } = await pool.query(sql`select id from conf_items where id = ${20}`)
      assert.equal(rows.length, 0)
      await pool.transaction(async (tx) => {
        await tx.query(sql`insert into conf_items (id, name) values (${21}, ${'after'})`)
      })
      assert.equal((await pool.query(sql`select id from conf_items where id = ${21}`)).rows.length, 1)
    })

    t.it('maps constraint violations to stable codes', async () => {
      await expectCode(pool.query(sql`insert into conf_items (id, name) values (${30}, ${'alpha'})`), 'UNIQUE_VIOLATION')
      await expectCode(pool.query(sql`insert into conf_items (id, name) values (${31}, ${null})`), 'NOT_NULL_VIOLATION')
      await expectCode(pool.query(sql`insert into conf_items (id, name, qty) values (${32}, ${'neg'}, ${-1})`), 'CHECK_VIOLATION')
      await expectCode(
        pool.query(sql`insert into conf_items (id, name, parent_id) values (${33}, ${'orphan'}, ${999})`),
        'FOREIGN_KEY_VIOLATION',
      )
    })

    t.it('maps a syntax error to SYNTAX_ERROR', async () => {
      const err = await expectCode(pool.query('selec 1'), 'SYNTAX_ERROR')
      assert.equal(err.retryable, false)
    })

    t.it('maps a missing or already taken table, column or function to SYNTAX_ERROR', async () => {
      const statements = [
        'select * from conf_no_such_table',
        'select no_such_column from conf_items',
        'select conf_no_such_function(1)',
        'create table conf_parents (id integer primary key)',
      ]
      for (const text of statements) {
        const err = await expectCode(pool.query(text), 'SYNTAX_ERROR')
        assert.equal(err.retryable, false, text)
      }
    })

    t.it('refuses a bad per-call option of every entry point with CONFIGURATION naming it, before anything runs', async () => {
      await checkBadCallOptions(pool)
    })

    t.it('leaves no connection in use after work', async () => {
      await Promise.all(Array.from({ length: 20 }, (_, i) => pool.query(sql`select ${i} as n`)))
      assert.equal(pool.stats().used, 0)
      assert.equal(pool.stats().pending, 0)
    })

    t.it('refuses work after close with POOL_CLOSED', async () => {
      const other = await setup.createPool()
      await other.query('select 1')
      const report = await other.close({ timeoutMs: 2_000 })
      assert.equal(report.outstandingLeases.length, 0)
      await expectCode(other.query('select 1'), 'POOL_CLOSED')
      assert.equal(other.stats().size, 0)
    })
  })
}
