import { DatabaseConfig, hasAmbiguousCredentials, REDACTED, redactSecrets, redactUrlQueryValues } from '@dbpool/core'

/**
 * Where the CLI finds secrets, and the one scrubber every line it writes goes through.
 *
 * A URL's password is read two ways and both are kept: as libpq reads it (the user info ends at the
 * last `@` before the first `/`, `?` or `#`, so `p@ss` is one password), and as a person meant it
 * (up to the last `@` of the whole word, so a password with an unencoded `/`, `?` or `#` is kept
 * whole). A `password=` / `sslpassword=` query parameter is a secret too. Each is kept raw and
 * percent-decoded.
 */

/** `password=...` / `sslpassword=...` in a URL query. */
const QUERY_PASSWORD = /[?&](?:ssl)?password=([^&#\s]*)/gi
/** A flag whose value is a secret (`--url`, `--password`, `--token`, `--secret`, abbreviations of `--url` included). */
const SECRET_FLAG = /^--?(?:u|ur|url|[a-z-]*(?:pass|pwd|token|secret|credential)[a-z-]*)$/i
/**
 * An environment variable the CLI reads that holds a secret by its name: `PGPASSWORD`, and `DBPOOL_*`
 * ones named like a password, secret or token (`DBPOOL_SERVE_TOKEN`). Others (`GITHUB_TOKEN`,
 * `CSRF_TOKEN_ENABLED=true`) are not given to the CLI; scrubbing their values (`true`) would garble output.
 */
const SECRET_ENV = /^(?:PGPASSWORD|DBPOOL_\w*(?:PASSWORD|PASSWD|SECRET|TOKEN)\w*)$/i

/** Every password in `text` (URL user info and `password=` query parameters), raw and percent-decoded. */
export function credentialSecrets(text: string): string[] {
  const found = new Set<string>()
  const add = (raw: string | undefined): void => {
    if (!raw) return
    found.add(raw)
    try {
      const decoded = decodeURIComponent(raw)
      if (decoded !== '') found.add(decoded)
    } catch {
      // keep the raw form only
    }
  }
  for (const word of text.split(/\s+/)) {
    // "://" first: a regular expression starting at every letter is quadratic in a long word
    const sep = word.indexOf('://')
    if (sep > 0) {
      const rest = word.slice(sep + 3)
      // libpq: the authority ends at the first "/", "?" or "#", the user info at its last "@"
      const end = rest.search(/[/?#]/)
      const authority = end < 0 ? rest : rest.slice(0, end)
      const at = authority.lastIndexOf('@')
      const colon = authority.indexOf(':')
      if (at >= 0 && colon >= 0 && colon < at) add(authority.slice(colon + 1, at))
      // as meant: to the last "@" of the word (an unencoded "/", "?" or "#" in the password)
      const lastAt = rest.lastIndexOf('@')
      const firstColon = rest.indexOf(':')
      if (lastAt >= 0 && firstColon >= 0 && firstColon < lastAt && !/[/?#@]/.test(rest.slice(0, firstColon)))
        add(rest.slice(firstColon + 1, lastAt))
    }
    for (const match of word.matchAll(QUERY_PASSWORD)) add(match[1])
  }
  return [...found]
}

/** Whether a `postgres://` URL's password holds an unencoded `/`, `?` or `#`: @dbpool/core's check, the one its URL parser applies. */
export { hasAmbiguousCredentials }

/**
 * Secrets in the command line: the value after (or `=`-joined to) a `--url`-, `--password`- or
 * `--token`-like flag (abbreviated or misspelt ones included, as commander echoes them in its
 * errors), and the password of every URL anywhere in it.
 */
export function argvSecrets(argv: readonly string[]): string[] {
  const found = new Set<string>()
  argv.forEach((arg, i) => {
    for (const s of credentialSecrets(arg)) found.add(s)
    const eq = arg.indexOf('=')
    const flag = eq > 0 ? arg.slice(0, eq) : arg
    if (!SECRET_FLAG.test(flag)) return
    const value = eq > 0 ? arg.slice(eq + 1) : argv[i + 1]
    if (value === undefined || value === '' || value.startsWith('-')) return
    // a URL itself is no secret (its password is one, found above); anything else after such a flag is
    if (!/^[a-z][a-z0-9+.-]*:/i.test(value)) found.add(value)
  })
  return [...found]
}

/** Secrets in the environment: `PGPASSWORD`, `DBPOOL_*PASSWORD*` / `*SECRET*` / `*TOKEN*` variables, and every URL password. */
export function envSecrets(env: NodeJS.ProcessEnv): string[] {
  const found = new Set<string>()
  for (const [name, value] of Object.entries(env)) {
    if (!value) continue
    if (SECRET_ENV.test(name)) found.add(value)
    if (value.includes('://') || /password=/i.test(value)) for (const s of credentialSecrets(value)) found.add(s)
  }
  return [...found]
}

/**
 * The names messages show as themselves (core's `DatabaseConfig.shownNames`: user, database,
 * application name, hosts, with libpq's defaults) of every `postgres://` URL in `text`. A secret equal
 * to one of them is hidden only where it stands as a secret by position (see {@link scrubSecrets}).
 */
export function urlShownNames(text: string): string[] {
  const found: string[] = []
  // a list of URLs (DATABASE_REPLICA_URLS) is split before each URL, not at a multi-host URL's commas
  for (const word of text.split(/\s+|,(?=postgres(?:ql)?:\/\/)/i)) {
    const start = word.search(/postgres(?:ql)?:\/\//i)
    if (start >= 0) found.push(...DatabaseConfig.shownNamesOfUrl(word.slice(start)))
  }
  return found
}

/** {@link urlShownNames} of every argument (`--url postgres://u:p@h/db`). */
export function argvShownNames(argv: readonly string[]): string[] {
  return argv.flatMap((arg) => urlShownNames(arg))
}

/**
 * Names in the environment messages may show: PGUSER, PGDATABASE, PGHOST (each host), PGAPPNAME,
 * and those of every `postgres://` URL in any variable (`DATABASE_URL`, `DBPOOL_<POOL>_URL`, replica lists).
 */
export function envShownNames(env: NodeJS.ProcessEnv): string[] {
  const found: string[] = []
  for (const name of ['PGUSER', 'PGDATABASE', 'PGAPPNAME']) if (env[name]) found.push(env[name] as string)
  if (env.PGHOST) found.push(...env.PGHOST.split(',').filter((h) => h !== ''))
  for (const value of Object.values(env)) if (value && /postgres(?:ql)?:\/\//i.test(value)) found.push(...urlShownNames(value))
  return found
}

/**
 * `text` with every secret (longest first, so a secret containing another goes whole) where it stands
 * as one (core's `redactSecrets` rule: a strong secret everywhere, a short or plain-word one only as a
 * whole value, never inside the message's words, which garbled every line and told it by the gaps),
 * every URL password (to the last `@` of the word), every `password=` value and the value of every query parameter of every URL
 * (`postgres://...?pasword=[REDACTED]`, `sqlite:./a.db?key=[REDACTED]`; core's `redactUrlQueryValues`, which keeps a
 * `postgres://` URL's non-secret libpq values such as `host=`, `port=`, `sslmode=`) replaced by `[REDACTED]`.
 * A secret equal to one of `shown` (names output shows as themselves: {@link urlShownNames},
 * {@link envShownNames}, the config file's) is hidden only in URLs and `password=` values, as core's
 * `redactSecrets` does with its `shown`: `database "[REDACTED]"` beside `.../devpass` would tell it.
 */
export function scrubSecrets(text: string, secrets: Iterable<string>, shown: Iterable<string> = []): string {
  const sorted = [...new Set(secrets)].filter((s) => s.length > 0).sort((a, b) => b.length - a.length)
  // query values first: a URL's ?password=... keeps the names after it (&x=[REDACTED])
  return redactSecrets(redactUrlQueryValues(text), sorted, [...shown]).replace(
    QUERY_PASSWORD,
    (m) => `${m.slice(0, m.indexOf('=') + 1)}${REDACTED}`,
  )
}

/**
 * `text` with the value of every query parameter of a URL replaced by `[REDACTED]`
 * (`sqlite:./a.db?key=[REDACTED]&mode=[REDACTED]`); names stay. Core's `redactUrlQueryValues`, kept under this name.
 */
export const redactSqliteQueries = redactUrlQueryValues
