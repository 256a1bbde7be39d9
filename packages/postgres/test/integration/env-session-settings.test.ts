import { spawnSync } from 'node:child_process'
import { DatabaseConfig, PoolFactory } from '@dbpool/core'
import { createPostgresPool, resolveReplicaOptions } from '@dbpool/postgres'
import { testPostgresUrl } from '@dbpool/testing'

// Review r6 item 3: PGTZ, PGDATESTYLE and PGGEQO were ignored: libpq sends them as timezone, datestyle
// and geqo at the start of every session, so '2024-03-01 00:30'::timestamptz was another instant and
// '01/02/2024'::date another day than under psql with the same environment and URL.
const ENV = { PGTZ: 'Asia/Tokyo', PGDATESTYLE: 'ISO, DMY', PGGEQO: 'off' }
const SQL = `select current_setting('TimeZone') as tz, current_setting('geqo') as geqo,
  extract(epoch from '2024-03-01 00:30'::timestamptz)::bigint::text as epoch, '01/02/2024'::date::text as day`
const saved = { ...process.env }
afterEach(() => {
  for (const key of Object.keys(process.env)) if (!(key in saved)) delete process.env[key]
  Object.assign(process.env, saved)
})

async function read(url: string): Promise<Record<string, string>> {
  const pool = createPostgresPool(url, { min: 0, max: 1 })
  try {
    return (await pool.query<Record<string, string>>(SQL)).rows[0]!
  } finally {
    await pool.close()
  }
}

it('a URL string reads text timestamps and dates as psql does under the same environment', async () => {
  const url = await testPostgresUrl()
  Object.assign(process.env, ENV)
  const got = await read(url)
  expect(got).toEqual({ tz: 'Asia/Tokyo', geqo: 'off', epoch: '1709220600', day: '2024-02-01' })
  const psql = spawnSync('psql', [url, '-XtAc', SQL.replace(/\s+/g, ' ')], { env: { ...process.env }, encoding: 'utf8' })
  if (psql.status === 0) expect(psql.stdout.trim()).toBe(`${got.tz}|${got.geqo}|${got.epoch}|${got.day}`)
  // PoolFactory.create and DatabaseConfig.fromEnv read them too
  const factory = await PoolFactory.create(url, { min: 0, max: 1 })
  try {
    expect((await factory.query<Record<string, string>>(SQL)).rows[0]).toEqual(got)
  } finally {
    await factory.close()
  }
  expect(DatabaseConfig.fromEnv({ ...ENV, DATABASE_URL: url }).options).toBe('-c DateStyle=ISO,\\ DMY -c TimeZone=Asia/Tokyo -c geqo=off')
}, 30_000)

it("explicit options win setting by setting: the URL's options=, PGOPTIONS, PoolFactory's database.options", async () => {
  const url = await testPostgresUrl()
  Object.assign(process.env, ENV)
  const sep = url.includes('?') ? '&' : '?'
  const got = await read(`${url}${sep}options=${encodeURIComponent('-c timezone=UTC')}`)
  expect(got).toEqual({ tz: 'UTC', geqo: 'off', epoch: '1709253000', day: '2024-02-01' })
  const env = { ...ENV, PGOPTIONS: '--TimeZone=Europe/Paris -c search_path=app' }
  expect(DatabaseConfig.fromUrl('postgres://h/d', {}, DatabaseConfig.envDefaults(env)).options).toBe(
    '--TimeZone=Europe/Paris -c search_path=app -c DateStyle=ISO,\\ DMY -c geqo=off',
  )
  expect(DatabaseConfig.fromUrl('postgres://h/d', { options: '-c geqo=on' }, DatabaseConfig.envDefaults(env)).options).toBe(
    '-c geqo=on -c DateStyle=ISO,\\ DMY -c TimeZone=Asia/Tokyo',
  )
  // a replica URL: the same
  const { replicas } = resolveReplicaOptions({ replicas: ['postgres://r/d?options=-c%20datestyle%3DYMD'] }, ENV)
  expect(replicas[0]!.options).toBe('-c datestyle=YMD -c TimeZone=Asia/Tokyo -c geqo=off')
}, 30_000)

it('as libpq: "default" is not sent; a DatabaseConfig reads no environment', () => {
  expect(DatabaseConfig.envDefaults({ PGTZ: 'DEFAULT', PGGEQO: 'default' }).options).toBeUndefined()
  Object.assign(process.env, ENV)
  expect(DatabaseConfig.fromUrl('postgres://h/d').options).toBeUndefined()
  expect(() => DatabaseConfig.envDefaults({ PGTZ: 'a\u0000b' })).toThrow(/invalid PGTZ/)
})
