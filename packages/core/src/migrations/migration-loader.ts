import { createHash } from 'node:crypto'
import type { Dirent } from 'node:fs'
import { readdir, readFile, stat } from 'node:fs/promises'
import { join } from 'node:path'
import { configError } from '../config/validate'
import { DatabaseError } from '../errors/database-error'
import type { SqlDialect } from '../sql/sql'
import type { Migration, MigrationDefinition, MigrationStep } from './migration'
import { sqlSpans, type SqlSpan } from './sql-splitter'

const MARKER = /^[ \t]*--[ \t]*migrate:(\w+)\b(.*)$/i
/**
 * A comment that looks like a section marker without being one: `-- migrate: up`, `-- migrate up`,
 * goose's `-- +goose Up`, sql-migrate's `-- +migrate Up`. Refused rather than run as a comment (up
 * and down would run together).
 */
const LOOKS_LIKE_MARKER = /^[ \t]*--[ \t]*(\+[ \t]*(goose|migrate)\b|migrate[ \t]*:|migrate[ \t]+(up|down)\b)/i

/** sha256 (hex) of SQL text with line endings normalised to `\n` and outer whitespace trimmed. */
export function migrationChecksum(sqlText: string): string {
  return createHash('sha256').update(normaliseSql(sqlText)).digest('hex')
}

function normaliseSql(text: string): string {
  return text.replace(/\r\n?/g, '\n').trim()
}

interface FileName {
  readonly version: number
  readonly name: string
  readonly part: 'single' | 'up' | 'down'
}

/**
 * Parses `0001_create_accounts.sql`, `0001_create_accounts.up.sql` or `0001_create_accounts.down.sql`.
 * Returns undefined for names that are not migrations at all (not `.sql`, hidden files).
 */
export function parseMigrationFileName(file: string): FileName | undefined {
  if (file.startsWith('.') || !file.toLowerCase().endsWith('.sql')) return undefined
  let stem = file.slice(0, -4)
  let part: FileName['part'] = 'single'
  const suffix = /\.(up|down)$/i.exec(stem)
  if (suffix) {
    part = (suffix[1] as string).toLowerCase() as 'up' | 'down'
    stem = stem.slice(0, -suffix[0].length)
  }
  const match = /^(\d+)[_-](.+)$/.exec(stem)
  if (!match) throw configError('migration file', file, 'must be named like 0001_create_accounts.sql (or .up.sql / .down.sql)')
  const version = Number(match[1])
  if (!Number.isSafeInteger(version) || version < 1)
    throw configError('migration file', file, 'must start with a version from 1 to 9007199254740991 (Number.MAX_SAFE_INTEGER)')
  return { version, name: match[2] as string, part }
}

/**
 * Splits a single migration file into its `-- migrate:up` and `-- migrate:down` sections. A file
 * without markers is all `up`. Only comments may come before the first marker. A leading byte-order
 * mark is dropped. A comment that looks like a marker but is not exactly one (`-- migrate: up`,
 * `-- +goose Up`) is CONFIGURATION naming the file and line, as is any other malformed marker.
 *
 * A marker is read only at the top level: a marker-looking line inside a block comment, a string
 * literal, a quoted name or a dollar-quoted body is part of it (a commented-out `-- migrate:down` does
 * not cut the `up` section short). `dialect` says how to read the file (nested comments and dollar
 * quotes are Postgres's); without it, a marker line the two dialects read differently (top level in
 * one, inside a comment or literal in the other) is CONFIGURATION. Each section is the file's text as
 * written, line endings included (a CRLF inside a string literal stays CRLF); only the checksum
 * normalises them.
 */
export function parseMigrationSections(
  file: string,
  text: string,
  dialect?: SqlDialect,
): { up: MigrationStep; down: MigrationStep | undefined } {
  // a byte-order mark (editors on Windows) would hide a marker on line 1
  const body = text.replace(/^\uFEFF/, '')
  const lines: { start: number; end: number; next: number }[] = []
  const terminator = /\r\n|\r|\n/g
  let from = 0
  for (let m = terminator.exec(body); m !== null; m = terminator.exec(body)) {
    lines.push({ start: from, end: m.index, next: m.index + m[0].length })
    from = m.index + m[0].length
  }
  lines.push({ start: from, end: body.length, next: body.length })
  const dialects: readonly SqlDialect[] = dialect ? [dialect] : ['postgres', 'sqlite']
  const enclosing = dialects.map((d) => enclosingSpans(body, d, lines))
  const sections: { kind: 'up' | 'down'; line: number; start: number; end: number; transaction: boolean; foreignKeys: boolean }[] = []
  let preambleEnd = body.length
  lines.forEach(({ start, end, next }, index) => {
    const line = body.slice(start, end)
    const marker = MARKER.exec(line)
    const looksLike = !marker && LOOKS_LIKE_MARKER.test(line)
    if (!marker && !looksLike) return
    const inside = enclosing.map((spans) => spans[index])
    if (inside.every((k) => k !== undefined)) return
    const other = inside.findIndex((k) => k !== undefined)
    if (other >= 0)
      throw sectionError(
        file,
        index + 1,
        `"${line.trim()}" is a section marker when read as ${dialectName(dialects[1 - other] as SqlDialect)} SQL but inside a ${inside[other] as string} when read as ${dialectName(dialects[other] as SqlDialect)} SQL: close the ${inside[other] as string} before it`,
      )
    if (looksLike)
      throw sectionError(
        file,
        index + 1,
        `"${line.trim()}" looks like a section marker but is not one: write exactly "-- migrate:up" or "-- migrate:down" (no space after the colon; goose and sql-migrate markers are not read)`,
      )
    const match = marker as RegExpExecArray
    const kind = (match[1] as string).toLowerCase()
    if (kind !== 'up' && kind !== 'down')
      throw sectionError(file, index + 1, `unknown marker "-- migrate:${match[1]}": use -- migrate:up and -- migrate:down`)
    const { transaction, foreignKeys } = markerOptions(file, index + 1, kind, match[2] ?? '')
    if (sections.some((s) => s.kind === kind)) throw sectionError(file, index + 1, `a second "-- migrate:${kind}" section`)
    const previous = sections[sections.length - 1]
    // the previous section ends with its last line, without the line break before this marker
    if (previous) previous.end = index > 0 ? (lines[index - 1] as (typeof lines)[number]).end : start
    else preambleEnd = start
    sections.push({ kind, line: index + 2, start: next, end: body.length, transaction, foreignKeys })
  })
  if (sections.length === 0) return { up: { kind: 'sql', sql: body, firstLine: 1, source: file, transaction: true }, down: undefined }
  const preamble = body.slice(0, preambleEnd).split(/\r\n|\r|\n/)
  const stray = preamble.findIndex((line) => line.trim() !== '' && !line.trim().startsWith('--'))
  if (stray >= 0) throw sectionError(file, stray + 1, 'SQL before the first "-- migrate:up" marker')
  const up = sections.find((s) => s.kind === 'up')
  if (!up) throw sectionError(file, 1, 'a "-- migrate:down" section without a "-- migrate:up" section')
  const down = sections.find((s) => s.kind === 'down')
  const step = (s: (typeof sections)[number]): MigrationStep => ({
    kind: 'sql',
    sql: body.slice(s.start, Math.max(s.start, s.end)),
    firstLine: s.line,
    source: file,
    transaction: s.transaction,
    ...(s.foreignKeys ? {} : { foreignKeys: false as const }),
  })
  return { up: step(up), down: down && body.slice(down.start, down.end).trim() !== '' ? step(down) : undefined }
}

/** For each line, the kind of comment or literal its start lies inside (read as `dialect`), or undefined at the top level. */
function enclosingSpans(body: string, dialect: SqlDialect, lines: readonly { start: number }[]): (SqlSpan['kind'] | undefined)[] {
  const spans = sqlSpans(body, dialect)
  let k = 0
  return lines.map(({ start }) => {
    while (k < spans.length && (spans[k] as SqlSpan).end <= start) k++
    const span = spans[k]
    return span && span.start < start ? span.kind : undefined
  })
}

function dialectName(dialect: SqlDialect): string {
  return dialect === 'postgres' ? 'Postgres' : 'SQLite'
}

/**
 * The options after a section marker, separated by spaces: `transaction:false` / `transaction:true`
 * (dbmate's spelling) and `foreign_keys:off` / `foreign_keys:on` (SQLite: run the section with
 * foreign-key enforcement off, see {@link MigrationDefinition.foreignKeys}).
 */
function markerOptions(file: string, line: number, kind: string, options: string): { transaction: boolean; foreignKeys: boolean } {
  const out = { transaction: true, foreignKeys: true }
  const seen = new Set<string>()
  for (const word of options
    .trim()
    .split(/\s+/)
    .filter((w) => w !== '')) {
    const match = /^(transaction):(true|false)$|^(foreign_keys):(on|off)$/i.exec(word)
    const name = match ? ((match[1] ?? match[3]) as string).toLowerCase() : undefined
    if (!match || !name || seen.has(name))
      throw sectionError(
        file,
        line,
        `unsupported option after "-- migrate:${kind}": ${JSON.stringify(word)} (the options are transaction:false and foreign_keys:off, each at most once)`,
      )
    seen.add(name)
    if (name === 'transaction') out.transaction = (match[2] as string).toLowerCase() === 'true'
    else out.foreignKeys = (match[4] as string).toLowerCase() === 'on'
  }
  return out
}

/**
 * A `.up.sql` / `.down.sql` file is one side whole: a section marker in it (or a look-alike) would be
 * a mere comment, running both sides together, so it is CONFIGURATION naming the file and line.
 */
function refuseMarkers(file: string, text: string): string {
  const index = text.split(/\r\n?|\n/).findIndex((line) => MARKER.test(line) || LOOKS_LIKE_MARKER.test(line))
  if (index >= 0)
    throw sectionError(
      file,
      index + 1,
      'a section marker in a .up.sql/.down.sql file (the whole file is one side): remove it, or use one file with -- migrate:up and -- migrate:down sections',
    )
  return text
}

function sectionError(file: string, line: number, problem: string): DatabaseError {
  return new DatabaseError('CONFIGURATION', `migration file ${file} line ${line}: ${problem}`, { detail: { file, line } })
}

/**
 * Whether a directory entry is a migration file to read: a regular file, or a symbolic link to one
 * (a Kubernetes ConfigMap mounts each file as a link into `..data/`). Names that are not migrations
 * (hidden, not `.sql`) and directories are skipped; a migration name on a link to a directory or on
 * a dangling link is CONFIGURATION naming it.
 */
async function isMigrationFile(directory: string, entry: Dirent): Promise<boolean> {
  if (entry.isFile()) return true
  if (!entry.isSymbolicLink() || !parseMigrationFileName(entry.name)) return false
  const problem = await stat(join(directory, entry.name)).then(
    (target) => (target.isFile() ? undefined : 'is a symbolic link to something that is not a regular file (a directory?)'),
    (err: NodeJS.ErrnoException) =>
      err.code === 'ENOENT' ? 'is a symbolic link to nothing (dangling)' : `is a symbolic link that cannot be followed: ${err.message}`,
  )
  if (problem === undefined) return true
  throw new DatabaseError('CONFIGURATION', `migration file ${join(directory, entry.name)} ${problem}`, {
    detail: { directory, file: entry.name },
  })
}

/**
 * Reads every migration in `directory`: single files with `-- migrate:up` / `-- migrate:down`
 * sections, or `.up.sql` / `.down.sql` pairs, as regular files or symbolic links to them (a
 * Kubernetes ConfigMap); a migration name on a dangling link or a link to a directory is
 * CONFIGURATION. Other files (not `.sql`, hidden) are ignored. `dialect`: how section markers are
 * read, see {@link parseMigrationSections}.
 */
export async function loadMigrationsFromDirectory(directory: string, dialect?: SqlDialect): Promise<Migration[]> {
  let dirents: Dirent[]
  try {
    dirents = await readdir(directory, { withFileTypes: true })
  } catch (err) {
    throw new DatabaseError('CONFIGURATION', `cannot read the migrations directory ${directory}: ${(err as Error).message}`, {
      cause: err,
      detail: { directory },
    })
  }
  const entries: string[] = []
  for (const entry of dirents) if (await isMigrationFile(directory, entry)) entries.push(entry.name)
  const groups = new Map<number, { name: string; files: Partial<Record<FileName['part'], string>> }>()
  for (const file of entries.sort()) {
    const parsed = parseMigrationFileName(file)
    if (!parsed) continue
    const group = groups.get(parsed.version) ?? { name: parsed.name, files: {} }
    const clash = group.files[parsed.part] ?? (parsed.part === 'single' ? (group.files.up ?? group.files.down) : group.files.single)
    if (clash || group.name !== parsed.name) {
      throw configError('migration file', file, `has the same version ${parsed.version} as ${clash ?? Object.values(group.files)[0]}`)
    }
    group.files[parsed.part] = file
    groups.set(parsed.version, group)
  }
  const migrations: Migration[] = []
  for (const [version, { name, files }] of groups) {
    // a leading byte-order mark is not SQL
    const read = async (file: string): Promise<string> => decodeMigrationFile(file, await readFile(join(directory, file)))
    if (files.single) {
      const text = await read(files.single)
      const { up, down } = parseMigrationSections(files.single, text, dialect)
      migrations.push({ version, name, source: files.single, checksum: migrationChecksum(up.kind === 'sql' ? up.sql : ''), up, down })
      continue
    }
    if (!files.up) throw configError('migration file', files.down, 'has no matching .up.sql file')
    const upSql = refuseMarkers(files.up, await read(files.up))
    const downSql = files.down ? refuseMarkers(files.down, await read(files.down)) : undefined
    migrations.push({
      version,
      name,
      source: files.up,
      checksum: migrationChecksum(upSql),
      up: { kind: 'sql', sql: upSql, firstLine: 1, source: files.up, transaction: true },
      down:
        downSql !== undefined && downSql.trim() !== ''
          ? { kind: 'sql', sql: downSql, firstLine: 1, source: files.down as string, transaction: true }
          : undefined,
    })
  }
  return migrations.sort((a, b) => a.version - b.version)
}

/**
 * A migration file's text: its bytes must be UTF-8 (Node's lossy decoding would run U+FFFD in place
 * of a Latin-1 `ü`, and the checksum, taken of the text, would not see such a byte change), else
 * CONFIGURATION naming the file, the byte offset and the line. A leading byte-order mark is dropped.
 */
function decodeMigrationFile(file: string, bytes: Uint8Array): string {
  const bad = firstInvalidUtf8(bytes)
  if (bad >= 0) {
    let line = 1
    for (let i = 0; i < bad; i++) if (bytes[i] === 10) line++
    throw new DatabaseError(
      'CONFIGURATION',
      `invalid migration file ${file}: is not valid UTF-8 (byte ${bad}, line ${line}): save it as UTF-8; nothing was run`,
      { detail: { file, byte: bad, line, reason: 'not-utf8' } },
    )
  }
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
    .toString('utf8')
    .replace(/^\uFEFF/, '')
}

/** The offset of the first byte that does not start a well-formed UTF-8 sequence (RFC 3629: no overlong forms, surrogates or code points past U+10FFFF), or -1. */
function firstInvalidUtf8(bytes: Uint8Array): number {
  const n = bytes.length
  let i = 0
  while (i < n) {
    const lead = bytes[i] as number
    if (lead < 0x80) {
      i++
      continue
    }
    const extra = lead >= 0xc2 && lead <= 0xdf ? 1 : lead >= 0xe0 && lead <= 0xef ? 2 : lead >= 0xf0 && lead <= 0xf4 ? 3 : 0
    if (extra === 0) return i
    let cp = lead & (0x3f >> extra)
    for (let k = 1; k <= extra; k++) {
      const cont = bytes[i + k]
      if (cont === undefined || (cont & 0xc0) !== 0x80) return i
      cp = (cp << 6) | (cont & 0x3f)
    }
    const min = extra === 1 ? 0x80 : extra === 2 ? 0x800 : 0x10000
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return i
    i += extra + 1
  }
  return -1
}

/** Validates migrations written in code and turns them into runnable {@link Migration}s. */
export function migrationsFromDefinitions(definitions: readonly MigrationDefinition[]): Migration[] {
  if (!Array.isArray(definitions)) throw configError('migrations', definitions, 'must be an array of { version, name, up, down? }')
  const seen = new Map<number, string>()
  // a hole (a stray comma) is skipped by map() and left in its output: refused here, by index
  for (let index = 0; index < definitions.length; index++)
    if (!(index in definitions)) throw configError(`migrations[${index}]`, undefined, 'is a hole in the array (a stray comma?)')
  const out = definitions.map((def, index): Migration => {
    const where = `migrations[${index}]`
    if (def === null || typeof def !== 'object') throw configError(where, def, 'must be an object { version, name, up, down? }')
    refuseUnknownDefinitionKeys(where, def)
    const { version, name } = def
    if (typeof version !== 'number' || !Number.isSafeInteger(version) || version < 1)
      throw configError(`${where}.version`, version, 'must be an integer from 1 to 9007199254740991 (Number.MAX_SAFE_INTEGER)')
    if (typeof name !== 'string' || name.trim() === '') throw configError(`${where}.name`, name, 'must be a non-empty string')
    const other = seen.get(version)
    if (other !== undefined) throw configError(`${where}.version`, version, `is used twice (also by "${other}")`)
    seen.set(version, name)
    const source = 'code'
    if (def.transaction !== undefined && typeof def.transaction !== 'boolean')
      throw configError(`${where}.transaction`, def.transaction, 'must be true or false')
    const transaction = def.transaction ?? true
    if (def.foreignKeys !== undefined && typeof def.foreignKeys !== 'boolean')
      throw configError(`${where}.foreignKeys`, def.foreignKeys, 'must be true or false')
    const foreignKeys = def.foreignKeys ?? true
    const up = toStep(`${where}.up`, def.up, source, transaction, foreignKeys)
    const down = def.down === undefined ? undefined : toStep(`${where}.down`, def.down, source, transaction, foreignKeys)
    if (def.checksum !== undefined && (typeof def.checksum !== 'string' || def.checksum === ''))
      throw configError(`${where}.checksum`, def.checksum, 'must be a non-empty string')
    const checksum = def.checksum ?? (up.kind === 'sql' ? migrationChecksum(up.sql) : '')
    return { version, name, source, checksum, up, down }
  })
  return out.sort((a, b) => a.version - b.version)
}

const DEFINITION_KEYS: readonly string[] = ['version', 'name', 'up', 'down', 'transaction', 'foreignKeys', 'checksum']
/** The file spellings of the options, and likely typos, with the key meant. */
const DEFINITION_KEY_HINTS: Readonly<Record<string, string>> = {
  foreign_keys: 'foreignKeys',
  foreignkeys: 'foreignKeys',
  foreign_keys_off: 'foreignKeys',
  transactional: 'transaction',
  transation: 'transaction',
}

/**
 * An unknown key in a code migration is CONFIGURATION naming `migrations[i].key`: ignored, a
 * misspelt option (`foreign_keys: false`, the file's spelling) would run a SQLite rebuild with foreign
 * keys on, whose `drop table` cascades into the children. The value is shown by kind only (it may be SQL).
 */
function refuseUnknownDefinitionKeys(where: string, def: object): void {
  for (const key of Object.keys(def)) {
    if (DEFINITION_KEYS.includes(key)) continue
    const value = (def as Record<string, unknown>)[key]
    const meant = DEFINITION_KEY_HINTS[key.toLowerCase()] ?? DEFINITION_KEYS.find((k) => k.toLowerCase() === key.toLowerCase())
    throw new DatabaseError(
      'CONFIGURATION',
      `invalid ${where}.${key} (${value === null ? 'null' : typeof value}): unknown key; known keys are ${DEFINITION_KEYS.join(', ')}${meant ? ` (did you mean ${meant}?)` : ''}`,
      { detail: { option: `${where}.${key}`, rule: 'unknown key' } },
    )
  }
}

function toStep(option: string, value: unknown, source: string, transaction: boolean, foreignKeys: boolean): MigrationStep {
  const fk: { foreignKeys?: false } = foreignKeys ? {} : { foreignKeys: false }
  if (typeof value === 'function')
    return { kind: 'function', fn: value as Extract<MigrationStep, { kind: 'function' }>['fn'], source, transaction, ...fk }
  if (typeof value === 'string') {
    if (value.trim() === '') throw configError(option, value, 'must not be empty')
    return { kind: 'sql', sql: value, firstLine: 1, source, transaction, ...fk }
  }
  throw configError(option, value, 'must be SQL text or a function')
}
