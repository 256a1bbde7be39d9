import { DatabaseError, OUTCOME_COMMITTED, OUTCOME_UNKNOWN } from '@dbpool/core'
import { innerCommitPoint, mayHaveCommitted } from './postgres-outcome'
import type { PostgresConnection } from './postgres-connection'

/** Why a value could not be read exactly (see {@link UnreadableValue}). */
export type UnreadableReason = 'out-of-range' | 'format'

/**
 * @internal What a type parser returns, in place of the value, for a server text it cannot turn into
 * the documented JS value exactly: a `timestamptz` beyond a JS Date's range (after 275760-09-13, an
 * Invalid Date before), a date/time or interval text not in the ISO DateStyle / `postgres` or
 * `sql_standard` IntervalStyle the parsers read (a session whose DateStyle was changed: pg read such a timestamptz
 * as `null`, an interval as `{}`), a json number a double cannot hold (`1.5e400` was Infinity).
 * A parser never throws (inside pg-cursor a throw would escape the socket handler); it records the
 * marker on its connection's {@link ReadGuard} instead, and the statement's result is refused once
 * it arrives (see {@link findUnreadable}): no row holding it is handed out.
 */
export class UnreadableValue {
  constructor(
    /** The Postgres type (`timestamptz`, `json`...). */
    readonly type: string,
    readonly reason: UnreadableReason,
  ) {}

  // A row read past the pool (`conn.native.client.query()`) is not refused and may hold a marker: it
  // refuses to stand in for the value, so it is never written back or shown as if it were one
  // (JSON.stringify, a template string, `+`, node-postgres binding it as a parameter all throw)

  /** Throws QUERY_FAILED: the marker is not the value. */
  toJSON(): never {
    throw this.#misused()
  }

  /** Throws QUERY_FAILED: the marker is not the value. */
  toString(): never {
    throw this.#misused()
  }

  /** Throws QUERY_FAILED: the marker is not the value. */
  valueOf(): never {
    throw this.#misused()
  }

  /** Throws QUERY_FAILED: the marker is not the value. */
  [Symbol.toPrimitive](): never {
    throw this.#misused()
  }

  #misused(): DatabaseError {
    return new DatabaseError(
      'QUERY_FAILED',
      `a ${this.type} value read past the pool (conn.native) that dbpool cannot read exactly (${this.reason}) was used as a value: it is a marker standing for it, not the value; read it through the pool (which refuses the result) or as text (::text)`,
      { backend: 'postgres', retryable: false, detail: { type: this.type, reason: this.reason } },
    )
  }
}

/**
 * @internal Per connection: how many {@link UnreadableValue}s its parsers produced that no result
 * refused yet. Zero on the hot path (one property read per result); only then are rows scanned.
 */
export class ReadGuard {
  count = 0

  /** Records one unreadable value and returns the marker the parser hands pg. */
  unreadable(type: string, reason: UnreadableReason): UnreadableValue {
    this.count++
    return new UnreadableValue(type, reason)
  }
}

/** Where the first unreadable value of a result is. */
export interface UnreadableFound {
  readonly column: string
  readonly position: number
  readonly value: UnreadableValue
}

interface Field {
  readonly name: string
}

/**
 * The first {@link UnreadableValue} in `rows` (inside arrays and json values too), when `guard` says
 * parsers produced one; the guard's count is lowered by the markers found (rows of several results
 * may be parsed before the first is looked at). Undefined, at the cost of one read, otherwise.
 */
export function findUnreadable(
  guard: ReadGuard | undefined,
  rows: readonly unknown[],
  fields: readonly unknown[] | undefined,
): UnreadableFound | undefined {
  if (guard === undefined || guard.count === 0 || fields === undefined) return undefined
  let first: UnreadableFound | undefined
  let found = 0
  for (const row of rows) {
    for (let i = 0; i < fields.length; i++) {
      const name = (fields[i] as Field).name
      const marker = markerIn((row as Record<string, unknown>)[name], 0)
      if (marker === undefined) continue
      found++
      first ??= { column: name, position: i + 1, value: marker }
    }
  }
  guard.count = Math.max(0, guard.count - found)
  return first
}

function markerIn(value: unknown, depth: number): UnreadableValue | undefined {
  if (value === null || typeof value !== 'object' || depth > 1000) return undefined
  if (value instanceof UnreadableValue) return value
  if (Buffer.isBuffer(value) || value instanceof Date) return undefined
  for (const item of Array.isArray(value) ? value : Object.values(value)) {
    const marker = markerIn(item, depth + 1)
    if (marker !== undefined) return marker
  }
  return undefined
}

const WHY: Record<UnreadableReason, string> = {
  'out-of-range': 'is outside the range its JS type holds exactly (a Date ends at 275760-09-13; a double at ±1.8e308)',
  format:
    'is not in the output format dbpool reads (DateStyle ISO, IntervalStyle postgres or sql_standard): a statement of this session changed it (SET datestyle / intervalstyle); it is put back when the connection is released',
}

/**
 * QUERY_FAILED for a result holding an {@link UnreadableValue}, naming the column
 * (`detail: { column, position, type, reason }`); no row is handed out. The statement has run: with
 * `conn` (its answer arrived whole) the session's status says whether a write sent outside a
 * transaction (or run after its text's COMMIT ended the one it was sent in) committed
 * (`detail.outcome: 'committed'`) or the transaction is to be aborted (outcome unknown when the text
 * opened it after a COMMIT of its own); otherwise a statement outside a transaction that may have
 * written says its outcome is unknown.
 *
 * @param aborted The session's transaction had failed (`E`) when the text was sent.
 */
export function unreadableError(
  found: UnreadableFound,
  text: string,
  inTransaction: boolean,
  conn?: PostgresConnection,
  aborted = false,
): DatabaseError {
  const { column, position, value } = found
  let message = `column ${JSON.stringify(column)} (${position}) holds a ${value.type} value that ${WHY[value.reason]}; no row was returned`
  if (value.reason === 'out-of-range') message += `. Cast the column to text (${column}::text) to read such values`
  const state = conn === undefined ? 'unknown' : sessionState(conn)
  // sent inside a transaction, a text that ends it (`...; commit; ...`) commits it, and what follows
  // runs in auto-commit (re-review r12 item 4, the kind: only texts sent outside one were judged)
  const mayHave = mayHaveCommitted(text, inTransaction)
  let outcome: string | undefined
  if (state === 'committed' && mayHave) {
    message += '. The statement already ran and committed: do not run it again as is'
    outcome = OUTCOME_COMMITTED
  } else if (state !== 'aborted' && mayHave) {
    message += '. The statement already ran and may have committed: check before running it again'
    outcome = OUTCOME_UNKNOWN
  } else if (state === 'aborted' && innerCommitPoint(text, inTransaction, aborted) !== undefined) {
    // the transaction now aborted was opened by the text after a COMMIT of its own
    message +=
      '. The transaction it ran in is aborted (nothing of that transaction commits), but a COMMIT earlier in the text had committed the work before it: its outcome is unknown, check before running it again'
    outcome = OUTCOME_UNKNOWN
  } else if (state === 'aborted') message += '. The transaction it ran in is aborted: nothing of it commits'
  return new DatabaseError('QUERY_FAILED', message, {
    backend: 'postgres',
    retryable: false,
    detail: { column, position, type: value.type, reason: value.reason, ...(outcome === undefined ? {} : { outcome }) },
  })
}

function sessionState(conn: PostgresConnection): 'committed' | 'aborted' | 'unknown' {
  // pg keeps this flag untyped (see awaitsReadyForQuery in the manager)
  if ((conn.client as unknown as { readyForQuery: boolean }).readyForQuery !== true || !conn.usable) return 'unknown'
  const status = conn.client.getTransactionStatus()
  return status === 'I' ? 'committed' : status === 'T' ? 'aborted' : 'unknown'
}
