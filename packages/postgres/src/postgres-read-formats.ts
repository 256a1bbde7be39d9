import { DatabaseError } from '@dbpool/core'
import type { PostgresConnection } from './postgres-connection'
import type { PgBouncerMode } from './postgres-pgbouncer'

/**
 * The output formats dbpool's row parsers read exactly (see `createTypeParsers`), set on every
 * session whatever the server, database or role default (`ALTER DATABASE ... SET datestyle = 'SQL,
 * DMY'` made pg read a NOT NULL timestamptz as null; `extra_float_digits = 0` rounded float8 to 15
 * digits, 0.30000000000000004 to 0.3; `IntervalStyle = 'sql_standard'` read an interval as `{}`):
 *
 * - `DateStyle` `ISO` (the output part; the day/month input order stays the server's);
 * - `IntervalStyle` `postgres`;
 * - `extra_float_digits` `3`: shortest exact text on PostgreSQL 12+ (any value ≥ 1), 17 significant
 *   digits before (exact round trip).
 *
 * Sent as startup parameters (client settings: they win over database and role settings, and `RESET`
 * returns to them). PgBouncer accepts only `DateStyle` of these (1.18: `user`, `database`,
 * `application_name`, `client_encoding`, `DateStyle`, `TimeZone`, `standard_conforming_strings`;
 * "unsupported startup parameter" otherwise): in session mode the other two are SET after connecting
 * (part of the setup run again after a reset, see {@link readFormatSetup}); in transaction mode a SET
 * would reach one server connection, so they are checked with SHOW at connect instead (see
 * {@link readFormatProblem}): CONFIGURATION naming the setting when the server's default differs.
 */
export const READ_FORMATS = { DateStyle: 'ISO', IntervalStyle: 'postgres', extra_float_digits: '3' } as const

/** The startup parameters added to pg's (see {@link READ_FORMATS}): all three, or `DateStyle` alone behind PgBouncer. */
export function readFormatStartup(pgbouncer: PgBouncerMode | false): Readonly<Record<string, string>> {
  return pgbouncer ? { DateStyle: READ_FORMATS.DateStyle } : READ_FORMATS
}

/**
 * The server (a PgBouncer the config does not declare: `pgbouncer` unset) refused a startup parameter
 * of {@link READ_FORMATS} that `startup` held ("unsupported startup parameter: IntervalStyle"): the
 * connection is opened again with `DateStyle` alone, and the others are SET after connecting.
 */
export function refusesReadFormatStartup(err: unknown, startup: Readonly<Record<string, string>>): boolean {
  if (!('IntervalStyle' in startup)) return false
  const message = err instanceof Error ? err.message : ''
  return /unsupported startup parameter: (?:IntervalStyle|extra_float_digits)/i.test(message)
}

/** The SETs run after connecting (and after a reset) in PgBouncer session mode: what it refuses at startup. */
export function readFormatSetup(pgbouncer: PgBouncerMode | false): readonly string[] {
  return pgbouncer === 'session'
    ? [`SET IntervalStyle = ${READ_FORMATS.IntervalStyle}`, `SET extra_float_digits = ${READ_FORMATS.extra_float_digits}`]
    : []
}

/** What restores the formats on release after a statement changed them (see {@link readFormatsChanged}). */
export const RESTORE_READ_FORMATS_SQL = `SET DateStyle = ${READ_FORMATS.DateStyle}; SET IntervalStyle = ${READ_FORMATS.IntervalStyle}`

/** The query checking the two settings PgBouncer in transaction mode cannot send. */
export const SHOW_READ_FORMATS_SQL =
  "select current_setting('IntervalStyle') as interval_style, current_setting('extra_float_digits')::int as extra_float_digits, current_setting('server_version_num')::int as version"

/**
 * CONFIGURATION when the server's defaults (behind PgBouncer in transaction mode, where they cannot be
 * set) would make reads inexact: `IntervalStyle` other than `postgres`, `extra_float_digits` below 1
 * (PostgreSQL 12+) or 3 (before). Undefined when they fit.
 */
export function readFormatProblem(row: { interval_style: string; extra_float_digits: number; version: number }): DatabaseError | undefined {
  const floor = row.version >= 120000 ? 1 : 3
  const [setting, value, want] =
    row.interval_style !== READ_FORMATS.IntervalStyle
      ? ['IntervalStyle', row.interval_style, `'${READ_FORMATS.IntervalStyle}'`]
      : row.extra_float_digits < floor
        ? ['extra_float_digits', row.extra_float_digits, floor === 1 ? 'at least 1' : '3']
        : []
  if (setting === undefined) return undefined
  return new DatabaseError(
    'CONFIGURATION',
    `the server's ${setting} is ${JSON.stringify(value)}; dbpool reads values exactly only with ${setting} ${want}, and behind PgBouncer in transaction mode it can neither send it at startup (PgBouncer refuses the startup parameter) nor SET it (a SET reaches one server connection): set it on the server (ALTER ROLE ... SET ${setting} = ${want === 'at least 1' ? '1' : want}) or connect directly or through PgBouncer in session mode`,
    { backend: 'postgres', retryable: false, detail: { option: 'postgres.pgbouncer', setting, value } },
  )
}

/**
 * Whether a statement of this session changed DateStyle or IntervalStyle (the server reports both with
 * ParameterStatus; pg keeps the last value, see `PostgresConnection.serverParameter`): the release sets them
 * back ({@link RESTORE_READ_FORMATS_SQL}) before anyone else uses the connection. Meanwhile values read
 * in another format are refused, never read as something else (see `UnreadableValue`).
 */
export function readFormatsChanged(conn: PostgresConnection): boolean {
  const dateStyle = conn.serverParameter('DateStyle')
  const intervalStyle = conn.serverParameter('IntervalStyle')
  return (
    (dateStyle !== undefined && !dateStyle.startsWith('ISO')) ||
    (intervalStyle !== undefined && intervalStyle !== READ_FORMATS.IntervalStyle)
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
 * undo it for the rest of the lease and later borrowers. CONFIGURATION, `detail.setting`. A function
 * that sets it is not seen: do not.
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
    `the statement sets extra_float_digits: the pool keeps it at ${READ_FORMATS.extra_float_digits} so that real and double precision values read back exactly (at 0 they are rounded to 15 digits), and Postgres does not report a change of it, so the rest of the session would read rounded floats silently; it was not sent. Format floats in the query instead (round(), to_char())`,
    { backend: 'postgres', retryable: false, detail: { setting: 'extra_float_digits' } },
  )
}

const FLOAT_DIGITS = /extra_float_digits/i

/**
 * Whether `text` may change `extra_float_digits` in a way {@link checkFloatDigits} does not see (a text
 * check cannot be complete: `set_config($1, $2, false)`, `update pg_settings set setting = '0' ...`,
 * `set "extra_float_digits" = 0`, a comment inside, `E'...'` names, a DO block): it names the setting,
 * `set_config` or `pg_settings`, or one of its statements is `SET`, `RESET`, `DISCARD` or `DO`
 * (after leading comments). The release of a connection that ran one sets it back
 * ({@link RESTORE_FLOAT_DIGITS_SQL}); what is read in the same lease after it is the application's doing.
 * Not seen: a function or procedure whose body changes it (`select f()`, `CALL p()`).
 */
export function mayChangeFloatDigits(text: string): boolean {
  return MAY_CHANGE_FLOAT_DIGITS.test(text) || SESSION_COMMAND.test(text)
}

const MAY_CHANGE_FLOAT_DIGITS = /extra_float_digits|set_config|pg_settings/i
/** A statement (the text's first, or one after a `;`) starting, after comments, with SET, RESET, DISCARD or DO. */
const SESSION_COMMAND = /(?:^|;)\s*(?:(?:\/\*[\s\S]*?\*\/|--[^\n]*(?:\n|$))\s*)*(?:set|reset|discard|do)\b/i

/** What sets `extra_float_digits` back on release after a statement that may have changed it. */
export const RESTORE_FLOAT_DIGITS_SQL = `SET extra_float_digits = ${READ_FORMATS.extra_float_digits}`

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
    ? `the statement may change extra_float_digits (the pool reads floats exactly at ${READ_FORMATS.extra_float_digits}; at 0 they are rounded to 15 digits), which every client later given this server connection would inherit`
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
