import { join } from 'node:path'
import { Migrator, type MigrationPool, type MigrationRunResult } from '@dbpool/core'
import type { Db } from './db'
import { backfillCustomerSearch } from './search-text'

/** The folder of the CRM SQL migrations (`examples/crm/migrations`), found from `src` and from `dist` alike. */
export const CRM_MIGRATIONS_DIRECTORY = join(__dirname, '..', 'migrations')

/** The table recording the CRM migrations (its own, so the finance example can share a database). */
export const CRM_MIGRATIONS_TABLE = 'crm_migrations'

/** A Migrator over the CRM migrations. */
export function crmMigrator(pool: MigrationPool): Migrator {
  return new Migrator(pool, { directory: CRM_MIGRATIONS_DIRECTORY, table: CRM_MIGRATIONS_TABLE })
}

/**
 * Applies every pending CRM migration, then fills the search columns of rows written before
 * migration 0004 (`backfillCustomerSearch`: the folding is done in JS, which SQL cannot express on
 * both backends). After `dbpool migrate up` from the command line, call `backfillCustomerSearch(pool)`.
 */
export async function migrateCrm(pool: MigrationPool & Db): Promise<MigrationRunResult> {
  const result = await crmMigrator(pool).up()
  await backfillCustomerSearch(pool)
  return result
}

/** Reverts every CRM migration (dropping the CRM tables and their data), then applies them all again. */
export async function resetCrm(pool: MigrationPool & Db): Promise<{ reverted: MigrationRunResult; applied: MigrationRunResult }> {
  const reverted = await crmMigrator(pool).down(Infinity)
  const applied = await migrateCrm(pool)
  return { reverted, applied }
}
