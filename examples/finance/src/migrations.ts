import { join } from 'node:path'
import { Migrator, type MigrationPool, type MigrationRunResult } from '@dbpool/core'

/** The folder of the finance SQL migrations (`examples/finance/migrations`), found from `src` and from `dist` alike. */
export const FINANCE_MIGRATIONS_DIRECTORY = join(__dirname, '..', 'migrations')

/** The table recording the finance migrations (its own, so the CRM example can share a database). */
export const FINANCE_MIGRATIONS_TABLE = 'finance_migrations'

/** A Migrator over the finance migrations. */
export function financeMigrator(pool: MigrationPool): Migrator {
  return new Migrator(pool, { directory: FINANCE_MIGRATIONS_DIRECTORY, table: FINANCE_MIGRATIONS_TABLE })
}

/** Applies every pending finance migration. */
export function migrateFinance(pool: MigrationPool): Promise<MigrationRunResult> {
  return financeMigrator(pool).up()
}

/** Reverts every finance migration (dropping the finance tables and their data), then applies them all again. */
export async function resetFinance(pool: MigrationPool): Promise<{ reverted: MigrationRunResult; applied: MigrationRunResult }> {
  const migrator = financeMigrator(pool)
  const reverted = await migrator.down(Infinity)
  const applied = await migrator.up()
  return { reverted, applied }
}
