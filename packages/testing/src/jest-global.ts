import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SHARED_DIR_ENV } from './shared-postgres'
import type { RunnerReport } from './postgres-server'

/**
 * jest `globalSetup` helper: prepares one Postgres per jest run without starting it. The first test
 * that calls `createTestDatabase()` / `testPostgresUrl()` starts it (so a run with only unit tests never
 * does); every worker then shares it through `process.env`. With `DBPOOL_TEST_PG_URL` set, nothing
 * is started and that server is used.
 *
 * ```ts
 * // jest.global-setup.ts
 * import { setupTestPostgres } from '@dbpool/testing'
 * export default setupTestPostgres
 * ```
 */
export async function setupTestPostgres(): Promise<void> {
  if (process.env.DBPOOL_TEST_PG_URL || process.env[SHARED_DIR_ENV]) return
  const dir = await mkdtemp(join(tmpdir(), 'dbpool-jest-'))
  await writeFile(join(dir, 'owner.json'), JSON.stringify({ pid: process.pid }))
  // workers are forked after globalSetup and inherit this
  process.env[SHARED_DIR_ENV] = dir
}

/** jest `globalTeardown` helper: stops the shared server if a test started it, and removes its files. */
export async function teardownTestPostgres(): Promise<void> {
  const dir = process.env[SHARED_DIR_ENV]
  if (!dir) return
  delete process.env[SHARED_DIR_ENV]
  const text = await readFile(join(dir, 'server.json'), 'utf8').catch(() => undefined)
  if (text) {
    const report = JSON.parse(text) as RunnerReport
    // pid 0 (a start that failed before any runner existed) would signal this whole process group
    if (Number.isInteger(report.pid) && report.pid > 0) await stopProcess(report.pid)
  }
  await rm(dir, { recursive: true, force: true })
}

/** SIGTERM (the runner stops Postgres and removes its data), then SIGKILL after 30 s. */
async function stopProcess(pid: number): Promise<void> {
  if (!signal(pid, 'SIGTERM')) return
  const deadline = Date.now() + 30_000
  while (alive(pid)) {
    if (Date.now() > deadline) {
      signal(pid, 'SIGKILL')
      return
    }
    await new Promise((r) => setTimeout(r, 50))
  }
}

function signal(pid: number, sig: NodeJS.Signals): boolean {
  try {
    process.kill(pid, sig)
    return true
  } catch {
    return false
  }
}

function alive(pid: number): boolean {
  return signal(pid, 0 as unknown as NodeJS.Signals)
}
