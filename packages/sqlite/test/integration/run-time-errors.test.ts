import { DatabaseError } from '@dbpool/core'
import { createSqlitePool, mapSqliteError } from '@dbpool/sqlite'
import Database from 'better-sqlite3'
import { tempDir } from './helpers'

// SQLite reports syntax errors and errors of a statement while it runs with one code, SQLITE_ERROR,
// which dbpool mapped to SYNTAX_ERROR: `select abs(-9223372036854775808)` was a SYNTAX_ERROR on SQLite
// and QUERY_FAILED (22003) on Postgres. A run-time error is now QUERY_FAILED, as Postgres gives it.

const tmp = tempDir()
afterAll(() => tmp.cleanup())
let n = 0

/** The error SQLite raises while running `text` (prepared first: a prepare error fails the test). */
function runTimeError(db: Database.Database, text: string): unknown {
  const stmt = db.prepare(text)
  try {
    if (stmt.reader) stmt.all()
    else stmt.run()
  } catch (err) {
    return err
  }
  throw new Error(`${text} ran without an error`)
}

describe('SQLITE_ERROR of a statement while it runs', () => {
  it('is QUERY_FAILED for every run-time message SQLite gives, with or without the phase known (a script)', () => {
    const db = new Database(tmp.file(`messages-${++n}.db`))
    try {
      db.pragma('recursive_triggers = ON')
      db.exec('create table r (x integer); create trigger r_again after insert on r begin insert into r values (new.x + 1); end')
      db.exec(`attach database '${tmp.file(`other-${n}.db`)}' as other`)
      const statements = [
        'select abs(-9223372036854775807 - 1)',
        'select sum(x) from (select 9223372036854775807 as x union all select 1)',
        'insert into r values (1)',
        "select json('{')",
        "select json_extract('{}', 'no path')",
        "select 'a' like 'a' escape 'xx'",
        'select ntile(0) over () from (select 1)',
        'release no_such_savepoint',
        'commit',
        `vacuum into '${tmp.file(`messages-${n}.db`)}'`,
        `attach database '${tmp.file(`third-${n}.db`)}' as other`,
        'detach database no_such_schema',
      ]
      for (const text of statements) {
        const err = runTimeError(db, text)
        expect([text, (err as { code?: unknown }).code]).toEqual([text, 'SQLITE_ERROR'])
        expect([text, mapSqliteError(err).code]).toEqual([text, 'QUERY_FAILED'])
        expect([text, mapSqliteError(err, { phase: 'run' }).code]).toEqual([text, 'QUERY_FAILED'])
      }
    } finally {
      db.close()
    }
  })

  it('keeps SYNTAX_ERROR for errors of preparing, also when a prepared statement is prepared again at its run', () => {
    const db = new Database(tmp.file(`prepare-${++n}.db`))
    try {
      for (const text of ['selec 1', 'select * from no_such_table', 'select no_such_column', 'select no_such_function(1)', 'select (']) {
        let err: unknown
        try {
          db.prepare(text)
        } catch (e) {
          err = e
        }
        expect([text, mapSqliteError(err).code]).toEqual([text, 'SYNTAX_ERROR'])
        expect([text, mapSqliteError(err, { phase: 'run' }).code]).toEqual([text, 'SYNTAX_ERROR'])
      }
      // another connection drops the table: the prepared statement is prepared again when it runs
      db.exec('create table gone (x integer)')
      const stmt = db.prepare('select x from gone')
      const other = new Database(tmp.file(`prepare-${n}.db`))
      other.exec('drop table gone')
      other.close()
      let err: unknown
      try {
        stmt.all()
      } catch (e) {
        err = e
      }
      expect((err as Error).message).toMatch(/no such table/)
      expect(mapSqliteError(err, { phase: 'run' }).code).toBe('SYNTAX_ERROR')
    } finally {
      db.close()
    }
  })

  it("is QUERY_FAILED for any other message of a statement that ran (a function's sqlite3_result_error, an extension's)", () => {
    const err = Object.assign(new Error('my_extension_fn: value out of range'), { name: 'SqliteError', code: 'SQLITE_ERROR' })
    expect(mapSqliteError(err, { phase: 'run' })).toMatchObject({ code: 'QUERY_FAILED', sqliteCode: 'SQLITE_ERROR', retryable: false })
    // not known to have run (a script's error): the message decides, SYNTAX_ERROR as before
    expect(mapSqliteError(err).code).toBe('SYNTAX_ERROR')
  })

  it('through a pool: query, a held connection, a transaction and a stream (mid-stream) give QUERY_FAILED; a syntax error stays SYNTAX_ERROR', async () => {
    const pool = createSqlitePool(tmp.file(`pool-${++n}.db`), { name: 'run-time-errors' })
    try {
      const statements = [
        'select abs(-9223372036854775807 - 1) as x',
        "select json('{') as x",
        "select 'a' like 'a' escape 'xx' as x",
        'select ntile(0) over () as x from (select 1)',
      ]
      for (const text of statements) {
        await expect(pool.query(text)).rejects.toMatchObject({ code: 'QUERY_FAILED', sqliteCode: 'SQLITE_ERROR' })
        await expect(pool.withConnection((conn) => conn.query(text))).rejects.toMatchObject({ code: 'QUERY_FAILED' })
        await expect(pool.transaction((tx) => tx.query(text))).rejects.toMatchObject({ code: 'QUERY_FAILED' })
      }
      await expect(pool.query('create table t (x integer); select abs(-9223372036854775807 - 1)')).rejects.toMatchObject({
        code: 'QUERY_FAILED',
      })
      const rows: unknown[] = []
      const err = await (async () => {
        for await (const row of pool.stream(
          'select abs(v) as x from (select 1 as v union all select -9223372036854775807 - 1)',
          undefined,
          {
            batchSize: 1,
          },
        ))
          rows.push(row)
      })().catch((e: unknown) => e)
      expect(err).toBeInstanceOf(DatabaseError)
      expect(err).toMatchObject({ code: 'QUERY_FAILED' })
      expect(rows).toEqual([{ x: 1 }])
      await expect(pool.query('selec 1')).rejects.toMatchObject({ code: 'SYNTAX_ERROR' })
      await expect(pool.query('select * from no_such_table')).rejects.toMatchObject({ code: 'SYNTAX_ERROR' })
    } finally {
      await pool.close()
    }
  })
})
