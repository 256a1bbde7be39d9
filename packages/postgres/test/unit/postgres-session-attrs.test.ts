import type { PostgresConnection } from '@dbpool/postgres'
import { hostLabel, mismatchOf, passesOf, reportsReadOnly } from '../../src/postgres-session-attrs'

/** A connection as far as the checks read it: the parameters the server reported. */
function reporting(params: Record<string, string>): PostgresConnection {
  return { serverParameter: (name: string) => params[name] } as unknown as PostgresConnection
}

describe('target_session_attrs checks (libpq PQconnectPoll)', () => {
  const v15 = { primary: { in_hot_standby: 'off', default_transaction_read_only: 'off' } }
  const never = (): Promise<Record<string, unknown>> => Promise.reject(new Error('no round trip expected'))

  it('PostgreSQL 14+: decided from the reported parameters, with no round trip', async () => {
    const primary = reporting(v15.primary)
    const standby = reporting({ in_hot_standby: 'on', default_transaction_read_only: 'off' })
    const fenced = reporting({ in_hot_standby: 'off', default_transaction_read_only: 'on' })
    expect(await mismatchOf(primary, 'read-write', never)).toBeUndefined()
    expect(await mismatchOf(standby, 'read-write', never)).toBe('is read-only')
    expect(await mismatchOf(fenced, 'read-write', never)).toBe('is read-only')
    expect(await mismatchOf(fenced, 'read-only', never)).toBeUndefined()
    expect(await mismatchOf(primary, 'read-only', never)).toMatch(/accepts writes/)
    // a fenced primary is still a primary (not in recovery)
    expect(await mismatchOf(fenced, 'primary', never)).toBeUndefined()
    expect(await mismatchOf(standby, 'primary', never)).toMatch(/is a standby/)
    expect(await mismatchOf(standby, 'standby', never)).toBeUndefined()
    expect(await mismatchOf(primary, 'standby', never)).toMatch(/not a standby/)
    expect(await mismatchOf(standby, 'any', never)).toBeUndefined()
    expect(reportsReadOnly(fenced)).toBe(true)
    expect(reportsReadOnly(primary)).toBe(false)
  })

  it('before 14 (nothing reported): SHOW transaction_read_only and pg_is_in_recovery(), as libpq asks', async () => {
    const old = reporting({})
    const asked: string[] = []
    const answers = (row: Record<string, unknown>) => (_conn: PostgresConnection, text: string) => {
      asked.push(text)
      return Promise.resolve(row)
    }
    expect(await mismatchOf(old, 'read-write', answers({ transaction_read_only: 'on' }))).toBe('is read-only')
    expect(await mismatchOf(old, 'read-write', answers({ transaction_read_only: 'off' }))).toBeUndefined()
    expect(await mismatchOf(old, 'standby', answers({ in_recovery: true }))).toBeUndefined()
    expect(await mismatchOf(old, 'primary', answers({ in_recovery: true }))).toMatch(/is a standby/)
    expect(asked).toEqual([
      'SHOW transaction_read_only',
      'SHOW transaction_read_only',
      'SELECT pg_catalog.pg_is_in_recovery() AS in_recovery',
      'SELECT pg_catalog.pg_is_in_recovery() AS in_recovery',
    ])
    expect(reportsReadOnly(old)).toBeUndefined()
  })

  it('prefer-standby is a standby pass then an any pass; host labels bracket IPv6', () => {
    expect(passesOf('prefer-standby')).toEqual(['standby', 'any'])
    expect(passesOf('read-write')).toEqual(['read-write'])
    expect(hostLabel('::1', 5432)).toBe('[::1]:5432')
    expect(hostLabel('db', 5433)).toBe('db:5433')
  })
})
