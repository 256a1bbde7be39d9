import { createTestDatabase } from '@dbpool/testing'
import { defineTelemetrySuite } from './telemetry-suite'

defineTelemetrySuite({
  backend: 'postgres',
  database: async () => {
    const db = await createTestDatabase()
    const url = new URL(db.url)
    return { url: db.url, secret: decodeURIComponent(url.password), cleanup: () => db.drop() }
  },
  systemName: 'postgresql',
  targetAttributes: (url) => {
    const parsed = new URL(url)
    return { 'db.namespace': parsed.pathname.slice(1), 'server.address': parsed.hostname, 'server.port': Number(parsed.port || 5432) }
  },
  slowStatement: 'select pg_sleep(0.1), $1::text as tag',
  slowStatementSanitised: 'select pg_sleep(?), $1::text as tag',
  uniqueStatus: '23505',
  placeholder: '$1',
  // Postgres's own rules: block comments nest, E'' strings take backslash escapes, dollar quoting
  dialectStatement: {
    text: "select pg_sleep(0.1), /* a /* b */ 'in-comment' */ 'Nest-Secret' as n, E'it\\'s', 'Esc-Secret' as e, $q$Dollar-Secret$q$ as d",
    sanitised: "select pg_sleep(?), /* a /* b */ 'in-comment' */ ? as n, ?, ? as e, ? as d",
    secrets: /Nest-Secret|Esc-Secret|Dollar-Secret/,
  },
})
