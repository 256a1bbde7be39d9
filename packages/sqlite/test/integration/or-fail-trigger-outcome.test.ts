import { DatabaseError, OUTCOME_UNKNOWN, type DatabasePool } from '@dbpool/core'
import { createSqlitePool, type SqliteDatabase } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// A statement outside a transaction whose FAIL conflict resolution kept only a trigger's changes
// (found by review): a BEFORE INSERT trigger wrote its audit row for the failing row, FAIL keeps it and
// the auto-commit commits it, while changes() (the statement's own rows) is 0. The error carried no
// outcome (a retry writes the audit row again). total_changes() before and after counts the trigger's
// row, but under ABORT too (which undoes it), and SQLite does not say which resolution ran: the error
// says outcome 'unknown' (check before retrying), never a bare retryable error.
const tmp = tempDir()
let pool: DatabasePool<SqliteDatabase> | undefined

afterEach(async () => {
  await pool?.close({ timeoutMs: 5_000 })
  pool = undefined
})

afterAll(() => tmp.cleanup())

async function open(name: string, conflict: string): Promise<DatabasePool<SqliteDatabase>> {
  pool = createSqlitePool(tmp.file(`${name}.db`), { name })
  await pool.query(`create table t (id integer primary key, u integer unique ${conflict})`)
  await pool.query('create table audit (u integer)')
  await pool.query('create trigger tb before insert on t begin insert into audit values (new.u); end')
  await pool.query('insert into t values (1, 1)')
  await pool.query('delete from audit')
  return pool
}

async function audits(p: DatabasePool<SqliteDatabase>): Promise<number> {
  return (await p.query<{ n: number }>('select count(*) as n from audit')).rows[0]!.n
}

async function rejection(promise: Promise<unknown>): Promise<DatabaseError> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  if (!DatabaseError.is(err)) throw new Error(`expected a DatabaseError, got ${String(err)}`)
  return err
}

describe('FAIL keeping only a trigger’s changes', () => {
  it('pool.query: UNIQUE_VIOLATION, outcome unknown, the audit row kept', async () => {
    const p = await open('query', 'on conflict fail')
    const error = await rejection(p.query('insert into t values (2, 1)'))
    expect(error.code).toBe('UNIQUE_VIOLATION')
    expect(error.detail?.outcome).toBe(OUTCOME_UNKNOWN)
    expect(error.retryable).toBe(false)
    expect(error.message).toMatch(/triggers/)
    expect(await audits(p)).toBe(1)
  })

  it('pool.stream of ... RETURNING: the same', async () => {
    const p = await open('stream', 'on conflict fail')
    const error = await rejection(
      (async () => {
        for await (const row of p.stream('insert into t values (2, 1) returning id', [], { batchSize: 1 })) void row
      })(),
    )
    expect(error.code).toBe('UNIQUE_VIOLATION')
    expect(error.detail?.outcome).toBe(OUTCOME_UNKNOWN)
    expect(await audits(p)).toBe(1)
  })

  it('the default ABORT (the trigger’s row undone): SQLite does not tell it from FAIL, outcome unknown too', async () => {
    const p = await open('abort', '')
    const error = await rejection(p.query('insert into t values (2, 1)'))
    expect(error.code).toBe('UNIQUE_VIOLATION')
    expect(error.detail?.outcome).toBe(OUTCOME_UNKNOWN)
    expect(await audits(p)).toBe(0)
  })

  it('control: no trigger ran, nothing kept: no outcome', async () => {
    const p = await open('none', 'on conflict fail')
    await p.query('drop trigger tb')
    const error = await rejection(p.query('insert into t values (2, 1)'))
    expect(error.code).toBe('UNIQUE_VIOLATION')
    expect(error.detail?.outcome).toBeUndefined()
  })
})
