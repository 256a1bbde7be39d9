/** The text put where a secret was. */
export const REDACTED = '[REDACTED]'

/**
 * `text` with its secrets hidden by {@link REDACTED}, where they stand as secrets and nowhere else (a
 * secret hidden inside ordinary words would garble the message, and the gaps would spell it out:
 * password `e` gave `auth[REDACTED]ntication`, a password equal to the user name gave
 * `for user "[REDACTED]"` beside `postgres://postgres@`). Used on native error messages before they
 * reach a DatabaseError, and on log lines and spans.
 *
 * - Always, whatever the value: the password of every URL (`scheme://user:[REDACTED]@host`,
 *   {@link redactUrlPasswords}) and every `password=value` / `*password=value` key/value
 *   (libpq conninfo, command lines; the value to the next blank, or quoted) and JSON
 *   `"password": "value"`. These are hidden whatever they hold, so what is hidden tells nothing.
 * - Each of `secrets` (the configured password, a password function's results) where it stands as a
 *   whole value: the whole text, a whole quoted string (`"…"`, `'…'`, `` `…` ``: where PostgreSQL,
 *   SQLite and Node echo a value), or a blank-delimited word (a trailing `.`, `,`, `;`, `:` or `)`
 *   allowed) when the secret mixes letters with digits or symbols and has 4 characters or more.
 *   A plain word or number is never hidden unquoted, nor inside a longer word (`no_table_devpass_x`
 *   stays): a password `password`, `failed` or `1` would turn a message's own words into gaps that
 *   tell it.
 * - A strong secret (8 characters or more, neither only letters nor only digits: `Wr0ng-Pa55word`)
 *   wherever it occurs, inside a longer word too (a JSON parse error's `...Hunter2PW}}}`): no
 *   message's own text is such a string, so the gap tells nothing.
 * - A secret equal to one of `shown` (values every message shows as themselves: the user name, the
 *   database, the host names) is hidden only where it is a secret by position (first rule): hiding
 *   it elsewhere would tell it.
 *
 * Short secrets follow the same rule: a 1 to 3 character password is hidden in URLs, key/values and
 * as a whole quoted value, never in words. Linear in the length of `text` per secret.
 */
export function redactSecrets(
  text: string,
  secrets: readonly (string | undefined)[] = [],
  shown: readonly (string | undefined)[] = [],
): string {
  let out = redactPasswordValues(redactUrlPasswords(text))
  for (const secret of secrets) {
    if (secret && secret.length > 0 && out.includes(secret) && !shown.includes(secret)) out = hideWhole(out, secret)
  }
  return out
}

/** `…password…=value` (unquoted to the next blank, or `'…'` / `"…"`) and JSON `"…password": "…"`. */
const PASSWORD_VALUE =
  /(password[a-z_]*\s*=\s*)(\[REDACTED\]|'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|[^\s'"]+)|(password[a-z_]*"\s*:\s*)"(?:[^"\\]|\\.)*"/gi

/**
 * `text` with the value of every `password=value` (any key ending or holding `password`, any case:
 * `PGPASSWORD=`, `sslpassword=`, `--password=`; the value unquoted to the next blank, or quoted) and
 * of every JSON `"password": "value"` replaced by {@link REDACTED}, whatever the value.
 */
export function redactPasswordValues(text: string): string {
  if (!/password/i.test(text)) return text
  return text.replace(PASSWORD_VALUE, (_m, key: string | undefined, _v, jsonKey: string | undefined) =>
    key !== undefined ? `${key}${REDACTED}` : `${jsonKey}"${REDACTED}"`,
  )
}

/** `text` with every occurrence of `secret` that stands as a whole value, or every one of a strong secret (see {@link redactSecrets}), hidden. */
function hideWhole(text: string, secret: string): string {
  if (secret.length >= 8 && !/^\p{L}+$/u.test(secret) && !/^\d+$/.test(secret)) return text.split(secret).join(REDACTED)
  const word = secret.length >= 4 && /[a-z]/i.test(secret) && /[^a-z]/i.test(secret)
  let out = ''
  let copied = 0
  let i = text.indexOf(secret)
  while (i >= 0) {
    const end = i + secret.length
    const before = i === 0 ? -1 : text.charCodeAt(i - 1)
    const after = end === text.length ? -1 : text.charCodeAt(end)
    const whole =
      (before === -1 && after === -1) ||
      (isQuote(before) && after === before) ||
      (word &&
        (before === -1 || isBlank(before) || before === 40 /* ( */ || before === 61) /* = */ &&
        (after === -1 || isBlank(after) || isTail(after) || after === 59)) /* ; */
    if (whole) {
      out += text.slice(copied, i) + REDACTED
      copied = end
      i = text.indexOf(secret, end)
    } else i = text.indexOf(secret, i + 1)
  }
  return copied === 0 ? text : out + text.slice(copied)
}

/** `"`, `'` or `` ` ``. */
function isQuote(c: number): boolean {
  return c === 34 || c === 39 || c === 96
}

/**
 * Hides the password in every `scheme://user:password@host` found in `text`. The password runs from
 * the `:` after the user name to the LAST `@` of the URL (the URL ends at a blank, or where the next
 * `scheme://` starts once an `@` was seen), so a password with an unencoded `@`, `/`, `?` or `#`
 * (`postgres://u:4711/Secr3t@db/x`, `postgres://u:p?q@db/x`) is hidden whole; an `@` in a query value
 * after the real host may be hidden with it (never less). Linear in the length of `text`: it looks
 * for `://` first and reads each character a bounded number of times.
 */
export function redactUrlPasswords(text: string): string {
  return scrubUrlPasswords(text, false)
}

/**
 * @internal {@link redactUrlPasswords}, or with `whole` the text is one URL (a blank in it is part of
 * the password, as a URL parser reads it).
 */
export function scrubUrlPasswords(text: string, whole: boolean): string {
  const length = text.length
  let out = ''
  let copied = 0
  // the blank-delimited word the last URL was in, and its last "@" (read once per word)
  let wordEnd = -1
  let wordLastAt = -1
  let sep = text.indexOf('://')
  while (sep >= 0) {
    const next = text.indexOf('://', sep + 3)
    if (sep > 0 && sep >= copied && isSchemeChar(text.charCodeAt(sep - 1))) {
      // the user name: up to ":" (a "/", "?", "#", "@" or blank first: no password)
      let colon = sep + 3
      while (colon < length && !isUserNameEnd(text.charCodeAt(colon))) colon++
      if (colon < length && text.charCodeAt(colon) === 58 /* : */) {
        if (colon >= wordEnd) {
          wordEnd = colon
          wordLastAt = -1
          while (wordEnd < length && (whole || !isBlank(text.charCodeAt(wordEnd)))) {
            if (text.charCodeAt(wordEnd) === 64 /* @ */) wordLastAt = wordEnd
            wordEnd++
          }
        }
        // the last "@" before the next URL of the word, else the word's last "@"
        let at = -1
        const stop = next >= 0 && next < wordEnd ? next : wordEnd
        for (let i = colon + 1; i < stop; i++) if (text.charCodeAt(i) === 64 /* @ */) at = i
        if (at < 0 && wordLastAt > colon) at = wordLastAt
        if (at > colon) {
          out += text.slice(copied, colon + 1) + REDACTED
          copied = at
        }
      }
    }
    sep = next
  }
  return copied === 0 ? text : out + text.slice(copied)
}

/**
 * One URL as an error or a log may show it: its password (in the user info, to the URL's LAST `@`) and
 * the VALUE of every query parameter (`?name=value&...`, names kept: `?pasword=[REDACTED]&sslmode=require`)
 * replaced by {@link REDACTED}, except, in a `postgres://` / `postgresql://` URL, the libpq
 * parameters that hold no secret ({@link SHOWN_POSTGRES_QUERY_KEYS}: `host`, `port`, `sslmode`,
 * `target_session_attrs`..., spelt exactly so), which stay, so an error about them shows them. A
 * misspelt `pasword=`, a `sslpassword=`, `passfile=`, any unknown name, a SQLCipher `key=` (every
 * value of a non-Postgres URL) are hidden this way without a list of secret names. The text is read as one URL (a blank is part of it). Every
 * place dbpool shows a URL in an error (core's config, @dbpool/postgres, the CLI) goes through this or
 * {@link redactUrlQueryValues}.
 */
export function redactUrl(url: string): string {
  const scrubbed = hidePortPasswords(scrubUrlPasswords(url, true))
  const question = scrubbed.indexOf('?')
  if (question < 0) return scrubbed
  const hash = scrubbed.indexOf('#', question)
  return hideQueryValues(scrubbed, question, hash < 0 ? scrubbed.length : hash, /^postgres(?:ql)?:\/\//i.test(scrubbed))
}

/**
 * `url` (a `scheme://` URL) with every port of its authority that is not digits hidden, when the
 * authority has no `@`: `postgres://app:Hunter2Secret/ledger` (a template whose `@host` expanded to
 * nothing) is read by a URL parser as host `app`, port `Hunter2Secret`, which is the password.
 */
function hidePortPasswords(url: string): string {
  const sep = url.indexOf('://')
  if (sep < 0) return url
  const start = sep + 3
  let end = start
  while (end < url.length && !'/?#'.includes(url[end]!)) end++
  const authority = url.slice(start, end)
  if (authority.includes('@') || !authority.includes(':')) return url
  const specs = authority.split(',').map((spec) => {
    const from = spec.startsWith('[') ? spec.indexOf(']') + 1 : 0
    const colon = spec.indexOf(':', from)
    return colon < 0 || /^\d*$/.test(spec.slice(colon + 1)) ? spec : `${spec.slice(0, colon + 1)}${REDACTED}`
  })
  return `${url.slice(0, start)}${specs.join(',')}${url.slice(end)}`
}

/**
 * A value a user gave (an option, an argument) as an error may show it, when it may be or hold a
 * connection string: every `scheme://` URL in it through {@link redactUrl} (a text with `://` is read
 * as one URL), every `password=value` hidden; a text without `://` that has an `@` after a `:` (a URL
 * with a mistyped scheme, `postgres:/app:Hunter2Secret@db/ledger`, `postgres//app:...@db`, or none:
 * `app:Hunter2Secret@db/ledger`) shown only up to its first `:` (`postgres:...`), since where its
 * password starts cannot be told. Any other text as it is.
 */
export function redactUserText(text: string): string {
  let out = redactPasswordValues(text)
  if (out.includes('://')) return redactUrl(out)
  const colon = out.indexOf(':')
  if (colon >= 0 && out.indexOf('@', colon) > colon) out = `${out.slice(0, colon)}:...`
  return out
}

/**
 * `text` with the value of every query parameter of every URL in it (`scheme://...?` or `sqlite:...?`,
 * up to the next blank or `#`, a closing quote at the word's end excluded) replaced by {@link REDACTED}, names kept; a
 * `postgres://` URL's libpq parameters that hold no secret are kept as in {@link redactUrl}. Linear: each URL start is
 * found once and its word read once. Passwords in the user info: {@link redactUrlPasswords}.
 */
export function redactUrlQueryValues(text: string): string {
  let out = ''
  let copied = 0
  let from = 0
  // the next "://" and "sqlite:", each searched again only once passed (linear)
  let sep = -2
  let sqlite = -2
  for (;;) {
    if (sep !== -1 && sep < from) sep = text.indexOf('://', from)
    if (sqlite !== -1 && sqlite < from) sqlite = indexOfSqlite(text, from)
    const start = sep < 0 ? sqlite : sqlite < 0 ? sep : Math.min(sep, sqlite)
    if (start < 0) break
    let end = start
    let question = -1
    let queryEnd = -1
    for (; end < text.length && !isBlank(text.charCodeAt(end)); end++) {
      const c = text.charCodeAt(end)
      if (c === 63 /* ? */ && question < 0) question = end
      else if (c === 35 /* # */ && question >= 0 && queryEnd < 0) queryEnd = end
    }
    from = end + 1
    if (question < 0) continue
    if (queryEnd < 0) queryEnd = trimQuote(text, question, end)
    out += hideQueryValues(text.slice(copied, queryEnd), question - copied, queryEnd - copied, start === sep && isPostgresScheme(text, sep))
    copied = queryEnd
  }
  return copied === 0 ? text : out + text.slice(copied)
}

/**
 * Where a word's query ends without its closing quote: a `"` or `'` that ends the word or is followed
 * only by `:`, `,`, `.` or `)` (`invalid database.url "postgres://h/d?x=[REDACTED]": ...`); a quote
 * inside the word is part of the value.
 */
function trimQuote(text: string, question: number, end: number): number {
  let i = end
  while (i > question + 1 && isTail(text.charCodeAt(i - 1))) i--
  const c = text.charCodeAt(i - 1)
  return i > question + 1 && (c === 34 /* " */ || c === 39) /* ' */ ? i - 1 : end
}

/** `:`, `,`, `.`, `)`. */
function isTail(c: number): boolean {
  return c === 58 || c === 44 || c === 46 || c === 41
}

/** The first `sqlite:` (any case) at or after `from`, else -1. */
function indexOfSqlite(text: string, from: number): number {
  const re = /sqlite:/gi
  re.lastIndex = from
  const m = re.exec(text)
  return m === null ? -1 : m.index
}

/**
 * The libpq connection parameters whose values are no secret (hosts, ports, modes, timeouts, names,
 * certificate paths), shown in a `postgres://` URL's query. Exact names only (libpq's are case
 * sensitive): anything else (`password`, `passfile`, `sslpassword`, `sslkey`, `options`, which may
 * carry `-c` settings, a misspelt or unknown name) stays hidden.
 */
const SHOWN_POSTGRES_QUERY_KEYS: ReadonlySet<string> = new Set([
  'host',
  'hostaddr',
  'port',
  'dbname',
  'user',
  'sslmode',
  'sslrootcert',
  'sslcert',
  'sslcrl',
  'sslcrldir',
  'sslsni',
  'sslcompression',
  'ssl_min_protocol_version',
  'ssl_max_protocol_version',
  'gssencmode',
  'gsslib',
  'krbsrvname',
  'requirepeer',
  'require_auth',
  'channel_binding',
  'service',
  'target_session_attrs',
  'load_balance_hosts',
  'connect_timeout',
  'application_name',
  'fallback_application_name',
  'client_encoding',
  'keepalives',
  'keepalives_idle',
  'keepalives_interval',
  'keepalives_count',
  'tcp_user_timeout',
  'replication',
  'statement_timeout',
  'idle_in_transaction_session_timeout',
  'lock_timeout',
  'pgbouncer',
])

/** Whether the `://` at `sep` ends a `postgres` or `postgresql` scheme (any case) that starts a word. */
function isPostgresScheme(text: string, sep: number): boolean {
  for (const scheme of ['postgresql', 'postgres']) {
    const start = sep - scheme.length
    if (start >= 0 && text.slice(start, sep).toLowerCase() === scheme && (start === 0 || !isSchemeChar(text.charCodeAt(start - 1))))
      return true
  }
  return false
}

/**
 * `text` with the values of the `&`-separated pairs between `question` (the `?`) and `end` hidden;
 * with `postgres`, those of {@link SHOWN_POSTGRES_QUERY_KEYS} kept.
 */
function hideQueryValues(text: string, question: number, end: number, postgres = false): string {
  const pairs = text
    .slice(question + 1, end)
    .split('&')
    .map((pair) => {
      const eq = pair.indexOf('=')
      if (eq < 0 || (postgres && SHOWN_POSTGRES_QUERY_KEYS.has(pair.slice(0, eq)))) return pair
      return `${pair.slice(0, eq + 1)}${REDACTED}`
    })
  return `${text.slice(0, question + 1)}${pairs.join('&')}${text.slice(end)}`
}

/** `[a-z0-9+.-]`, the characters of a URL scheme. */
function isSchemeChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 43 || c === 46 || c === 45
}

/** `:`, `/`, `?`, `#`, `@` or a blank: where a URL's user name ends. */
function isUserNameEnd(c: number): boolean {
  return c === 58 || c === 47 || c === 63 || c === 35 || c === 64 || isBlank(c)
}

function isBlank(c: number): boolean {
  return (
    c === 32 ||
    (c >= 9 && c <= 13) ||
    c === 0xa0 ||
    c === 0x1680 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0xfeff ||
    (c >= 0x2000 && c <= 0x200a)
  )
}
