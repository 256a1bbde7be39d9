import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A fresh directory under the OS temp dir; `cleanup()` removes it. */
export function tempDir(label = 'dbpool-sqlite-'): { readonly dir: string; file(name: string): string; cleanup(): void } {
  const dir = mkdtempSync(join(tmpdir(), label))
  return {
    dir,
    file: (name) => join(dir, name),
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

const repoRoot = join(__dirname, '..', '..', '..', '..')

/**
 * Runs a TypeScript fixture from test/fixtures in a child node process, with @dbpool/* mapped to the
 * sources (as jest does). Options pass through to spawn (uid/gid for the read-only file test); `wrap`
 * is a command line to run it under.
 */
export function spawnFixture(
  name: string,
  args: string[],
  { wrap = [], ...options }: { uid?: number; gid?: number; wrap?: readonly string[] } = {},
): ChildProcess {
  const fixtures = join(__dirname, '..', 'fixtures')
  const node = [process.execPath, '-r', 'ts-node/register', '-r', join(fixtures, 'register-sources.ts'), join(fixtures, name), ...args]
  // `wrap`: a command the node process is run under (`unshare --pid --fork --mount-proc`)
  const [command, ...rest] = [...wrap, ...node] as [string, ...string[]]
  return spawn(command, rest, {
    cwd: repoRoot,
    env: { ...process.env, TS_NODE_PROJECT: join(repoRoot, 'tsconfig.jest.json'), TS_NODE_TRANSPILE_ONLY: '1' },
    stdio: ['ignore', 'pipe', 'pipe'],
    ...options,
  })
}

/** Collects a child's stdout lines; `waitFor(line)` resolves when a line matching appears. */
export function lines(child: ChildProcess): {
  readonly all: string[]
  waitFor(match: RegExp, timeoutMs?: number): Promise<string>
  stderr(): string
} {
  const all: string[] = []
  let err = ''
  let buffer = ''
  const waiters: { match: RegExp; resolve: (line: string) => void }[] = []
  child.stdout?.setEncoding('utf8').on('data', (chunk: string) => {
    buffer += chunk
    let nl: number
    while ((nl = buffer.indexOf('\n')) >= 0) {
      const line = buffer.slice(0, nl)
      buffer = buffer.slice(nl + 1)
      all.push(line)
      for (const w of [...waiters]) {
        if (w.match.test(line)) {
          waiters.splice(waiters.indexOf(w), 1)
          w.resolve(line)
        }
      }
    }
  })
  child.stderr?.setEncoding('utf8').on('data', (chunk: string) => (err += chunk))
  return {
    all,
    stderr: () => err,
    waitFor(match, timeoutMs = 30_000) {
      const seen = all.find((l) => match.test(l))
      if (seen) return Promise.resolve(seen)
      return new Promise<string>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no line matching ${match} within ${timeoutMs} ms; stderr: ${err}`)), timeoutMs)
        const onExit = (code: number | null): void => {
          clearTimeout(timer)
          reject(new Error(`child exited (${code}) before printing ${match}; stderr: ${err}`))
        }
        child.once('exit', onExit)
        waiters.push({
          match,
          resolve: (line) => {
            clearTimeout(timer)
            child.off('exit', onExit)
            resolve(line)
          },
        })
      })
    },
  }
}

/** Resolves when the child has exited. */
export function exited(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode })
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
}
