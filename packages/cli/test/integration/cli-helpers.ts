import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { mkdirSync, rmdirSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createServer, connect, type Server, type Socket } from 'node:net'

export const repoRoot = join(__dirname, '..', '..', '..', '..')
export const binPath = join(repoRoot, 'packages', 'cli', 'dist', 'bin.js')

/** Builds packages/cli (and what it references) with `tsc -b`, one build at a time across processes. */
export async function buildCli(): Promise<void> {
  const lock = join(tmpdir(), 'dbpool-cli-build.lock')
  const deadline = Date.now() + 180_000
  for (;;) {
    try {
      mkdirSync(lock)
      break
    } catch {
      // a lock older than 3 minutes belongs to a build that died
      const age = Date.now() - (statSafe(lock) ?? Date.now())
      if (age > 180_000) rmdirSync(lock)
      if (Date.now() > deadline) throw new Error(`waited too long for ${lock}`)
      await new Promise((r) => setTimeout(r, 200))
    }
  }
  try {
    await new Promise<void>((resolve, reject) => {
      execFile(
        process.execPath,
        [require.resolve('typescript/bin/tsc'), '-b', 'packages/cli'],
        { cwd: repoRoot, timeout: 170_000 },
        (err, stdout, stderr) => (err ? reject(new Error(`tsc -b packages/cli failed:\n${stdout}${stderr}`)) : resolve()),
      )
    })
  } finally {
    rmdirSync(lock)
  }
}

function statSafe(path: string): number | undefined {
  try {
    return statSync(path).mtimeMs
  } catch {
    return undefined
  }
}

/** What one CLI run printed and how it ended. */
export interface CliResult {
  readonly code: number | null
  readonly stdout: string
  readonly stderr: string
}

/** Runs `node packages/cli/dist/bin.js ...args` as a child process. */
export function runCli(args: readonly string[], options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number }): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      [binPath, ...args],
      { cwd: options.cwd, env: cleanEnv(options.env), timeout: options.timeoutMs ?? 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : null) : 0
        if (err && code === null) reject(new Error(`dbpool ${args.join(' ')} did not finish: ${err.message}\n${stderr}`))
        else resolve({ code, stdout, stderr })
      },
    )
    child.stdin?.end()
  })
}

/** Starts `dbpool ...args` and leaves it running (serve). */
export function spawnCli(args: readonly string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): ChildProcess {
  return spawn(process.execPath, [binPath, ...args], { cwd: options.cwd, env: cleanEnv(options.env), stdio: ['ignore', 'pipe', 'pipe'] })
}

/** The test environment without the variables the CLI reads, plus `extra`. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {}
  for (const [key, value] of Object.entries(process.env)) {
    if (key === 'DATABASE_URL' || key.startsWith('DBPOOL_') || key.startsWith('PG')) continue
    env[key] = value
  }
  return { ...env, ...extra }
}

/** A TCP proxy that delays every chunk by `delayMs` (a slow network, for a degraded health status). */
export async function startDelayProxy(
  target: { host: string; port: number },
  delayMs: number,
): Promise<{ port: number; close(): Promise<void> }> {
  const sockets = new Set<Socket>()
  const server: Server = createServer((client) => {
    const upstream = connect(target.port, target.host)
    sockets.add(client).add(upstream)
    const forward = (from: Socket, to: Socket): void => {
      from.on('data', (chunk: Buffer) => setTimeout(() => to.destroyed || to.write(chunk), delayMs))
    }
    forward(client, upstream)
    forward(upstream, client)
    const close = (): void => {
      client.destroy()
      upstream.destroy()
    }
    client.on('error', close).on('close', close)
    upstream.on('error', close).on('close', close)
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  return {
    port: typeof address === 'object' && address ? address.port : 0,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy()
        server.close(() => resolve())
      }),
  }
}
