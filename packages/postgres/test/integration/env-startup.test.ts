import { DatabaseConfig, PoolFactory, type DatabasePool } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { admin, rejection, uniqueAppName } from './helpers'

// libpq's PGOPTIONS, PGAPPNAME and PGCONNECT_TIMEOUT fill in what a connection string leaves out.
// They were ignored where dbpool read the environment itself (DatabaseConfig.fromEnv with DATABASE_URL,
// the CLI): PGOPTIONS='-c search_path=app' read and wrote the public schema's table of the same name.
// pg's own fallback to process.env.PGOPTIONS (a target without options) was unchecked: a setting the
// server refused was no CONFIGURATION, and PgBouncer mode dropped it silently.
let db: TestDatabase
const pools: DatabasePool<PostgresConnection>[] = []

function track(pool: DatabasePool<PostgresConnection>): DatabasePool<PostgresConnection> {
  pools.push(pool)
  return pool
}

beforeAll(async () => {
  db = await createTestDatabase()
  await admin(db.url, async (client) => {
    await client.query(`create schema app; create table app.notes (body text); create table public.notes (body text)`)
    await client.query(`insert into app.notes values ('app'); insert into public.notes values ('public')`)
  })
}, 60_000)

afterEach(async () => {
  await Promise.all(pools.splice(0).map((p) => p.close({ timeoutMs: 5_000 })))
})

afterAll(async () => {
  await db?.drop()
})

/** The url without sslmode (the dev server has no TLS: prefer connects in plaintext). */
function bareUrl(): string {
  return db.url.replace(/[?&]sslmode=[^&]*/, '')
}

async function sessionOf(pool: DatabasePool<PostgresConnection>): Promise<{ sp: string; app: string; seen: string; body: string }> {
  const { rows } = await pool.query<{ sp: string; app: string; seen: string; body: string }>(
    `select current_setting('search_path') as sp, current_setting('application_name') as app,
            (select application_name from pg_stat_activity where pid = pg_backend_pid()) as seen,
            (select body from notes) as body`,
  )
  return rows[0]!
}

/** `fn()` with `vars` set in process.env (unset: undefined), restored after. */
async function withEnv<T>(vars: Record<string, string | undefined>, fn: () => Promise<T>): Promise<T> {
  const saved = Object.fromEntries(Object.keys(vars).map((name) => [name, process.env[name]]))
  for (const [name, value] of Object.entries(vars)) {
    if (value === undefined) delete process.env[name]
    else process.env[name] = value
  }
  try {
    return await fn()
  } finally {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name]
      else process.env[name] = value
    }
  }
}

it('DATABASE_URL + PGOPTIONS search_path and PGAPPNAME take effect (fromEnv, as the CLI reads its environment)', async () => {
  const name = uniqueAppName('pgappname')
  // an environment of its own, not process.env: pg's fallback to process.env.PGOPTIONS cannot help here
  const config = DatabaseConfig.fromEnv({ DATABASE_URL: bareUrl(), PGOPTIONS: '-c search_path=app', PGAPPNAME: name })
  const pool = track(createPostgresPool(config, { min: 0, max: 1 }))
  expect(await sessionOf(pool)).toEqual({ sp: 'app', app: name, seen: name, body: 'app' })
}, 30_000)

it("the URL's own options and application_name win over PGOPTIONS and PGAPPNAME", async () => {
  const config = DatabaseConfig.fromEnv({
    DATABASE_URL: `${bareUrl()}${bareUrl().includes('?') ? '&' : '?'}options=-c%20search_path%3Dpublic&application_name=own-app`,
    PGOPTIONS: '-c search_path=app',
    PGAPPNAME: 'from-env',
  })
  const pool = track(createPostgresPool(config, { min: 0, max: 1 }))
  expect(await sessionOf(pool)).toMatchObject({ sp: 'public', app: 'own-app', body: 'public' })
}, 30_000)

it('a PGOPTIONS setting the server refuses is CONFIGURATION naming database.options (it went unchecked through pg)', async () => {
  await withEnv({ PGOPTIONS: '-c nosuch_setting=1' }, async () => {
    const pool = track(createPostgresPool(DatabaseConfig.fromUrl(bareUrl()), { min: 0, max: 1, acquireTimeoutMs: 5_000 }))
    const err = await rejection(pool.query('select 1'))
    expect(err).toMatchObject({ code: 'CONFIGURATION', detail: { option: 'database.options', parameter: 'nosuch_setting' } })
    expect(err.message).toMatch(/options: the config's, the URL's options=, PGOPTIONS, or PGTZ/)
  })
}, 30_000)

it('a target without options still takes process.env.PGOPTIONS (as pg did), options of its own win', async () => {
  await withEnv({ PGOPTIONS: '-c search_path=app' }, async () => {
    const pool = track(createPostgresPool(DatabaseConfig.fromUrl(bareUrl()), { min: 0, max: 1 }))
    expect(await sessionOf(pool)).toMatchObject({ sp: 'app', body: 'app' })
    const own = track(createPostgresPool(DatabaseConfig.fromUrl(bareUrl(), { options: '-c search_path=public' }), { min: 0, max: 1 }))
    expect(await sessionOf(own)).toMatchObject({ sp: 'public', body: 'public' })
  })
}, 30_000)

it('PGOPTIONS behind PgBouncer is CONFIGURATION naming database.options, never dropped silently', async () => {
  await withEnv({ PGOPTIONS: '-c search_path=app' }, async () => {
    for (const pgbouncer of ['transaction', 'session'] as const) {
      let err: unknown
      try {
        track(createPostgresPool(DatabaseConfig.fromUrl(bareUrl()), { min: 0, max: 1 }, { pgbouncer }))
      } catch (e) {
        err = e
      }
      expect(err).toMatchObject({ code: 'CONFIGURATION', detail: { option: 'database.options' } })
      expect((err as Error).message).toMatch(/PGOPTIONS/)
    }
  })
}, 30_000)

// A URL string given to createPostgresPool or PoolFactory.create read no environment, where libpq fills
// in every connection string: PGPORT, PGDATABASE, PGAPPNAME were ignored (port 5432, database postgres).
it.each([
  ['createPostgresPool(url)', (url: string) => Promise.resolve(createPostgresPool(url, { min: 0, max: 1 }))],
  ['PoolFactory.create(url)', (url: string) => PoolFactory.create(url, { min: 0, max: 1 }) as Promise<DatabasePool<PostgresConnection>>],
])(
  '%s takes PGPORT, PGDATABASE, PGAPPNAME and PGOPTIONS for what the URL leaves out',
  async (_, make) => {
    const u = new URL(bareUrl())
    const name = uniqueAppName('url-env')
    const env = { PGPORT: u.port, PGDATABASE: db.name, PGAPPNAME: name, PGOPTIONS: '-c search_path=app', PGSSLMODE: 'disable' }
    const pool = await withEnv(env, () => make(`postgres://${u.username}:${u.password}@${u.hostname}/`))
    track(pool)
    const { rows } = await pool.query<{ db: string }>('select current_database() as db')
    expect(rows[0]!.db).toBe(db.name)
    expect(await sessionOf(pool)).toEqual({ sp: 'app', app: name, seen: name, body: 'app' })
  },
  30_000,
)
