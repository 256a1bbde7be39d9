import { DatabaseError } from '@dbpool/core'

/**
 * Settings a connection can be given at startup (parameters of the startup message, which PostgreSQL
 * applies as `-c name=value`, source `client`) instead of with a SET after connecting: they become the
 * session's default, so `RESET name`, `RESET ALL`, `DISCARD ALL`, `SET name TO DEFAULT`,
 * `set_config(name, NULL, false)`, also from inside a function, all return to them. A SET after
 * connecting is lost to any of those (see resetsSession, which only sees statement texts).
 */

/**
 * Names never sent as a startup parameter: pg sends them itself (`client_encoding`, the connection's
 * identity), the pool sets them (the output formats its row parsers read, a read lane's read-only
 * mode), or a reset does not return to the startup value (`role`: `SET SESSION AUTHORIZATION` and
 * `SET ROLE NONE` drop it whatever the default, and `RESET ALL` leaves it).
 */
const NOT_AT_STARTUP = new Set([
  'user',
  'database',
  'options',
  'replication',
  'application_name',
  'fallback_application_name',
  'client_encoding',
  'datestyle',
  'intervalstyle',
  'extra_float_digits',
  'default_transaction_read_only',
  'transaction_read_only',
  'transaction_isolation',
  'transaction_deferrable',
  'role',
  'session_authorization',
])

const WORD = /^[A-Za-z_][A-Za-z0-9_$]*$/
/**
 * The settings PostgreSQL flags GUC_LIST_QUOTE that a session can set: a SET writes each element of
 * their value as an identifier (`quote_identifier`: `SET search_path TO 'Tenant_A', public` gives
 * `"Tenant_A", public`, `'a,b'` gives `"a,b"`), while a startup value is read as a raw identifier list
 * (unquoted `Tenant_A` folds to `tenant_a`, `a,b` is two schemas). Their startup value is written as
 * the SET writes it (see {@link quoteIdentifier}).
 */
const LIST_QUOTE = new Set(['search_path', 'temp_tablespaces', 'local_preload_libraries', 'session_preload_libraries'])
/** One value of a SET: a number, an unquoted word (folded to lower case as PostgreSQL does), a plain string literal. */
const ITEM = /\s*(?:(-?\d+(?:\.\d+)?)|([A-Za-z_][A-Za-z0-9_$]*)|'((?:[^'\\]|'')*)')\s*/y

/**
 * The startup parameter `statement` amounts to, when it is exactly one `SET [SESSION] name TO|= value`
 * (or `SET [SESSION] TIME ZONE value`), an optional `;` after it; the value a number, an unquoted word
 * or a string literal without backslashes, or a comma list of those (`ledger, public`), written as the
 * server writes the SET's value (each element of `search_path` and the other GUC_LIST_QUOTE settings
 * as an identifier: `SET search_path TO 'Tenant_A', public` is `"Tenant_A", public`). Anything else
 * (comments, `SET LOCAL`, `DEFAULT`, double-quoted identifiers, several statements, a function call)
 * is undefined: it stays a statement run after connecting. The caller checks on each connection that
 * the server's default (`reset_val`) then equals what the SET gave (see startupSettingsCheckSql).
 */
export function startupParameterOf(statement: string): { readonly name: string; readonly value: string } | undefined {
  const m = /^\s*set\s+(?:session\s+)?(?:(time\s+zone)\s+|([A-Za-z_][\w.$]*)\s*(?:=|\s+to\b))(.*?)\s*;?\s*$/is.exec(statement)
  if (m === null) return undefined
  const name = m[1] !== undefined ? 'TimeZone' : m[2]!
  if (NOT_AT_STARTUP.has(name.toLowerCase()) || !name.split('.').every((part) => WORD.test(part))) return undefined
  const values: string[] = []
  const text = m[3]!
  let at = 0
  for (;;) {
    ITEM.lastIndex = at
    const item = ITEM.exec(text)
    if (item === null) return undefined
    const [, number, word, literal] = item
    if (word !== undefined && /^(?:default|local)$/i.test(word)) return undefined
    const value = number ?? (word !== undefined ? word.toLowerCase() : literal!.replace(/''/g, "'"))
    values.push(number === undefined && LIST_QUOTE.has(name.toLowerCase()) ? quoteIdentifier(value) : value)
    at = ITEM.lastIndex
    if (at === text.length) break
    if (text[at] !== ',') return undefined
    at++
  }
  if (m[1] !== undefined && values.length !== 1) return undefined
  return { name, value: values.join(', ') }
}

/**
 * An identifier as PostgreSQL's `quote_identifier` writes it (how SET writes an element of a
 * GUC_LIST_QUOTE setting): bare when it is lower-case letters, digits and `_` not starting with a
 * digit, else in double quotes with `"` doubled. A keyword (`user`) the server also quotes is left
 * bare here: the value means the same, and the check on connect (see startupSettingsCheckSql) finds
 * the texts differ, so the reset classifier covers that setting.
 */
export function quoteIdentifier(name: string): string {
  return /^[a-z_][a-z0-9_]*$/.test(name) ? name : `"${name.replace(/"/g, '""')}"`
}

/**
 * Per setting given at startup (lower-cased name): whether the server's default (`reset_val`) equals
 * the value the SET after connecting gave. A name absent from `pg_settings` (a custom `app.x`
 * placeholder on some versions, `role`) is not covered. The pool's own statement: the names are
 * written in (only setting-name characters, else undefined: not checked), and the leading comment
 * keeps it on the simple protocol, so it takes no place in the statement cache, is never a named
 * prepared statement on the server, and has no array parameter to check.
 */
export function startupSettingsCheckSql(names: readonly string[]): string | undefined {
  if (names.length === 0 || !names.every((name) => /^[a-z_][a-z0-9_$.]*$/.test(name))) return undefined
  return `/* dbpool */ select lower(name) as name, setting = reset_val as same from pg_settings where lower(name) in (${names.map((n) => `'${n}'`).join(', ')})`
}

/**
 * The server refused a startup parameter (SQLSTATE 42704 unknown name, 22023 / 22P02 bad value, 22021
 * bytes not valid in the server's encoding (a startup value is read before any client_encoding), 42501
 * not permitted, 55P02 not settable now): the connection is opened again without the settings, so
 * their SETs fail as `sessionInit` always did.
 */
export function refusesStartupSetting(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && ['42704', '22023', '22P02', '22021', '42501', '55P02', '0A000'].includes(code)
}

/**
 * The server's refusal, while connecting, of a setting the config's `options` gave (`-c name=value`,
 * `--name=value`): SQLSTATE 42704 (`unrecognized configuration parameter "foo"`), 22023 / 22P02
 * (`invalid value for parameter "statement_timeout": "abc"`), 42501 (`permission denied to set
 * parameter`), 55P02 (`cannot be changed now`), with the parameter named in the message and in
 * `options`. Every connection would fail so: CONFIGURATION naming `database.options` and the
 * parameter (not retryable; the server's error as `cause`, its SQLSTATE kept). Anything else (a
 * refusal of another kind, a parameter `options` does not hold): `undefined`.
 */
export function startupOptionError(error: DatabaseError, options: string | undefined): DatabaseError | undefined {
  if (options === undefined || error.sqlState === undefined || !STARTUP_REFUSALS.has(error.sqlState)) return undefined
  const name = /parameter "([^"]+)"/.exec(error.message)?.[1]
  if (name === undefined) return undefined
  const normalize = (text: string): string => text.toLowerCase().replace(/-/g, '_')
  if (!normalize(options).includes(normalize(name))) return undefined
  const prefix = /^connecting to \S+ (?:failed: )?/.exec(error.message)?.[0] ?? ''
  return new DatabaseError(
    'CONFIGURATION',
    `${prefix}invalid database.options: the server refused its setting ${JSON.stringify(name)} at connection start (options: the config's, the URL's options=, PGOPTIONS, or PGTZ / PGDATESTYLE / PGGEQO): ${error.message.slice(prefix.length)}`,
    {
      backend: 'postgres',
      sqlState: error.sqlState,
      cause: error,
      retryable: false,
      detail: { option: 'database.options', parameter: name },
    },
  )
}

const STARTUP_REFUSALS = new Set(['42704', '22023', '22P02', '42501', '55P02'])
