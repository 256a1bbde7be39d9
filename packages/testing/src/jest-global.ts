/**
 * Placeholder until the Postgres test server lands: jest's global setup and teardown call these.
 * @internal
 */
export async function setupTestPostgres(): Promise<void> {}

/** @internal */
export async function teardownTestPostgres(): Promise<void> {}
