import { randomBytes } from 'node:crypto'
import { mkdir, readFile, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { dockerAnswers } from './docker-probe'
import {
  runnerSpec,
  serverUrl,
  spawnDetachedRunner,
  startPostgres,
  waitForState,
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
 * watches the jest main process; everyone else waits for its report.
 */
async function sharedServerUrl(dir: string, options: StartPostgresOptions = {}): Promise<string> {
  const statePath = join(dir, 'server.json')
  const specPath = join(dir, 'spec.json')
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
    const kind = await chooseKind()
    const spec = await runnerSpec(kind, options, owner.pid, statePath)
    await writeFile(specPath, JSON.stringify(spec), { mode: 0o600 })
    const report = await spawnDetachedRunner(spec, timeoutMs)
    return urlFrom(spec, report)
  }
  const report = await waitForState(statePath, timeoutMs)
  const spec = JSON.parse(await readFile(specPath, 'utf8')) as RunnerSpec
  return urlFrom(spec, report)
}

function urlFrom(spec: RunnerSpec, report: Awaited<ReturnType<typeof waitForState>>): string {
  if (report.type === 'failed') {
    throw new Error(
      `the shared test Postgres (${spec.provider}) could not start: ${report.error}\n--- server log ---\n${report.logs}\n` +
        'Set DBPOOL_TEST_PG_URL to use an existing server instead.',
    )
  }
  return serverUrl(spec, report)
}

async function chooseKind(): Promise<'container' | 'embedded'> {
  const forced = process.env.DBPOOL_TEST_PG_PROVIDER
  if (forced === 'embedded' || forced === 'container') return forced
  return (await dockerAnswers()).ok ? 'container' : 'embedded'
}

/** @internal A short random name part. */
export function randomSuffix(): string {
  return randomBytes(3).toString('hex')
}
