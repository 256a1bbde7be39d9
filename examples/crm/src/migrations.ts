import { join } from 'node:path'
import { Migrator, type MigrationPool, type MigrationRunResult } from '@dbpool/core'

/** The folder of the CRM SQL migrations (`examples/crm/migrations`), found from `src` and from `dist` alike. */
export const CRM_MIGRATIONS_DIRECTORY = join(__dirname, '..', 'migrations')

/** The table recording the CRM migrations (its own, so the finance example can share a database). */
export const CRM_MIGRATIONS_TABLE = 'crm_migrations'

/** A Migrator over the CRM migrations. */
export function crmMigrator(pool: MigrationPool): Migrator {
  return new Migrator(pool, { directory: CRM_MIGRATIONS_DIRECTORY, table: CRM_MIGRATIONS_TABLE })
}

/** Applies every pending CRM migration. */
export function migrateCrm(pool: MigrationPool): Promise<MigrationRunResult> {
  return crmMigrator(pool).up()
}

/** Reverts every CRM migration (dropping the CRM tables and their data), then applies them all again. */
export async function resetCrm(pool: MigrationPool): Promise<{ reverted: MigrationRunResult; applied: MigrationRunResult }> {
  const migrator = crmMigrator(pool)
  const reverted = await migrator.down(Infinity)
  const applied = await migrator.up()
  return { reverted, applied }
}
