import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { hasAmbiguousCredentials as coreHasAmbiguousCredentials } from '@dbpool/core'
import {
  argvSecrets,
  argvShownNames,
  credentialSecrets,
  envSecrets,
  envShownNames,
  hasAmbiguousCredentials,
  run,
  resolveConfig,
  scrubSecrets,
  urlShownNames,
  type CliIo,
} from '@dbpool/cli'

// Every line the CLI writes (stdout, stderr, commander's usage errors, config and driver errors)
// goes through one scrubber that knows every secret it was given: these runs grep all of it.
let dir: string

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'dbpool-cli-secrets-'))
})

afterAll(() => rmSync(dir, { recursive: true, force: true }))

async function runAll(argv: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; all: string }> {
  const chunks: string[] = []
  const io: CliIo = {
    stdout: { write: (s: string) => chunks.push(s) },
    stderr: { write: (s: string) => chunks.push(s) },
    env,
    cwd: dir,
  }
  const code = await run(argv, io)
  return { code, all: chunks.join('') }
}

// a closed port: the connection is refused at once, no server needed
const url = (password: string): string => `postgres://app:${password}@127.0.0.1:1/db?connect_timeout=2`

describe('the CLI never prints a secret', () => {
  it('scrubs commander usage errors that echo an argument (a forgotten --url, --ur=, --timeout=URL)', async () => {
    for (const argv of [
      [url('S3cretPW'), 'health'],
      [`--ur=${url('S3cretPW')}`, 'health'],
      ['health', `--timeout=${url('S3cretPW')}`],
      ['health', '--timeout', url('S3cretPW')],
      ['health', '--password=S3cretPW'],
      ['--url', url('S3cretPW'), 'health', 'extra', 'S3cretPW'],
    ]) {
      const { code, all } = await runAll(argv)
      expect(code).toBe(64)
      expect(all).not.toContain('S3cretPW')
    }
  })

  it('scrubs a password with a raw "@" whole, and only it', async () => {
    const { all } = await runAll(['--url', url('p@ss'), 'health', '--timeout', '5000'])
    expect(all).not.toContain('p@ss')
    expect(all).not.toContain('@ss')
    // the old scrubber took "p" for the password and replaced every "p" ("[REDACTED]ostgres")
    expect(all).toContain('postgres://app@127.0.0.1:1/db')
    expect(all).not.toMatch(/\[REDACTED\]ostgres/)
  })

  it('refuses a password with an unencoded "/", "?" or "#" without printing any part of it as a host or port', async () => {
    for (const password of ['Qz7/Wv9XY', 'Qz7#Wv9XY', 'Qz7?Wv9XY']) {
      const { code, all } = await runAll(['--url', url(password), 'health'])
      expect(code).toBe(2)
      expect(all).toContain('CONFIGURATION')
      expect(all).toContain('percent-encode')
      expect(all).not.toMatch(/Qz7|Wv9XY/)
    }
    // the same URL from DATABASE_URL
    const { all } = await runAll(['health'], { DATABASE_URL: url('Qz7/Wv9XY') })
    expect(all).toContain('percent-encode')
    expect(all).not.toMatch(/Qz7|Wv9XY/)
  })

  it('never echoes a config file value in an error, only its key', async () => {
    writeFileSync(join(dir, 'dbpool.toml'), '[pools.x]\nurl = "postgres://app@127.0.0.1:1/x"\npassword = "Hunter2PW"\n')
    let result = await runAll(['health'])
    expect(result.all).toContain('pools.x.password: unknown option')
    expect(result.all).not.toContain('Hunter2PW')
    writeFileSync(join(dir, 'dbpool.toml'), '[pools.x]\nurl = "postgres://app:Hunter2PW@127.0.0.1:1/x"\nmax = "Hunter2PW"\n')
    result = await runAll(['health'])
    expect(result.all).toContain('pools.x.max')
    expect(result.all).not.toContain('Hunter2PW')
    rmSync(join(dir, 'dbpool.toml'))
    // a parse error: V8 quotes the source of a JSON file
    writeFileSync(join(dir, 'dbpool.json'), '{"pools": {"x": {"url": "postgres://app:Hunter2PW@h/x", "password": Hunter2PW}}}')
    result = await runAll(['health'])
    expect(result.all).toContain('cannot be parsed')
    expect(result.all).not.toContain('Hunter2PW')
    rmSync(join(dir, 'dbpool.json'))
  })

  it('scrubs secrets from the environment (PGPASSWORD, *_TOKEN, URLs) wherever they appear', async () => {
    const { all } = await runAll(['health', 'tok-Very-Secret-1', 'pg-Env-Pw'], {
      PGPASSWORD: 'pg-Env-Pw',
      DBPOOL_SERVE_TOKEN: 'tok-Very-Secret-1',
    })
    expect(all).not.toMatch(/tok-Very-Secret-1|pg-Env-Pw/)
  })
})

describe('secret finders', () => {
  it('takes from the environment the variables the CLI reads, and URL passwords from any', () => {
    expect(
      envSecrets({
        PGPASSWORD: 'pg',
        DBPOOL_SERVE_TOKEN: 'tok',
        DBPOOL_LEDGER_PASSWORD: 'led',
        CSRF_TOKEN_ENABLED: 'true',
        GITHUB_TOKEN: 'gh',
        OTHER_URL: 'postgres://u:envpw@h/d',
      }).sort(),
    ).toEqual(['envpw', 'led', 'pg', 'tok'])
  })

  it('reads a URL password as libpq does and as a person meant it, raw and decoded', () => {
    expect(credentialSecrets('postgres://u:pw@h/d')).toEqual(['pw'])
    expect(credentialSecrets('postgres://u:p@ss@h/d')).toEqual(['p@ss'])
    expect(credentialSecrets('postgres://u:ab/cd@h/d')).toEqual(['ab/cd'])
    expect(credentialSecrets('postgres://u:p%40ss@h/d')).toEqual(['p%40ss', 'p@ss'])
    expect(credentialSecrets('postgres://u@h/d?password=qp&sslmode=require')).toEqual(['qp'])
    expect(credentialSecrets('sqlite:./a.db')).toEqual([])
  })

  it('finds values after secret-like flags, abbreviated or joined with "="', () => {
    expect(argvSecrets(['--password', 'a1', '--token=b2', '--url', 'sqlite:x.db', 'health'])).toEqual(['a1', 'b2'])
    expect(argvSecrets([`--ur=${url('c3')}`])).toEqual(['c3'])
  })

  it('tells an unencoded delimiter in a password from a query value with "@"', () => {
    expect(hasAmbiguousCredentials('postgres://u:ab/cd@h/d')).toBe(true)
    expect(hasAmbiguousCredentials('postgres://u:ab#cd@h/d')).toBe(true)
    expect(hasAmbiguousCredentials('postgres://u:p@ss@h/d')).toBe(false)
    expect(hasAmbiguousCredentials('postgres://u:pw@h/d?application_name=me@x')).toBe(false)
    expect(hasAmbiguousCredentials('sqlite:./a@b/c.db')).toBe(false)
    // a "?" in the password followed by "name=value" is no query value of libpq's
    expect(hasAmbiguousCredentials('postgres://u:p?q=1@h/d')).toBe(true)
    // one function, the one @dbpool/core's URL parser applies
    expect(hasAmbiguousCredentials).toBe(coreHasAmbiguousCredentials)
  })

  it('scrubs a 1 MB word without a URL and credentials in a 1 MB line (linear, no regular expression per letter)', () => {
    const hex = 'ab'.repeat(500_000)
    expect(scrubSecrets(hex, [])).toBe(hex)
    expect(credentialSecrets(`${hex};x`)).toEqual([])
  })

  it('scrubs the longest secret first and URL passwords to the last "@" of the word', async () => {
    expect(scrubSecrets('x p@ss y', ['p', 'p@ss'])).toBe('x [REDACTED] y')
    // a short or plain-word secret only as a whole value: every "e" hidden garbled each line and told it
    expect(scrubSecrets('dbpool: error: password authentication failed for user "postgres"', ['e', 'failed'])).toBe(
      'dbpool: error: password authentication failed for user "postgres"',
    )
    // a password equal to a name output shows (user, database, host, application name) is hidden only
    // where it is a secret by position (core's redactSecrets `shown`): the URL hides it, the name stays
    const url = 'postgres://postgres:devpass@h/devpass'
    const shown = urlShownNames(url)
    expect(shown).toEqual(['postgres', 'devpass', 'dbpool', 'h'])
    expect(scrubSecrets(`connecting to ${url} failed: database "devpass" does not exist`, credentialSecrets(url), shown)).toBe(
      'connecting to postgres://postgres:[REDACTED]@h/devpass failed: database "devpass" does not exist',
    )
    expect(scrubSecrets('for user "postgres" password=postgres', ['postgres'], urlShownNames('postgres://h/d'))).toBe(
      'for user "postgres" password=[REDACTED]',
    )
    expect(
      envShownNames({
        PGUSER: 'app',
        PGDATABASE: 'db',
        PGHOST: 'a,b',
        PGAPPNAME: 'x',
        DATABASE_URL: 'postgres://u@h2/d2',
        DATABASE_REPLICA_URLS: 'postgres://r1/x,postgres://r2,r3/y',
      }),
    ).toEqual([
      'app',
      'db',
      'x',
      'a',
      'b',
      'u',
      'd2',
      'dbpool',
      'h2',
      'postgres',
      'x',
      'dbpool',
      'r1',
      'postgres',
      'y',
      'dbpool',
      'r2',
      'r3',
    ])
    // a config file's names: every URL (replicas' too) and name keys
    const file = join(dir, 'shown.toml')
    writeFileSync(
      file,
      `[pools.main]\nurl = "postgres://app@p/main"\n[pools.main.backend]\nreplicas = ["postgres://ro@r1/devpass"]\n[pools.main.backend.x]\nusername = "bob"\n`,
    )
    const config = await resolveConfig({ config: file }, { PGPASSWORD: 'devpass' }, dir)
    expect(config.shownNames).toEqual(expect.arrayContaining(['app', 'main', 'p', 'ro', 'devpass', 'r1', 'bob']))
    expect(scrubSecrets('database "devpass" does not exist', config.secrets, config.shownNames)).toBe('database "devpass" does not exist')
    expect(argvShownNames(['--url=postgresql://u:p@[::1]:5432,h/d?application_name=ap'])).toEqual(['u', 'd', 'ap', '::1', 'h'])
    expect(scrubSecrets(`bad value 'e' in no_table_e`, ['e'])).toBe(`bad value '[REDACTED]' in no_table_e`)
    // a strong one everywhere, inside a longer token too
    expect(scrubSecrets('..."password": Hunter2PW}}} is not valid JSON', ['Hunter2PW'])).toBe(
      '..."password": [REDACTED]}}} is not valid JSON',
    )
    expect(scrubSecrets('postgres://u:a@b@h/d', [])).toBe('postgres://u:[REDACTED]@h/d')
    expect(scrubSecrets('postgres://u@h/d?password=z&x=1', [])).toBe('postgres://u@h/d?password=[REDACTED]&x=[REDACTED]')
  })

  it("scrubs every query value of any URL (a misspelt ?pasword=) but a postgres URL's non-secret libpq ones, keeping the names and the closing quote", async () => {
    expect(scrubSecrets('bad "postgres://u@h/d?sslmode=require&pasword=S3cretTypo": unknown', [])).toBe(
      'bad "postgres://u@h/d?sslmode=require&pasword=[REDACTED]": unknown',
    )
    expect(scrubSecrets('x https://h/p?token=ab"c:d y', [])).toBe('x https://h/p?token=[REDACTED] y')
    const { code, all } = await runAll(['--url', 'postgres://app:pw1@127.0.0.1:1/app?pasword=S3cretTypo', 'health'])
    expect(code).toBe(2)
    expect(all).toContain('"pasword"')
    expect(all).toContain('?pasword=[REDACTED]"')
    expect(all).not.toContain('S3cretTypo')
  })

  it('scrubs every query value of a sqlite: URL (it takes no query: a value there may be a key), keeping the names', () => {
    expect(scrubSecrets('open sqlite:./a.db?key=hunter2&mode=ro#f?x=1 failed', [])).toBe(
      'open sqlite:./a.db?key=[REDACTED]&mode=[REDACTED]#f?x=1 failed',
    )
    expect(scrubSecrets('--url=SQLITE:///abs/a.db?&k=%41%42 sqlite:b.db ?q=1', [])).toBe(
      '--url=SQLITE:///abs/a.db?&k=[REDACTED] sqlite:b.db ?q=1',
    )
  })

  it('writes an error holding 1 MB of blanks on one line in linear time (\\s*\\n\\s* was tried at every blank)', async () => {
    const { code, all } = await runAll(['--url', 'sqlite::memory:', '--pool', `${' '.repeat(1 << 20)}x\n y`, 'health'])
    expect(code).toBe(2)
    expect(all).toMatch(/^dbpool: CONFIGURATION: invalid --pool " {1048576}x\\n y"/)
  })

  it('the CLI never prints a sqlite: URL query value', async () => {
    for (const argv of [
      ['--url', 'sqlite:./never-created.db?key=hunter2Secret', 'health'],
      ['--url', 'sqlite:./never-created.db?password=hunter2Secret&mode=ro', '--verbose', 'check'],
    ]) {
      const { code, all } = await runAll(argv)
      expect(code).not.toBe(0)
      expect(all).toMatch(/url\?(key|password)/)
      expect(all).not.toContain('hunter2')
    }
  })
})
