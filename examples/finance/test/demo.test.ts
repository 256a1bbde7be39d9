import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from '@dbpool/core'
import { financeConfigFromEnv, formatFinanceReport, planDemo, runFinanceDemo, type FinanceDemoReport } from '../src'
import { BACKENDS, openTestDb, type TestDb } from './helpers'
import { inFlightLimit } from '@dbpool/example-kit'

jest.setTimeout(180_000)

// The whole `npm run demo` scenario (2,000 transfers) through runFinanceDemo, on each backend.
describe.each(BACKENDS)('the finance demo on %s', (backend) => {
  let db: TestDb
  let report: FinanceDemoReport
  const output: string[] = []
  const dir = mkdtempSync(join(tmpdir(), 'finance-export-'))
  const exportPath = join(dir, 'journal.csv')

  beforeAll(async () => {
    db = await openTestDb(backend)
    report = await runFinanceDemo(db.pool, { sink: { write: (text: string) => output.push(text) }, exportPath })
  }, 180_000)
  afterAll(async () => {
    await db?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it('passes: every invariant holds', () => {
    expect(report.invariants.checks.filter((c) => !c.ok)).toEqual([])
    expect(report.ok).toBe(true)
    expect(report.invariants.checks.map((c) => c.name)).toEqual([
      'journal balances',
      'every entry balances',
      'balances match the journal',
      'no account below its limit',
      'postings numbered in order',
      'recorded balances chain',
      'each idempotency key posted once',
      'repeats return the original result',
      'balances equal opening + posted transfers',
      'statement closes at the balance',
      'every request settled',
      'journal export has every line',
    ])
  })

  it('ends by exporting every journal line to CSV through pool.stream(), in posting order', async () => {
    const { rows } = await db.pool.query<{ n: unknown }>(sql`select count(*) as n from journal_lines`)
    const csv = readFileSync(exportPath, 'utf8').trimEnd().split('\n')
    expect(csv[0]).toBe('entry_id,line_no,posted_at,account_id,amount,currency,description,journal_seq,account_seq,balance_after')
    expect(csv.length - 1).toBe(Number(rows[0]!.n))
    expect(report.export).toMatchObject({ path: exportPath, lines: csv.length - 1 })
    // posting order: journal_seq never goes down; along the file each account's postings come 1, 2,
    // 3, ... and each balance_after is the previous one plus the posting's amount
    let journalSeq = 0
    const accounts = new Map<string, { seq: number; balance: number; amount: number }>()
    for (const line of csv.slice(1)) {
      const f = line.split(',')
      const [account, amount, seq, accountSeq, balance] = [f[3]!, Number(f[4]), Number(f[7]), Number(f[8]), Number(f[9])]
      expect(seq).toBeGreaterThanOrEqual(journalSeq)
      journalSeq = seq
      const last = accounts.get(account) ?? { seq: 0, balance: 0, amount: 0 }
      if (accountSeq === last.seq) {
        // another line of the same entry on the account (the demo's entries have none)
        accounts.set(account, { ...last, amount: last.amount + amount })
      } else {
        expect([accountSeq, balance]).toEqual([last.seq + 1, last.balance + amount])
        accounts.set(account, { seq: accountSeq, balance, amount })
      }
    }
    expect(db.pool.stats().used).toBe(0)
  })

  it('sent 2,000 requests to 100 accounts, including refusals and repeats', () => {
    const { outcomes } = report.storm
    expect(report.accounts).toBe(100)
    expect(outcomes.requested).toBe(2_000)
    const aborted = Object.values(outcomes.aborted).reduce((a, b) => a + b, 0)
    const rejected = Object.values(outcomes.rejected).reduce((a, b) => a + b, 0)
    expect(outcomes.posted + outcomes.replayed + rejected + aborted).toBe(2_000)
    expect(outcomes.unexpectedCount).toBe(0)
    expect(outcomes.rejected.INSUFFICIENT_FUNDS).toBeGreaterThan(0)
    expect(outcomes.replayed).toBeGreaterThan(0)
    expect(report.replayCheck).toEqual({ resent: 25, identical: 25 })
  })

  it('posted each repeated idempotency key exactly once', async () => {
    const plan = planDemo({ accounts: 100, transfers: 2_000, seed: 42 })
    const repeatedKeys = [...new Set(plan.transfers.filter((t) => t.kind === 'repeat').map((t) => t.request.idempotencyKey))]
    expect(repeatedKeys.length).toBeGreaterThan(50)
    const { rows } = await db.pool.query<{ idempotency_key: string; n: unknown }>(
      sql`select idempotency_key, count(*) as n from journal_entries where idempotency_key in (${sql.join(repeatedKeys)}) group by idempotency_key`,
    )
    // a key whose request was refused (overdraft) has no entry; every other has exactly one
    expect(rows.length).toBeGreaterThan(repeatedKeys.length / 2)
    expect(rows.every((r) => Number(r.n) === 1)).toBe(true)
  })

  it('reports pool stats, a healthy pool and a metrics snapshot', () => {
    expect(report.health.status).toBe('healthy')
    expect(report.stats.used).toBe(0)
    expect(report.metrics.acquired).toBeGreaterThanOrEqual(2_000)
    expect(report.metrics.timeouts).toBe(0)
    const text = formatFinanceReport(report)
    expect(text).toContain('== invariants: all hold')
    expect(text).toContain(`finance demo passed on ${backend}`)
    expect(output.join('')).toMatch(/transfers .*2000\/2000 \(100%\)/)
  })
})

// More requests than the pool lets wait (maxWaitingClients): the demo keeps at most that many in
// flight instead of sending all at once (which the pool refused with POOL_EXHAUSTED).
describe.each(BACKENDS)('the finance demo beyond maxWaitingClients on %s', (backend) => {
  let db: TestDb

  beforeAll(async () => {
    db = await openTestDb(backend, { max: 4, maxWaitingClients: 8 })
  }, 180_000)
  afterAll(() => db?.close())

  it('sends 300 transfers with at most 8 waiting: every request settles, none POOL_EXHAUSTED', async () => {
    const report = await runFinanceDemo(db.pool, { accounts: 20, transfers: 300, sink: { write: () => true } })
    expect(report.storm.outcomes.unexpected).toEqual([])
    expect(report.storm.outcomes.requested).toBe(300)
    expect(report.invariants.checks.filter((c) => !c.ok)).toEqual([])
    expect(report.ok).toBe(true)
  })
})

// review r3 item 4: the demo kept maxWaitingClients (10,000) requests in flight; on a slow backend the
// queue outlasted acquireTimeoutMs and the demo failed with ACQUIRE_TIMEOUT
describe('inFlightLimit', () => {
  it('is a few requests per connection, never past maxWaitingClients, at least 1', () => {
    expect(inFlightLimit({ config: { max: 10, maxWaitingClients: 10_000 } })).toBe(40)
    expect(inFlightLimit({ config: { max: 4, maxWaitingClients: 8 } })).toBe(8)
    expect(inFlightLimit({ config: { max: 1, maxWaitingClients: 0 } })).toBe(1)
  })
})

describe.each(BACKENDS)('the finance demo on a pool whose queue would outlast acquireTimeoutMs, on %s', (backend) => {
  let db: TestDb

  beforeAll(async () => {
    db = await openTestDb(backend, { max: 1, acquireTimeoutMs: 1_000 })
  }, 180_000)
  afterAll(() => db?.close())

  it('1500 transfers on one connection: no ACQUIRE_TIMEOUT (the waiters are a few, not all of them)', async () => {
    const report = await runFinanceDemo(db.pool, { accounts: 20, transfers: 1_500, sink: { write: () => true } })
    expect(report.storm.outcomes.unexpected).toEqual([])
    expect(report.metrics.timeouts).toBe(0)
    expect(report.ok).toBe(true)
  }, 120_000)
})

// review r3 item 14: Number() read 0x10 as 16, 1e3 as 1000, 12.0 as 12
describe('financeConfigFromEnv', () => {
  it.each(['0x10', '1e3', '12.0', '+12', '0x2A'])('refuses DEMO_TRANSFERS=%s and DEMO_SEED=%s naming the variable', (raw) => {
    expect(() => financeConfigFromEnv({ DEMO_TRANSFERS: raw })).toThrow(/DEMO_TRANSFERS/)
    expect(() => financeConfigFromEnv({ DEMO_SEED: raw })).toThrow(/DEMO_SEED/)
  })

  it('takes decimal integers (blanks trimmed)', () => {
    expect(financeConfigFromEnv({ DEMO_TRANSFERS: ' 16 ', DEMO_SEED: '42' })).toMatchObject({ transfers: 16, seed: 42 })
  })
})
