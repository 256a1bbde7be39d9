import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DatabaseError, Migrator, PoolFactory, type DatabasePool, type MigrationDefinition } from '@dbpool/core'
import { createSqlitePool } from '@dbpool/sqlite'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'

jest.setTimeout(60_000)

// Another process migrates between the moment a Migrator plans its run (before the lock) and the
// moment it holds the lock: the plan is checked again under the lock. Process A's migration 4 waits,
// holding the lock, until process B has planned (B's 'start' event), then commits.

interface Backend {
  readonly name: 'postgres' | 'sqlite'
  open(): Promise<{ a: DatabasePool<unknown>; b: DatabasePool<unknown>; cleanup(): Promise<void> }>
  columns(pool: DatabasePool<unknown>, table: string): Promise<string[]>
}

const backends: Backend[] = [
  {
    name: 'postgres',
    async open() {
      const db: TestDatabase = await createTestDatabase()
      const a = await PoolFactory.create(db.url, { max: 2, name: 'plan-a' })
      const b = await PoolFactory.create(db.url, { max: 2, name: 'plan-b' })
      return { a, b, cleanup: async () => (await a.close(), await b.close(), await db.drop()) }
    },
    async columns(pool, table) {
      const { rows } = await pool.query<{ c: string }>(
        'select column_name as c from information_schema.columns where table_name = $1 order by ordinal_position',
        [table],
      )
      return rows.map((r) => r.c)
    },
  },
  {
    name: 'sqlite',
    async open() {
      const dir = mkdtempSync(join(tmpdir(), 'dbpool-plan-lock-'))
      const file = join(dir, 'app.db')
      const a = createSqlitePool(file, { max: 2 }, { synchronous: 'OFF' })
      const b = createSqlitePool(file, { max: 2 }, { synchronous: 'OFF' })
      return { a, b, cleanup: async () => (await a.close(), await b.close(), rmSync(dir, { recursive: true, force: true })) }
    },
    async columns(pool, table) {
      const { rows } = await pool.query<{ name: string }>(`select name from pragma_table_info('${table}')`)
      return rows.map((r) => r.name)
    },
  },
]

const base: MigrationDefinition[] = [
  { version: 1, name: 'a', up: 'create table a (x integer)', down: 'drop table a' },
  { version: 2, name: 'b', up: 'create table b (x integer)', down: 'drop table b' },
  { version: 3, name: 'c', up: 'create table c (id integer primary key)', down: 'drop table c' },
]

/** Migration 4 adds a column to c, but first waits (holding the migration lock) until `planned` resolves. */
function waitingFour(planned: Promise<void>): MigrationDefinition {
  return {
    version: 4,
    name: 'd',
    up: async (conn) => {
      await planned
      await conn.query('alter table c add column note text')
    },
    down: 'alter table c drop column note',
  }
}

function signal(): { promise: Promise<void>; fire(): void } {
  let fire!: () => void
  const promise = new Promise<void>((resolve) => (fire = resolve))
  return { promise, fire }
}

describe.each(backends)('Migrator on $name: the plan is checked again under the lock', (backend) => {
  let env: Awaited<ReturnType<Backend['open']>>

  beforeEach(async () => {
    env = await backend.open()
  })

  afterEach(async () => {
    await env?.cleanup()
  })

  it('down() planned before another process applied a newer migration reverts nothing (MIGRATION_FAILED)', async () => {
    await new Migrator(env.a, { migrations: base }).up()
    const planned = signal()
    const up = new Migrator(env.a, { migrations: [...base, waitingFour(planned.promise)] }).up()
    // let A take the lock and start migration 4
    await new Promise((resolve) => setTimeout(resolve, 200))
    const down = new Migrator(env.b, {
      migrations: [...base, waitingFour(Promise.resolve())],
      lockTimeoutMs: 30_000,
      onEvent: (e) => e.type === 'start' && planned.fire(),
    }).down(1)
    const [upResult, downResult] = await Promise.allSettled([up, down])
    expect(upResult).toMatchObject({ status: 'fulfilled', value: { migrations: [{ version: 4 }] } })
    expect(downResult.status).toBe('rejected')
    const err = (downResult as PromiseRejectedResult).reason as DatabaseError
    expect(err).toBeInstanceOf(DatabaseError)
    expect(err.code).toBe('MIGRATION_FAILED')
    expect(err.message).toMatch(/version 3.*not reverted.*version 4/)
    expect(err.detail).toMatchObject({ version: 3, reason: 'plan-changed', newest: 4 })
    // table c and 4's column are still there, and every version is still applied
    expect(await backend.columns(env.a, 'c')).toEqual(['id', 'note'])
    const status = await new Migrator(env.a, { migrations: [...base, waitingFour(Promise.resolve())] }).status()
    expect(status.map((s) => `${s.version}:${s.state}`)).toEqual(['1:applied', '2:applied', '3:applied', '4:applied'])
  })

  it('up() of a release that knows an older pending migration applies nothing after a newer one was applied meanwhile', async () => {
    const two = base.slice(0, 2)
    await new Migrator(env.a, { migrations: two }).up()
    const planned = signal()
    const four: MigrationDefinition = {
      version: 4,
      name: 'four',
      up: async (conn) => {
        await planned.promise
        await conn.query('create table four (x integer)')
      },
    }
    const upFour = new Migrator(env.a, { migrations: [...two, four] }).up()
    await new Promise((resolve) => setTimeout(resolve, 200))
    const upThree = new Migrator(env.b, {
      migrations: base,
      lockTimeoutMs: 30_000,
      onEvent: (e) => e.type === 'start' && planned.fire(),
    }).up()
    const [fourResult, three] = await Promise.allSettled([upFour, upThree])
    expect(fourResult).toMatchObject({ status: 'fulfilled', value: { migrations: [{ version: 4 }] } })
    expect(three.status).toBe('rejected')
    const err = (three as PromiseRejectedResult).reason as DatabaseError
    expect(err.code).toBe('MIGRATION_FAILED')
    expect(err.message).toMatch(/version 3.*not applied.*version 4/)
    expect(err.detail).toMatchObject({ version: 3, reason: 'plan-changed', newest: 4 })
    const { rows } = await env.a.query<{ version: unknown }>('select version from dbpool_migrations order by version')
    expect(rows.map((r) => Number(r.version))).toEqual([1, 2, 4])
    expect(await backend.columns(env.a, 'c')).toEqual([])
  })
  // review r4 item 1: under the lock, a version recorded by another process is "skipped" only when it
  // is the same migration; another SQL (or name) under that version is drift, refused as up() refuses
  // it before the lock
  it('up() refuses (drift) a version another process recorded meanwhile with different SQL or name', async () => {
    const one = base.slice(0, 1)
    await new Migrator(env.a, { migrations: one }).up()
    const planned = signal()
    const email: MigrationDefinition = {
      version: 2,
      name: 'add_email',
      checksum: 'a-email-v1',
      up: async (conn) => {
        await planned.promise
        await conn.query('alter table a add column email text')
      },
    }
    const upA = new Migrator(env.a, { migrations: [...one, email] }).up()
    await new Promise((resolve) => setTimeout(resolve, 200))
    const phone: MigrationDefinition = { version: 2, name: 'add_phone', up: 'alter table a add column phone text' }
    const upB = new Migrator(env.b, {
      migrations: [...one, phone],
      lockTimeoutMs: 30_000,
      onEvent: (e) => e.type === 'start' && planned.fire(),
    }).up()
    const [a, b] = await Promise.allSettled([upA, upB])
    expect(a).toMatchObject({ status: 'fulfilled', value: { migrations: [{ version: 2, name: 'add_email' }] } })
    expect(b.status).toBe('rejected')
    const err = (b as PromiseRejectedResult).reason as DatabaseError
    expect(err).toBeInstanceOf(DatabaseError)
    expect(err.code).toBe('MIGRATION_FAILED')
    expect(err.message).toMatch(/version 2\) was not run: another process recorded a different migration 2/)
    expect(err.detail).toMatchObject({ version: 2, reason: 'plan-changed', appliedChecksum: 'a-email-v1', appliedName: 'add_email' })
    expect(await backend.columns(env.a, 'a')).toEqual(['x', 'email'])

    // same checksum (a function migration without one), another name: refused too, not skipped
    const gate = signal()
    const three: MigrationDefinition = {
      version: 3,
      name: 'three',
      up: async (conn) => {
        await gate.promise
        await conn.query('create table three (x integer)')
      },
    }
    const upThree = new Migrator(env.a, { migrations: [...one, email, three] }).up()
    await new Promise((resolve) => setTimeout(resolve, 200))
    const renamed = new Migrator(env.b, {
      migrations: [...one, email, { ...three, name: 'other_three', up: async () => undefined }],
      lockTimeoutMs: 30_000,
      onEvent: (e) => e.type === 'start' && gate.fire(),
    }).up()
    const [t, r] = await Promise.allSettled([upThree, renamed])
    expect(t.status).toBe('fulfilled')
    expect(r).toMatchObject({ status: 'rejected', reason: { code: 'MIGRATION_FAILED', detail: { version: 3, appliedName: 'three' } } })
    expect((r as PromiseRejectedResult).reason.message).toMatch(/recorded as "three", "other_three" here/)
  })

  it('down() refuses to revert a version whose record was replaced meanwhile (drift under the lock)', async () => {
    const two = base.slice(0, 2)
    await new Migrator(env.a, { migrations: two }).up()
    const planned = signal()
    // A's migration 3 holds the lock until B has planned, and (standing in for another release that
    // reverted 2 and applied its own 2) rewrites the record of version 2
    const three: MigrationDefinition = {
      version: 3,
      name: 'c',
      up: async (conn) => {
        await planned.promise
        await conn.query("update dbpool_migrations set checksum = 'replaced' where version = 2")
      },
    }
    const upA = new Migrator(env.a, { migrations: [...two, three] }).up()
    await new Promise((resolve) => setTimeout(resolve, 200))
    const downB = new Migrator(env.b, {
      migrations: two,
      lockTimeoutMs: 30_000,
      onEvent: (e) => e.type === 'start' && planned.fire(),
    }).down(1)
    const [a, b] = await Promise.allSettled([upA, downB])
    expect(a.status).toBe('fulfilled')
    expect(b).toMatchObject({
      status: 'rejected',
      reason: { code: 'MIGRATION_FAILED', detail: { version: 2, reason: 'plan-changed', appliedChecksum: 'replaced' } },
    })
    // table b is still there
    expect(await backend.columns(env.a, 'b')).toEqual(['x'])
  })
})
