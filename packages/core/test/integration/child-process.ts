import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'

const repoRoot = join(__dirname, '..', '..', '..', '..')

/** Runs a TypeScript fixture from ./fixtures in a child node process, with @dbpool/* mapped to the sources. */
export function spawnFixture(name: string, args: string[]): ChildProcess {
  const fixtures = join(__dirname, 'fixtures')
  return spawn(process.execPath, ['-r', 'ts-node/register', '-r', join(fixtures, 'register-sources.ts'), join(fixtures, name), ...args], {
    cwd: repoRoot,
    env: { ...process.env, TS_NODE_PROJECT: join(repoRoot, 'tsconfig.jest.json'), TS_NODE_TRANSPILE_ONLY: '1' },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
}

/** A child's output, collected; `line(match)` waits for a stdout line matching. */
export interface ChildOutput {
  readonly stdout: string[]
  stderr(): string
  line(match: RegExp, timeoutMs?: number): Promise<string>
  exit(): Promise<number | null>
}

/** Collects a child's stdout lines and stderr. */
export function watch(child: ChildProcess): ChildOutput {
  const stdout: string[] = []
  let stderr = ''
  let buffer = ''
  const waiters: { match: RegExp; resolve: (line: string) => void }[] = []
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk
    let nl: number
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl)
      buffer = buffer.slice(nl + 1)
      stdout.push(line)
      for (const w of [...waiters]) {
        if (w.match.test(line)) {
          waiters.splice(waiters.indexOf(w), 1)
          w.resolve(line)
        }
      }
    }
  })
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
  return {
    stdout,
    stderr: () => stderr,
    exit: () => exited,
    line(match, timeoutMs = 60_000) {
      const seen = stdout.find((l) => match.test(l))
      if (seen) return Promise.resolve(seen)
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no line matching ${match} within ${timeoutMs} ms; stderr: ${stderr}`)), timeoutMs)
        void exited.then((code) => {
          clearTimeout(timer)
          reject(new Error(`child exited (${code}) before printing ${match}; stderr: ${stderr}`))
        })
        waiters.push({
          match,
          resolve: (line) => {
            clearTimeout(timer)
            resolve(line)
          },
        })
      })
    },
  }
}
