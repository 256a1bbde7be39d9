import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { Command, CommanderError, InvalidArgumentError, Option } from 'commander'
import { MAX_TIMER_MS } from '@dbpool/core'
import type { HiddenProcesses } from '@dbpool/sqlite'
import { backupCommand } from './commands/backup'
import { benchCommand } from './commands/bench'
import { checkCommand } from './commands/check'
import type { CommandContext } from './commands/context'
import { healthCommand } from './commands/health'
import { migrateCommand } from './commands/migrate'
import { restoreCommand, type RestoreCommandOptions } from './commands/restore'
import { serveCommand } from './commands/serve'
import { statsCommand } from './commands/stats'
import { EXIT_CODES, Output, type CliIo } from './output'
import { withoutCreatingDatabases } from './pools'
import { resolveConfig, type ResolvedConfig } from './resolve-config'
import { argvSecrets, argvShownNames, envSecrets, envShownNames } from './secrets'

interface GlobalOptions {
  readonly url?: string
  readonly config?: string
  readonly pool?: string
  readonly verbose?: boolean
}

/** Options of {@link run} for tests. */
export interface RunOptions {
  /** Stops `dbpool serve` (instead of SIGINT / SIGTERM). */
  readonly signal?: AbortSignal
}

/**
 * Runs the `dbpool` command line (`argv` without node and the script) and resolves with the exit
 * code. Never throws: errors print one line on stderr (code and what to do; the stack with --verbose).
 */
export async function run(argv: readonly string[], io: CliIo, runOptions: RunOptions = {}): Promise<number> {
  const out = new Output(io)
  // known before commander parses: its usage errors echo the arguments (`unknown command 'postgres://...'`)
  out.addSecrets(argvSecrets(argv))
  out.addSecrets(envSecrets(io.env))
  out.addShownNames([...argvShownNames(argv), ...envShownNames(io.env)])
  let exitCode: number = EXIT_CODES.ok
  let failureCode: number = EXIT_CODES.error
  let verbose = argv.includes('--verbose')
  const program = buildProgram(
    io,
    async (globals, task, onFailure, createsDatabase = false) => {
      verbose = globals.verbose === true
      failureCode = onFailure
      let resolved: Promise<ResolvedConfig> | undefined
      const ctx: CommandContext = {
        io,
        out,
        verbose,
        poolName: globals.pool,
        config: () => {
          resolved ??= resolveConfig({ url: globals.url, config: globals.config }, io.env, io.cwd).then((config) => {
            out.addSecrets(config.secrets)
            out.addShownNames(config.shownNames)
            // a config file's values may be secrets no key name marks: errors name the key, not the value
            if (config.source !== '--url' && config.source !== 'DATABASE_URL') out.hideConfigValues()
            // a mistyped SQLite path must fail, not become a new empty database reported healthy
            return createsDatabase ? config : withoutCreatingDatabases(config)
          })
          return resolved
        },
      }
      exitCode = await task(ctx)
    },
    runOptions,
    out,
  )
  try {
    await program.parseAsync([...argv], { from: 'user' })
    return exitCode
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? EXIT_CODES.ok : EXIT_CODES.usage
    out.error(err, verbose)
    return failureCode
  }
}

/** Runs one command; only `createsDatabase` commands (`migrate up`) may create a missing SQLite file. */
type Runner = (
  globals: GlobalOptions,
  task: (ctx: CommandContext) => Promise<number>,
  failureCode: number,
  createsDatabase?: boolean,
) => Promise<void>

/** The commander program: global options and one subcommand per task; its help and usage errors are written through `out` (scrubbed). */
export function buildProgram(io: CliIo, runner: Runner, runOptions: RunOptions = {}, out: Output = new Output(io)): Command {
  const program = new Command('dbpool')
    .description('Health, stats, checks, migrations, backups and a health endpoint for dbpool pools (PostgreSQL and SQLite).')
    .version(version(), '-V, --version')
    .option('--url <url>', 'database URL (postgres://..., sqlite:./app.db); overrides the config file')
    .option('--config <file>', 'config file (default: dbpool.toml or dbpool.json in the working directory, or $DBPOOL_CONFIG)')
    .option('--pool <name>', 'work on this pool of the config file only')
    .option('--verbose', 'print stacks and causes of errors')
    .showHelpAfterError('(run dbpool --help for usage)')
    .exitOverride()
    .configureOutput({ writeOut: (s) => void io.stdout.write(out.scrub(s)), writeErr: (s) => void io.stderr.write(out.scrub(s)) })
    .addHelpText(
      'after',
      `
Configuration: --url, else the config file with the environment overriding it (DATABASE_URL for the
primary pool, DBPOOL_POOL_<SETTING> for every pool, DBPOOL_<NAME>_URL / DBPOOL_<NAME>_<SETTING>),
else DATABASE_URL.

Exit codes: 0 ok / healthy, 1 degraded or failed, 2 unhealthy, 64 usage error.`,
    )
  const globals = (cmd: Command): GlobalOptions => cmd.optsWithGlobals<GlobalOptions>()

  program
    .command('health')
    .description('check every pool: exit 0 healthy, 1 degraded, 2 unhealthy')
    .option('--json', 'print the report as JSON')
    .option('--timeout <ms>', 'deadline of each check', timerMs, 5_000)
    .option('--deep', 'run the deep checks (SQLite integrity_check)')
    .action((opts: { json?: boolean; timeout: number; deep?: boolean }, cmd: Command) =>
      runner(
        globals(cmd),
        (ctx) => healthCommand(ctx, { json: opts.json, timeoutMs: opts.timeout, deep: opts.deep }),
        EXIT_CODES.unhealthy,
      ),
    )

  program
    .command('stats')
    .description('pool counters and settings, and what the database says about itself')
    .option('--json', 'print JSON')
    .action((opts: { json?: boolean }, cmd: Command) => runner(globals(cmd), (ctx) => statsCommand(ctx, opts), EXIT_CODES.error))

  program
    .command('check')
    .description('SQLite: integrity_check; Postgres: connectivity and server version (exit 0 ok, 2 failed)')
    .option('--json', 'print JSON')
    .option('--timeout <ms>', 'deadline per pool', timerMs, 30_000)
    .action((opts: { json?: boolean; timeout: number }, cmd: Command) =>
      runner(globals(cmd), (ctx) => checkCommand(ctx, { json: opts.json, timeoutMs: opts.timeout }), EXIT_CODES.unhealthy),
    )

  const migrate = program.command('migrate').description('apply, revert or list schema migrations (one pool: --pool or the primary)')
  const migrateOptions = (cmd: Command): Command =>
    cmd
      .option('--dir <dir>', 'migrations folder', 'migrations')
      .option('--table <name>', 'table recording applied migrations', 'dbpool_migrations')
      .option('--lock-timeout <ms>', 'how long to wait for another process migrating', nonNegativeTimerMs, 60_000)
      .option('--json', 'print JSON')
  migrateOptions(migrate.command('up').description('apply pending migrations'))
    .option('--to <version>', 'stop after this version', nonNegativeInt)
    .action((opts: MigrateFlags & { to?: number }, cmd: Command) =>
      runner(
        globals(cmd),
        (ctx) => migrateCommand(ctx, 'up', { ...migrateFlags(opts), ...(opts.to === undefined ? {} : { to: opts.to }) }),
        EXIT_CODES.error,
        true,
      ),
    )
  migrateOptions(migrate.command('down').description('revert the last migration (or --steps N, or --all)'))
    .addOption(new Option('--steps <n>', 'how many to revert').argParser(positiveInt).default(1).conflicts('all'))
    .option('--all', 'revert every applied migration')
    .action((opts: MigrateFlags & { steps: number; all?: boolean }, cmd: Command) =>
      runner(
        globals(cmd),
        (ctx) => migrateCommand(ctx, 'down', { ...migrateFlags(opts), steps: opts.steps, all: opts.all }),
        EXIT_CODES.error,
      ),
    )
  migrateOptions(migrate.command('status').description('list migrations and whether each is applied')).action(
    (opts: MigrateFlags, cmd: Command) =>
      runner(globals(cmd), (ctx) => migrateCommand(ctx, 'status', migrateFlags(opts)), EXIT_CODES.error),
  )

  program
    .command('backup')
    .description('online, verified backup of a SQLite database into a directory')
    .requiredOption('--out <dir>', 'directory for the backup file')
    .option('--gzip', 'compress the backup')
    .addOption(
      new Option('--method <method>', 'backup API on the writer, or VACUUM INTO on a reader')
        .choices(['backup', 'vacuum'])
        .default('backup'),
    )
    .option(
      '--keep-last <n>',
      "delete all but the newest N backups of this database afterwards (other databases' backups are left)",
      positiveInt,
    )
    .option('--json', 'print JSON')
    .action((opts: { out: string; gzip?: boolean; method: 'backup' | 'vacuum'; keepLast?: number; json?: boolean }, cmd: Command) =>
      runner(globals(cmd), (ctx) => backupCommand(ctx, opts), EXIT_CODES.error),
    )

  program
    .command('restore')
    .description('replace a SQLite database with a backup file (verified first, swapped atomically)')
    .argument('<file>', 'backup file (.db or .db.gz)')
    .option('--create', 'restore into a database file that does not exist yet (default: refuse, the path may be mistyped)')
    .option('--force', 'restore even when another process has the database open (it goes on reading the replaced file)')
    .option(
      '--allow-hidden <reasons>',
      'restore although processes are hidden from this one for these reasons, comma-separated: pid-namespace (a container), hidepid; only when no hidden process can have the database open (every other check stays)',
      hiddenReasons,
    )
    .option('--json', 'print JSON')
    .action((file: string, opts: RestoreCommandOptions, cmd: Command) =>
      runner(globals(cmd), (ctx) => restoreCommand(ctx, file, opts), EXIT_CODES.error),
    )

  program
    .command('serve')
    .description('serve /health, /ready and /metrics for the configured pools until SIGINT or SIGTERM')
    .option('--port <port>', 'port (0 picks a free one)', port, 9464)
    .option('--host <host>', 'interface to listen on', '0.0.0.0')
    .option('--timeout <ms>', 'deadline of a readiness check', timerMs, 2_000)
    .addOption(
      new Option('--details', 'show every caller of /ready the targets, server versions, stats and check messages').conflicts('token'),
    )
    .option(
      '--token <token>',
      'bearer token that shows the details (Authorization: Bearer <token>; default: $DBPOOL_SERVE_TOKEN; 16+ printable ASCII characters)',
    )
    .action((opts: { port: number; host: string; timeout: number; details?: boolean; token?: string }, cmd: Command) =>
      runner(
        globals(cmd),
        (ctx) =>
          serveCommand(ctx, {
            port: opts.port,
            host: opts.host,
            timeoutMs: opts.timeout,
            ...(opts.details ? { details: true } : {}),
            ...(opts.token !== undefined ? { token: opts.token } : {}),
            ...(runOptions.signal ? { signal: runOptions.signal } : {}),
          }),
        EXIT_CODES.error,
      ),
    )

  program
    .command('bench')
    .description(
      'run one statement from N callers for a while through the pool: throughput, latency, errors (one pool: --pool or the primary)',
    )
    .option('--duration <seconds>', 'how long to run', positiveSeconds, 5)
    .option(
      '--concurrency <n>',
      'callers issuing statements at once (at most 100000, and at most the pool max + maxWaitingClients)',
      concurrencyArg,
      16,
    )
    .option('--query <sql>', 'the statement, run over and over (keep it read-only)', 'select 1')
    .option('--statement-timeout <ms>', 'deadline of one statement', timerMs, 5_000)
    .option('--json', 'print JSON')
    .action((opts: { duration: number; concurrency: number; query: string; statementTimeout: number; json?: boolean }, cmd: Command) =>
      runner(
        globals(cmd),
        (ctx) =>
          benchCommand(ctx, {
            seconds: opts.duration,
            concurrency: opts.concurrency,
            query: opts.query,
            statementTimeoutMs: opts.statementTimeout,
            ...(opts.json ? { json: true } : {}),
          }),
        EXIT_CODES.error,
      ),
    )

  for (const cmd of [program, ...program.commands, ...migrate.commands]) cmd.exitOverride().configureOutput(program.configureOutput())
  return program
}

interface MigrateFlags {
  readonly dir: string
  readonly table: string
  readonly lockTimeout: number
  readonly json?: boolean
}

function migrateFlags(opts: MigrateFlags): { dir: string; table: string; lockTimeoutMs: number; json?: boolean } {
  return { dir: opts.dir, table: opts.table, lockTimeoutMs: opts.lockTimeout, ...(opts.json ? { json: true } : {}) }
}

/** `--allow-hidden pid-namespace,hidepid` (repeatable): the reasons, checked, added to the earlier ones. */
function hiddenReasons(value: string, previous: HiddenProcesses[] | undefined): HiddenProcesses[] {
  const reasons = value.split(',').map((reason) => reason.trim())
  const known: readonly string[] = ['pid-namespace', 'hidepid']
  const unknown = reasons.find((reason) => !known.includes(reason))
  if (unknown !== undefined)
    throw new InvalidArgumentError(`must be pid-namespace or hidepid (comma-separated), not ${JSON.stringify(unknown)}`)
  return [...(previous ?? []), ...(reasons as HiddenProcesses[])]
}

function positiveInt(value: string): number {
  const n = Number(value)
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n < 1) throw new InvalidArgumentError('must be an integer >= 1')
  return n
}

/** The most callers `bench` builds: beyond, memory grows by the gigabyte before any statement runs. */
const MAX_BENCH_CONCURRENCY = 100_000

function concurrencyArg(value: string): number {
  const n = positiveInt(value)
  if (n > MAX_BENCH_CONCURRENCY) throw new InvalidArgumentError(`must be at most ${MAX_BENCH_CONCURRENCY}`)
  return n
}

function positiveSeconds(value: string): number {
  const n = Number(value)
  if (!/^\d+(\.\d+)?$/.test(value.trim()) || !(n > 0) || n > 86_400)
    throw new InvalidArgumentError('must be a number of seconds > 0 (at most 86400)')
  return n
}

// a Node.js timer takes at most 2^31 - 1 ms; a larger delay fires after 1 ms
function timerMs(value: string): number {
  const n = positiveInt(value)
  if (n > MAX_TIMER_MS) throw new InvalidArgumentError(`must be an integer from 1 to ${MAX_TIMER_MS}`)
  return n
}

function nonNegativeTimerMs(value: string): number {
  const n = nonNegativeInt(value)
  if (n > MAX_TIMER_MS) throw new InvalidArgumentError(`must be an integer from 0 to ${MAX_TIMER_MS}`)
  return n
}

function port(value: string): number {
  const n = nonNegativeInt(value)
  if (n > 65_535) throw new InvalidArgumentError('must be a port number from 0 to 65535')
  return n
}

function nonNegativeInt(value: string): number {
  const n = Number(value)
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n)) throw new InvalidArgumentError('must be an integer >= 0')
  return n
}

function version(): string {
  try {
    return (JSON.parse(readFileSync(join(__dirname, '..', 'package.json'), 'utf8')) as { version: string }).version
  } catch {
    return '0.0.0'
  }
}
