import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type DatabaseError, Migrator, PoolFactory, type DatabasePool, type MigrationDefinition } from '@dbpool/core'
import { createTestDatabase } from '@dbpool/testing'

jest.setTimeout(120_000)

/** A fresh database of each backend, and a pool on it. */
const BACKENDS = {
  sqlite: async (): Promise<{ url: string; cleanup(): Promise<void> }> => {
    const dir = mkdtempSync(join(tmpdir(), 'dbpool-migrations-hiding-'))
    return { url: `sqlite:${join(dir, 'app.db')}`, cleanup: async () => rmSync(dir, { recursive: true, force: true }) }
  },
  postgres: async (): Promise<{ url: string; cleanup(): Promise<void> }> => {
    const db = await createTestDatabase()
    return { url: db.url, cleanup: () => db.drop() }
  },
}

describe.each(Object.keys(BACKENDS) as (keyof typeof BACKENDS)[])('Migrator on %s: what MIGRATION_FAILED hides', (backend) => {
  let database: { url: string; cleanup(): Promise<void> }
  let pool: DatabasePool<unknown>

  beforeEach(async () => {
    database = await BACKENDS[backend]()
    pool = await PoolFactory.create(database.url, { min: 0, max: 3, name: 'migrations-hiding' })
    await pool.query('create table t (id integer primary key, n integer)')
  })

  afterEach(async () => {
    await pool.close({ timeoutMs: 5_000 })
    await database.cleanup()
  })

  const failure = async (migrations: MigrationDefinition[]): Promise<DatabaseError> => {
    const err = (await new Migrator(pool, { migrations })
      .up()
      .then(() => new Error('the migration did not fail'))
      .catch((e: unknown) => e)) as DatabaseError
    expect(err).toMatchObject({ code: 'MIGRATION_FAILED' })
    return err
  }
  const shown = (err: DatabaseError): string => `${err.message} ${JSON.stringify(err.detail)}`
  const p = (n: number): string => (backend === 'sqlite' ? '?' : `$${n}`)

  it("a caught error's value repeated by TRANSACTION_ROLLED_BACK's first error is hidden (judged by that error's SQLSTATE)", async () => {
    const err = await failure([
      {
        version: 1,
        name: 'backfill',
        up: async (conn) => {
          const cast = backend === 'sqlite' ? `json(${p(1)})` : `${p(1)}::integer`
          await conn.query(`insert into t (id, n) values (1, ${cast})`, ['sk_live_S3CRET']).catch(() => undefined)
          await conn.query('insert into t (id, n) values (2, 2)').catch(() => undefined)
        },
      },
    ])
    expect(err.cause).toMatchObject({ code: 'TRANSACTION_ROLLED_BACK' })
    expect(err.message).toMatch(/first error/)
    expect(shown(err)).not.toMatch(/S3CRET/i)
  })

  it('detail.statement and the message hide a literal only the backend`s lexical rules find (review r13 D1)', async () => {
    // SQLite: `[name]` may hold a quote, comments do not nest; Postgres: its comments nest
    const up =
      backend === 'sqlite'
        ? "insert into t ([owner's n], id) values (/* a /* b */ 'S3CRET-Card-4111', 1)"
        : "insert into t (\"owner's n\", id) values (/* a /* b */ 'x' */ 'S3CRET-Card-4111', 1)"
    const err = await failure([{ version: 1, name: 'cards', up }])
    expect(err.detail).toMatchObject({
      statement:
        backend === 'sqlite'
          ? "insert into t ([owner's n], id) values ( '[REDACTED]', 1)"
          : `insert into t ("owner's n", id) values ( '[REDACTED]', 1)`,
    })
    expect(shown(err)).not.toMatch(/S3CRET|4111/)
  })

  it('a bound value holding a double quote is hidden whole', async () => {
    const cast = backend === 'sqlite' ? `json(${p(1)})` : `${p(1)}::integer`
    const err = await failure([
      {
        version: 1,
        name: 'import',
        up: async (conn) => void (await conn.query(`insert into t (id, n) values (1, ${cast})`, ['pw"S3CRET_tail_9x'])),
      },
    ])
    expect(shown(err)).not.toMatch(/S3CRET|tail_9x/i)
  })

  it('a literal with a doubled quote, echoed as written by a syntax error, is hidden', async () => {
    await pool.query('create table api_keys (name text, token text)')
    const err = await failure([
      { version: 1, name: 'secrets', up: "insert into api_keys (name, token) values ('stripe' 'sk_live_Pa''ssw0rd_9f8e7d')" },
    ])
    expect(err.message).toMatch(/syntax error/)
    expect(shown(err)).not.toMatch(/ssw0rd/i)
  })

  it('a literal of a function migration statement echoed by a syntax error is hidden', async () => {
    const err = await failure([
      { version: 1, name: 'typo', up: async (conn) => void (await conn.query("insert into t (id, n) values (1 'sk_live_FN_S3CRET')")) },
    ])
    expect(shown(err)).not.toMatch(/S3CRET/i)
  })

  it('keeps names that are no literal of the statement: a literal inside a longer word is not hidden', async () => {
    const err = await failure([{ version: 1, name: 'roles', up: "alter table users add column role text not null default 'user'" }])
    expect(err.message).toMatch(backend === 'sqlite' ? /no such table: users/ : /relation "users" does not exist/)
  })

  if (backend === 'postgres') {
    it('strings inside a DO block or a function body echoed by a syntax error are hidden', async () => {
      const doBlock = await failure([
        { version: 1, name: 'do', up: "do $$ begin insert into t (id, n) values (1, 'stripe' 'sk_live_DO_S3CRET'); end $$" },
      ])
      expect(doBlock.message).toMatch(/syntax error/)
      expect(shown(doBlock)).not.toMatch(/S3CRET/i)
      const fn = await failure([
        {
          version: 1,
          name: 'fn',
          up: "create function seed_key() returns void language plpgsql as $body$ begin perform ('a' 'ghp_FN_S3CRET'); end $body$",
        },
      ])
      expect(shown(fn)).not.toMatch(/S3CRET/i)
      const quoted = await failure([
        {
          version: 1,
          name: 'fnq',
          up: "create function seed_key2() returns void language plpgsql as 'begin perform (''a'' ''ghp_Q_S3CRET''); end'",
        },
      ])
      expect(shown(quoted)).not.toMatch(/S3CRET/i)
    })

    it('a bound value another error class repeats is hidden by value, through conn.query, conn.stream and conn.transaction', async () => {
      const direct = await failure([
        { version: 1, name: 'direct', up: async (conn) => void (await conn.query('select $1::regclass', ['pw_S3CRET_direct'])) },
      ])
      expect(direct.message).toMatch(/relation "\[REDACTED\]" does not exist/)
      expect(shown(direct)).not.toMatch(/S3CRET/i)
      const nested = await failure([
        {
          version: 1,
          name: 'nested',
          up: async (conn) =>
            conn.transaction(async (tx) => {
              await tx.transaction(async (inner) => void (await inner.query('select $1::regclass', ['pw_S3CRET_nested'])))
            }),
        },
      ])
      expect(shown(nested)).not.toMatch(/S3CRET/i)
      const caught = await failure([
        {
          version: 1,
          name: 'caught',
          up: async (conn) => {
            await conn.transaction(async (tx) => void (await tx.query('select $1::regclass', ['pw_S3CRET_tx']).catch(() => undefined)))
          },
        },
      ])
      expect(shown(caught)).not.toMatch(/S3CRET/i)
      const streamed = await failure([
        {
          version: 1,
          name: 'streamed',
          up: async (conn) => {
            for await (const row of conn.stream('select $1::regclass as r', ['pw_S3CRET_stream'])) void row
          },
        },
      ])
      expect(shown(streamed)).not.toMatch(/S3CRET/i)
      const txStreamed = await failure([
        {
          version: 1,
          name: 'tx_streamed',
          up: async (conn) =>
            conn.transaction(async (tx) => {
              for await (const row of tx.stream('select $1::regclass as r', ['pw_S3CRET_txstream'])) void row
            }),
        },
      ])
      expect(shown(txStreamed)).not.toMatch(/S3CRET/i)
    })

    it('a class-22 value of an error raised at COMMIT (a deferred constraint trigger) is hidden', async () => {
      await pool.query('create table tokens (token text)')
      await pool.query(
        'create function check_token() returns trigger language plpgsql as $$ begin perform new.token::int; return null; end $$',
      )
      await pool.query(
        'create constraint trigger tokens_check after insert on tokens deferrable initially deferred for each row execute function check_token()',
      )
      const err = await failure([{ version: 1, name: 'seed', up: "insert into tokens values ('sk_live_COMMIT_S3CRET')" }])
      expect(err.message).toMatch(/failed to commit: .*"\[REDACTED\]"/)
      expect(shown(err)).not.toMatch(/S3CRET/i)
    })

    it('a parameter name stays readable in a data exception, its value does not', async () => {
      const err = await failure([{ version: 1, name: 'tz', up: "set local timezone = 'Europe/Pariss_SECRET'" }])
      expect(err.message).toMatch(/invalid value for parameter "TimeZone": "\[REDACTED\]"/)
      expect(shown(err)).not.toMatch(/SECRET/)
    })
  }
})
