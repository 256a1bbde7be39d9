import { DatabaseError } from '@dbpool/core'
import { toKyselyResult } from '../../src/query-result'
import { toDbpoolSettings } from '../../src/transaction-settings'

describe('toKyselyResult', () => {
  it('gives numAffectedRows for Postgres writes only (as PostgresDriver)', () => {
    expect(toKyselyResult('postgres', { rows: [], rowCount: 3, command: 'UPDATE' })).toEqual({ rows: [], numAffectedRows: 3n })
    expect(toKyselyResult('postgres', { rows: [{ id: 1 }], rowCount: 1, command: 'INSERT' })).toEqual({
      rows: [{ id: 1 }],
      numAffectedRows: 1n,
    })
    expect(toKyselyResult('postgres', { rows: [{ a: 1 }], rowCount: 1, command: 'SELECT' })).toEqual({ rows: [{ a: 1 }] })
    expect(toKyselyResult('postgres', { rows: [], rowCount: 0 })).toEqual({ rows: [] })
  })

  it('gives numAffectedRows and insertId for SQLite statements returning no rows (as SqliteDriver)', () => {
    expect(toKyselyResult('sqlite', { rows: [], rowCount: 2, lastInsertRowid: 9 })).toEqual({ rows: [], numAffectedRows: 2n, insertId: 9n })
    expect(toKyselyResult('sqlite', { rows: [], rowCount: 1, lastInsertRowid: 2n ** 60n })).toEqual({
      rows: [],
      numAffectedRows: 1n,
      insertId: 2n ** 60n,
    })
    expect(toKyselyResult('sqlite', { rows: [{ id: 1 }], rowCount: 1 })).toEqual({ rows: [{ id: 1 }] })
  })
})

describe('toDbpoolSettings', () => {
  it('maps access mode and isolation level', () => {
    expect(toDbpoolSettings({}, 'postgres')).toEqual({})
    expect(toDbpoolSettings({ accessMode: 'read only' }, 'sqlite')).toEqual({ readOnly: true })
    expect(toDbpoolSettings({ accessMode: 'read write', isolationLevel: 'serializable' }, 'postgres')).toEqual({
      readOnly: false,
      isolation: 'serializable',
    })
    expect(toDbpoolSettings({ isolationLevel: 'repeatable read' }, 'postgres')).toEqual({ isolation: 'repeatable read' })
  })

  it("runs 'read uncommitted' as 'read committed' (what Postgres does)", () => {
    expect(toDbpoolSettings({ isolationLevel: 'read uncommitted' }, 'postgres')).toEqual({ isolation: 'read committed' })
  })

  it("refuses 'snapshot' with CONFIGURATION naming isolationLevel", () => {
    let err: unknown
    try {
      toDbpoolSettings({ isolationLevel: 'snapshot' }, 'postgres')
    } catch (e) {
      err = e
    }
    expect(DatabaseError.is(err, 'CONFIGURATION')).toBe(true)
    expect((err as Error).message).toMatch(/isolationLevel "snapshot"/)
  })
})
