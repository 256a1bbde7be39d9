import {
  canMove,
  checkCrmInvariants,
  CustomerNotFoundError,
  CustomerRepository,
  DealNotFoundError,
  DealRepository,
  crmKysely,
  ConcurrentUpdateError,
  InvalidInputError,
  InvalidStageTransitionError,
  PipelineService,
  resetCrm,
  type Stage,
} from '../src'
import { dbpoolTransaction } from '@dbpool/kysely'
import { BACKENDS, openTestDb, type TestDb } from './helpers'

jest.setTimeout(120_000)

describe('the pipeline rules', () => {
  it.each<[Stage, Stage, boolean]>([
    ['lead', 'qualified', true],
    ['lead', 'negotiation', true],
    ['qualified', 'lead', true],
    ['negotiation', 'qualified', false],
    ['lead', 'won', false],
    ['proposal', 'won', true],
    ['negotiation', 'won', true],
    ['lead', 'lost', true],
    ['won', 'lost', false],
    ['lost', 'lead', false],
    ['proposal', 'proposal', false],
  ])('%s -> %s: %s', (from, to, allowed) => {
    expect(canMove(from, to)).toBe(allowed)
  })
})

describe.each(BACKENDS)('deals on %s', (backend) => {
  let db: TestDb
  let deals: DealRepository
  let customerId: string

  beforeAll(async () => {
    db = await openTestDb(backend)
  }, 180_000)
  afterAll(() => db?.close())
  beforeEach(async () => {
    await resetCrm(db.pool)
    deals = new DealRepository(crmKysely(db.pool))
    customerId = (await new CustomerRepository(db.pool).create({ name: 'Initech', email: 'bill@initech.test' })).id
  })
  afterEach(async () => {
    expect((await checkCrmInvariants(db.pool)).checks.filter((c) => !c.ok)).toEqual([])
  })

  it('opens a deal as a lead with history row 1', async () => {
    const deal = await deals.create({ customerId, title: 'TPS reports', amount: 1_250_000, currency: 'USD' })
    expect(deal).toMatchObject({ stage: 'lead', version: 1, amount: 1_250_000, closedAt: null })
    expect(await deals.get(deal.id)).toEqual(deal)
    expect(await deals.history(deal.id)).toEqual([
      { dealId: deal.id, seq: 1, from: null, to: 'lead', note: 'created', changedAt: deal.createdAt },
    ])
    expect(await deals.listForCustomer(customerId)).toEqual([deal])
  })

  it('refuses bad input, unknown customers and unknown deals', async () => {
    await expect(deals.create({ customerId, title: '', amount: 1, currency: 'USD' })).rejects.toBeInstanceOf(InvalidInputError)
    await expect(deals.create({ customerId, title: 'x', amount: -1, currency: 'USD' })).rejects.toBeInstanceOf(InvalidInputError)
    await expect(deals.create({ customerId: 'ghost', title: 'x', amount: 1, currency: 'USD' })).rejects.toBeInstanceOf(
      CustomerNotFoundError,
    )
    await expect(deals.moveStage('ghost', 'qualified')).rejects.toBeInstanceOf(DealNotFoundError)
    const deal = await deals.create({ customerId, title: 'x', amount: 1, currency: 'USD' })
    await expect(deals.moveStage(deal.id, 'bogus' as Stage)).rejects.toBeInstanceOf(InvalidInputError)
  })

  it('moves through the pipeline, recording every move; a closed deal stays closed', async () => {
    let t = 0
    const clocked = new DealRepository(crmKysely(db.pool), { clock: () => new Date(Date.UTC(2024, 1, 1, 0, 0, t++)) })
    const deal = await clocked.create({ customerId, title: 'Stapler', amount: 50_00, currency: 'USD' })
    await clocked.moveStage(deal.id, 'qualified', { note: 'has budget' })
    await clocked.moveStage(deal.id, 'proposal')
    await clocked.moveStage(deal.id, 'qualified', { note: 'scope changed' })
    await clocked.moveStage(deal.id, 'negotiation')
    const won = await clocked.moveStage(deal.id, 'won')
    expect(won).toMatchObject({ stage: 'won', version: 6 })
    expect(won.closedAt).toEqual(new Date(Date.UTC(2024, 1, 1, 0, 0, 5)))
    expect(await deals.get(deal.id)).toEqual(won)
    expect((await deals.history(deal.id)).map((h) => [h.seq, h.from, h.to, h.note])).toEqual([
      [1, null, 'lead', 'created'],
      [2, 'lead', 'qualified', 'has budget'],
      [3, 'qualified', 'proposal', null],
      [4, 'proposal', 'qualified', 'scope changed'],
      [5, 'qualified', 'negotiation', null],
      [6, 'negotiation', 'won', null],
    ])
    await expect(deals.moveStage(deal.id, 'lost')).rejects.toBeInstanceOf(InvalidStageTransitionError)
    expect((await deals.get(deal.id)).version).toBe(6)
  })

  it('rejects a move based on a stale version (optimistic concurrency)', async () => {
    const deal = await deals.create({ customerId, title: 'x', amount: 1, currency: 'USD' })
    await deals.moveStage(deal.id, 'qualified', { expectedVersion: 1 })
    await expect(deals.moveStage(deal.id, 'proposal', { expectedVersion: 1 })).rejects.toBeInstanceOf(ConcurrentUpdateError)
    expect((await deals.get(deal.id)).stage).toBe('qualified')
  })

  it('summarises the pipeline per stage', async () => {
    const a = await deals.create({ customerId, title: 'a', amount: 100, currency: 'USD' })
    await deals.create({ customerId, title: 'b', amount: 200, currency: 'USD' })
    await deals.create({ customerId, title: 'c', amount: 999, currency: 'EUR' })
    await deals.moveStage(a.id, 'lost')
    expect(await deals.pipelineSummary('USD')).toEqual([
      { stage: 'lead', deals: 1, amount: 200n },
      { stage: 'qualified', deals: 0, amount: 0n },
      { stage: 'proposal', deals: 0, amount: 0n },
      { stage: 'negotiation', deals: 0, amount: 0n },
      { stage: 'won', deals: 0, amount: 0n },
      { stage: 'lost', deals: 1, amount: 100n },
    ])
  })

  it('totals a stage exactly as a bigint past 2^53 (each amount in range)', async () => {
    const max = Number.MAX_SAFE_INTEGER
    for (const title of ['x', 'y', 'z']) await deals.create({ customerId, title, amount: max, currency: 'JPY' })
    const lead = (await deals.pipelineSummary('JPY')).find((p) => p.stage === 'lead')
    expect(lead).toEqual({ stage: 'lead', deals: 3, amount: 3n * BigInt(max) })
  })

  // review r3 item 7: SQLite's sum() failed with "integer overflow" past 2^63 - 1 where Postgres was exact
  it('totals a stage exactly past 2^63 - 1 on both backends (1,100 deals at the largest amount)', async () => {
    const max = Number.MAX_SAFE_INTEGER
    const now = new Date('2024-01-01T00:00:00.000Z')
    const kysely = crmKysely(db.pool)
    for (let i = 0; i < 1_100; i += 100)
      await kysely
        .insertInto('deals')
        .values(
          Array.from({ length: 100 }, (_, k) => ({
            id: `big-${i + k}`,
            customer_id: customerId,
            title: 'big',
            amount: max - (k % 2),
            currency: 'XAU',
            stage: 'lead' as const,
            version: 1,
            created_at: now,
            updated_at: now,
            closed_at: null,
          })),
        )
        .execute()
    const lead = (await deals.pipelineSummary('XAU')).find((p) => p.stage === 'lead')
    expect(lead).toEqual({ stage: 'lead', deals: 1_100, amount: 1_100n * BigInt(max) - 550n })
    await db.pool.query('delete from deals')
  })

  it('pipelineSummary refuses a currency that is not an ISO 4217 code (INVALID_INPUT)', async () => {
    for (const currency of [undefined, '', 'eur', 42])
      await expect(deals.pipelineSummary(currency as unknown as string)).rejects.toBeInstanceOf(InvalidInputError)
  })

  it('PipelineService and checkCrmInvariants work on a caller transaction (no settings passed to a savepoint)', async () => {
    const deal = await deals.create({ customerId, title: 'x', amount: 1, currency: 'USD' })
    const kysely = crmKysely(db.pool)
    const moved = await dbpoolTransaction(kysely, (trx) => new PipelineService(trx).move(deal.id, 'qualified'))
    expect(moved).toMatchObject({ stage: 'qualified', version: 2 })
    const viaKysely = await kysely.transaction().execute((trx) => new PipelineService(trx).move(deal.id, 'proposal'))
    expect(viaKysely).toMatchObject({ stage: 'proposal', version: 3 })
    const report = await db.pool.transaction((tx) => checkCrmInvariants(tx))
    expect(report.checks.filter((c) => !c.ok)).toEqual([])
    expect(await deals.get(deal.id)).toMatchObject({ stage: 'proposal', version: 3 })
  })

  it('100 concurrent moves of one deal: applied one after another, history stays a chain', async () => {
    const deal = await deals.create({ customerId, title: 'contested', amount: 1, currency: 'USD' })
    const pipeline = new PipelineService(crmKysely(db.pool), { retry: { maxAttempts: 100, baseDelayMs: 1, maxDelayMs: 50 } })
    const targets: Stage[] = ['qualified', 'lead']
    const results = await Promise.allSettled(Array.from({ length: 100 }, (_, i) => pipeline.move(deal.id, targets[i % 2] as Stage)))
    const ok = results.filter((r) => r.status === 'fulfilled').length
    for (const r of results) if (r.status === 'rejected') expect(r.reason).toBeInstanceOf(InvalidStageTransitionError)
    const final = await deals.get(deal.id)
    expect(final.version).toBe(1 + ok)
    const history = await deals.history(deal.id)
    expect(history).toHaveLength(1 + ok)
    for (let i = 1; i < history.length; i++) expect(history[i]?.from).toBe(history[i - 1]?.to)
    expect(ok).toBeGreaterThan(1)
    if (backend === 'postgres') expect(pipeline.stats().retries.SERIALIZATION_FAILURE ?? 0).toBeGreaterThan(0)
  })
})
