import { DatabaseError, type DatabasePool } from '@dbpool/core'
import { createSqlitePool, type SqliteDatabase } from '@dbpool/sqlite'
import { tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

// SQLite ignores PRAGMA foreign_keys inside a transaction: a table rebuild written for it (drop the
// old parent, rename the new one) then runs ON DELETE CASCADE and deletes every child row. The manager
// refuses it there, in every spelling and on every path; and a setting a lease changed with PRAGMA is
// restored when the connection is given back, so no later caller runs without foreign keys.

const schema = async (pool: DatabasePool<SqliteDatabase>): Promise<void> => {
  await pool.query('create table author (id integer primary key, name text)')
  await pool.query('create table book (id integer primary key, author_id integer not null references author(id) on delete cascade)')
  await pool.query(`insert into author values (1, 'a'), (2, 'b')`)
  await pool.query('insert into book values (10, 1), (11, 2)')
}

const rebuild = [
  'create table author_new (id integer primary key, name text not null)',
  'insert into author_new select id, name from author',
  'drop table author',
  'alter table author_new rename to author',
]

const books = async (pool: DatabasePool<SqliteDatabase>): Promise<number> =>
  Number((await pool.query<{ n: number }>('select count(*) as n from book')).rows[0]!.n)

const SPELLINGS = [
  'PRAGMA foreign_keys = OFF',
  'pragma main.foreign_keys=0',
  'PRAGMA "foreign_keys" = OFF',
  'PRAGMA `foreign_keys` = OFF',
  "PRAGMA 'foreign_keys' = OFF",
  'PRAGMA [foreign_keys] = OFF',
  'PRAGMA "main"."foreign_keys" = OFF',
  '/* c */ PRAGMA Foreign_Keys(0)',
]

describe.each(['file', 'memory'] as const)('sqlite %s: PRAGMA foreign_keys inside a transaction', (kind) => {
  let pool: DatabasePool<SqliteDatabase>
  beforeEach(async () => {
    pool = createSqlitePool(kind === 'memory' ? ':memory:' : tmp.file(`fk-${Date.now()}-${Math.random()}.db`), { name: 'fk' })
    await schema(pool)
  })
  afterEach(() => pool.close())

  it.each(SPELLINGS)('%s through tx.query is refused, aborts the transaction, and no child row is deleted', async (pragma) => {
    const err = await pool
      .transaction(async (tx) => {
        await tx.query(pragma)
        for (const s of rebuild) await tx.query(s)
      })
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(DatabaseError)
    expect(err).toMatchObject({ code: 'CONFIGURATION', detail: { pragma: 'foreign_keys' } })
    expect(await books(pool)).toBe(2)
  })

  it('a caught refusal leaves the transaction aborted: the rebuild after it is refused, nothing committed', async () => {
    const err = await pool
      .transaction(async (tx) => {
        await tx.query('PRAGMA "foreign_keys" = OFF').catch(() => undefined)
        for (const s of rebuild) await tx.query(s)
      })
      .catch((e: unknown) => e)
    expect(err).toMatchObject({ code: 'TRANSACTION_ROLLED_BACK' })
    expect(await books(pool)).toBe(2)
  })

  it('is refused through a savepoint, a stream, a script, and a script with its own BEGIN', async () => {
    await expect(pool.transaction((tx) => tx.transaction((sp) => sp.query('PRAGMA `foreign_keys` = OFF')))).rejects.toMatchObject({
      code: 'CONFIGURATION',
    })
    await expect(
      pool.transaction(async (tx) => {
        for await (const row of tx.stream("PRAGMA 'foreign_keys' = OFF")) void row
      }),
    ).rejects.toMatchObject({ code: 'CONFIGURATION' })
    await expect(
      pool.transaction((tx) => tx.query(`select 1; PRAGMA "main"."foreign_keys" = OFF; ${rebuild.join('; ')}`)),
    ).rejects.toMatchObject({ code: 'CONFIGURATION' })
    await expect(
      pool.withConnection((conn) => conn.query(`BEGIN; PRAGMA foreign_keys = OFF; ${rebuild.join('; ')}; COMMIT`)),
    ).rejects.toMatchObject({ code: 'CONFIGURATION' })
    expect(await books(pool)).toBe(2)
  })

  it('outside a transaction the documented rebuild runs (foreign keys off before BEGIN) and keeps the children', async () => {
    await pool.withConnection(async (conn) => {
      await conn.query('PRAGMA foreign_keys = OFF')
      await conn.transaction(async (tx) => {
        for (const s of rebuild) await tx.query(s)
        expect((await tx.query('PRAGMA foreign_key_check')).rows).toEqual([])
      })
      await conn.query('PRAGMA foreign_keys = ON')
    })
    expect(await books(pool)).toBe(2)
    // reading the setting is never refused
    await pool.transaction(async (tx) => expect((await tx.query('PRAGMA foreign_keys')).rows).toEqual([{ foreign_keys: 1 }]))
  })
})

describe.each(['file', 'memory'] as const)('sqlite %s: settings changed by a lease are restored at its release', (kind) => {
  let pool: DatabasePool<SqliteDatabase>
  beforeEach(async () => {
    pool = createSqlitePool(kind === 'memory' ? ':memory:' : tmp.file(`set-${Date.now()}-${Math.random()}.db`), { name: 'settings' })
    await schema(pool)
  })
  afterEach(() => pool.close())

  const read = (name: string): Promise<unknown> =>
    pool.withConnection(async (conn) => Object.values((await conn.query(`PRAGMA ${name}`)).rows[0] ?? {})[0])

  it('foreign_keys turned off on a lease is on again for the next caller: an orphan is refused', async () => {
    await pool.withConnection(async (conn) => {
      await conn.query('PRAGMA foreign_keys = OFF')
    })
    await expect(pool.query('insert into book values (99, 42)')).rejects.toMatchObject({ code: 'FOREIGN_KEY_VIOLATION' })
    expect(await read('foreign_keys')).toBe(1)
  })

  it('also after a failed lease, a lease-free pool.query and conn.native', async () => {
    await pool
      .withConnection(async (conn) => {
        await conn.query('PRAGMA "foreign_keys" = 0')
        throw new Error('migration failed')
      })
      .catch(() => undefined)
    expect(await read('foreign_keys')).toBe(1)
    await expect(pool.query('PRAGMA foreign_keys = OFF')).rejects.toMatchObject({ code: 'CONFIGURATION' })
    expect(await read('foreign_keys')).toBe(1)
    await pool.withConnection(async (conn) => {
      conn.native.pragma('foreign_keys = OFF')
      conn.native.pragma('recursive_triggers = ON')
    })
    expect(await read('foreign_keys')).toBe(1)
    expect(await read('recursive_triggers')).toBe(0)
    await expect(pool.query('insert into book values (99, 42)')).rejects.toMatchObject({ code: 'FOREIGN_KEY_VIOLATION' })
  })

  it('every session setting: query_only, recursive_triggers, case_sensitive_like, busy_timeout, synchronous, cache_size, temp_store', async () => {
    const names = [
      'query_only',
      'recursive_triggers',
      'busy_timeout',
      'synchronous',
      'cache_size',
      'temp_store',
      'ignore_check_constraints',
    ]
    const before = new Map<string, unknown>()
    for (const name of names) before.set(name, await read(name))
    await pool.withConnection(async (conn) => {
      await conn.query('PRAGMA recursive_triggers = ON')
      await conn.query('PRAGMA busy_timeout = 12345')
      await conn.query('PRAGMA synchronous = OFF')
      await conn.query('PRAGMA cache_size = 77')
      await conn.query('PRAGMA temp_store = MEMORY')
      await conn.query('PRAGMA ignore_check_constraints = ON')
      await conn.query('PRAGMA case_sensitive_like = ON')
      await conn.query('PRAGMA query_only = ON')
    })
    for (const name of names) expect([name, await read(name)]).toEqual([name, before.get(name)])
    // case_sensitive_like cannot be read: back to SQLite's default (LIKE ignores ASCII case)
    expect((await pool.query(`select 'ABC' like 'abc' as m`)).rows).toEqual([{ m: 1 }])
    await pool.query(`insert into author values (3, 'writable again')`)
  })
})

// pool.query on a connection of its own (no idle one: read-lane work with readers 0 takes the writer
// for itself) is refused as on an idle one, and the message says why in both cases (it said 'without
// a lease', untrue there)
describe.each([1, 0])('sqlite file, readers %i: a setting PRAGMA through pool.query on the read lane', (readers) => {
  it('is refused CONFIGURATION, not run, with a message true for that path (no "without a lease"; names withConnection)', async () => {
    const pool = createSqlitePool(tmp.file(`pragma-read-lane-${readers}.db`), {}, { readers })
    try {
      await pool.query('create table t (v integer)')
      const err = await pool.query('pragma query_only = ON', [], { lane: 'read' }).then(
        () => undefined,
        (e: unknown) => e,
      )
      expect(err).toMatchObject({ code: 'CONFIGURATION', detail: { pragma: 'query_only' } })
      const message = (err as DatabaseError).message
      expect(message).not.toContain('without a lease')
      expect(message).toContain('only for that statement')
      expect(message).toContain('pool.withConnection')
      await pool.query('insert into t values (1)')
    } finally {
      await pool.close()
    }
  })
})

describe('sqlite file: a setting the pool cannot restore closes the connection', () => {
  it('PRAGMA temp.cache_size on a lease: the next lease gets a fresh connection', async () => {
    const pool = createSqlitePool(tmp.file('temp-setting.db'), { name: 'temp-setting' })
    try {
      // a temp table marks the connection (conn.native would make every setting be checked instead)
      await pool.withConnection(async (conn) => {
        await conn.query('create temp table marker (x)')
        await conn.query('PRAGMA temp.cache_size = 5')
      })
      const marked = await pool.withConnection(
        async (conn) => (await conn.query(`select count(*) as n from temp.sqlite_master where name = 'marker'`)).rows,
      )
      expect(marked).toEqual([{ n: 0 }])
    } finally {
      await pool.close()
    }
  })
})
