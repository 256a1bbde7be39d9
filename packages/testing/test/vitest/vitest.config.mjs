// A small real vitest run of @dbpool/testing's vitest global setup (driven by
// test/integration/vitest-setup.test.ts): two test files, one shared server.
import { defineConfig } from 'vitest/config'

export default defineConfig({
  test: {
    root: import.meta.dirname,
    include: ['*.vitest.mjs'],
    globalSetup: ['@dbpool/testing/vitest-setup'],
    testTimeout: 120_000,
    hookTimeout: 120_000,
  },
})
