import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defineTelemetrySuite } from './telemetry-suite'

let path = ''

defineTelemetrySuite({
  backend: 'sqlite',
  database: async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dbpool-telemetry-sqlite-'))
    path = join(dir, 'app.db')
    return { url: `sqlite:${path}`, cleanup: async () => rmSync(dir, { recursive: true, force: true }) }
  },
  systemName: 'sqlite',
  targetAttributes: () => ({ 'db.namespace': path }),
  // about 100 ms of work
  slowStatement: 'with recursive c(x) as (select 1 union all select x + 1 from c where x < 300000) select count(*), ? as tag from c',
  slowStatementSanitised: 'with recursive c(x) as (select ? union all select x + ? from c where x < ?) select count(*), ? as tag from c',
  uniqueStatus: 'SQLITE_CONSTRAINT_UNIQUE',
  placeholder: '?',
  // review r13 D1: SQLite's comments do not nest, `[name]` may hold a quote, a backslash escapes nothing
  dialectStatement: {
    text:
      'with recursive c(x, e) as (select 1, 2 union all select x + 1, e from c where x < 300000) ' +
      "select count(*) as n, /* see /* note */ 'Card-4111' as card, 1 as [owner's tag], 'alice@example.com' as email, " +
      "e'x\\', 'Bs-Secret' as s from c",
    sanitised:
      'with recursive c(x, e) as (select ?, ? union all select x + ?, e from c where x < ?) ' +
      "select count(*) as n, /* see /* note */ ? as card, ? as [owner's tag], ? as email, e?, ? as s from c",
    secrets: /Card-4111|alice@|Bs-Secret/,
  },
})
