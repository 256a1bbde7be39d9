import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sql } from '@dbpool/core'
import {
  AccountRepository,
  checkLedgerInvariants,
  exportJournalCsv,
  financeMigrator,
  JOURNAL_CSV_HEADER,
  resetFinance,
  TransactionRepository,
  type AccountStatement,
} from '../src'
import { BACKENDS, openTestDb, type TestDb } from './helpers'

jest.setTimeout(60_000)

// Statements, entry lists and the journal export list postings in the order they were applied to each
// account's balance (a posting number assigned by the balance update), never by posted_at and entry id:
// two postings with equal posted_at were shown in entry-id order (ids are random), and concurrent
// postings on Postgres in clock order, with running balances the account never had.
describe.each(BACKENDS)('posting order on %s', (backend) => {
  let db: TestDb
  let journal: TransactionRepository
  let accounts: AccountRepository
  const dir = mkdtempSync(join(tmpdir(), 'finance-order-'))
  const at = new Date('2024-06-01T12:00:00.000Z')

  const move = (from: string, to: string, amount: number, postedAt: Date = at, repository: TransactionRepository = journal) =>
    repository.post({
      description: `${from} -> ${to}`,
      currency: 'EUR',
      postedAt,
      lines: [
        { accountId: from, amount: -amount },
        { accountId: to, amount },
      ],
    })

  /** Every line's balance is the balance recorded right after that posting; the last one the account's. */
  async function expectRealBalances(statement: AccountStatement, seen: readonly { entryId: string; balance: number }[]): Promise<void> {
    expect(statement.lines.map((l) => ({ entryId: l.entryId, balance: l.balance }))).toEqual(seen)
    expect(statement.lines.map((l) => l.sequence)).toEqual(seen.map((_, i) => i + 1))
    let running = statement.openingBalance
    for (const line of statement.lines) {
      running += line.amount
      expect(line.balance).toBe(running)
    }
    expect(statement.closingBalance).toBe(running)
    expect(statement.closingBalance).toBe(await accounts.balance(statement.accountId))
  }

  beforeAll(async () => {
    db = await openTestDb(backend, { max: 6 })
  }, 180_000)
  afterAll(async () => {
    await db?.close()
    rmSync(dir, { recursive: true, force: true })
  })
  beforeEach(async () => {
    await resetFinance(db.pool)
    accounts = new AccountRepository(db.pool)
    journal = new TransactionRepository(db.pool)
    await accounts.create({ id: 'EQ', name: 'Equity', currency: 'EUR', minBalance: null })
    await accounts.create({ id: 'A', name: 'A', currency: 'EUR' })
    await accounts.create({ id: 'B', name: 'B', currency: 'EUR' })
  })
  afterEach(async () => {
    const report = await checkLedgerInvariants(db.pool)
    expect(report.checks.filter((c) => !c.ok)).toEqual([])
  })

  it('lists postings with equal posted_at in the order they were posted, each with the balance it left', async () => {
    // A goes 0 -> 100 -> 0 -> 100 -> 0 ... and never below 0 (its limit); in entry-id order a debit
    // could come first: a running balance of -100 the account never had
    const seen: { entryId: string; balance: number }[] = []
    let reversed = false
    for (let i = 0; i < 40 && !(reversed && seen.length >= 8); i++) {
      const { entry } = await (i % 2 === 0 ? move('EQ', 'A', 100) : move('A', 'B', 100))
      if (seen.length > 0 && entry.id < seen[seen.length - 1]!.entryId) reversed = true
      seen.push({ entryId: entry.id, balance: await accounts.balance('A') })
    }
    // some entry's id sorts before the one posted just before it (else the old order would be right)
    expect(reversed).toBe(true)
    await expectRealBalances(await journal.statement('A'), seen)
    expect((await journal.entriesForAccount('A')).map((e) => e.id)).toEqual(seen.map((s) => s.entryId))
    // a range selects by posted_at and keeps the posting order
    const ranged = await journal.statement('A', { from: at, to: new Date(at.getTime() + 1) })
    await expectRealBalances(ranged, seen)
  })

  it('lists a posting dated earlier after those applied before it: posted_at is the date shown, not the order', async () => {
    const { entry: first } = await move('EQ', 'A', 500, new Date(at.getTime() + 2_000))
    const { entry: second } = await move('A', 'B', 200, new Date(at.getTime() + 1_000))
    const { entry: third } = await move('A', 'B', 300, at)
    const s = await journal.statement('A')
    await expectRealBalances(s, [
      { entryId: first.id, balance: 500 },
      { entryId: second.id, balance: 300 },
      { entryId: third.id, balance: 0 },
    ])
    expect(s.lines.map((l) => l.postedAt.getTime() - at.getTime())).toEqual([2_000, 1_000, 0])
    // the range's opening and closing balances are sums by date; the lines keep their real balances
    const late = await journal.statement('A', { from: new Date(at.getTime() + 1_000) })
    expect(late).toMatchObject({ openingBalance: -300, closingBalance: 0 })
    expect(late.lines.map((l) => [l.entryId, l.amount, l.balance])).toEqual([
      [first.id, 500, 500],
      [second.id, -200, 300],
    ])
    expect(await journal.balanceAt('A', new Date(at.getTime() + 1_500))).toBe(-500)
  })

  it('shows one line per posting: an entry whose lines on the account net out, or add up, is one posting', async () => {
    await move('EQ', 'A', 1_000)
    const { entry } = await journal.post({
      description: 'split and back',
      currency: 'EUR',
      postedAt: at,
      lines: [
        { accountId: 'A', amount: -700 },
        { accountId: 'B', amount: 700 },
        { accountId: 'A', amount: 200 },
        { accountId: 'B', amount: -200 },
        { accountId: 'EQ', amount: 5 },
        { accountId: 'EQ', amount: -5 },
      ],
    })
    const a = await journal.statement('A')
    expect(a.lines.map((l) => [l.sequence, l.amount, l.balance])).toEqual([
      [1, 1_000, 1_000],
      [2, -500, 500],
    ])
    expect(a).toMatchObject({ closingBalance: 500, debits: -500n, credits: 1_000n })
    // EQ's lines net to 0: still a posting, numbered, with its unchanged balance
    const eq = await journal.statement('EQ')
    expect(eq.lines.map((l) => [l.sequence, l.entryId, l.amount, l.balance])).toEqual([
      [1, expect.any(String), -1_000, -1_000],
      [2, entry.id, 0, -1_000],
    ])
  })

  it('exports the journal in posting order, each line with its posting number and the balance after it', async () => {
    await move('EQ', 'A', 100, new Date(at.getTime() + 5_000))
    await move('A', 'B', 60, at)
    await move('B', 'EQ', 10, new Date(at.getTime() - 5_000))
    await move('EQ', 'B', 1, at)
    const path = join(dir, `journal-${backend}.csv`)
    await exportJournalCsv(db.pool, path)
    const [header, ...rows] = readFileSync(path, 'utf8').trimEnd().split('\n')
    expect(header).toBe(JOURNAL_CSV_HEADER)
    const fields = rows.map((line) => {
      const [entryId, , , account, amount, , description, journalSeq, accountSeq, balance] = line.split(',')
      return {
        entryId,
        description,
        account,
        amount: Number(amount),
        journalSeq: Number(journalSeq),
        accountSeq: Number(accountSeq),
        balance,
      }
    })
    expect(fields.map((f) => `${f.description} ${f.account} ${f.balance}`)).toEqual([
      'EQ -> A EQ -100',
      'EQ -> A A 100',
      'A -> B A 40',
      'A -> B B 60',
      'B -> EQ B 50',
      'B -> EQ EQ -90',
      'EQ -> B EQ -91',
      'EQ -> B B 51',
    ])
    expect(fields.map((f) => f.journalSeq)).toEqual([1, 1, 2, 2, 3, 3, 4, 4])
    expect(fields.filter((f) => f.account === 'B').map((f) => f.accountSeq)).toEqual([1, 2, 3])
  })

  it('numbers lines posted before migration 0003 in the order statements showed them, and goes on from there', async () => {
    const migrator = financeMigrator(db.pool)
    await migrator.down(1)
    const sameTime = at
    // old rows: two entries at the same instant (in entry-id order), one earlier, written as 0002 did
    const rows: [string, Date, string, number][] = [
      ['e-2', sameTime, 'A', 300],
      ['e-1', sameTime, 'A', 200],
      ['e-0', new Date(at.getTime() - 1), 'A', 100],
    ]
    for (const [id, postedAt, account, amount] of rows) {
      await db.pool.query(
        sql`insert into journal_entries (id, currency, description, posted_at) values (${id}, ${'EUR'}, ${'legacy'}, ${postedAt})`,
      )
      await db.pool.query(sql`insert into journal_lines (entry_id, line_no, account_id, amount) values
        (${id}, ${1}, ${'EQ'}, ${-amount}), (${id}, ${2}, ${account}, ${amount})`)
    }
    await db.pool.query(sql`update accounts set balance = ${600} where id = ${'A'}`)
    await db.pool.query(sql`update accounts set balance = ${-600} where id = ${'EQ'}`)
    await migrator.up()
    expect((await checkLedgerInvariants(db.pool)).ok).toBe(true)
    const { entry } = await move('A', 'B', 50, new Date(at.getTime() - 60_000))
    const s = await journal.statement('A')
    expect(s.lines.map((l) => [l.sequence, l.entryId, l.balance])).toEqual([
      [1, 'e-0', 100],
      [2, 'e-1', 300],
      [3, 'e-2', 600],
      [4, entry.id, 550],
    ])
    const { rows: lines } = await db.pool.query<{ entry_id: string; journal_seq: unknown }>(
      sql`select entry_id, journal_seq from journal_lines where account_id = ${'A'} order by account_seq`,
    )
    expect(lines.map((l) => Number(l.journal_seq))).toEqual([1, 2, 3, 4])
    // and back: 0003 reverts on this backend too
    await migrator.down(1)
    const { rows: back } = await db.pool.query<{ n: unknown }>(sql`select count(*) as n from journal_lines`)
    expect(Number(back[0]!.n)).toBe(8)
    await migrator.up()
  })

  if (backend === 'postgres') {
    it('lists concurrent postings in the order they were applied, whatever their posted_at, entry ids and commit times', async () => {
      // T1 posts a credit to A in a transaction held open after its insert and balance update; T2, a
      // debit of A, waits for A's row lock and is applied (and commits) after T1. T2's posted_at (its
      // clock read before it waited) is earlier than T1's in the first pair and equal after, until an
      // entry-id pair sorts the other way round.
      // A holds 100 first: T2's debit matches A's committed row, so it waits for T1's lock (Postgres
      // skips a row whose committed version fails the update's condition instead of waiting for it)
      const { entry: opening } = await move('EQ', 'A', 100, new Date(at.getTime() - 86_400_000))
      const seen: { entryId: string; balance: number }[] = [{ entryId: opening.id, balance: 100 }]
      let reversed = false
      for (let pair = 0; pair < 30 && !reversed; pair++) {
        const t1At = pair === 0 ? new Date(at.getTime() + 1) : at
        let release!: () => void
        const held = new Promise<void>((resolve) => (release = resolve))
        let t1Done!: (x: { entryId: string; balance: number }) => void
        const t1Posted = new Promise<{ entryId: string; balance: number }>((resolve) => (t1Done = resolve))
        const t1 = db.pool.transaction(async (tx) => {
          const { entry } = await move('EQ', 'A', 100, t1At, new TransactionRepository(tx))
          const { rows } = await tx.query<{ balance: unknown }>(sql`select balance from accounts where id = ${'A'}`)
          t1Done({ entryId: entry.id, balance: Number(rows[0]!.balance) })
          await held
        })
        const first = await t1Posted
        const t2 = move('A', 'B', 100, at)
        await waitForLockWait(db)
        release()
        await t1
        const { entry: second } = await t2
        seen.push(first, { entryId: second.id, balance: await accounts.balance('A') })
        if (second.id < first.entryId) reversed = true
      }
      expect(reversed).toBe(true)
      // 100, then 200 after each T1 and 100 after each T2: in T2-first order it would read 0
      expect(seen.map((s) => s.balance)).toEqual(seen.map((_, i) => (i % 2 === 0 ? 100 : 200)))
      await expectRealBalances(await journal.statement('A'), seen)
      expect((await journal.entriesForAccount('A')).map((e) => e.id)).toEqual(seen.map((s) => s.entryId))
    })
  }
})

/** Resolves once a session of this database waits for a lock (T2 queued behind T1's row lock). */
async function waitForLockWait(db: TestDb): Promise<void> {
  for (let i = 0; i < 500; i++) {
    const { rows } = await db.pool.query<{ n: unknown }>(
      sql`select count(*) as n from pg_stat_activity where datname = current_database() and wait_event_type = ${'Lock'}`,
    )
    if (Number(rows[0]!.n) > 0) return
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error('the second posting never waited for the first one')
}
