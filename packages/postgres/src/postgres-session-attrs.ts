import type { TargetSessionAttrs } from '@dbpool/core'
import type { PostgresConnection } from './postgres-connection'

/** What a check runs on a connection that is not ready for the pool yet (one statement, with a deadline). */
export type ProbeQuery = (conn: PostgresConnection, text: string) => Promise<Record<string, unknown> | undefined>

/** The kinds one pass over the host list looks for: `prefer-standby` is a `standby` pass, then an `any` pass (libpq). */
export function passesOf(attrs: TargetSessionAttrs): readonly Exclude<TargetSessionAttrs, 'prefer-standby'>[] {
  return attrs === 'prefer-standby' ? ['standby', 'any'] : [attrs]
}

/**
 * The kind a host walk of read-only sessions (a replica's, the primary's read-only pool: their own
 * startup option `default_transaction_read_only=on` makes every session read-only, which the server
 * reports back) looks for: the server's role, never the session's own setting. `read-write` is
 * `primary` (not in recovery), `read-only` is `standby` (in recovery); the other kinds already judge
 * the server's role. A fenced primary (`default_transaction_read_only` on in its configuration) is
 * not told apart from the pool's own option there: the write lane's walk refuses it, a read does not need to.
 */
export function roleKindOf(
  want: Exclude<TargetSessionAttrs, 'prefer-standby'>,
): Exclude<TargetSessionAttrs, 'prefer-standby' | 'read-write' | 'read-only'> {
  return want === 'read-write' ? 'primary' : want === 'read-only' ? 'standby' : want
}

/**
 * Why `conn` is not of the `want` kind, or `undefined` when it is. As libpq decides
 * (fe-connect.c, PQconnectPoll): on a server that reports `in_hot_standby` and
 * `default_transaction_read_only` at startup (PostgreSQL 14 and later) from those values, with no
 * round trip; on an older one `SHOW transaction_read_only` (read-write / read-only) or
 * `SELECT pg_catalog.pg_is_in_recovery()` (primary / standby).
 */
export async function mismatchOf(
  conn: PostgresConnection,
  want: Exclude<TargetSessionAttrs, 'prefer-standby'>,
  probe: ProbeQuery,
): Promise<string | undefined> {
  switch (want) {
    case 'any':
      return undefined
    case 'read-write':
      return (await isReadOnly(conn, probe)) ? 'is read-only' : undefined
    case 'read-only':
      return (await isReadOnly(conn, probe)) ? undefined : 'accepts writes (not read-only)'
    case 'primary':
      return (await inRecovery(conn, probe)) ? 'is a standby (in recovery)' : undefined
    case 'standby':
      return (await inRecovery(conn, probe)) ? undefined : 'is not a standby (not in recovery)'
  }
}

/** Read-only: a hot standby, or `default_transaction_read_only` on (a fenced primary). */
async function isReadOnly(conn: PostgresConnection, probe: ProbeQuery): Promise<boolean> {
  const hotStandby = conn.serverParameter('in_hot_standby')
  const readOnly = conn.serverParameter('default_transaction_read_only')
  if (hotStandby !== undefined && readOnly !== undefined) return hotStandby === 'on' || readOnly === 'on'
  const row = await probe(conn, 'SHOW transaction_read_only')
  return row?.transaction_read_only === 'on'
}

async function inRecovery(conn: PostgresConnection, probe: ProbeQuery): Promise<boolean> {
  const hotStandby = conn.serverParameter('in_hot_standby')
  if (hotStandby !== undefined) return hotStandby === 'on'
  const row = await probe(conn, 'SELECT pg_catalog.pg_is_in_recovery() AS in_recovery')
  return row?.in_recovery === true
}

/**
 * Whether the server behind `conn` is read-only now, as far as it reported (PostgreSQL 14 and later
 * report `in_hot_standby` and `default_transaction_read_only` when they change). `undefined`: it
 * reports neither.
 */
export function reportsReadOnly(conn: PostgresConnection): boolean | undefined {
  const hotStandby = conn.serverParameter('in_hot_standby')
  const readOnly = conn.serverParameter('default_transaction_read_only')
  if (hotStandby === undefined && readOnly === undefined) return undefined
  return hotStandby === 'on' || readOnly === 'on'
}

/** `host:port`, an IPv6 address in brackets, as the `failover` event and the errors name a server. */
export function hostLabel(host: string, port: number): string {
  return `${host.includes(':') ? `[${host}]` : host}:${port}`
}
