import { teardownTestPostgres } from './packages/testing/src/jest-global'

export default async function globalTeardown(): Promise<void> {
  await teardownTestPostgres()
}
