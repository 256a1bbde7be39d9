import { crmConfigFromEnv, formatCrmReport, runCrmDemo, type CrmDemoReport } from '../src'
import { BACKENDS, openTestDb, type TestDb } from './helpers'

jest.setTimeout(180_000)

// The whole `npm run demo:crm` scenario through runCrmDemo, on each backend.
describe.each(BACKENDS)('the CRM demo on %s', (backend) => {
  let db: TestDb
  let report: CrmDemoReport
  const output: string[] = []

  beforeAll(async () => {
    db = await openTestDb(backend)
    report = await runCrmDemo(db.pool, { sink: { write: (text: string) => output.push(text) } })
  }, 180_000)
  afterAll(() => db?.close())

  it('passes: every invariant holds', () => {
    expect(report.invariants.checks.filter((c) => !c.ok)).toEqual([])
    expect(report.ok).toBe(true)
    expect(report.invariants.checks).toHaveLength(13)
  })

  it('refused exactly the duplicate emails and moved deals with conflicts resolved', () => {
    expect(report.customers.requested).toBe(500)
    expect(report.customers.rejected.DUPLICATE_EMAIL).toBe(report.customers.plannedDuplicates)
    expect(report.customers.plannedDuplicates).toBeGreaterThan(0)
    expect(report.deals.succeeded).toBe(300)
    expect(report.moves.requested).toBe(1_500)
    expect(report.moves.succeeded).toBeGreaterThan(100)
    expect(report.moves.unexpectedCount).toBe(0)
    expect(report.pipeline.reduce((n, p) => n + p.deals, 0)).toBe(300)
    expect(report.pagination.customers).toBe(report.customers.succeeded)
  })

  it('reports pool stats, health and metrics', () => {
    expect(report.health.status).toBe('healthy')
    expect(report.stats.used).toBe(0)
    expect(report.metrics.timeouts).toBe(0)
    const text = formatCrmReport(report)
    expect(text).toContain('== invariants: all hold')
    expect(text).toContain(`crm demo passed on ${backend}`)
    expect(output.join('')).toMatch(/moves .*1500\/1500 \(100%\)/)
  })
})

// More requests than the pool lets wait (maxWaitingClients): the demo keeps at most that many in
// flight instead of sending all at once (which the pool refused with POOL_EXHAUSTED).
describe.each(BACKENDS)('the CRM demo beyond maxWaitingClients on %s', (backend) => {
  let db: TestDb

  beforeAll(async () => {
    db = await openTestDb(backend, { max: 4, maxWaitingClients: 8 })
  }, 180_000)
  afterAll(() => db?.close())

  it('runs 100 customers, 40 deals and 200 moves with at most 8 waiting: nothing POOL_EXHAUSTED', async () => {
    const report = await runCrmDemo(db.pool, { customers: 100, deals: 40, moves: 200, sink: { write: () => true } })
    for (const phase of [report.customers, report.deals, report.moves]) expect(phase.unexpected).toEqual([])
    expect(report.invariants.checks.filter((c) => !c.ok)).toEqual([])
    expect(report.ok).toBe(true)
  })
})

// review r3 item 5: with no duplicate email planned, DUPLICATE_EMAIL was undefined and the check failed
describe('the CRM demo with a plan that has no duplicate emails', () => {
  let db: TestDb

  beforeAll(async () => {
    db = await openTestDb('sqlite')
  }, 180_000)
  afterAll(() => db?.close())

  it('10 customers (the smallest DEMO_CUSTOMERS): "one customer per email" holds and the demo passes', async () => {
    const report = await runCrmDemo(db.pool, { customers: 10, deals: 5, moves: 10, sink: { write: () => true } })
    expect(report.customers.plannedDuplicates).toBe(0)
    expect(report.invariants.checks.filter((c) => !c.ok)).toEqual([])
    expect(report.ok).toBe(true)
  })
})

// review r3 item 14: Number() read 0x10 as 16, 1e3 as 1000, 12.0 as 12
describe('crmConfigFromEnv', () => {
  it.each(['0x10', '1e3', '12.0', '+12', '1_000', '0b11'])('refuses DEMO_CUSTOMERS=%s naming the variable', (raw) => {
    expect(() => crmConfigFromEnv({ DEMO_CUSTOMERS: raw })).toThrow(/DEMO_CUSTOMERS/)
    expect(() => crmConfigFromEnv({ DEMO_SEED: raw })).toThrow(/DEMO_SEED/)
  })

  it('takes decimal integers (blanks trimmed)', () => {
    expect(crmConfigFromEnv({ DEMO_CUSTOMERS: ' 12 ', DEMO_SEED: '0' })).toMatchObject({ customers: 12, seed: 0 })
  })
})
