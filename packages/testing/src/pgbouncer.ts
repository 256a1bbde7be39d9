import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync } from 'node:fs'
import { chmod, chown, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { delimiter, join, resolve } from 'node:path'
import { untilSuccess } from './until-success'
import { rewritePostgresUrl } from './url'

/** A PgBouncer this process started in front of a Postgres. */
export interface PgBouncer {
  /** The port it listens on, on 127.0.0.1. */
  readonly port: number
  /** The process id of the process group leader (`runuser` as root, else pgbouncer itself); `undefined` if spawning failed. */
  readonly pid: number | undefined
  /** Its temp directory (configuration, userlist, log), removed by {@link PgBouncer.stop}. */
  readonly dir: string
  /** `url` (a URL of the upstream server) with its host and port replaced by PgBouncer's. */
  urlFor(url: string): string
  /** What PgBouncer logged so far (for a failing test's message). */
  log(): Promise<string>
  /** Stops it and removes its directory. Idempotent: a call after a failure tries again. */
  stop(): Promise<void>
}

/** Options of {@link startPgBouncer}. */
export interface StartPgBouncerOptions {
  /** `pool_mode`. Default is `'transaction'`. */
  readonly poolMode?: 'session' | 'transaction' | 'statement'
  /** `default_pool_size`: server connections per database and user. Default is `2`. */
  readonly poolSize?: number
  /** How long it may take to accept connections. Default is `10000`. */
  readonly startTimeoutMs?: number
  /**
   * `ignore_startup_parameters`: startup parameters it accepts and drops instead of refusing the
   * connection. `[]` is PgBouncer's own default (refuse them all). Default is the ones pg may send
   * (`extra_float_digits`, `statement_timeout`, `lock_timeout`, `idle_in_transaction_session_timeout`, `options`).
   */
  readonly ignoreStartupParameters?: readonly string[]
  /**
   * More `[pgbouncer]` settings, written as `key = value` after the ones above (e.g.
   * `{ query_wait_timeout: 1 }`). Keys are setting names (letters, digits, `_`); values have no line break.
   */
  readonly settings?: Readonly<Record<string, string | number>>
}

/** Startup parameters pg may send that PgBouncer does not track (ignored by default, see StartPgBouncerOptions). */
const PG_STARTUP_PARAMETERS = ['extra_float_digits', 'statement_timeout', 'lock_timeout', 'idle_in_transaction_session_timeout', 'options']

/** The cluster's watchdog, reused: it kills the process groups in `<dir>/kill.pids` and removes `<dir>` once this process is gone. */
const WATCHDOG_PATH = resolve(__dirname, '..', 'runner', 'cluster-watchdog.mjs')

/** Where the Debian package (`apt-get install pgbouncer`) puts the binary, besides PATH. */
const KNOWN_PATHS = ['/usr/sbin/pgbouncer', '/usr/bin/pgbouncer', '/usr/local/bin/pgbouncer']

/** The pgbouncer binary: `PGBOUNCER_BIN`, then PATH, then the Debian package's location; `undefined` when there is none. */
export function findPgBouncer(): string | undefined {
  const fromEnv = process.env.PGBOUNCER_BIN
  if (fromEnv) return existsSync(fromEnv) ? fromEnv : undefined
  const onPath = (process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, 'pgbouncer'))
  return [...onPath, ...KNOWN_PATHS].find((path) => existsSync(path))
}

/**
 * Starts a real PgBouncer on a free port of 127.0.0.1 in front of the server of `upstreamUrl`, every
 * database passed through (`* = host=... port=...`), in transaction pooling mode by default. Clients
 * authenticate with the upstream URL's user and password (scram-sha-256, from a userlist in a temp
 * directory); PgBouncer logs in upstream with the same. The startup parameters pg may send and
 * PgBouncer does not know are ignored (`ignore_startup_parameters`). PgBouncer refuses to run as
 * root, so as root it runs as the `postgres` user (`runuser`). Throws when the binary is missing.
 *
 * ```ts
 * const bouncer = await startPgBouncer(db.url)
 * try { const pool = createPostgresPool(bouncer.urlFor(db.url) + '?pgbouncer=true') ... } finally { await bouncer.stop() }
 * ```
 */
export async function startPgBouncer(upstreamUrl: string, options: StartPgBouncerOptions = {}): Promise<PgBouncer> {
  const bin = findPgBouncer()
  if (bin === undefined)
    throw new Error('pgbouncer is not installed (apt-get install pgbouncer, or set PGBOUNCER_BIN to its path); .ci/run installs it')
  const upstream = new URL(upstreamUrl)
  const user = decodeURIComponent(upstream.username || 'postgres')
  const password = decodeURIComponent(upstream.password)
  // everything that can be refused is checked before anything is written or started
  const settings = extraSettings(options.settings)
  const asRoot = process.getuid?.() === 0
  const runAs = asRoot ? await postgresUser() : undefined
  const port = await freePort()
  const dir = await mkdtemp(join(tmpdir(), 'dbpool-pgbouncer-'))
  // before the password is written: a test process killed (SIGINT, SIGTERM, SIGKILL) before stop()
  // leaves neither PgBouncer running nor its userlist (the upstream password in plaintext) behind
  const watchdog = startWatchdog(dir)
  const ini = join(dir, 'pgbouncer.ini')
  const logFile = join(dir, 'pgbouncer.log')
  try {
    await writeFile(join(dir, 'userlist.txt'), `${quoted(user)} ${quoted(password)}\n`, { mode: 0o600 })
    await writeFile(
      ini,
      [
        '[databases]',
        `* = host=${upstream.hostname.replace(/^\[|\]$/g, '')} port=${upstream.port || '5432'}`,
        '[pgbouncer]',
        'listen_addr = 127.0.0.1',
        `listen_port = ${port}`,
        'unix_socket_dir =',
        'auth_type = scram-sha-256',
        `auth_file = ${join(dir, 'userlist.txt')}`,
        `pool_mode = ${options.poolMode ?? 'transaction'}`,
        `default_pool_size = ${options.poolSize ?? 2}`,
        'max_client_conn = 500',
        `ignore_startup_parameters = ${(options.ignoreStartupParameters ?? PG_STARTUP_PARAMETERS).join(',')}`,
        `logfile = ${logFile}`,
        ...settings,
        '',
      ].join('\n'),
      { mode: 0o600 },
    )
    if (runAs) {
      // the postgres user reads its configuration and writes its log
      await chmod(dir, 0o700)
      for (const path of [dir, ini, join(dir, 'userlist.txt')]) await chown(path, runAs.uid, runAs.gid)
    }
  } catch (err) {
    // nothing started yet: the directory (the password with it) and the watchdog go now, not at exit
    await rm(dir, { recursive: true, force: true })
    watchdog.kill('SIGTERM')
    throw err
  }
  const child = asRoot
    ? spawn('runuser', ['-u', 'postgres', '--', bin, ini], { stdio: ['ignore', 'ignore', 'pipe'], detached: true })
    : spawn(bin, [ini], { stdio: ['ignore', 'ignore', 'pipe'], detached: true })
  if (child.pid !== undefined) await writeFile(join(dir, 'kill.pids'), `${child.pid}\n`)
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr += chunk.toString()
  })
  const onExit = (): void => kill(child)
  process.once('exit', onExit)
  const log = async (): Promise<string> => `${await readFile(logFile, 'utf8').catch(() => '')}${stderr}`
  // a stop that failed (its directory not removed) is tried again by the next call
  const stop = untilSuccess(async () => {
    process.off('exit', onExit)
    await new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve()
      const timer = setTimeout(() => {
        kill(child, 'SIGKILL')
        resolve()
      }, 5_000)
      child.once('exit', () => {
        clearTimeout(timer)
        resolve()
      })
      kill(child)
    })
    await rm(dir, { recursive: true, force: true })
    watchdog.kill('SIGTERM')
  })
  try {
    await acceptsConnections(port, child, options.startTimeoutMs ?? 10_000)
  } catch (err) {
    const logged = await log()
    await stop()
    throw new Error(`pgbouncer did not start: ${(err as Error).message}\n--- pgbouncer log ---\n${logged}`)
  }
  return {
    port,
    pid: child.pid,
    dir,
    urlFor(url: string): string {
      return rewritePostgresUrl(url, { host: `127.0.0.1:${port}` }, 'urlFor')
    },
    log,
    stop,
  }
}

/**
 * A detached watchdog (runner/cluster-watchdog.mjs, as startPostgresCluster's) that, once this process
 * is gone, kills the process group in `<dir>/kill.pids` and removes `dir`. `stop()` ends it (SIGTERM).
 */
function startWatchdog(dir: string): ChildProcess {
  const spec = { watchPid: process.pid, root: dir, pgCtl: '', asPostgres: false }
  const child = spawn(process.execPath, [WATCHDOG_PATH, JSON.stringify(spec)], { detached: true, stdio: 'ignore' })
  child.unref()
  return child
}

/** Signals the process group (runuser and pgbouncer under it). */
function kill(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return
  try {
    process.kill(-child.pid, signal)
  } catch {
    // already gone
  }
}

function quoted(value: string): string {
  return `"${value.replace(/"/g, '""')}"`
}

async function postgresUser(): Promise<{ uid: number; gid: number }> {
  const passwd = await readFile('/etc/passwd', 'utf8')
  const line = passwd.split('\n').find((l) => l.startsWith('postgres:'))
  const fields = line?.split(':')
  if (!fields || fields.length < 4) throw new Error('pgbouncer refuses to run as root and there is no postgres user to run it as')
  return { uid: Number(fields[2]), gid: Number(fields[3]) }
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

async function acceptsConnections(port: number, child: ChildProcess, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (child.exitCode !== null || child.signalCode !== null)
      throw new Error(`it exited (code ${child.exitCode}, signal ${child.signalCode})`)
    const ok = await new Promise<boolean>((resolve) => {
      const socket = connect(port, '127.0.0.1')
      socket.once('connect', () => {
        socket.destroy()
        resolve(true)
      })
      socket.once('error', () => resolve(false))
    })
    if (ok) return
    if (Date.now() > deadline) throw new Error(`nothing accepted connections on 127.0.0.1:${port} within ${timeoutMs} ms`)
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
}

/** `settings` as ini lines; throws on a key or value that would not stay one line of its own. */
function extraSettings(settings: Readonly<Record<string, string | number>> | undefined): string[] {
  return Object.entries(settings ?? {}).map(([key, value]) => {
    if (!/^[a-z0-9_]+$/i.test(key) || /[\r\n]/.test(String(value))) throw new Error(`startPgBouncer: bad setting ${JSON.stringify(key)}`)
    return `${key} = ${value}`
  })
}
