import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Database from 'better-sqlite3'

// tsc on a small project and a node run: slow on a loaded machine
jest.setTimeout(180_000)

const packageDir = join(__dirname, '..', '..')
const repoRoot = join(packageDir, '..', '..')
const tsc = join(repoRoot, 'node_modules', 'typescript', 'bin', 'tsc')

/** The first ```ts block of the package README: the example a new user copies. */
function readmeExample(): string {
  const readme = readFileSync(join(packageDir, 'README.md'), 'utf8')
  const match = /```ts\n([\s\S]*?)```/.exec(readme)
  if (!match?.[1]) throw new Error('packages/kysely/README.md has no ts example')
  return match[1]
}

function run(file: string, args: string[], cwd: string, env: NodeJS.ProcessEnv = {}): string {
  try {
    return execFileSync(process.execPath, [file, ...args], { cwd, env: { ...process.env, ...env }, encoding: 'utf8' })
  } catch (err) {
    const { stdout, stderr } = err as { stdout?: string; stderr?: string }
    throw new Error(`${[file, ...args].join(' ')} failed:\n${stdout ?? ''}${stderr ?? ''}`)
  }
}

/**
 * The README example as an app would have it: an ESM package ("type": "module", top-level await)
 * compiled with "module": "nodenext", which resolves `kysely` to its ESM build. The package's
 * declarations must then resolve `kysely` the same way, or its `Kysely` class (private fields) is a
 * different type from the app's and `new Kysely({ dialect: new DbpoolDialect({ pool }) })` does not
 * compile. The packed package carries those declarations (scripts/esm-types.js, its prepack).
 */
describe('the README example (ESM app, module nodenext)', () => {
  let dir: string

  beforeAll(() => {
    run(join(packageDir, 'scripts', 'esm-types.js'), [], packageDir)
    dir = mkdtempSync(join(tmpdir(), 'dbpool-kysely-esm-'))
    symlinkSync(join(repoRoot, 'node_modules'), join(dir, 'node_modules'), 'dir')
    writeFileSync(join(dir, 'package.json'), JSON.stringify({ type: 'module' }))
    writeFileSync(
      join(dir, 'tsconfig.json'),
      JSON.stringify({
        compilerOptions: {
          target: 'es2022',
          module: 'nodenext',
          moduleResolution: 'nodenext',
          strict: true,
          types: ['node'],
          outDir: 'out',
        },
        include: ['example.ts'],
      }),
    )
    writeFileSync(join(dir, 'example.ts'), readmeExample())
  })

  afterAll(() => {
    rmSync(dir, { recursive: true, force: true })
  })

  it('compiles as written and runs on a SQLite file, committing the transfer', () => {
    run(tsc, ['-p', dir], dir)
    const file = join(dir, 'app.db')
    const setup = new Database(file)
    setup.exec(`create table account (id integer primary key, owner text not null, balance integer not null);
      insert into account (owner, balance) values ('ada', 500), ('bob', 50)`)
    setup.close()

    run(join(dir, 'out', 'example.js'), [], dir, { DATABASE_URL: 'sqlite:./app.db' })

    const check = new Database(file, { readonly: true })
    try {
      expect(check.prepare('select id, balance from account order by id').all()).toEqual([
        { id: 1, balance: 490 },
        { id: 2, balance: 60 },
      ])
    } finally {
      check.close()
    }
  })
})
