// Starts the Postgres the integration tests use (see @dbpool/testing) once per jest run.
import { setupTestPostgres } from './packages/testing/src/jest-global'

export default async function globalSetup(): Promise<void> {
  await setupTestPostgres()
}
