import type { DatabasePool } from '@dbpool/core'

/** Duck-typed, so a pool from another copy of @dbpool/core (two versions installed) still passes. */
export function isPool(value: unknown): value is DatabasePool {
  const pool = value as Partial<DatabasePool> | null | undefined
  return (
    typeof pool === 'object' &&
    pool !== null &&
    typeof pool.withConnection === 'function' &&
    typeof pool.transaction === 'function' &&
    typeof pool.query === 'function' &&
    typeof pool.stats === 'function'
  )
}
