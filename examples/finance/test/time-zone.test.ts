import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { BACKENDS, buildExample, openTestDb, REPO_ROOT, type TestDb } from './helpers'

jest.setTimeout(240_000)

const run = promisify(execFile)

// The same instants, stored and read back by the repositories while the process runs in a zone far
// from UTC (UTC+14, whose date differs from UTC's for most of the day, and US Pacific across a DST
// change): nothing may shift by the offset. TZ only takes effect for a whole process, so the
// repositories run in a child process (the built code) with TZ set.
const ZONES = ['Pacific/Kiritimati', 'America/Los_Angeles']
const INSTANTS = ['2024-03-01T00:30:00.000Z', '2024-02-29T23:59:59.999Z', '2024-03-10T10:00:00.000Z', '1999-12-31T23:00:00.000Z']
const RANGE_TO = '2024-03-01T00:30:00.001Z'

interface ProbeOutput {
  offsetMinutes: number
  entries: { asked: string; returned: string; readBack: string; raw: string }[]
  rangeUpTo: string[]
}

beforeAll(() => buildExample('finance'), 240_000)

describe.each(BACKENDS)('finance repositories under a non-UTC process time zone, on %s', (backend) => {
  let db: TestDb

  beforeAll(async () => {
    db = await openTestDb(backend)
    await db.pool.close()
  }, 180_000)
  afterAll(() => db?.close())

  it.each(ZONES)('stores and reads back the same instants with TZ=%s', async (zone) => {
    const env = { ...process.env, TZ: zone, DATABASE_URL: db.url, PROBE_INSTANTS: JSON.stringify(INSTANTS), PROBE_RANGE_TO: RANGE_TO }
    const { stdout } = await run(process.execPath, [join(__dirname, 'fixtures', 'time-zone-probe.js')], { cwd: REPO_ROOT, env })
    const out = JSON.parse(stdout) as ProbeOutput
    // the zone really was in effect
    expect(out.offsetMinutes).not.toBe(0)
    for (const entry of out.entries) {
      expect(entry).toEqual({ asked: entry.asked, returned: entry.asked, readBack: entry.asked, raw: entry.asked })
    }
    expect(out.rangeUpTo).toEqual(INSTANTS.filter((i) => i < RANGE_TO).sort())
  })
})
