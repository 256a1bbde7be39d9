import { configError } from '@dbpool/core'

/** Where the CRM example runs and how big its demo is. */
export interface CrmConfig {
  /** `DATABASE_URL`; default `sqlite:./data/crm.db` (created if missing). */
  readonly databaseUrl: string
  /** `DEMO_CUSTOMERS`; default `500`. */
  readonly customers: number
  /** `DEMO_DEALS`; default `300`. */
  readonly deals: number
  /** `DEMO_MOVES`; default `1500`. */
  readonly moves: number
  /** `DEMO_SEED`; default `7`. */
  readonly seed: number
  /** `DB_POOL_MAX`; default `10`. */
  readonly poolMax: number
}

/** The default database: a SQLite file under `./data`, created on first use. */
export const DEFAULT_CRM_DATABASE_URL = 'sqlite:./data/crm.db'

/** Reads the configuration from the environment; a malformed value throws naming the variable. */
export function crmConfigFromEnv(env: NodeJS.ProcessEnv = process.env): CrmConfig {
  return {
    databaseUrl: env.DATABASE_URL?.trim() || DEFAULT_CRM_DATABASE_URL,
    customers: intFromEnv(env, 'DEMO_CUSTOMERS', 500, 10, 1_000_000),
    deals: intFromEnv(env, 'DEMO_DEALS', 300, 1, 1_000_000),
    moves: intFromEnv(env, 'DEMO_MOVES', 1_500, 0, 1_000_000),
    seed: intFromEnv(env, 'DEMO_SEED', 7, 0, 2 ** 31 - 1),
    poolMax: intFromEnv(env, 'DB_POOL_MAX', 10, 1, 1_000),
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
