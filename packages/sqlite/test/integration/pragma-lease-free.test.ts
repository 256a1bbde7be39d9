import { type DatabasePool } from '@dbpool/core'
import { createSqlitePool, type SqliteDatabase } from '@dbpool/sqlite'
import { tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

// A connection setting changed by a PRAGMA must either last for the caller who set it or be refused:
// never undone without a word (a table rebuild then ran with foreign keys on and deleted every child
// row), never hidden from the checks by a trigger body or a quoted name, never applied to a connection
// another lease holds (SQLite applies a flag PRAGMA when it PREPARES it), and the in-memory database
// never closed because a setting could not be restored.

const pools: DatabasePool<SqliteDatabase>[] = []
afterEach(async () => {
  for (const pool of pools.splice(0)) await pool.close()
})
const open = (kind: 'file' | 'memory', readers = 0): DatabasePool<SqliteDatabase> => {
  const pool = createSqlitePool(
    kind === 'memory' ? ':memory:' : tmp.file(`lf-${Date.now()}-${Math.random()}.db`),
    { name: 'lease-free', max: 2 },
    { readers },
  )
  pools.push(pool)
  return pool
}

const SCHEMA = `create table author (id integer primary key, name text);
  create table book (id integer primary key, author_id integer not null references author(id) on delete cascade);
  insert into author values (1, 'a'), (2, 'b'); insert into book values (10, 1), (11, 1), (20, 2);`

const REBUILD = `create table author_new (id integer primary key, name text not null default '');
  insert into author_new select id, coalesce(name, '') from author;
  drop table author;
  alter table author_new rename to author;`

const books = async (pool: DatabasePool<SqliteDatabase>): Promise<number> =>
  Number((await pool.query<{ n: number }>('select count(*) as n from book')).rows[0]!.n)
const setting = async (pool: DatabasePool<SqliteDatabase>, name: string): Promise<unknown> =>
  Object.values((await pool.query(`PRAGMA ${name}`)).rows[0] ?? {})[0]

describe.each(['file', 'memory'] as const)('sqlite %s: a lease-free PRAGMA that sets a connection setting', (kind) => {
  it('is refused before it runs (CONFIGURATION): the usual FK-off rebuild keeps every child row', async () => {
    const pool = open(kind)
    await pool.query(SCHEMA)
    await expect(pool.query('PRAGMA foreign_keys = OFF')).rejects.toMatchObject({
      code: 'CONFIGURATION',
      detail: { pragma: 'foreign_keys' },
      message: expect.stringContaining('withConnection') as unknown,
    })
    await pool
      .transaction(async (tx) => {
        for (const s of REBUILD.split(';').filter((x) => x.trim())) await tx.query(s)
        throw new Error('the caller sees the refusal and stops')
      })
      .catch(() => undefined)
    expect(await books(pool)).toBe(3)
    for (const text of [
      'PRAGMA recursive_triggers = ON',
      'EXPLAIN PRAGMA foreign_keys = OFF',
      'PRAGMA temp.foreign_keys = OFF',
      `insert into author values (3, 'c'); PRAGMA foreign_keys = OFF`,
    ])
      await expect([text, await pool.query(text).catch((e: { code: string }) => e.code)]).toEqual([text, 'CONFIGURATION'])
    // refused before running: the insert of the script was not committed, the flags are as configured
    expect((await pool.query('select count(*) as n from author')).rows).toEqual([{ n: 2 }])
    expect(await setting(pool, 'foreign_keys')).toBe(1)
    expect(await setting(pool, 'recursive_triggers')).toBe(0)
    // reading a setting, file settings and process-wide ones are not refused, and nothing fails after a commit
    await pool.query('PRAGMA user_version = 7')
    await pool.query(`insert into author values (4, 'd'); PRAGMA soft_heap_limit = 0`)
    await pool.query('PRAGMA hard_heap_limit = 0')
    await pool.query('PRAGMA no_such_setting = 1')
    expect(await setting(pool, 'user_version')).toBe(7)
    expect((await pool.query('select count(*) as n from author')).rows).toEqual([{ n: 3 }])
  })

  it('is refused too when it has to wait for a connection another lease holds, and never changes that lease', async () => {
    const pool = open(kind)
    await pool.query(SCHEMA)
    await pool.withConnection(async (conn) => {
      const queued = pool.query('PRAGMA foreign_keys = OFF')
      await expect(queued).rejects.toMatchObject({ code: 'CONFIGURATION' })
      expect((await conn.query('PRAGMA foreign_keys')).rows).toEqual([{ foreign_keys: 1 }])
    })
    expect(await setting(pool, 'foreign_keys')).toBe(1)
  })

  it('pool.stream() of it is refused the same way (its lease of its own restored the setting at once)', async () => {
    const pool = open(kind)
    await pool.query(SCHEMA)
    const drain = async (): Promise<void> => {
      for await (const row of pool.stream('PRAGMA foreign_keys = OFF')) void row
    }
    await expect(drain()).rejects.toMatchObject({ code: 'CONFIGURATION', detail: { pragma: 'foreign_keys' } })
    expect(await setting(pool, 'foreign_keys')).toBe(1)
    // reading one streams as before
    const rows: unknown[] = []
    for await (const row of pool.stream('PRAGMA foreign_keys')) rows.push(row)
    expect(rows).toEqual([{ foreign_keys: 1 }])
  })

  it('a lease keeps its own setting until its release (the documented way), then it is restored', async () => {
    const pool = open(kind)
    await pool.query(SCHEMA)
    await pool.withConnection(async (conn) => {
      await conn.query('PRAGMA temp.foreign_keys = OFF')
      await conn.transaction((tx) => tx.query(REBUILD))
    })
    expect(await books(pool)).toBe(3)
    // the schema prefix on a connection-wide flag is the same setting: restored
    expect(await setting(pool, 'foreign_keys')).toBe(1)
    await expect(pool.query('insert into book values (99, 42)')).rejects.toMatchObject({ code: 'FOREIGN_KEY_VIOLATION' })
  })
})

describe('sqlite: hiding a PRAGMA foreign_keys from the checks', () => {
  const trigger = `create trigger shift_default after insert on author begin update author set begin = 1 where id = new.id; end;`
  it.each([
    ['a trigger body naming a column begin', `alter table author add column begin integer; ${trigger}`],
    ['a [bracketed] name holding a quote', `alter table book add column [it's] text;`],
  ])('%s: the script is still refused inside a transaction, and no child row is deleted', async (_label, before) => {
    const pool = open('file')
    await pool.query(SCHEMA)
    const script = `${before} PRAGMA foreign_keys = OFF; ${REBUILD} PRAGMA foreign_keys = ON;`
    await expect(pool.query(script)).rejects.toMatchObject({ code: 'CONFIGURATION' })
    await expect(pool.transaction((tx) => tx.query(script))).rejects.toMatchObject({ code: 'CONFIGURATION' })
    await expect(pool.withConnection((conn) => conn.query(`BEGIN; ${script} COMMIT`))).rejects.toMatchObject({ code: 'CONFIGURATION' })
    expect(await books(pool)).toBe(3)
  })
})

describe('sqlite: route() never prepares a PRAGMA on a writer another lease holds', () => {
  it('a lease-free PRAGMA queued behind a lease does not turn foreign keys off under it', async () => {
    const pool = open('file', 1)
    await pool.query(SCHEMA)
    await pool.withConnection(async (conn) => {
      const queued = pool.query('EXPLAIN PRAGMA foreign_keys = OFF').catch(() => undefined)
      await expect(conn.query('insert into book values (99, 42)')).rejects.toMatchObject({ code: 'FOREIGN_KEY_VIOLATION' })
      await conn.query('delete from author where id = 1')
      await queued
    })
    expect(await books(pool)).toBe(1)
    expect(await setting(pool, 'foreign_keys')).toBe(1)
  })
})

describe('sqlite memory: a setting that cannot be restored never closes the in-memory database', () => {
  const warnings: string[] = []
  let spy: jest.SpyInstance | undefined
  beforeAll(() => {
    spy = jest.spyOn(process, 'emitWarning').mockImplementation((w: string | Error) => void warnings.push(String(w)))
  })
  afterAll(() => spy?.mockRestore())
  beforeEach(() => {
    warnings.length = 0
  })

  it('conn.native leaving an iterator open: the data stays', async () => {
    const pool = open('memory')
    await pool.query(SCHEMA)
    await pool.withConnection(async (conn) => {
      const it = conn.native.prepare('select * from book').iterate()
      it.next()
      // (the iterator is left open: the release cannot run a PRAGMA)
    })
    expect(await books(pool)).toBe(3)
    // reported, once
    expect(warnings.filter((w) => w.includes('did not restore'))).toHaveLength(1)
  })

  it('cache_spill then cache_size on a lease: both restored, the data stays', async () => {
    const pool = open('memory')
    await pool.query(SCHEMA)
    const before = [await setting(pool, 'cache_size'), await setting(pool, 'cache_spill')]
    await pool.withConnection(async (conn) => {
      await conn.query('PRAGMA cache_spill = 100')
      await conn.query('PRAGMA cache_size = 100000')
    })
    expect(await books(pool)).toBe(3)
    expect([await setting(pool, 'cache_size'), await setting(pool, 'cache_spill')]).toEqual(before)
    expect(warnings.filter((w) => w.includes('cache_spill'))).toEqual([])
  })
})

describe('sqlite: what a release restores', () => {
  it("conn.native alone does not restore case_sensitive_like (it would replace the application's own like())", async () => {
    const pool = open('file')
    await pool.withConnection(async (conn) => {
      conn.native.function('like', { deterministic: true }, (pattern: string, value: string) => (value === `custom:${pattern}` ? 1 : 0))
      expect((await conn.query(`select 'custom:x' like 'x' as m`)).rows).toEqual([{ m: 1 }])
    })
    expect((await pool.query(`select 'custom:x' like 'x' as m`)).rows).toEqual([{ m: 1 }])
  })

  it('a cached statement whose names differ only in case is checked after a case-only rename', async () => {
    const pool = open('file')
    await pool.query(`create table orders (Id integer primary key, payment_id integer); create table payment (id integer primary key);
      insert into payment values (500); insert into orders values (1, 500)`)
    const text = 'select orders.Id, payment.id from orders join payment on payment.id = orders.payment_id'
    await pool.withConnection(async (conn) => {
      expect((await conn.query(text)).rows).toEqual([{ Id: 1, id: 500 }])
      await conn.query('alter table orders rename column Id to id')
      await expect(conn.query(text)).rejects.toMatchObject({ code: 'SYNTAX_ERROR' })
    })
  })
})
