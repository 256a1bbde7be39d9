import {
  DatabaseError,
  HealthChecker,
  TRANSACTION_RETRY_CODES,
  type DatabasePool,
  type HealthReport,
  type MetricsSnapshot,
  type PoolStatsSnapshot,
  type RetryOptions,
} from '@dbpool/core'
import { AccountRepository, type BalanceSummary } from './account-repository'
import { EQUITY_ACCOUNT, planDemo, type DemoPlan, type PlannedKind } from './demo-plan'
import { FinanceError } from './errors'
import { checkLedgerInvariants, type InvariantCheck, type InvariantReport } from './ledger-invariants'
import { resetFinance } from './migrations'
import { forEachBounded, formatMinorUnits, inFlightLimit, Progress, type ProgressSink } from '@dbpool/example-kit'
import { TransactionRepository, type AccountStatement } from './transaction-repository'
import { TransferService, type TransferResult } from './transfer-service'
import { refuseDatabaseFile } from './export-target'
import { exportJournalCsv, type JournalExport } from './journal-export'
import { addExact, sumExact, toInteger } from './values'

/** Options of {@link runFinanceDemo}. */
export interface FinanceDemoOptions {
  /** Customer accounts to open. Default is `100`. */
  readonly accounts?: number
  /** Transfer requests to send concurrently (at most `inFlightLimit(pool)` in flight: 4 per connection). Default is `2000`. */
  readonly transfers?: number
  /** Plans the requests. Default is `42`. */
  readonly seed?: number
  /** Requests re-sent one by one after the storm (each must replay). Default is `25`. */
  readonly replays?: number
  /** Progress and step lines. Default is `process.stdout`. */
  readonly sink?: ProgressSink
  /** Passed to the {@link TransferService}. */
  readonly retry?: RetryOptions
  /**
   * Where the demo ends by exporting the journal as CSV through `pool.stream()`. Default: no export.
   * A file of the SQLite database (itself, its `-wal`, `-shm`, `-journal`) is refused up front.
   */
  readonly exportPath?: string
}

/** How the storm's requests ended. */
export interface TransferOutcomes {
  readonly requested: number
  /** Posted by this request. */
  readonly posted: number
  /** Answered with the first posting of their idempotency key. */
  readonly replayed: number
  /** Refused by a business rule, by code (INSUFFICIENT_FUNDS, IDEMPOTENCY_CONFLICT, ...). */
  readonly rejected: Readonly<Record<string, number>>
  /** Gave up after the last retry, by DatabaseError code. */
  readonly aborted: Readonly<Record<string, number>>
  /** Any other error: a bug. The first few messages. */
  readonly unexpected: readonly string[]
  readonly unexpectedCount: number
}

/** Everything the finance demo measured. */
export interface FinanceDemoReport {
  readonly backend: string
  readonly target: string
  readonly migrations: { readonly reverted: number; readonly applied: readonly string[] }
  readonly accounts: number
  readonly currency: string
  readonly openingTotal: number
  readonly kinds: Readonly<Record<PlannedKind, number>>
  readonly storm: {
    readonly durationMs: number
    readonly perSecond: number
    readonly outcomes: TransferOutcomes
    /** Transactions run (first attempts and retries). */
    readonly attempts: number
    readonly retries: Readonly<Record<string, number>>
    readonly maxAttempts: number
  }
  readonly replayCheck: { readonly resent: number; readonly identical: number }
  readonly balances: {
    readonly customers: BalanceSummary
    readonly equity: number
    readonly hot: readonly { readonly id: string; readonly balance: number }[]
  }
  readonly statement: {
    readonly accountId: string
    readonly from: Date
    readonly to: Date
    readonly openingBalance: number
    readonly closingBalance: number
    readonly lines: number
  }
  /** The journal exported at the end (when `exportPath` was given). */
  readonly export?: JournalExport
  readonly invariants: InvariantReport
  readonly stats: PoolStatsSnapshot
  readonly health: HealthReport
  readonly metrics: MetricsSnapshot
  readonly durationMs: number
  /** True when every invariant holds. */
  readonly ok: boolean
}

type Outcome = { readonly result: TransferResult } | { readonly error: unknown }

/**
 * The finance demo on an open pool (the caller closes it): resets and migrates the finance tables,
 * opens the accounts, sends the planned transfers concurrently (`inFlightLimit(pool)` at once, 4
 * per connection, then the next as one finishes) with progress, re-sends some of them,
 * then checks the invariants and gathers pool stats, health and metrics. Never throws for a broken
 * invariant: `report.ok` says. Throws CONFIGURATION naming `exportPath`, before anything runs, when
 * it is a file of the SQLite database (see `exportJournalCsv`).
 */
export async function runFinanceDemo(pool: DatabasePool<unknown>, options: FinanceDemoOptions = {}): Promise<FinanceDemoReport> {
  const started = performance.now()
  const sink = options.sink ?? process.stdout
  const say = (line: string): void => void sink.write(`${line}\n`)
  const plan = planDemo({ accounts: options.accounts ?? 100, transfers: options.transfers ?? 2_000, seed: options.seed ?? 42 })

  // before anything runs: an export path that is the database's own file is refused up front
  if (options.exportPath !== undefined) await refuseDatabaseFile('exportPath', pool, options.exportPath)
  say(`finance demo on ${pool.backend} (${pool.target})`)
  const migrated = await resetFinance(pool)
  const applied = migrated.applied.migrations.map((m) => `${m.version} ${m.name}`)
  say(`  migrations: reverted ${migrated.reverted.migrations.length}, applied ${applied.length} (${applied.join(', ')})`)

  const openingTotal = await openAccounts(pool, plan)
  say(
    `  accounts: opened ${plan.accounts.length} customer accounts and ${EQUITY_ACCOUNT}, opening balances ${formatMoney(openingTotal, plan.currency)}`,
  )

  const service = new TransferService(pool, { retry: options.retry })
  const stormStart = new Date()
  const storm = await sendAll(service, plan, sink, inFlightLimit(pool))
  const stats = service.stats()
  const outcomes = classify(storm.outcomes)

  const replayCheck = await replaySome(service, plan, storm.outcomes, options.replays ?? 25, options.seed ?? 42)
  say(`  replays: re-sent ${replayCheck.resent} finished requests one by one, ${replayCheck.identical} returned their original result`)

  const accounts = new AccountRepository(pool)
  const hotAccount = plan.hot[0] as string
  const statement = await new TransactionRepository(pool).statement(hotAccount, { from: stormStart, to: new Date(Date.now() + 1) })
  const balances = {
    customers: await accounts.summary(plan.currency, { excludeUnlimited: true }),
    equity: await accounts.balance(EQUITY_ACCOUNT),
    hot: [...(await accounts.balances(plan.hot))].map(([id, balance]) => ({ id, balance })).sort((a, b) => (a.id < b.id ? -1 : 1)),
  }

  const ledger = await checkLedgerInvariants(pool)
  const demoChecks = await checkDemo(pool, plan, storm.outcomes, outcomes, replayCheck, statement)
  const checks = [...ledger.checks, ...demoChecks]

  let exported: JournalExport | undefined
  if (options.exportPath !== undefined) {
    exported = await exportJournalCsv(pool, options.exportPath)
    const { lines } = await new TransactionRepository(pool).counts()
    say(
      `  export: ${exported.lines} journal lines to ${exported.path} (${exported.bytes} bytes) in ${exported.durationMs} ms through pool.stream()`,
    )
    checks.push({
      name: 'journal export has every line',
      ok: exported.lines === lines,
      detail: `${exported.lines} lines written to ${exported.path}, ${lines} in the journal`,
    })
  }
  const invariants: InvariantReport = { ok: checks.every((c) => c.ok), checks }

  const health = await new HealthChecker({ deep: true }).check(pool)
  // a connection returns to the pool a tick after its last statement resolves: report it at rest
  await new Promise((resolve) => setImmediate(resolve))
  return {
    backend: pool.backend,
    target: pool.target,
    migrations: { reverted: migrated.reverted.migrations.length, applied },
    accounts: plan.accounts.length,
    currency: plan.currency,
    openingTotal,
    kinds: countKinds(plan),
    storm: {
      durationMs: storm.durationMs,
      perSecond: Math.round(plan.transfers.length / (storm.durationMs / 1000)),
      outcomes,
      attempts: stats.attempts,
      retries: stats.retries,
      maxAttempts: Math.max(0, ...storm.outcomes.map((o) => ('result' in o ? o.result.attempts : 0))),
    },
    replayCheck,
    balances,
    statement: {
      accountId: hotAccount,
      from: stormStart,
      to: statement.to as Date,
      openingBalance: statement.openingBalance,
      closingBalance: statement.closingBalance,
      lines: statement.lines.length,
    },
    ...(exported === undefined ? {} : { export: exported }),
    invariants,
    stats: pool.stats(),
    health,
    metrics: pool.metrics.snapshot(),
    durationMs: Math.round(performance.now() - started),
    ok: invariants.ok,
  }
}

/** Opens the equity account and the customer accounts, and posts every opening balance as one entry. */
async function openAccounts(pool: DatabasePool<unknown>, plan: DemoPlan): Promise<number> {
  const total = sumOpenings(plan)
  await pool.transaction(async (tx) => {
    const accounts = new AccountRepository(tx)
    await accounts.create({ id: EQUITY_ACCOUNT, name: 'Equity (opening balances)', currency: plan.currency, minBalance: null })
    for (const a of plan.accounts) await accounts.create({ id: a.id, name: a.name, currency: plan.currency, minBalance: a.minBalance })
    await new TransactionRepository(tx).post({
      description: 'opening balances',
      currency: plan.currency,
      idempotencyKey: 'demo-opening-balances',
      lines: [{ accountId: EQUITY_ACCOUNT, amount: -total }, ...plan.accounts.map((a) => ({ accountId: a.id, amount: a.opening }))],
    })
  })
  return total
}

/**
 * Sends the planned transfers concurrently, at most `limit` in flight (`inFlightLimit(pool)`: more
 * would only wait longer for a connection, up to ACQUIRE_TIMEOUT), and waits for all, showing progress.
 */
async function sendAll(
  service: TransferService,
  plan: DemoPlan,
  sink: ProgressSink,
  limit: number,
): Promise<{ outcomes: Outcome[]; durationMs: number }> {
  const outcomes = new Array<Outcome>(plan.transfers.length)
  let done = 0
  let posted = 0
  let replayed = 0
  let refused = 0
  const progress = new Progress(
    '  transfers',
    plan.transfers.length,
    () => {
      const { retries } = service.stats()
      const retried = Object.values(retries).reduce((a, b) => a + b, 0)
      return { done, detail: `posted ${posted}, replayed ${replayed}, refused ${refused}, retries ${retried}` }
    },
    { sink },
  ).start()
  const started = performance.now()
  try {
    await forEachBounded(plan.transfers, limit, async (planned, i) => {
      try {
        const result = await service.transfer(planned.request)
        outcomes[i] = { result }
        if (result.replayed) replayed++
        else posted++
      } catch (error) {
        outcomes[i] = { error }
        refused++
      } finally {
        done++
        progress.tick()
      }
    })
  } finally {
    progress.stop()
  }
  return { outcomes, durationMs: Math.round(performance.now() - started) }
}

function classify(outcomes: readonly Outcome[]): TransferOutcomes {
  let posted = 0
  let replayed = 0
  const rejected: Record<string, number> = {}
  const aborted: Record<string, number> = {}
  const unexpected: string[] = []
  let unexpectedCount = 0
  for (const o of outcomes) {
    if ('result' in o) {
      if (o.result.replayed) replayed++
      else posted++
    } else if (FinanceError.is(o.error)) {
      rejected[o.error.code] = (rejected[o.error.code] ?? 0) + 1
    } else if (DatabaseError.is(o.error) && TRANSACTION_RETRY_CODES.has(o.error.code)) {
      aborted[o.error.code] = (aborted[o.error.code] ?? 0) + 1
    } else {
      unexpectedCount++
      if (unexpected.length < 5) unexpected.push(o.error instanceof Error ? `${o.error.name}: ${o.error.message}` : String(o.error))
    }
  }
  return { requested: outcomes.length, posted, replayed, rejected, aborted, unexpected, unexpectedCount }
}

/** Re-sends some finished requests one at a time: each must come back as a replay of its first result. */
async function replaySome(
  service: TransferService,
  plan: DemoPlan,
  outcomes: readonly Outcome[],
  count: number,
  seed: number,
): Promise<{ resent: number; identical: number }> {
  const posted = plan.transfers.map((p, i) => ({ p, o: outcomes[i] })).filter((x) => x.o && 'result' in x.o && !x.o.result.replayed)
  let resent = 0
  let identical = 0
  for (let i = 0; i < Math.min(count, posted.length); i++) {
    const { p, o } = posted[(i * 7919 + seed) % posted.length] as { p: DemoPlan['transfers'][number]; o: { result: TransferResult } }
    const again = await service.transfer(p.request)
    resent++
    if (
      again.replayed &&
      again.entryId === o.result.entryId &&
      again.postedAt.getTime() === o.result.postedAt.getTime() &&
      again.amount === o.result.amount
    )
      identical++
  }
  return { resent, identical }
}

async function checkDemo(
  pool: DatabasePool<unknown>,
  plan: DemoPlan,
  outcomes: readonly Outcome[],
  classified: TransferOutcomes,
  replayCheck: { resent: number; identical: number },
  statement: AccountStatement,
): Promise<InvariantCheck[]> {
  // per idempotency key: one posting at most, and every answer names that same entry
  const byKey = new Map<string, TransferResult[]>()
  for (const o of outcomes)
    if ('result' in o) byKey.set(o.result.idempotencyKey as string, [...(byKey.get(o.result.idempotencyKey as string) ?? []), o.result])
  let keysPostedTwice = 0
  let replaysDiffering = 0
  for (const results of byKey.values()) {
    const first = results.filter((r) => !r.replayed)
    if (first.length !== 1) keysPostedTwice++
    const original = first[0] ?? results[0]
    for (const r of results)
      if (r.entryId !== original?.entryId || r.amount !== original.amount || r.postedAt.getTime() !== original.postedAt.getTime())
        replaysDiffering++
  }
  const journal = await new TransactionRepository(pool).counts()
  const expectedEntries = 1 + classified.posted
  // the model: opening balances plus every transfer that posted, computed without the database
  const expected = new Map<string, number>(plan.accounts.map((a) => [a.id, a.opening]))
  expected.set(EQUITY_ACCOUNT, -sumOpenings(plan))
  for (const o of outcomes) {
    if (!('result' in o) || o.result.replayed) continue
    expected.set(o.result.from, addExact(expected.get(o.result.from) ?? 0, -o.result.amount, `model balance of ${o.result.from}`))
    expected.set(o.result.to, addExact(expected.get(o.result.to) ?? 0, o.result.amount, `model balance of ${o.result.to}`))
  }
  const actual = await new AccountRepository(pool).balances([...expected.keys()])
  const differing = [...expected].filter(([id, balance]) => actual.get(id) !== balance).length
  // the statement's lines, in posting order, carry the balances their postings recorded: each one the
  // previous plus its amount (from the opening balance), the last one the account's balance
  const balance = actual.get(statement.accountId)
  const last = statement.lines[statement.lines.length - 1]
  let unchained = 0
  statement.lines.reduce((previous, line) => {
    if (line.balance !== previous + line.amount) unchained++
    return line.balance
  }, statement.openingBalance)
  return [
    {
      name: 'each idempotency key posted once',
      ok: keysPostedTwice === 0 && journal.entries === expectedEntries,
      detail: `${byKey.size} keys, ${journal.entries} entries (expected ${expectedEntries}), ${keysPostedTwice} keys with other than one posting`,
    },
    {
      name: 'repeats return the original result',
      ok: replaysDiffering === 0 && replayCheck.identical === replayCheck.resent,
      detail: `${classified.replayed} concurrent repeats and ${replayCheck.resent} later re-sends, ${replaysDiffering + replayCheck.resent - replayCheck.identical} differing`,
    },
    {
      name: 'balances equal opening + posted transfers',
      ok: differing === 0,
      detail: `${expected.size} accounts checked against an in-memory model, ${differing} differ`,
    },
    {
      name: 'statement closes at the balance',
      ok: statement.closingBalance === balance && unchained === 0 && (last === undefined || last.balance === balance),
      detail: `${statement.accountId}: statement closing ${statement.closingBalance}, last line ${last?.balance ?? 'none'}, balance ${balance}; ${unchained} of ${statement.lines.length} lines whose balance is not the previous one plus their amount`,
    },
    {
      name: 'every request settled',
      ok: classified.unexpectedCount === 0,
      detail: `${classified.unexpectedCount} unexpected errors${classified.unexpected.length ? `: ${classified.unexpected.join('; ')}` : ''}`,
    },
  ]
}

function countKinds(plan: DemoPlan): Record<PlannedKind, number> {
  const kinds: Record<PlannedKind, number> = { random: 0, hot: 0, overdraw: 0, repeat: 0, 'key-reuse': 0 }
  for (const t of plan.transfers) kinds[t.kind]++
  return kinds
}

/** The sum of the plan's opening balances, exact (RangeError rather than a rounded total). */
function sumOpenings(plan: DemoPlan): number {
  return toInteger(sumExact(plan.accounts.map((a) => a.opening)), 'opening total')
}

/** `123456` EUR → `1,234.56 EUR` (two decimals, exact for any integer: `formatMinorUnits` of the kit). */
export function formatMoney(minor: number | bigint, currency: string): string {
  return formatMinorUnits(minor, currency)
}
