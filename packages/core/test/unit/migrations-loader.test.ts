import { mkdtempSync, rmSync, writeFileSync, mkdirSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  DatabaseError,
  loadMigrationsFromDirectory,
  migrationChecksum,
  migrationsFromDefinitions,
  parseMigrationFileName,
  parseMigrationSections,
} from '@dbpool/core'

let dir: string
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'dbpool-migrations-'))
})
afterEach(() => rmSync(dir, { recursive: true, force: true }))

const write = (name: string, text: string): void => writeFileSync(join(dir, name), text)

async function rejects(promise: Promise<unknown>, code: string, pattern: RegExp): Promise<void> {
  const err = await promise.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(DatabaseError.is(err)).toBe(true)
  expect((err as DatabaseError).code).toBe(code)
  expect((err as DatabaseError).message).toMatch(pattern)
}

describe('parseMigrationFileName', () => {
  it('reads version, name and part', () => {
    expect(parseMigrationFileName('0001_create_accounts.sql')).toEqual({ version: 1, name: 'create_accounts', part: 'single' })
    expect(parseMigrationFileName('20240102030405-add.index.up.sql')).toEqual({ version: 20240102030405, name: 'add.index', part: 'up' })
    expect(parseMigrationFileName('7_x.DOWN.sql')).toEqual({ version: 7, name: 'x', part: 'down' })
  })

  it('ignores files that are not migrations', () => {
    expect(parseMigrationFileName('README.md')).toBeUndefined()
    expect(parseMigrationFileName('.0001_hidden.sql')).toBeUndefined()
  })

  it('rejects a .sql file without a version or with version 0, naming the file', () => {
    expect(() => parseMigrationFileName('create_accounts.sql')).toThrow(/migration file "create_accounts.sql".*0001_create_accounts.sql/)
    expect(() => parseMigrationFileName('0000_zero.sql')).toThrow(/version from 1 to 9007199254740991/)
    expect(() => parseMigrationFileName('99999999999999999999_big.sql')).toThrow(
      /"99999999999999999999_big.sql": must start with a version from 1 to 9007199254740991/,
    )
  })
})

describe('parseMigrationSections', () => {
  it('splits up and down sections and keeps line numbers', () => {
    const { up, down } = parseMigrationSections(
      'f.sql',
      '-- a comment\n-- migrate:up\ncreate table a (id int);\n-- migrate:down\ndrop table a;\n',
    )
    expect(up).toEqual({ kind: 'sql', sql: 'create table a (id int);', firstLine: 3, source: 'f.sql', transaction: true })
    expect(down).toMatchObject({ kind: 'sql', firstLine: 5 })
    expect(down?.kind === 'sql' && down.sql.trim()).toBe('drop table a;')
  })

  it('treats a file without markers as all up, and an empty down as none', () => {
    expect(parseMigrationSections('f.sql', 'select 1').down).toBeUndefined()
    expect(parseMigrationSections('f.sql', '-- migrate:up\nselect 1\n-- migrate:down\n\n').down).toBeUndefined()
  })

  it('reads transaction:false per section (dbmate spelling)', () => {
    const { up, down } = parseMigrationSections(
      'f.sql',
      '-- migrate:up transaction:false\ncreate index concurrently a_x on a (x);\n-- migrate:down\ndrop index a_x;\n',
    )
    expect(up).toMatchObject({ transaction: false, firstLine: 2 })
    expect(down).toMatchObject({ transaction: true })
    expect(parseMigrationSections('f.sql', '-- migrate:up TRANSACTION:TRUE\nselect 1').up.transaction).toBe(true)
  })

  it('accepts CRLF files', () => {
    const { up, down } = parseMigrationSections('f.sql', '-- migrate:up\r\nselect 1;\r\n-- migrate:down\r\nselect 2;\r\n')
    expect(up.kind === 'sql' && up.sql).toBe('select 1;')
    expect(down?.kind === 'sql' && down.sql).toBe('select 2;\r\n')
  })

  it.each([
    ['select 1;\n-- migrate:up\nselect 2', /line 1: SQL before the first/],
    ['-- migrate:up\nselect 1\n-- migrate:up\nselect 2', /line 3: a second "-- migrate:up"/],
    ['-- migrate:down\nselect 1', /down" section without a "-- migrate:up"/],
    ['-- migrate:sideways\nselect 1', /unknown marker/],
    [
      '-- migrate:up transactions:false\nselect 1',
      /line 1: unsupported option after "-- migrate:up": "transactions:false" \(the options are transaction:false and foreign_keys:off/,
    ],
    ['-- migrate:up\nselect 1\n-- migrate:down transaction:no\nselect 2', /line 3: unsupported option after "-- migrate:down"/],
    ['-- migrate: up\ncreate table a (id int);\n-- migrate: down\ndrop table a;', /line 1: "-- migrate: up" looks like a section marker/],
    ['-- +goose Up\ncreate table a (id int);\n-- +goose Down\ndrop table a;', /line 1: "-- \+goose Up" looks like a section marker/],
    ['-- +migrate Up\nselect 1', /line 1: .*looks like a section marker/],
    ['-- migrate:up\nselect 1;\n-- migrate down\nselect 2', /line 3: "-- migrate down" looks like a section marker/],
    ['select 1;\n  --migrate :down\nselect 2', /line 2: .*looks like a section marker/],
  ])('rejects a malformed file: %j', (text, pattern) => {
    expect(() => parseMigrationSections('bad.sql', text)).toThrow(pattern)
  })
})

// review r4 item 5: markers are read only at the top level, never inside a comment or literal
describe('parseMigrationSections: markers inside comments and literals', () => {
  const commented =
    '-- migrate:up\ncreate table a (x int);\n/* old rollback, kept for reference:\n-- migrate:down\ndrop table a;\n*/\ncreate table b (x int);\n'

  it.each([undefined, 'postgres', 'sqlite'] as const)('a marker inside a /* */ comment is part of it (dialect %s)', (dialect) => {
    const { up, down } = parseMigrationSections('c.sql', commented, dialect)
    expect(up).toMatchObject({ sql: commented.slice('-- migrate:up\n'.length), firstLine: 2 })
    expect(down).toBeUndefined()
  })

  it('a marker inside a string literal, a quoted name or a dollar-quoted body is part of it', () => {
    const literal = "-- migrate:up\ninsert into t values ('\n-- migrate:down\n');\n-- migrate:down\ndelete from t;"
    const a = parseMigrationSections('l.sql', literal)
    expect(a.up).toMatchObject({ sql: "insert into t values ('\n-- migrate:down\n');" })
    expect(a.down).toMatchObject({ sql: 'delete from t;', firstLine: 6 })
    const dollar =
      '-- migrate:up\ncreate function f() returns int language sql as $$\n-- migrate:down\nselect 1 $$;\n-- migrate:down\ndrop function f;'
    expect(parseMigrationSections('d.sql', dollar, 'postgres').down).toMatchObject({ sql: 'drop function f;' })
    // a look-alike inside a comment is a comment too
    expect(parseMigrationSections('g.sql', '-- migrate:up\nselect 1;\n/*\n-- +goose Down\n*/').down).toBeUndefined()
  })

  it('a marker the dialects read differently is refused when no dialect is given, read as the given one otherwise', () => {
    // Postgres nests block comments, SQLite does not: after "/* /* */" SQLite is at the top level
    const nested = '-- migrate:up\nselect 1;\n/* /* */\n-- migrate:down\nselect 2;\n*/\n'
    expect(() => parseMigrationSections('n.sql', nested)).toThrow(
      /n.sql line 4: "-- migrate:down" is a section marker when read as SQLite SQL but inside a block comment when read as Postgres SQL/,
    )
    expect(parseMigrationSections('n.sql', nested, 'postgres').down).toBeUndefined()
    expect(parseMigrationSections('n.sql', nested, 'sqlite').down).toMatchObject({ firstLine: 5 })
  })
})

describe('parseMigrationSections: byte-order mark and ordinary comments', () => {
  it('drops a leading byte-order mark: the marker on line 1 is read and lines keep their numbers', () => {
    const { up, down } = parseMigrationSections('bom.sql', '\uFEFF-- migrate:up\ncreate table a (id int);\n-- migrate:down\ndrop table a;')
    expect(up).toMatchObject({ sql: 'create table a (id int);', firstLine: 2 })
    expect(down).toMatchObject({ sql: 'drop table a;', firstLine: 4 })
    expect(parseMigrationSections('bom.sql', '\uFEFFcreate table a (id int);').up).toMatchObject({ sql: 'create table a (id int);' })
  })

  it('keeps comments that merely mention migrating', () => {
    const { up } = parseMigrationSections('c.sql', '-- migrate:up\n-- migrate the accounts to the new layout\n-- migrated by ops\nselect 1')
    expect(up).toMatchObject({ sql: '-- migrate the accounts to the new layout\n-- migrated by ops\nselect 1' })
  })
})

describe('loadMigrationsFromDirectory', () => {
  it('loads single files and up/down pairs in version order with checksums of the up SQL', async () => {
    write('0002_pair.up.sql', 'create table b (id int);\n')
    write('0002_pair.down.sql', 'drop table b;\n')
    write('0001_single.sql', '-- migrate:up\ncreate table a (id int);\n-- migrate:down\ndrop table a;\n')
    write('0003_up_only.up.sql', 'create table c (id int);')
    write('0004_empty_down.up.sql', 'create table d (id int);')
    write('0004_empty_down.down.sql', '   \n')
    write('notes.txt', 'ignored')
    mkdirSync(join(dir, '0005_a_directory.sql'))
    const migrations = await loadMigrationsFromDirectory(dir)
    expect(migrations.map((m) => [m.version, m.name, m.source, m.down !== undefined])).toEqual([
      [1, 'single', '0001_single.sql', true],
      [2, 'pair', '0002_pair.up.sql', true],
      [3, 'up_only', '0003_up_only.up.sql', false],
      [4, 'empty_down', '0004_empty_down.up.sql', false],
    ])
    expect(migrations[0]?.checksum).toBe(migrationChecksum('create table a (id int);'))
    expect(migrations[1]?.checksum).toBe(migrationChecksum('create table b (id int);'))
    expect(migrations[1]?.down).toMatchObject({ source: '0002_pair.down.sql' })
  })

  it('follows symbolic links to files (a Kubernetes ConfigMap: each file a link into ..data/)', async () => {
    mkdirSync(join(dir, '..2026_01_01'))
    writeFileSync(join(dir, '..2026_01_01', '0001_a.sql'), 'create table a (id int);')
    writeFileSync(join(dir, '..2026_01_01', '0002_b.sql'), '-- migrate:up\ncreate table b (id int);\n-- migrate:down\ndrop table b;')
    symlinkSync('..2026_01_01', join(dir, '..data'))
    symlinkSync(join('..data', '0001_a.sql'), join(dir, '0001_a.sql'))
    symlinkSync(join('..data', '0002_b.sql'), join(dir, '0002_b.sql'))
    write('0003_c.sql', 'create table c (id int);')
    const migrations = await loadMigrationsFromDirectory(dir)
    expect(migrations.map((m) => [m.version, m.source, m.down !== undefined])).toEqual([
      [1, '0001_a.sql', false],
      [2, '0002_b.sql', true],
      [3, '0003_c.sql', false],
    ])
    expect(migrations[0]?.checksum).toBe(migrationChecksum('create table a (id int);'))
  })

  it('rejects a dangling link or a link to a directory under a migration name, naming it', async () => {
    symlinkSync(join(dir, 'nowhere.sql'), join(dir, '0001_gone.sql'))
    await rejects(loadMigrationsFromDirectory(dir), 'CONFIGURATION', /0001_gone.sql is a symbolic link to nothing \(dangling\)/)
    rmSync(join(dir, '0001_gone.sql'))
    mkdirSync(join(dir, 'folder'))
    symlinkSync(join(dir, 'folder'), join(dir, '0001_folder.sql'))
    await rejects(
      loadMigrationsFromDirectory(dir),
      'CONFIGURATION',
      /0001_folder.sql is a symbolic link to something that is not a regular file/,
    )
  })

  it('normalises line endings and outer whitespace in checksums', () => {
    expect(migrationChecksum('select 1;\r\nselect 2;\r\n')).toBe(migrationChecksum('select 1;\nselect 2;'))
    expect(migrationChecksum('select 1')).not.toBe(migrationChecksum('select 2'))
    expect(migrationChecksum('x')).toMatch(/^[0-9a-f]{64}$/)
  })

  it('rejects two files with one version', async () => {
    write('0001_a.sql', 'select 1')
    write('0001_b.sql', 'select 2')
    await rejects(loadMigrationsFromDirectory(dir), 'CONFIGURATION', /0001_b.sql.*same version 1 as 0001_a.sql/)
  })

  it('rejects a single file next to a pair of the same version', async () => {
    write('0001_a.sql', 'select 1')
    write('0001_a.up.sql', 'select 2')
    await rejects(loadMigrationsFromDirectory(dir), 'CONFIGURATION', /same version 1/)
  })

  it('rejects a section marker (or a look-alike) inside a .up.sql / .down.sql pair, naming file and line', async () => {
    write('0001_a.up.sql', 'create table a (id int);\n-- migrate:down\ndrop table a;\n')
    await rejects(loadMigrationsFromDirectory(dir), 'CONFIGURATION', /0001_a.up.sql line 2: a section marker in a .up.sql\/.down.sql file/)
    write('0001_a.up.sql', 'create table a (id int);\n')
    write('0001_a.down.sql', '-- +goose Down\ndrop table a;\n')
    await rejects(loadMigrationsFromDirectory(dir), 'CONFIGURATION', /0001_a.down.sql line 1: a section marker/)
  })

  it('rejects a .down.sql without its .up.sql', async () => {
    write('0001_a.down.sql', 'select 1')
    await rejects(loadMigrationsFromDirectory(dir), 'CONFIGURATION', /0001_a.down.sql.*no matching .up.sql/)
  })

  it('reports a missing directory as CONFIGURATION naming it', async () => {
    await rejects(loadMigrationsFromDirectory(join(dir, 'nope')), 'CONFIGURATION', /cannot read the migrations directory .*nope/)
  })
})

// review r4 item 2: a Latin-1 file ran with U+FFFD in its literals, and the checksum (of the
// decoded text) did not see such a byte change
describe('loadMigrationsFromDirectory: encoding', () => {
  it.each([
    ['a Latin-1 ü', Buffer.from("-- migrate:up\ninsert into cities values ('Z\xfcrich');\n", 'latin1'), 43, 2],
    ['a truncated sequence at the end', Buffer.concat([Buffer.from('select 1;\n'), Buffer.from([0xe2, 0x82])]), 10, 2],
    ['an overlong form', Buffer.concat([Buffer.from('select '), Buffer.from([0xc0, 0xaf])]), 7, 1],
    ['an encoded surrogate', Buffer.concat([Buffer.from("select '"), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from("'")]), 8, 1],
  ])('refuses %s (CONFIGURATION naming the file, byte offset and line)', async (_what, bytes, byte, line) => {
    writeFileSync(join(dir, '0001_cities.sql'), bytes)
    const err = await loadMigrationsFromDirectory(dir).then(
      () => undefined,
      (e: unknown) => e,
    )
    expect(DatabaseError.is(err, 'CONFIGURATION')).toBe(true)
    expect((err as DatabaseError).message).toBe(
      `invalid migration file 0001_cities.sql: is not valid UTF-8 (byte ${byte}, line ${line}): save it as UTF-8; nothing was run`,
    )
    expect((err as DatabaseError).detail).toMatchObject({ file: '0001_cities.sql', byte, line, reason: 'not-utf8' })
  })

  it('reads UTF-8 (2, 3 and 4-byte sequences, a byte-order mark) as before', async () => {
    write('0001_a.up.sql', "\uFEFFinsert into cities values ('Zürich', '€', '😀');\n")
    const [m] = await loadMigrationsFromDirectory(dir)
    expect(m?.up).toMatchObject({ sql: "insert into cities values ('Zürich', '€', '😀');\n" })
    expect(m?.checksum).toBe(migrationChecksum("insert into cities values ('Zürich', '€', '😀');"))
  })
})

describe('migrationsFromDefinitions', () => {
  it('accepts SQL and function migrations, sorted, with checksums for SQL only', () => {
    const fn = async (): Promise<void> => undefined
    const out = migrationsFromDefinitions([
      { version: 2, name: 'fn', up: fn, down: fn },
      { version: 1, name: 'sql', up: 'create table a (id int)', down: 'drop table a' },
      { version: 3, name: 'pinned', up: fn, checksum: 'v1' },
    ])
    expect(out.map((m) => [m.version, m.up.kind, m.checksum])).toEqual([
      [1, 'sql', migrationChecksum('create table a (id int)')],
      [2, 'function', ''],
      [3, 'function', 'v1'],
    ])
    expect(out[0]?.source).toBe('code')
  })

  it.each([
    [[{ version: 0, name: 'a', up: 'x' }], /migrations\[0\].version 0/],
    [[{ version: 1.5, name: 'a', up: 'x' }], /version 1.5/],
    [[{ version: 1, name: '', up: 'x' }], /migrations\[0\].name/],
    [[{ version: 1, name: 'a', up: 42 }], /migrations\[0\].up 42: must be SQL text or a function/],
    [[{ version: 1, name: 'a', up: '  ' }], /must not be empty/],
    [[{ version: 1, name: 'a', up: 'x', down: null }], /migrations\[0\].down null/],
    [[{ version: 1, name: 'a', up: 'x', checksum: '' }], /checksum/],
    [
      [
        { version: 1, name: 'a', up: 'x' },
        { version: 1, name: 'b', up: 'y' },
      ],
      /migrations\[1\].version 1: is used twice \(also by "a"\)/,
    ],
    [[null], /migrations\[0\] null/],
  ])('rejects invalid definitions (%#)', (defs, pattern) => {
    expect(() => migrationsFromDefinitions(defs as never)).toThrow(pattern)
  })

  it('rejects a non-array', () => {
    expect(() => migrationsFromDefinitions({} as never)).toThrow(/must be an array/)
  })

  // review r4 item 3: an unknown key (the file spelling foreign_keys, a typo) was ignored silently
  it.each([
    [
      { foreign_keys: false },
      /invalid migrations\[1\]\.foreign_keys \(boolean\): unknown key; known keys are version, name, up, down, transaction, foreignKeys, checksum \(did you mean foreignKeys\?\)/,
    ],
    [{ foreignkeys: false }, /migrations\[1\]\.foreignkeys .*did you mean foreignKeys/],
    [{ transation: false }, /migrations\[1\]\.transation .*did you mean transaction/],
    [{ extra: 1 }, /migrations\[1\]\.extra \(number\): unknown key; known keys are/],
  ])('refuses an unknown key, naming it and the known keys: %j', (extra, pattern) => {
    const defs = [
      { version: 1, name: 'a', up: 'create table a (id int)' },
      { version: 2, name: 'b', up: 'create table b (id int)', ...extra },
    ]
    let err: unknown
    try {
      migrationsFromDefinitions(defs as never)
    } catch (e) {
      err = e
    }
    expect(DatabaseError.is(err, 'CONFIGURATION')).toBe(true)
    expect((err as DatabaseError).message).toMatch(pattern)
  })

  // review r4 item 7: a hole crashed load()/up() with a TypeError
  it('refuses a hole in the array (CONFIGURATION naming its index)', () => {
    // eslint-disable-next-line no-sparse-arrays
    const defs = [{ version: 1, name: 'a', up: 'select 1' }, , { version: 3, name: 'c', up: 'select 3' }]
    expect(() => migrationsFromDefinitions(defs as never)).toThrow(
      expect.objectContaining({
        code: 'CONFIGURATION',
        message: expect.stringMatching(/invalid migrations\[1\].*is a hole in the array \(a stray comma\?\)/),
      }),
    )
  })

  it("shows an unknown key's value by kind only (it may be SQL holding a secret)", () => {
    const defs = [{ version: 1, name: 'a', up: 'select 1', upp: "alter role app password 'Hunter2'" }]
    expect(() => migrationsFromDefinitions(defs as never)).toThrow(/migrations\[0\]\.upp \(string\): unknown key/)
    expect(() => migrationsFromDefinitions(defs as never)).not.toThrow(/Hunter2/)
  })
})
