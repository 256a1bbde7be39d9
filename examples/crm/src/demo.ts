import {
  DatabaseError,
  HealthChecker,
  sql,
  TRANSACTION_RETRY_CODES,
  type DatabasePool,
  type HealthReport,
  type MetricsSnapshot,
  type PoolStatsSnapshot,
  type RetryOptions,
} from '@dbpool/core'
import { ContactRepository } from './contact-repository'
import { checkCrmInvariants, type InvariantCheck, type InvariantReport } from './crm-invariants'
import { CustomerRepository, normaliseEmail, type Customer } from './customer-repository'
import { DealRepository, type PipelineSummary } from './deal-repository'
import { planCrmDemo, type CrmDemoPlan } from './demo-plan'
import { CrmError, CustomerNotFoundError } from './errors'
import { crmKysely } from './kysely-db'
import { resetCrm } from './migrations'
import { PipelineService } from './pipeline-service'
import { foldForSearch } from './search-text'
import { forEachBounded, inFlightLimit, Progress, type ProgressSink } from '@dbpool/example-kit'

/** Options of {@link runCrmDemo}. */
export interface CrmDemoOptions {
  /** Customers to create. Default is `500`. */
  readonly customers?: number
  /** Deals to open. Default is `300`. */
  readonly deals?: number
  /** Stage moves to send concurrently (at most `inFlightLimit(pool)` in flight: 4 per connection). Default is `1500`. */
  readonly moves?: number
  /** Plans the requests. Default is `7`. */
  readonly seed?: number
  /** Progress and step lines. Default is `process.stdout`. */
  readonly sink?: ProgressSink
  /** Passed to the {@link PipelineService}. */
  readonly retry?: RetryOptions
}

/** How one phase's concurrent requests ended. */
export interface PhaseOutcomes {
  readonly requested: number
  readonly succeeded: number
  /** Refused by a business rule, by code. */
  readonly rejected: Readonly<Record<string, number>>
  /** Gave up after the last retry, by DatabaseError code. */
  readonly aborted: Readonly<Record<string, number>>
  readonly unexpected: readonly string[]
  readonly unexpectedCount: number
  readonly durationMs: number
  readonly perSecond: number
}

/** Everything the CRM demo measured. */
export interface CrmDemoReport {
  readonly backend: string
  readonly target: string
  readonly migrations: { readonly reverted: number; readonly applied: readonly string[] }
  readonly customers: PhaseOutcomes & { readonly plannedDuplicates: number }
  readonly contacts: number
  readonly deals: PhaseOutcomes
  readonly moves: PhaseOutcomes & { readonly attempts: number; readonly retries: Readonly<Record<string, number>> }
  readonly pipeline: readonly PipelineSummary[]
  readonly pagination: { readonly pageSize: number; readonly pages: number; readonly customers: number }
  readonly searches: readonly { readonly term: string; readonly matches: number }[]
  readonly deleted: number
  readonly invariants: InvariantReport
  readonly stats: PoolStatsSnapshot
  readonly health: HealthReport
  readonly metrics: MetricsSnapshot
  readonly durationMs: number
  /** True when every invariant holds. */
  readonly ok: boolean
}

type Settled<T> = { readonly value: T } | { readonly error: unknown }

/**
 * The CRM demo on an open pool (the caller closes it): resets and migrates the CRM tables, creates
 * customers with contacts (some with duplicate emails), opens deals and moves them through the
 * pipeline concurrently, pages and searches, soft-deletes some customers, then checks the
 * invariants and gathers pool stats, health and metrics. `report.ok` says whether everything held.
 */
export async function runCrmDemo(pool: DatabasePool<unknown>, options: CrmDemoOptions = {}): Promise<CrmDemoReport> {
  const started = performance.now()
  const sink = options.sink ?? process.stdout
  const say = (line: string): void => void sink.write(`${line}\n`)
  const plan = planCrmDemo({
    customers: options.customers ?? 500,
    deals: options.deals ?? 300,
    moves: options.moves ?? 1_500,
    seed: options.seed ?? 7,
  })

  say(`crm demo on ${pool.backend} (${pool.target})`)
  // a few requests per connection in flight (never past maxWaitingClients): more only queue longer
  const limit = inFlightLimit(pool)
  const migrated = await resetCrm(pool)
  const applied = migrated.applied.migrations.map((m) => `${m.version} ${m.name}`)
  say(`  migrations: reverted ${migrated.reverted.migrations.length}, applied ${applied.length} (${applied.join(', ')})`)

  // 1. customers with their contacts, one transaction each, all at once (up to limit)
  const created = await runPhase('  customers', plan.customers, sink, limit, (c) =>
    pool.transaction(async (tx) => {
      const customer = await new CustomerRepository(tx).create({ name: c.name, email: c.email })
      const contacts = new ContactRepository(tx)
      for (const contact of c.contacts) await contacts.add(customer.id, contact)
      return customer
    }),
  )
  const idByEmail = new Map<string, string>()
  for (const s of created.settled) if ('value' in s) idByEmail.set(s.value.email, s.value.id)

  // 2. deals, for whichever customer of an email group was created
  // deals are a Kysely repository on the same pool (customers and contacts use the sql tag)
  const kysely = crmKysely(pool)
  const deals = new DealRepository(kysely)
  const opened = await runPhase('  deals', plan.deals, sink, limit, (d) => {
    const id = idByEmail.get(normaliseEmail((plan.customers[d.customer] as CrmDemoPlan['customers'][number]).email))
    if (!id) return Promise.reject(new CustomerNotFoundError(`#${d.customer}`))
    return deals.create({ customerId: id, title: d.title, amount: d.amount, currency: plan.currency })
  })
  const dealIds = opened.settled.map((s) => ('value' in s ? s.value.id : undefined))

  // 3. stage moves, all at once (up to limit), many on the same ten deals
  const pipeline = new PipelineService(kysely, { retry: options.retry })
  const moved = await runPhase('  moves', plan.moves, sink, limit, (m) => {
    const id = dealIds[m.deal]
    if (!id) return Promise.reject(new Error(`deal #${m.deal} was not opened`))
    return pipeline.move(id, m.to, { note: 'demo' })
  })

  // 4. reads: every page, two searches
  const customers = new CustomerRepository(pool)
  const pagination = await pageAll(customers, 50)
  const searches = []
  for (const term of plan.searches)
    searches.push({ term, matches: (await collect((after) => customers.search(term, { limit: 50, after }))).length })

  // 5. soft-delete every 10th active customer, then reuse one freed email
  const toDelete = pagination.items.filter((_, i) => i % 10 === 0)
  await forEachBounded(toDelete, limit, async (c) => {
    await customers.softDelete(c.id)
  })
  const reused = toDelete[0] ? await customers.create({ name: 'Returning Customer', email: toDelete[0].email }) : undefined
  say(
    `  reads: ${pagination.pages} pages of 50, searches ${searches.map((s) => `"${s.term}" ${s.matches}`).join(', ')}; soft-deleted ${toDelete.length}, reused a freed email`,
  )

  const invariants = await checkAll(pool, plan, created, opened, moved, pagination.items, toDelete, reused)
  const stats = pipeline.stats()
  const health = await new HealthChecker({ deep: true }).check(pool)
  const contacts = await new ContactRepository(pool).count()
  const pipelineSummary = await deals.pipelineSummary(plan.currency)
  // a connection returns to the pool a tick after its last statement resolves: report it at rest
  await new Promise((resolve) => setImmediate(resolve))
  return {
    backend: pool.backend,
    target: pool.target,
    migrations: { reverted: migrated.reverted.migrations.length, applied },
    customers: { ...created.outcomes, plannedDuplicates: plan.customers.filter((c) => c.duplicate).length },
    contacts,
    deals: opened.outcomes,
    moves: { ...moved.outcomes, attempts: stats.attempts, retries: stats.retries },
    pipeline: pipelineSummary,
    pagination: { pageSize: 50, pages: pagination.pages, customers: pagination.items.length },
    searches,
    deleted: toDelete.length,
    invariants,
    stats: pool.stats(),
    health,
    metrics: pool.metrics.snapshot(),
    durationMs: Math.round(performance.now() - started),
    ok: invariants.ok,
  }
}

/**
 * Runs `fn` for every item concurrently, at most `limit` in flight (`inFlightLimit(pool)`: 4 per
 * connection, never past `maxWaitingClients`), with progress, and classifies how each ended.
 */
async function runPhase<I, T>(
  label: string,
  items: readonly I[],
  sink: ProgressSink,
  limit: number,
  fn: (item: I) => Promise<T>,
): Promise<{ settled: Settled<T>[]; outcomes: PhaseOutcomes }> {
  const settled = new Array<Settled<T>>(items.length)
  let done = 0
  let ok = 0
  const progress = new Progress(label, items.length, () => ({ done, detail: `ok ${ok}, refused ${done - ok}` }), { sink }).start()
  const started = performance.now()
  try {
    await forEachBounded(items, limit, async (item, i) => {
      try {
        settled[i] = { value: await fn(item) }
        ok++
      } catch (error) {
        settled[i] = { error }
      } finally {
        done++
        progress.tick()
      }
    })
  } finally {
    progress.stop()
  }
  const durationMs = Math.round(performance.now() - started)
  return { settled, outcomes: classify(settled, durationMs) }
}

function classify(settled: readonly Settled<unknown>[], durationMs: number): PhaseOutcomes {
  let succeeded = 0
  const rejected: Record<string, number> = {}
  const aborted: Record<string, number> = {}
  const unexpected: string[] = []
  let unexpectedCount = 0
  for (const s of settled) {
    if ('value' in s) succeeded++
    else if (CrmError.is(s.error)) rejected[s.error.code] = (rejected[s.error.code] ?? 0) + 1
    else if (DatabaseError.is(s.error) && TRANSACTION_RETRY_CODES.has(s.error.code))
      aborted[s.error.code] = (aborted[s.error.code] ?? 0) + 1
    else {
      unexpectedCount++
      if (unexpected.length < 5) unexpected.push(s.error instanceof Error ? `${s.error.name}: ${s.error.message}` : String(s.error))
    }
  }
  return {
    requested: settled.length,
    succeeded,
    rejected,
    aborted,
    unexpected,
    unexpectedCount,
    durationMs,
    perSecond: durationMs > 0 ? Math.round((settled.length * 1000) / durationMs) : settled.length,
  }
}

async function collect(
  page: (after: string | null) => Promise<{ items: readonly Customer[]; nextCursor: string | null }>,
): Promise<Customer[]> {
  const all: Customer[] = []
  let after: string | null = null
  for (;;) {
    const { items, nextCursor } = await page(after)
    all.push(...items)
    if (nextCursor === null) return all
    after = nextCursor
  }
}

async function pageAll(customers: CustomerRepository, pageSize: number): Promise<{ items: Customer[]; pages: number }> {
  let pages = 0
  const items = await collect((after) => {
    pages++
    return customers.list({ limit: pageSize, after })
  })
  return { items, pages }
}

async function checkAll(
  pool: DatabasePool<unknown>,
  plan: CrmDemoPlan,
  created: { settled: Settled<Customer>[]; outcomes: PhaseOutcomes },
  opened: { outcomes: PhaseOutcomes },
  moved: { outcomes: PhaseOutcomes },
  paged: readonly Customer[],
  deletedCustomers: readonly Customer[],
  reused: Customer | undefined,
): Promise<InvariantReport> {
  const customers = new CustomerRepository(pool)
  const groups = new Set(plan.customers.map((c) => normaliseEmail(c.email)))
  const contactsExpected = plan.customers.reduce(
    (sum, c, i) => sum + ('value' in (created.settled[i] as Settled<Customer>) ? c.contacts.length : 0),
    0,
  )
  const contacts = await new ContactRepository(pool).count()
  const everyId = new Set(paged.map((c) => c.id))
  const deletedIds = new Set(deletedCustomers.map((c) => c.id))
  const activeNow = await collect((after) => customers.list({ limit: 200, after }))
  const searchHits = await collect((after) => customers.search(plan.searches[1] as string, { limit: 200, after }))
  const folded = foldForSearch((plan.searches[1] as string).trim())
  const expectedHits = activeNow.filter((c) => foldForSearch(c.name).includes(folded) || foldForSearch(c.email).includes(folded))
  const { rows } = await pool.query<{ moves: unknown }>(sql`select coalesce(sum(version - 1), 0) as moves from deals`)
  const recordedMoves = Number(rows[0]?.moves)
  const settledAll = [created.outcomes, opened.outcomes, moved.outcomes].reduce((n, o) => n + o.unexpectedCount, 0)
  const demoChecks: InvariantCheck[] = [
    {
      name: 'one customer per email',
      ok:
        created.outcomes.succeeded === groups.size &&
        (created.outcomes.rejected.DUPLICATE_EMAIL ?? 0) === plan.customers.length - groups.size,
      detail: `${plan.customers.length} requests, ${groups.size} distinct emails, ${created.outcomes.succeeded} created, ${created.outcomes.rejected.DUPLICATE_EMAIL ?? 0} refused as duplicates`,
    },
    {
      name: 'no contacts of refused customers',
      ok: contacts === contactsExpected,
      detail: `${contacts} contacts, ${contactsExpected} expected`,
    },
    {
      name: 'pages list every customer once',
      ok: paged.length === everyId.size && paged.length === created.outcomes.succeeded,
      detail: `${paged.length} rows over the pages, ${everyId.size} distinct, ${created.outcomes.succeeded} customers`,
    },
    {
      name: 'deleted customers are hidden',
      ok:
        activeNow.every((c) => !deletedIds.has(c.id)) &&
        activeNow.length === paged.length - deletedIds.size + (reused ? 1 : 0) &&
        (await customers.findById([...deletedIds][0] ?? '')) === undefined,
      detail: `${deletedIds.size} deleted, ${activeNow.length} active now, freed email reused: ${reused ? 'yes' : 'no'}`,
    },
    {
      name: 'search finds exactly the matches',
      ok: searchHits.length === expectedHits.length && searchHits.every((c) => !deletedIds.has(c.id)),
      detail: `"${plan.searches[1]}": ${searchHits.length} found, ${expectedHits.length} expected`,
    },
    {
      name: 'every move is in the history',
      ok: recordedMoves === moved.outcomes.succeeded,
      detail: `${moved.outcomes.succeeded} successful moves, ${recordedMoves} recorded`,
    },
    {
      name: 'every request settled',
      ok: settledAll === 0,
      detail: `${settledAll} unexpected errors${settledAll ? `: ${[...created.outcomes.unexpected, ...opened.outcomes.unexpected, ...moved.outcomes.unexpected].join('; ')}` : ''}`,
    },
  ]
  const base = await checkCrmInvariants(pool)
  const checks = [...base.checks, ...demoChecks]
  return { ok: checks.every((c) => c.ok), checks }
}
