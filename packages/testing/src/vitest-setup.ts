import { setupTestPostgres, teardownTestPostgres } from './jest-global'

/**
 * vitest `globalSetup` module (`@dbpool/testing/vitest-setup`): the same lazily started, shared
 * Postgres as the jest global setup. Setting up starts nothing; the first test that calls
 * `createTestDatabase()` / `testPostgresUrl()` starts the server, and every test file of the run
 * shares it (vitest's workers inherit `process.env` from the main process, which runs this module).
 * The teardown it returns (vitest calls it at the end of the run) stops the server. With
 * `DBPOOL_TEST_PG_URL` set, neither does anything.
 *
 * ```ts
 * // vitest.config.ts
 * import { defineConfig } from 'vitest/config'
 * export default defineConfig({ test: { globalSetup: ['@dbpool/testing/vitest-setup'] } })
 * ```
 */
// vitest reads a CommonJS global setup (this package compiles to CommonJS) through its default export only
// eslint-disable-next-line no-restricted-syntax
export default async function vitestGlobalSetup(): Promise<() => Promise<void>> {
  await setupTestPostgres()
  return teardownTestPostgres
}
