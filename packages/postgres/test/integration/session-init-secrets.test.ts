import { inspect } from 'node:util'
import { type DatabasePool, type PoolLogger } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, poolOn, rejection } from './helpers'

// sessionInit is configuration, and may hold a secret (SET app.token = '...', set_config('app.key',
// '...', false)). When one of its statements failed, the pool's error hid the statement's literals in
// its own message, but kept the server's error as `cause` (the literal the server repeats:
// `invalid input syntax for type integer: "..."`), and node-postgres's error under it: util.inspect,
// JSON.stringify and the stack of `cause` showed the secret. (The setup run again at release,
// sessionReset 'clean' or 'none' after a reset, builds its error the same way: setupFailure.)

const SECRET = 'tok_hunter2_s3cret'
let db: TestDatabase
let pool: DatabasePool<PostgresConnection> | undefined

beforeAll(async () => {
  db = await createTestDatabase()
  await admin(db.url, (c) =>
    c.query(
      `create table setup_flag (x int);
       create function fail_unless_flag(t text) returns int language plpgsql as $$
       begin if (select count(*) from setup_flag) = 0 then return t::int; end if; return 1; end $$`,
    ),
  )
}, 120_000)

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
})

afterAll(async () => {
  await db?.drop()
}, 60_000)

/** Every form a user, a logger or an error reporter may print `value` in. */
function printed(value: unknown): string {
  const err = value as { stack?: unknown; cause?: { stack?: unknown; cause?: { stack?: unknown } } } | null
  return [
    inspect(value, { depth: 20 }),
    JSON.stringify(value),
    String(value),
    String(err?.stack),
    String(err?.cause?.stack),
    String(err?.cause?.cause?.stack),
  ].join('\n')
}

type Line = { level: string; obj: Record<string, unknown>; msg: string }
function capturingLogger(lines: Line[]): PoolLogger {
  const at =
    (level: string) =>
    (obj: Record<string, unknown>, msg: string): void => {
      lines.push({ level, obj, msg })
    }
  return { trace: at('trace'), debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }
}

describe('a failing sessionInit statement never shows its literals', () => {
  it.each([
    ['set_config() then a cast', `select set_config('app.token', '${SECRET}', false), '${SECRET}'::int`],
    ['a DO block', `do $$ begin perform '${SECRET}'::int; end $$`],
    ['a function taking the secret', `select fail_unless_flag('${SECRET}')`],
    ['a plain SET sent as a startup parameter', `SET statement_timeout TO '${SECRET}'`],
  ])('at connect: %s', async (_, statement) => {
    const lines: Line[] = []
    pool = poolOn(
      db.url,
      { max: 1, min: 0, name: 'init-secret' },
      { sessionInit: ['SET search_path TO public', statement], logger: capturingLogger(lines) },
    )
    const err = await rejection(pool.query('select 1'))
    expect(err.message).toMatch(/session init on .* failed: /)
    // the code, SQLSTATE and message shape are kept: the user can still tell what failed
    expect(err.sqlState).toBe(statement.startsWith('SET') ? '22023' : '22P02')
    expect(err.cause).toBeDefined()
    expect(printed(err)).not.toContain(SECRET)
    expect(printed(lines)).not.toContain(SECRET)
  })
})
