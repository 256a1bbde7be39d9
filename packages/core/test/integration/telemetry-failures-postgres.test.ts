import { createTestDatabase } from '@dbpool/testing'
import { defineTelemetryFailuresSuite } from './telemetry-failures-suite'

defineTelemetryFailuresSuite({
  backend: 'postgres',
  database: async () => {
    const db = await createTestDatabase()
    const url = new URL(db.url)
    return { url: db.url, secret: decodeURIComponent(url.password) || undefined, cleanup: () => db.drop() }
  },
  placeholder: '$1',
  slowStatement: 'select pg_sleep(0.03), $1::text as tag',
})
