import type { Config } from 'jest'

// One jest project per package (and per example). Unit tests live in `test/unit`, integration tests
// (real Postgres, real SQLite files) in `test/integration`: `npm run test:unit` selects the first.
const packages = ['core', 'postgres', 'sqlite', 'testing', 'http', 'cli', 'kysely'].map((name) => ({ name, dir: `packages/${name}` }))
const examples = ['finance', 'crm'].map((name) => ({ name: `example-${name}`, dir: `examples/${name}` }))

const moduleNameMapper = {
  '^@dbpool/core/testing$': '<rootDir>/../../packages/core/src/testing/index.ts',
  '^@dbpool/core/internal$': '<rootDir>/../../packages/core/src/internal.ts',
  '^@dbpool/(core|postgres|sqlite|testing|http|cli|kysely)$': '<rootDir>/../../packages/$1/src/index.ts',
  '^@dbpool/example-kit$': '<rootDir>/../../examples/kit/src/index.ts',
}

const transform = {
  '^.+\\.ts$': ['ts-jest', { tsconfig: '<rootDir>/../../tsconfig.jest.json' }],
}

const config: Config = {
  projects: [...packages, ...examples].map(({ name, dir }) => ({
    displayName: name,
    rootDir: `<rootDir>/${dir}`,
    testEnvironment: 'node',
    testMatch: ['<rootDir>/test/**/*.test.ts'],
    transform,
    moduleNameMapper,
    setupFiles: ['<rootDir>/../../jest.setup.ts'],
  })),
  globalSetup: '<rootDir>/jest.global-setup.ts',
  globalTeardown: '<rootDir>/jest.global-teardown.ts',
  maxWorkers: 2,
  // a test without its own budget gets 20 s, not jest's 5 s: on a loaded 2-core machine a SQLite file
  // test that takes 0.3 s alone ran past 5 s (a hang still fails, 15 s later)
  testTimeout: 20_000,
  collectCoverageFrom: ['<rootDir>/packages/core/src/**/*.ts', '!<rootDir>/packages/core/src/testing/conformance.ts'],
  coverageThreshold: {
    global: {},
    './packages/core/src/': { lines: 90 },
  },
  coverageReporters: ['text-summary', 'lcov'],
}

export default config
