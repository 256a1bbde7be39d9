import { DatabaseError, type DatabasePool } from '@dbpool/core'
import { createSqlitePool, type SqliteDatabase } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// A write outside a transaction whose commit fails on a DEFERRABLE INITIALLY DEFERRED foreign key
// (found by review): SQLite checks it at the statement's end (its reset, or the RELEASE of the
// savepoint `INSERT ... RETURNING *` runs in) and rolls everything back. The error used to say
// outcome 'committed' (a stream ended early, a stream read to its end, INSERT OR FAIL ... RETURNING *
// restated as UNIQUE_VIOLATION with changes 2): the caller would not retry, the data was lost.
const tmp = tempDir()
let pool: DatabasePool<SqliteDatabase> | undefined

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
})

afterAll(() => tmp.cleanup())

async function open(name: string): Promise<DatabasePool<SqliteDatabase>> {
  pool = createSqlitePool(tmp.file(`${name}.db`), { name })
  await pool.query('create table p (id integer primary key)')
  await pool.query('create table c (id integer primary key, pid integer references p(id) deferrable initially deferred, k integer unique)')
  return pool
}

async function ids(p: DatabasePool<SqliteDatabase>): Promise<number[]> {
  return (await p.query<{ id: number }>('select id from c order by id')).rows.map((r) => r.id)
}

async function rejection(promise: Promise<unknown>): Promise<DatabaseError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  if (!DatabaseError.is(err)) throw new Error(`expected a DatabaseError, got ${String(err)}`)
  return err
}

async function abortAfterFirst(p: DatabasePool<SqliteDatabase>, text: string): Promise<DatabaseError> {
  const ac = new AbortController()
  return rejection(
    (async () => {
      for await (const row of p.stream(text, [], { batchSize: 1, signal: ac.signal })) {
        void row
        ac.abort()
      }
    })(),
  )
}

async function drain(p: DatabasePool<SqliteDatabase>, text: string): Promise<DatabaseError> {
  return rejection(
    (async () => {
      for await (const row of p.stream(text, [], { batchSize: 1 })) void row
    })(),
  )
}

describe.each([
  ['returning id', 'returning id'],
  ['returning * (run whole in a savepoint)', 'returning *'],
])('pool.stream() of a write %s whose deferred foreign key fails', (_label, tail) => {
  it('ended early by its signal: no outcome committed, nothing kept', async () => {
    const p = await open(`early-${tail.length}`)
    const error = await abortAfterFirst(p, `insert into c values (1, 999, null), (2, 999, null), (3, 999, null) ${tail}`)
    expect(error.detail?.outcome).toBeUndefined()
    expect(error.message).not.toMatch(/committed/)
    expect(await ids(p)).toEqual([])
    // control: the same stream without the violation is committed, and says so
    const ok = await abortAfterFirst(p, `insert into c values (11, null, null), (12, null, null) ${tail}`)
    expect(ok.detail?.outcome).toBe('committed')
    expect(await ids(p)).toEqual([11, 12])
  })

  it('read to its end: FOREIGN_KEY_VIOLATION, no outcome', async () => {
    const p = await open(`full-${tail.length}`)
    const error = await drain(p, `insert into c values (21, 999, null), (22, 999, null) ${tail}`)
    expect(error.code).toBe('FOREIGN_KEY_VIOLATION')
    expect(error.detail?.outcome).toBeUndefined()
    expect(await ids(p)).toEqual([])
  })
})

describe('INSERT OR FAIL ... RETURNING * whose kept changes fail a deferred foreign key', () => {
  it.each(['returning *', 'returning id', ''])('%s: FOREIGN_KEY_VIOLATION as SQLite reports it, no outcome', async (tail) => {
    const p = await open(`orfail-${tail.length}`)
    await p.query('insert into c values (100, null, 5)')
    const error = await rejection(p.query(`insert or fail into c values (1, 999, 1), (2, 999, 2), (3, null, 5) ${tail}`))
    expect(error.code).toBe('FOREIGN_KEY_VIOLATION')
    expect(error.detail?.outcome).toBeUndefined()
    expect(error.detail?.changes).toBeUndefined()
    expect(await ids(p)).toEqual([100])
  })

  it('control: kept changes that commit are still reported committed', async () => {
    const p = await open('orfail-ok')
    await p.query('insert into c values (100, null, 5)')
    const error = await rejection(p.query('insert or fail into c values (1, null, 1), (2, null, 2), (3, null, 5) returning *'))
    expect(error.code).toBe('UNIQUE_VIOLATION')
    expect(error.detail?.outcome).toBe('committed')
    expect(error.detail?.changes).toBe(2)
    expect(await ids(p)).toEqual([1, 2, 100])
  })
})
