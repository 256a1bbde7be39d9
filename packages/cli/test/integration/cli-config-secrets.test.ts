import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { run, type CliIo } from '@dbpool/cli'

// A config file that does not parse registers none of its secrets, and a value no key name marks as a
// secret (a pool setting, a backend option, a URL parameter) is never registered: no error the CLI
// prints, at any verbosity and in any cause, may quote the file's text or such a value.
let dir: string

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dbpool-cli-config-secrets-'))
})

afterAll(() => rmSync(dir, { recursive: true, force: true }))

async function cli(...argv: string[]): Promise<{ code: number; all: string; err: string }> {
  const out: string[] = []
  const err: string[] = []
  const io: CliIo = { stdout: { write: (s: string) => out.push(s) }, stderr: { write: (s: string) => err.push(s) }, env: {}, cwd: dir }
  const code = await run(argv, io)
  return { code, all: out.join('') + err.join(''), err: err.join('') }
}

const SECRET = 'TopSecretQ7z'

describe.each([
  // TOML that does not parse: smol-toml quotes the lines around the error in its message
  [
    'garbage after a password',
    'bad10.toml',
    `[pools.main]\nurl = "postgres://postgres@127.0.0.1:1/postgres"\n[pools.main.backend]\npassword = "${SECRET}" oops\n`,
    /^dbpool: CONFIGURATION: bad10\.toml: cannot be parsed at line 4, column 27: Invalid TOML document: each key-value declaration must be followed by an end-of-line \(/,
  ],
  [
    'a bad value after a secret line',
    'bad9.toml',
    `[pools.main]\nurl = "postgres://postgres@127.0.0.1:1/postgres"\n[pools.main.backend]\nsslPassword = '${SECRET}'\nmax = oops\n`,
    /^dbpool: CONFIGURATION: bad9\.toml: cannot be parsed at line 5, column 7: Invalid TOML document: invalid value \(/,
  ],
  [
    'an unquoted password',
    'unquoted.toml',
    `[pools.main]\nurl = "sqlite:./a.db"\n[pools.main.backend]\npassword = ${SECRET}\n`,
    /^dbpool: CONFIGURATION: unquoted\.toml: cannot be parsed at line 4, column 12: /,
  ],
  // JSON that does not parse: V8 quotes the text around an unexpected token
  [
    'an unquoted JSON value',
    'token.json',
    `{"pools": {"main": {"url": "sqlite:./a.db",\n  "password": ${SECRET}}}}`,
    /^dbpool: CONFIGURATION: token\.json: cannot be parsed at line 2, column 15: Unexpected token \(/,
  ],
  [
    'an unquoted JSON value, short file',
    'short.json',
    `{"p": ${SECRET}}`,
    /^dbpool: CONFIGURATION: short\.json: cannot be parsed at line 1, column 7: Unexpected token \(/,
  ],
  [
    'a JSON string left open',
    'open.json',
    `{"pools": {"main": {"url": "sqlite:./a.db",\n  "password": "${SECRET}}}}`,
    /^dbpool: CONFIGURATION: open\.json: cannot be parsed at line 2, column 31: Unterminated string \(/,
  ],
  [
    'JSON cut short',
    'cut.json',
    `{"pools": {"main": {"url": "sqlite:./a.db", "x": "${SECRET}"`,
    /^dbpool: CONFIGURATION: cut\.json: cannot be parsed at line 1, column 64: Expected ',' or '}' after property value \(/,
  ],
  [
    'JSON ending early',
    'end.json',
    `{"pools": {"main": {"url": "sqlite:./a.db",\n "x": {"password": "${SECRET}"`,
    /^dbpool: CONFIGURATION: end\.json: cannot be parsed at line 2, column 34: Expected ',' or '}' after property value \(/,
  ],
  [
    'an empty JSON file',
    'empty.json',
    '',
    /^dbpool: CONFIGURATION: empty\.json: cannot be parsed at line 1, column 1: Unexpected end of JSON input \(/,
  ],
  // files that parse, with a value no key name marks as secret
  [
    'a pool setting',
    'bad5.json',
    JSON.stringify({ pools: { main: { url: 'postgres://postgres:pw@127.0.0.1:1/postgres', max: SECRET } } }),
    /^dbpool: CONFIGURATION: invalid bad5\.json pools\.main\.max: must be an integer between 1 and 10000 \(/,
  ],
  [
    'a SQLite backend option',
    'readers.toml',
    `[pools.main]\nurl = "sqlite:./a.db"\n[pools.main.backend]\nreaders = "${SECRET}"\n`,
    /^dbpool: CONFIGURATION: invalid sqlite\.readers: must be an integer between 0 and 64 \(/,
  ],
  [
    'a Postgres backend option',
    'pgoption.toml',
    `[pools.main]\nurl = "postgres://u@127.0.0.1:1/db"\n[pools.main.backend]\nstatementTimeoutMs = "${SECRET}"\n`,
    /^dbpool: CONFIGURATION: invalid postgres\.statementTimeoutMs: unknown option; /,
  ],
  [
    'a URL parameter',
    'urlparam.toml',
    `[pools.main]\nurl = "postgres://u@127.0.0.1:1/db?sslmode=${SECRET}"\n`,
    /^dbpool: CONFIGURATION: invalid database\.url sslmode: must be one of /,
  ],
])('a config file with %s', (_what, name, text, firstLine) => {
  it.each([[[]], [['--verbose']]])('prints file, line and column or the key, never the value (%j)', async (flags) => {
    writeFileSync(join(dir, name), text)
    const result = await cli(...flags, '--config', name, 'health')
    expect(result.code).toBe(2)
    expect(result.err).toMatch(firstLine)
    expect(result.all).not.toContain(SECRET)
    expect(result.all).not.toContain('TopSecret')
    if (flags.length > 0) expect(result.err).toMatch(/\n {4}at /)
    else expect(result.err.split('\n')).toHaveLength(2)
  })
})

it('still shows the value of a command line option (--pool) next to a config file', async () => {
  writeFileSync(join(dir, 'ok.toml'), '[pools.main]\nurl = "sqlite:./a.db"\n')
  const result = await cli('--verbose', '--config', 'ok.toml', '--pool', 'nope', 'health')
  expect(result.err).toMatch(/^dbpool: CONFIGURATION: invalid --pool "nope": is not configured; pools: main \(/)
})
