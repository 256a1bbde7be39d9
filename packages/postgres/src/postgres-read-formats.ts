import { DatabaseError } from '@dbpool/core'
import type { PostgresConnection } from './postgres-connection'
import { skipCommentsAndLiterals } from './postgres-sql-text'
import { isErrorLike } from '@dbpool/core/internal'

/** The `extra_float_digits` the pool keeps (see {@link ReadFormats}). */
const EXTRA_FLOAT_DIGITS = '3'

/**
 * The output formats dbpool's row parsers read exactly (see `createTypeParsers`), set on every
 * session whatever the server, database or role default (`ALTER DATABASE ... SET datestyle = 'SQL,
 * DMY'` made pg read a NOT NULL timestamptz as null; `extra_float_digits = 0` rounded float8 to 15
 * digits, 0.30000000000000004 to 0.3; `IntervalStyle = 'postgres_verbose'` read an interval as `{}`),
 * without changing how the server reads the texts the application sends (see {@link readFormatsOf}):
 *
 * - `DateStyle` `ISO, <order>`: the output part ISO, the day/month input order (`DMY`, `MDY`, `YMD`)
 *   the server's own default for the database and role (`'03/04/2024'` is 3 April under DMY, as
 *   with psql);
 * - `IntervalStyle` `postgres`, or `sql_standard` when that is the server's default: it also changes
 *   how the server reads an interval text (`'-1 2:00:00'` is −26 h there, −22 h in the other styles),
 *   so it is kept, and its output is read exactly (see `createTypeParsers`); `postgres_verbose` and
 *   `iso_8601` read input as `postgres` does and are replaced;
 * - `extra_float_digits` `3`: shortest exact text on PostgreSQL 12+ (any value ≥ 1), 17 significant
 *   digits before (exact round trip). Output only.
 */
export interface ReadFormats {
  readonly DateStyle: string
  readonly IntervalStyle: 'postgres' | 'sql_standard'
  readonly extra_float_digits: '3'
}

/**
 * The pool's {@link ReadFormats} for a server whose defaults (as it reported them with ParameterStatus
 * on a connection opened without these startup parameters) are `dateStyle` and `intervalStyle`: the
 * order of `dateStyle` (`'SQL, DMY'` → `'ISO, DMY'`; `MDY`, PostgreSQL's own default, when it names
 * none or was not reported), `sql_standard` kept, every other IntervalStyle `postgres`.
 */
export function readFormatsOf(dateStyle: string | undefined, intervalStyle: string | undefined): ReadFormats {
  const order = /\b(DMY|MDY|YMD)\b/i.exec(dateStyle ?? '')?.[1]?.toUpperCase() ?? 'MDY'
  return {
    DateStyle: `ISO, ${order}`,
    IntervalStyle: intervalStyle?.toLowerCase() === 'sql_standard' ? 'sql_standard' : 'postgres',
    extra_float_digits: EXTRA_FLOAT_DIGITS,
  }
}

/**
 * The startup parameters added to pg's (client settings: they win over database and role settings,
 * and `RESET` returns to them). Without `formats` (a manager's first connection, which learns the
 * server's defaults: see {@link readFormatsOf}) only `extra_float_digits`; then all three. Behind
 * PgBouncer (`bouncer`), which accepts only `DateStyle` of these (1.18: `user`, `database`,
 * `application_name`, `client_encoding`, `DateStyle`, `TimeZone`, `standard_conforming_strings`;
 * "unsupported startup parameter" otherwise), `DateStyle` alone (nothing on the first connection): in
 * session mode the other two are SET after connecting (part of the setup run again after a reset, see
 * {@link readFormatSetup}); in transaction mode a SET would reach one server connection, so they are
 * checked with SHOW at connect instead (see {@link readFormatProblem}).
 */
export function readFormatStartup(bouncer: boolean, formats: ReadFormats | undefined): Readonly<Record<string, string>> {
  if (bouncer) return formats === undefined ? {} : { DateStyle: formats.DateStyle }
  return formats === undefined ? { extra_float_digits: EXTRA_FLOAT_DIGITS } : { ...formats }
}

/**
 * Whether a connection opened while learning the server's defaults (startup parameters without
 * DateStyle and IntervalStyle) already holds `formats`: otherwise it is opened again with them.
 * `bouncer`: IntervalStyle is SET after connecting (session mode) or checked (transaction mode).
 */
export function holdsReadFormats(conn: PostgresConnection, formats: ReadFormats, bouncer: boolean): boolean {
  return (
    conn.serverParameter('DateStyle') === formats.DateStyle && (bouncer || conn.serverParameter('IntervalStyle') === formats.IntervalStyle)
  )
}

/**
 * The {@link ReadFormats} of `conn` once its whole setup (`sessionInit` included) has run: DateStyle and
 * IntervalStyle as the server then reports them (`pool` where it reported nothing), the baseline the
 * release compares with and restores (see {@link readFormatsChanged}). A `SET datestyle = 'ISO, DMY'`
 * or `SET intervalstyle = sql_standard` of sessionInit is the session's own setting, kept on every
 * lease (review r17i: compared with the pool's learnt server default, it was "restored" on the first
 * release, so '03/04/2024' read as 3 April on some leases and 4 March on others). A setup that leaves
 * an output the row parsers cannot read (DateStyle SQL / Postgres / German, IntervalStyle
 * postgres_verbose / iso_8601) is CONFIGURATION (`detail.option` `postgres.sessionInit`,
 * `detail.setting`, `detail.value`): every date/time or interval read would be refused.
 */
export function sessionReadFormats(conn: PostgresConnection, pool: ReadFormats): ReadFormats {
  const dateStyle = conn.serverParameter('DateStyle') ?? pool.DateStyle
  const intervalStyle = (conn.serverParameter('IntervalStyle') ?? pool.IntervalStyle).toLowerCase()
  if (!/^ISO\b/i.test(dateStyle)) throw unreadableSessionInit('DateStyle', dateStyle)
  if (intervalStyle !== 'postgres' && intervalStyle !== 'sql_standard') throw unreadableSessionInit('IntervalStyle', intervalStyle)
  return dateStyle === pool.DateStyle && intervalStyle === pool.IntervalStyle
    ? pool
    : { DateStyle: dateStyle, IntervalStyle: intervalStyle, extra_float_digits: EXTRA_FLOAT_DIGITS }
}

function unreadableSessionInit(setting: 'DateStyle' | 'IntervalStyle', value: string): DatabaseError {
  const want =
    setting === 'DateStyle'
      ? "the output style ISO (the input order may be any: SET datestyle = 'ISO, DMY')"
      : "'postgres' or 'sql_standard'"
  return new DatabaseError(
    'CONFIGURATION',
    `sessionInit leaves ${setting} ${JSON.stringify(value)}; dbpool reads values exactly only with ${setting} ${want}, and would refuse every such value read: change sessionInit`,
    { backend: 'postgres', retryable: false, detail: { option: 'postgres.sessionInit', setting, value } },
  )
}

/**
 * The output style a sessionInit statement visibly gives DateStyle or IntervalStyle, when the row
 * parsers cannot read it (`SET datestyle = 'SQL, DMY'`, `SET DateStyle TO German`,
 * `select set_config('datestyle', 'Postgres', false)`, `SET intervalstyle = iso_8601`): refused when
 * the pool is made (CONFIGURATION, see {@link sessionReadFormats} for the check every connection
 * makes of what the server reports after the setup, which also covers what no text shows). DateStyle
 * keeps its current output style when the value names none (`SET datestyle = DMY`), and the last
 * style named wins, as in PostgreSQL's check_datestyle.
 */
export function sessionInitFormatProblem(
  text: string,
): { readonly setting: 'DateStyle' | 'IntervalStyle'; readonly value: string } | undefined {
  for (const m of text.matchAll(SETS_FORMAT)) {
    const name = (m[1] ?? m[3] ?? '').toLowerCase()
    const value = (m[2] ?? m[4] ?? '').trim()
    if (name === 'datestyle') {
      const styles = value.match(/\b(?:iso|sql|postgres|german)\b/gi)
      const last = styles?.[styles.length - 1]
      if (last !== undefined && last.toLowerCase() !== 'iso') return { setting: 'DateStyle', value }
    } else if (/^(?:postgres_verbose|iso_8601)$/i.test(value.replace(/'/g, ''))) return { setting: 'IntervalStyle', value }
  }
  return undefined
}

/** `SET [SESSION] datestyle|intervalstyle TO|= value` up to `;`, or `set_config('datestyle'|'intervalstyle', 'value'`. */
const SETS_FORMAT =
  /\bset\s+(?:session\s+)?(datestyle|intervalstyle)\s*(?:=|\bto\b)\s*([^;]*)|\bset_config\s*\(\s*'(datestyle|intervalstyle)'\s*,\s*'([^']*)'/gi

/**
 * A server (a PgBouncer the config does not declare: `pgbouncer` unset) refused a startup parameter
 * of {@link readFormatStartup} ("unsupported startup parameter: IntervalStyle"): the connection is
 * opened again as behind PgBouncer (`DateStyle` alone), and the others are SET after connecting.
 */
export function refusesReadFormatStartup(err: unknown, bouncer: boolean): boolean {
  if (bouncer) return false
  const message = isErrorLike(err) ? err.message : ''
  return /unsupported startup parameter: (?:IntervalStyle|extra_float_digits)/i.test(message)
}

/** The SETs run after connecting (and after a reset) behind PgBouncer in session mode: what it refuses at startup. */
export function readFormatSetup(formats: ReadFormats): readonly string[] {
  return [`SET IntervalStyle = ${formats.IntervalStyle}`, `SET extra_float_digits = ${formats.extra_float_digits}`]
}

/** What restores DateStyle (output and input order) and IntervalStyle on release after a statement changed them (see {@link readFormatsChanged}). */
export function restoreReadFormatsSql(formats: ReadFormats): string {
  return `SET DateStyle = '${formats.DateStyle}'; SET IntervalStyle = ${formats.IntervalStyle}`
}

/** The query checking the two settings PgBouncer in transaction mode cannot send. */
export const SHOW_READ_FORMATS_SQL =
  "select current_setting('IntervalStyle') as interval_style, current_setting('extra_float_digits')::int as extra_float_digits, current_setting('server_version_num')::int as version"

/**
 * CONFIGURATION when the server's defaults (behind PgBouncer in transaction mode, where they cannot be
 * set) would make reads inexact: `IntervalStyle` other than `postgres` or `sql_standard` (both read
 * exactly), `extra_float_digits` below 1 (PostgreSQL 12+) or 3 (before). Undefined when they fit.
 */
export function readFormatProblem(row: { interval_style: string; extra_float_digits: number; version: number }): DatabaseError | undefined {
  const floor = row.version >= 120000 ? 1 : 3
  const [setting, value, want] = !['postgres', 'sql_standard'].includes(row.interval_style)
    ? ['IntervalStyle', row.interval_style, `'postgres'`]
    : row.extra_float_digits < floor
      ? ['extra_float_digits', row.extra_float_digits, floor === 1 ? 'at least 1' : '3']
      : []
  if (setting === undefined) return undefined
  return new DatabaseError(
    'CONFIGURATION',
    `the server's ${setting} is ${JSON.stringify(value)}; dbpool reads values exactly only with ${setting} ${setting === 'IntervalStyle' ? `'postgres' or 'sql_standard'` : want}, and behind PgBouncer in transaction mode it can neither send it at startup (PgBouncer refuses the startup parameter) nor SET it (a SET reaches one server connection): set it on the server (ALTER ROLE ... SET ${setting} = ${want === 'at least 1' ? '1' : want}) or connect directly or through PgBouncer in session mode`,
    { backend: 'postgres', retryable: false, detail: { option: 'postgres.pgbouncer', setting, value } },
  )
}

/**
 * Whether a statement of this session changed DateStyle or IntervalStyle from the connection's `formats`
 * (its baseline after the setup: see {@link sessionReadFormats})
 * (the server reports both with ParameterStatus; pg keeps the last value, see
 * `PostgresConnection.serverParameter`): the whole DateStyle is compared, so a changed input order
 * (`ISO, DMY` for `ISO, MDY`: `'03/04/2024'` read as 3 April) counts as well as a changed output. The
 * release sets them back ({@link restoreReadFormatsSql}) before anyone else uses the connection.
 * Meanwhile values read in another format are refused, never read as something else (see
 * `UnreadableValue`).
 */
export function readFormatsChanged(conn: PostgresConnection, formats: ReadFormats): boolean {
  const dateStyle = conn.serverParameter('DateStyle')
  const intervalStyle = conn.serverParameter('IntervalStyle')
  return (
    (dateStyle !== undefined && dateStyle !== formats.DateStyle) || (intervalStyle !== undefined && intervalStyle !== formats.IntervalStyle)
  )
}

/**
 * A statement that sets `extra_float_digits` (`SET [SESSION | LOCAL] extra_float_digits ...`,
 * `RESET extra_float_digits`, `set_config('extra_float_digits', ...)`), other than to the pool's value
 * (`= 3`); `ALTER ROLE/DATABASE ... SET` (later sessions, whose startup value wins) passes.
 */
const SETS_FLOAT_DIGITS =
  /\b(?:set\s+(?:session\s+|local\s+)?extra_float_digits\b(?!\s*(?:=|\bto\b)\s*'?3'?\s*(?:;|$))|reset\s+extra_float_digits\b|set_config\s*\(\s*'extra_float_digits')/i

/**
 * Refuses, before it is sent, a statement that sets `extra_float_digits` to anything but the pool's `3`
 * (see {@link SETS_FLOAT_DIGITS}): below 1 float4/float8 are written rounded (15 digits: 0.1 + 0.2 read
 * as 0.3), and, unlike DateStyle, the server does not report the change, so the pool could not see or
 * undo it for the rest of the lease and later borrowers. CONFIGURATION, `detail.setting`. A function,
 * procedure or trigger that sets it is not seen: do not (see {@link mayChangeFloatDigits}).
 */
export function checkFloatDigits(text: string): void {
  // the same texts come back (sql`` keeps its text per call site): a passed one is not scanned again
  if (PASSED.has(text)) return
  if (!FLOAT_DIGITS.test(text) || !SETS_FLOAT_DIGITS.test(text) || /^\s*alter\b/i.test(text)) {
    if (text.length <= MAX_KEPT_LENGTH) {
      if (PASSED.size >= MAX_KEPT) PASSED.clear()
      PASSED.add(text)
    }
    return
  }
  throw new DatabaseError(
    'CONFIGURATION',
    `the statement sets extra_float_digits: the pool keeps it at ${EXTRA_FLOAT_DIGITS} so that real and double precision values read back exactly (at 0 they are rounded to 15 digits), and Postgres does not report a change of it, so the rest of the session would read rounded floats silently; it was not sent. Format floats in the query instead (round(), to_char())`,
    { backend: 'postgres', retryable: false, detail: { setting: 'extra_float_digits' } },
  )
}

const FLOAT_DIGITS = /extra_float_digits/i

/**
 * Whether `text` may change `extra_float_digits` in a way {@link checkFloatDigits} does not see (a text
 * check cannot be complete: `set_config($1, $2, false)`, `update pg_settings set setting = '0' ...`,
 * `set "extra_float_digits" = 0`, a comment inside, `E'...'` names, a DO block): it names the setting,
 * `set_config` or `pg_settings`, or one of its statements is `SET`, `RESET`, `DISCARD`, `DO` or
 * `EXECUTE` (after leading comments). The release of a connection that ran one sets it back
 * ({@link RESTORE_FLOAT_DIGITS_SQL}); what is read in the same lease after it is the application's doing.
 * Not seen (the server does not report the setting): a function or procedure whose body changes it
 * (`select f()`, `CALL p()`), a trigger function (an `INSERT` whose trigger does), a rule.
 */
export function mayChangeFloatDigits(text: string): boolean {
  return MAY_CHANGE_FLOAT_DIGITS.test(text) || SESSION_COMMAND.test(text) || executesPrepared(text)
}

/**
 * Whether `text` may run an SQL-level prepared statement: the word `EXECUTE` anywhere outside string
 * literals, comments and quoted identifiers (`EXECUTE p(...)`, `EXPLAIN ANALYZE EXECUTE p(...)`,
 * `CREATE TABLE t AS EXECUTE p(...)`: the prepared text, maybe PREPAREd in an earlier lease, is not
 * shown); `executed_at` or `"execute"` is not one. A text that cannot be scanned safely (dollar
 * quoting, `E'...'` strings: see skipCommentsAndLiterals) is tested whole, so a PL/pgSQL `EXECUTE`
 * in a function body counts too (harmless: one more `SET` on release, a lease of its own).
 */
export function executesPrepared(text: string): boolean {
  if (!EXECUTE_WORD.test(text)) return false
  const stripped = skipCommentsAndLiterals(text)
  return stripped === undefined || EXECUTE_WORD.test(stripped.replace(/"[^"]*"/g, ' '))
}

const EXECUTE_WORD = /(?<![\w$\u0080-\uffff])execute(?![\w$\u0080-\uffff])/i

const MAY_CHANGE_FLOAT_DIGITS = /extra_float_digits|set_config|pg_settings/i
/**
 * A statement (the text's first, or one after a `;`) starting, after comments, with SET, RESET,
 * DISCARD, DO or EXECUTE (an SQL-level prepared statement, maybe PREPAREd in an earlier lease, runs a
 * text this one does not show; anywhere else in a text: see {@link executesPrepared}).
 */
const SESSION_COMMAND = /(?:^|;)\s*(?:(?:\/\*[\s\S]*?\*\/|--[^\n]*(?:\n|$))\s*)*(?:set|reset|discard|do|execute)\b/i

/** What sets `extra_float_digits` back on release after a statement that may have changed it. */
export const RESTORE_FLOAT_DIGITS_SQL = `SET extra_float_digits = ${EXTRA_FLOAT_DIGITS}`

/**
 * Behind PgBouncer in transaction mode, why `text` is refused (CONFIGURATION) as one that may change
 * `extra_float_digits`, or `undefined`: the server connection goes to other clients after the
 * statement's transaction, which would read rounded floats, and nothing can set it back. Refused: a
 * text naming the setting (or a `U&"..."` identifier) with a word that writes (`SET`, `RESET`,
 * `UPDATE`, `set_config`, `DO`; `SHOW extra_float_digits`, `current_setting('extra_float_digits')`
 * pass), `pg_settings` with `UPDATE`, and `set_config(` whose first argument is not a plain `'name'`
 * literal (a parameter, an `E'...'` string, an expression). Not seen: a function whose body does it.
 */
export function floatDigitsChangeInTransactionMode(text: string): string | undefined {
  if (!MAY_CHANGE_FLOAT_DIGITS.test(text) && !UNICODE_IDENTIFIER.test(text)) return undefined
  const names = FLOAT_DIGITS.test(text) || UNICODE_IDENTIFIER.test(text)
  const writes =
    (names && WRITING_WORD.test(text)) || (/pg_settings/i.test(text) && /\bupdate\b/i.test(text)) || OPAQUE_SET_CONFIG.test(text)
  return writes
    ? `the statement may change extra_float_digits (the pool reads floats exactly at ${EXTRA_FLOAT_DIGITS}; at 0 they are rounded to 15 digits), which every client later given this server connection would inherit`
    : undefined
}

const UNICODE_IDENTIFIER = /\bu&["']/i
const WRITING_WORD = /\b(?:set|reset|update|set_config|do)\b/i
/** `set_config(` whose first argument is not a plain `'name'` literal. */
const OPAQUE_SET_CONFIG = /\bset_config\s*\(\s*(?!'[a-z_][a-z0-9_.]*'\s*,)/i
/** Texts that passed {@link checkFloatDigits}: at most {@link MAX_KEPT}, each at most {@link MAX_KEPT_LENGTH} characters. */
const PASSED = new Set<string>()
const MAX_KEPT = 2_000
const MAX_KEPT_LENGTH = 4_096
