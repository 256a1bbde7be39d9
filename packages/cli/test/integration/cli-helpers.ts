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

/**
 * Runs `node packages/cli/dist/bin.js ...args` as a child process; under `wrap` when given (a command
 * node is run by: `unshare --pid --fork --mount-proc`).
 */
export function runCli(
  args: readonly string[],
  options: { cwd: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; wrap?: readonly string[] },
): Promise<CliResult> {
  const [command, ...rest] = [...(options.wrap ?? []), process.execPath, binPath, ...args] as [string, ...string[]]
  return new Promise((resolve, reject) => {
    const child = execFile(
      command,
      rest,
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

/** A running `dbpool serve`: its base URL, what it printed so far, and how to stop it. */
export interface RunningServe {
  readonly base: string
  readonly child: ChildProcess
  stdout(): string
  stderr(): string
  /** SIGTERM, then the exit code (SIGKILL after 10 s). */
  stop(): Promise<number | null>
}

/** Starts `dbpool serve ...args` (add `--port 0 --host 127.0.0.1`) and waits for its `listening on` line. */
export async function startServe(args: readonly string[], options: { cwd: string; env?: NodeJS.ProcessEnv }): Promise<RunningServe> {
  const child = spawnCli(['serve', ...args], options)
  let stdout = ''
  let stderr = ''
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s))
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s))
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  const stop = async (): Promise<number | null> => {
    child.kill('SIGTERM')
    const timer = setTimeout(() => child.kill('SIGKILL'), 10_000)
    try {
      return await exited
    } finally {
      clearTimeout(timer)
    }
  }
  const deadline = Date.now() + 30_000
  let match: RegExpExecArray | null
  while (!(match = /listening on (http:\/\/\S+)/.exec(stdout))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stop()
      throw new Error(`serve did not start (exit ${child.exitCode}): ${stdout} ${stderr}`)
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return { base: match[1] as string, child, stdout: () => stdout, stderr: () => stderr, stop }
}

/** How {@link runCliClosingReader} closes the reader of the child's output. */
export interface ClosingReaderOptions {
  readonly cwd: string
  readonly env?: NodeJS.ProcessEnv
  /** Which pipe's reader goes away. Default is `'stdout'`. */
  readonly close?: 'stdout' | 'stderr' | 'both'
  /**
   * `'start'` (default): the read end is closed before the child writes anything, so its first write
   * already fails with EPIPE, every time. `'first-chunk'`: after the first chunk is read, like `| head -1`.
   */
  readonly when?: 'start' | 'first-chunk'
  /** Called once the reader has closed, with what was read (serve: send SIGTERM then); a rejection fails the run. */
  readonly onClosed?: (child: ChildProcess, received: string) => void | Promise<void>
  /** The child must have exited by then (it is killed and the promise rejects). Default is `60000`. */
  readonly timeoutMs?: number
}

/**
 * Runs `dbpool ...args` with the reader of stdout and / or stderr going away (as `dbpool ... | head -1`
 * does): resolves with the exit code and what was read before the reader closed (all of the other stream).
 */
export function runCliClosingReader(
  args: readonly string[],
  options: ClosingReaderOptions,
): Promise<CliResult & { readonly signal: NodeJS.Signals | null }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [binPath, ...args], {
      cwd: options.cwd,
      env: cleanEnv(options.env),
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const close = options.close ?? 'stdout'
    const closing = [close === 'stderr' ? undefined : child.stdout, close === 'stdout' ? undefined : child.stderr].filter(
      (s) => s !== undefined && s !== null,
    )
    const text = { stdout: '', stderr: '' }
    let closed = false
    const closeReaders = (): void => {
      if (closed) return
      closed = true
      for (const stream of closing) stream.destroy()
      Promise.resolve(options.onClosed?.(child, text.stdout + text.stderr)).catch((err: unknown) => {
        child.kill('SIGKILL')
        reject(err instanceof Error ? err : new Error(String(err)))
      })
    }
    for (const name of ['stdout', 'stderr'] as const) {
      child[name].setEncoding('utf8').on('data', (chunk: string) => {
        text[name] += chunk
        if (closing.includes(child[name]) && options.when === 'first-chunk') closeReaders()
      })
    }
    if (options.when !== 'first-chunk') closeReaders()
    const timer = setTimeout(() => {
      child.kill('SIGKILL')
      reject(new Error(`dbpool ${args.join(' ')} did not exit within ${options.timeoutMs ?? 60_000} ms\n${text.stderr}`))
    }, options.timeoutMs ?? 60_000)
    child.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      // what the open pipe still holds arrives after exit: wait for it to end
      const open = [child.stdout, child.stderr].filter((s) => !s.destroyed)
      let pending = open.length
      const done = (): void => resolve({ code, signal, stdout: text.stdout, stderr: text.stderr })
      if (pending === 0) done()
      for (const s of open) s.once('close', () => --pending === 0 && done())
    })
  })
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
