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
})
