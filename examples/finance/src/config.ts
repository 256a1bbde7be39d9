import { configError } from '@dbpool/core'

/** Where the finance example runs and how big its demo is. */
export interface FinanceConfig {
  /** `DATABASE_URL`; default `sqlite:./data/finance.db` (created if missing). */
  readonly databaseUrl: string
  /** `DEMO_ACCOUNTS`; default `100`. */
  readonly accounts: number
  /** `DEMO_TRANSFERS`; default `2000`. */
  readonly transfers: number
  /** `DEMO_SEED`; default `42`: the same seed plans the same requests. */
  readonly seed: number
  /** `DB_POOL_MAX`; default `10`. */
  readonly poolMax: number
  /** `DEMO_EXPORT`: where the demo writes the journal as CSV; default `./data/finance-journal.csv`. */
  readonly exportPath: string
}

/** The default database: a SQLite file under `./data`, created on first use. */
export const DEFAULT_FINANCE_DATABASE_URL = 'sqlite:./data/finance.db'

/** Where the demo exports the journal by default. */
export const DEFAULT_FINANCE_EXPORT_PATH = './data/finance-journal.csv'

/** Reads the configuration from the environment; a malformed value throws naming the variable. */
export function financeConfigFromEnv(env: NodeJS.ProcessEnv = process.env): FinanceConfig {
  return {
    databaseUrl: env.DATABASE_URL?.trim() || DEFAULT_FINANCE_DATABASE_URL,
    accounts: intFromEnv(env, 'DEMO_ACCOUNTS', 100, 2, 100_000),
    transfers: intFromEnv(env, 'DEMO_TRANSFERS', 2_000, 1, 1_000_000),
    seed: intFromEnv(env, 'DEMO_SEED', 42, 0, 2 ** 31 - 1),
    poolMax: intFromEnv(env, 'DB_POOL_MAX', 10, 1, 1_000),
    exportPath: env.DEMO_EXPORT?.trim() || DEFAULT_FINANCE_EXPORT_PATH,
  }
}

/** @internal An integer variable within bounds, or its default when unset. */
export function intFromEnv(env: NodeJS.ProcessEnv, name: string, fallback: number, min: number, max: number): number {
  const raw = env[name]?.trim()
  if (raw === undefined || raw === '') return fallback
  // decimal digits only: Number() would read 0x10 as 16, 1e3 as 1000 and 12.0 as 12 (core refuses them too)
  const value = /^\d+$/.test(raw) ? Number(raw) : NaN
  if (!Number.isSafeInteger(value) || value < min || value > max) throw configError(name, raw, `must be an integer from ${min} to ${max}`)
  return value
}
