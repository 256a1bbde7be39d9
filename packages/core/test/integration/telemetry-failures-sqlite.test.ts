import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { defineTelemetryFailuresSuite } from './telemetry-failures-suite'

defineTelemetryFailuresSuite({
  backend: 'sqlite',
  database: async () => {
    const dir = mkdtempSync(join(tmpdir(), 'dbpool-telemetry-failures-sqlite-'))
    return { url: `sqlite:${join(dir, 'app.db')}`, cleanup: async () => rmSync(dir, { recursive: true, force: true }) }
  },
  placeholder: '?',
  // about 100 ms of work
  slowStatement: 'with recursive c(x) as (select 1 union all select x + 1 from c where x < 300000) select count(*), ? as tag from c',
})
