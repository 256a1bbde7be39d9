import assert from 'node:assert/strict'
import { DatabaseError } from '../errors/database-error'
import type { ErrorCode } from '../errors/error-codes'
import type { DatabasePool } from '../pool/database-pool'
import { sql } from '../sql/sql'
import { checkBadCallOptions } from './call-options-conformance'
import { isErrorLike } from '../util/error-like'

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
          (err) => isErrorLike(err) && err.message === 'the callback fails',
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

    t.it(
      'a withConnection callback returning inside its own open transaction rejects TRANSACTION_ROLLED_BACK; the next borrower is clean',
      async () => {
        const err = await expectCode(
          pool.withConnection(async (conn) => {
            await conn.query(pool.backend === 'sqlite' ? 'BEGIN IMMEDIATE' : 'BEGIN')
            await conn.query(sql`insert into conf_items (id, name) values (${20}, ${'uncommitted'})`)
            return 'reported done'
          }),
          'TRANSACTION_ROLLED_BACK',
        )
        assert.equal(err.retryable, false)
        const { rows } = await pool.query(sql`select id from conf_items where id = ${20}`)
        assert.equal(rows.length, 0)
        await pool.transaction(async (tx) => {
          await tx.query(sql`insert into conf_items (id, name) values (${21}, ${'after'})`)
        })
        assert.equal((await pool.query(sql`select id from conf_items where id = ${21}`)).rows.length, 1)
      },
    )

    t.it(
      'a withConnection callback returning inside a transaction it aborted rejects TRANSACTION_ROLLED_BACK with the first error as cause',
      async () => {
        const err = await expectCode(
          pool.withConnection(async (conn) => {
            await conn.query('BEGIN')
            await conn.query(sql`insert into conf_items (id, name) values (${24}, ${'wc lost'})`)
            await conn.query(sql`insert into conf_items (id, name) values (${25}, ${'alpha'})`).catch(() => undefined)
            return 'reported done'
          }),
          'TRANSACTION_ROLLED_BACK',
        )
        assert.ok(DatabaseError.is(err.cause) && err.cause.code === 'UNIQUE_VIOLATION', String(err.cause))
        assert.deepEqual((await pool.query(sql`select id from conf_items where id in (${24}, ${25})`)).rows, [])
      },
    )

    t.it(
      'conn.transaction() inside a transaction the callback opened itself is a savepoint: nothing commits before the outer COMMIT, the outer ROLLBACK undoes it',
      async () => {
        const begin = pool.backend === 'sqlite' ? 'BEGIN IMMEDIATE' : 'BEGIN'
        const err = await pool
          .withConnection(async (conn) => {
            await conn.query(begin)
            const inner = await conn.transaction(async (tx) => {
              await tx.query(sql`insert into conf_items (id, name) values (${610}, ${'inner'})`)
              return 'inner done'
            })
            assert.equal(inner, 'inner done')
            // still inside the outer transaction: not committed by the inner one
            await conn.query(sql`insert into conf_items (id, name) values (${611}, ${'after inner'})`)
            // settings cannot apply to a savepoint: refused before anything is sent
            await expectCode(
              conn.transaction(async () => 1, { isolation: 'serializable' }),
              'CONFIGURATION',
            )
            // a caught error inside it rolls the savepoint back (TRANSACTION_ROLLED_BACK) and the outer one goes on
            await expectCode(
              conn.transaction(async (tx) => {
                await tx.query(sql`insert into conf_items (id, name) values (${612}, ${'in savepoint'})`)
                await tx.query(sql`insert into conf_items (id, name) values (${613}, ${'alpha'})`).catch(() => undefined)
              }),
              'TRANSACTION_ROLLED_BACK',
            )
            await conn.query(sql`insert into conf_items (id, name) values (${614}, ${'still outer'})`)
            await conn.query('ROLLBACK')
            throw new Error('migration failed')
          })
          .then(
            () => undefined,
            (e: unknown) => e,
          )
        assert.ok(isErrorLike(err) && err.message.includes('migration failed'), String(err))
        assert.deepEqual((await pool.query(sql`select id from conf_items where id >= ${610} and id < ${620}`)).rows, [])
        // committed by the outer COMMIT only, the savepoint's work with it
        await pool.withConnection(async (conn) => {
          await conn.query(begin)
          await conn.transaction(async (tx) => void (await tx.query(sql`insert into conf_items (id, name) values (${615}, ${'kept'})`)))
          await conn.query('COMMIT')
        })
        assert.deepEqual(
          (await pool.query<{ id: number }>(sql`select id from conf_items where id >= ${610} and id < ${620}`)).rows.map((r) =>
            Number(r.id),
          ),
          [615],
        )
      },
    )

    t.it(
      'statements a withConnection callback issued without awaiting count: an un-awaited BEGIN makes conn.transaction() a savepoint, and returning inside it rejects',
      async () => {
        const begin = pool.backend === 'sqlite' ? 'BEGIN IMMEDIATE' : 'BEGIN'
        // conn.transaction() right after an un-awaited BEGIN: a savepoint, so the outer ROLLBACK undoes it
        const r = await pool.withConnection(async (conn) => {
          void conn.query(begin)
          void conn.query(sql`insert into conf_items (id, name) values (${620}, ${'outer, not awaited'})`)
          await conn.transaction(async (tx) => void (await tx.query(sql`insert into conf_items (id, name) values (${621}, ${'inner'})`)))
          await conn.query('ROLLBACK')
          return 'rolled back'
        })
        assert.equal(r, 'rolled back')
        assert.deepEqual((await pool.query(sql`select id from conf_items where id >= ${620} and id < ${630}`)).rows, [])
        // a callback returning right after an un-awaited BEGIN and writes: its work is rolled back, so it rejects
        const inserts: Promise<unknown>[] = []
        await expectCode(
          pool.withConnection(async (conn) => {
            void conn.query(begin)
            inserts.push(conn.query(sql`insert into conf_items (id, name) values (${622}, ${'left open'})`))
            inserts.push(conn.query(sql`insert into conf_items (id, name) values (${623}, ${'left open'})`))
            return 'reported done'
          }),
          'TRANSACTION_ROLLED_BACK',
        )
        await Promise.allSettled(inserts)
        assert.deepEqual((await pool.query(sql`select id from conf_items where id >= ${620} and id < ${630}`)).rows, [])
      },
    )

    t.it('a multi-statement text failing part-way keeps none of its statements, with the failing statement own error', async () => {
      await expectCode(
        pool.query(
          "insert into conf_items (id, name) values (40, 'first'); insert into conf_items (id, name) values (41, 'alpha'); insert into conf_items (id, name) values (42, 'third')",
        ),
        'UNIQUE_VIOLATION',
      )
      assert.deepEqual((await pool.query(sql`select id from conf_items where id in (${40}, ${41}, ${42})`)).rows, [])
      // a schema script too: the first table is not created
      await expectCode(pool.query('create table conf_script_a (x integer); create table conf_script_a (x integer)'), 'SYNTAX_ERROR')
      await expectCode(pool.query('select x from conf_script_a'), 'SYNTAX_ERROR')
      // one that succeeds keeps everything
      await pool.query("insert into conf_items (id, name) values (43, 's1'); insert into conf_items (id, name) values (44, 's2')")
      assert.equal((await pool.query(sql`select id from conf_items where id in (${43}, ${44})`)).rows.length, 2)
    })

    t.it('a multi-statement text with its own BEGIN ... COMMIT runs as written', async () => {
      await pool.query(
        "begin; insert into conf_items (id, name) values (45, 'in block'); commit; insert into conf_items (id, name) values (46, 'after block')",
      )
      assert.equal((await pool.query(sql`select id from conf_items where id in (${45}, ${46})`)).rows.length, 2)
      // a block the text leaves open is rolled back and reported (left open)
      await expectCode(pool.query("begin; insert into conf_items (id, name) values (47, 'left open')"), 'TRANSACTION_ROLLED_BACK')
      assert.deepEqual((await pool.query(sql`select id from conf_items where id = ${47}`)).rows, [])
    })

    t.it('a text of several statements with parameters is SYNTAX_ERROR', async () => {
      const err = await expectCode(pool.query(sql`select ${1} as x; select ${2} as y`), 'SYNTAX_ERROR')
      assert.equal(err.retryable, false)
    })

    t.it(
      'a transaction whose callback caught a statement error and returned rejects TRANSACTION_ROLLED_BACK (cause: that error) and keeps nothing',
      async () => {
        let caught: unknown
        const err = await expectCode(
          pool.transaction(async (tx) => {
            await tx.query(sql`insert into conf_items (id, name) values (${50}, ${'caught before'})`)
            caught = await tx.query(sql`insert into conf_items (id, name) values (${51}, ${'alpha'})`).catch((e: unknown) => e)
            return 'done'
          }),
          'TRANSACTION_ROLLED_BACK',
        )
        assert.ok(DatabaseError.is(caught) && caught.code === 'UNIQUE_VIOLATION', String(caught))
        assert.equal(err.cause, caught)
        assert.equal(err.retryable, false)
        assert.deepEqual((await pool.query(sql`select id from conf_items where id in (${50}, ${51})`)).rows, [])
      },
    )

    t.it(
      'after a statement error in a transaction, later statements are refused with TRANSACTION_ROLLED_BACK whose cause is the first error',
      async () => {
        let first: unknown
        let later: unknown
        const err = await expectCode(
          pool.transaction(async (tx) => {
            await tx.query(sql`insert into conf_items (id, name) values (${52}, ${'refused before'})`)
            first = await tx.query(sql`insert into conf_items (id, name) values (${53}, ${'alpha'})`).catch((e: unknown) => e)
            later = await tx.query(sql`insert into conf_items (id, name) values (${54}, ${'refused later'})`).catch((e: unknown) => e)
            await tx.query(sql`select 1 as x`)
          }),
          'TRANSACTION_ROLLED_BACK',
        )
        assert.ok(DatabaseError.is(first) && first.code === 'UNIQUE_VIOLATION', String(first))
        assert.ok(DatabaseError.is(later) && later.code === 'TRANSACTION_ROLLED_BACK', String(later))
        assert.equal(later.cause, first)
        assert.equal(later.retryable, false)
        if (pool.backend === 'postgres') assert.equal(later.sqlState, '25P02')
        assert.equal(err.cause, first)
        assert.deepEqual((await pool.query(sql`select id from conf_items where id in (${52}, ${53}, ${54})`)).rows, [])
      },
    )

    t.it(
      'a savepoint whose callback caught a statement error rejects TRANSACTION_ROLLED_BACK; the outer transaction goes on and commits',
      async () => {
        const out = await pool.transaction(async (tx) => {
          await tx.query(sql`insert into conf_items (id, name) values (${55}, ${'sp outer'})`)
          const inner = await tx
            .transaction(async (sp) => {
              await sp.query(sql`insert into conf_items (id, name) values (${56}, ${'sp inner'})`)
              await sp.query(sql`insert into conf_items (id, name) values (${57}, ${'alpha'})`).catch(() => undefined)
              return 'inner done'
            })
            .catch((e: unknown) => e)
          await tx.query(sql`insert into conf_items (id, name) values (${58}, ${'sp outer again'})`)
          return inner
        })
        assert.ok(DatabaseError.is(out) && out.code === 'TRANSACTION_ROLLED_BACK', String(out))
        assert.ok(DatabaseError.is(out.cause) && out.cause.code === 'UNIQUE_VIOLATION', String(out.cause))
        const { rows } = await pool.query<{ id: number }>(sql`select id from conf_items where id between ${55} and ${58} order by id`)
        assert.deepEqual(
          rows.map((r) => Number(r.id)),
          [55, 58],
        )
      },
    )

    t.it(
      'a result dbpool refuses itself (two result columns of one name) aborts the transaction as a server error does (on Postgres the statement ran)',
      async () => {
        let refused: DatabaseError | undefined
        const err = await expectCode(
          pool.transaction(async (tx) => {
            refused = await expectCode(tx.query('select 1 as a, 2 as a'), 'SYNTAX_ERROR')
            const later = await expectCode(
              tx.query(sql`insert into conf_items (id, name) values (${59}, ${'after a client-side refusal'})`),
              'TRANSACTION_ROLLED_BACK',
            )
            assert.equal(later.cause, refused)
          }),
          'TRANSACTION_ROLLED_BACK',
        )
        assert.equal(err.cause, refused)
        assert.equal((await pool.query(sql`select id from conf_items where id = ${59}`)).rows.length, 0)
      },
    )

    t.it(
      'ROLLBACK TO SAVEPOINT after a statement error lets the transaction go on; COMMIT of an aborted one answers ROLLBACK',
      async () => {
        await pool.transaction(async (tx) => {
          await tx.query(sql`insert into conf_items (id, name) values (${60}, ${'rb kept'})`)
          await tx.query('SAVEPOINT mine')
          await expectCode(tx.query(sql`insert into conf_items (id, name) values (${61}, ${'alpha'})`), 'UNIQUE_VIOLATION')
          await tx.query('ROLLBACK TO SAVEPOINT mine')
          await tx.query(sql`insert into conf_items (id, name) values (${62}, ${'rb kept too'})`)
        })
        const kept = await pool.query<{ id: number }>(sql`select id from conf_items where id between ${60} and ${62} order by id`)
        assert.deepEqual(
          kept.rows.map((r) => Number(r.id)),
          [60, 62],
        )
        const commit = await pool.withConnection(async (conn) => {
          await conn.query('BEGIN')
          await conn.query(sql`insert into conf_items (id, name) values (${63}, ${'commit lost'})`)
          await conn.query(sql`insert into conf_items (id, name) values (${64}, ${'alpha'})`).catch(() => undefined)
          return conn.query('COMMIT')
        })
        assert.equal(commit.command?.toUpperCase(), 'ROLLBACK')
        assert.deepEqual((await pool.query(sql`select id from conf_items where id in (${63}, ${64})`)).rows, [])
      },
    )

    t.it(
      'a readOnly transaction refuses every write, a temporary table too, with READ_ONLY; the connection writes again after it',
      async () => {
        const writes = [
          sql`insert into conf_items (id, name) values (${70}, ${'read only'})`,
          // ON COMMIT DROP on Postgres: PgBouncer in transaction mode refuses a temporary table that outlives its transaction
          pool.backend === 'postgres'
            ? 'create temp table conf_ro_temp (x integer) on commit drop'
            : 'create temp table conf_ro_temp (x integer)',
        ]
        for (const write of writes) {
          const err = await expectCode(
            pool.transaction((tx) => tx.query(write), { readOnly: true }),
            'READ_ONLY',
          )
          assert.equal(err.retryable, false)
        }
        // a write after the read-only transaction, on the same (only) writer or a fresh transaction, runs
        await pool.transaction(async (tx) => {
          await tx.query(sql`insert into conf_items (id, name) values (${71}, ${'after read only'})`)
        })
        assert.equal((await pool.query(sql`select id from conf_items where id in (${70}, ${71})`)).rows.length, 1)
      },
    )

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

    t.it('maps an error of a statement while it runs (integer overflow) to QUERY_FAILED, never SYNTAX_ERROR', async () => {
      // SQLite reports it with SQLITE_ERROR (its syntax errors' code), Postgres with 22003
      const text = 'select abs(-9223372036854775807 - 1) as x'
      const err = await expectCode(pool.query(text), 'QUERY_FAILED')
      assert.equal(err.retryable, false)
      await expectCode(
        pool.withConnection((conn) => conn.query(text)),
        'QUERY_FAILED',
      )
      // mid-stream: rows came before the one that overflows
      const rows: unknown[] = []
      const midStream = (async () => {
        for await (const row of pool.stream(
          'select abs(v) as x from (select 1 as v union all select -9223372036854775807 - 1) as t',
          undefined,
          { batchSize: 1 },
        ))
          rows.push(row)
      })()
      await expectCode(midStream, 'QUERY_FAILED')
      // a real syntax error stays SYNTAX_ERROR inside a stream too
      await expectCode(
        (async () => {
          for await (const _ of pool.stream('selec 1')) void _
        })(),
        'SYNTAX_ERROR',
      )
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
