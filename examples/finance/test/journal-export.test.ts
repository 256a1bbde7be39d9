import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { PoolFactory } from '@dbpool/core'
import { AccountRepository, exportJournalCsv, JOURNAL_CSV_HEADER, resetFinance, TransactionRepository } from '../src'
import { BACKENDS, openTestDb, rejection, type TestDb } from './helpers'

jest.setTimeout(60_000)

// A failed export removes its temporary file: nothing is left next to `path` (it left `<path>.tmp`).
describe.each(BACKENDS)('exportJournalCsv on %s', (backend) => {
  let db: TestDb
  let dir: string

  beforeAll(async () => {
    db = await openTestDb(backend)
    await resetFinance(db.pool)
    const accounts = new AccountRepository(db.pool)
    await accounts.create({ id: 'A', name: 'A', currency: 'EUR', minBalance: null })
    await accounts.create({ id: 'B', name: 'B', currency: 'EUR', minBalance: null })
    await new TransactionRepository(db.pool).post({
      description: 'one, "quoted"',
      currency: 'EUR',
      lines: [
        { accountId: 'A', amount: 5 },
        { accountId: 'B', amount: -5 },
      ],
    })
  }, 180_000)
  afterAll(() => db?.close())
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'finance-export-test-'))
  })
  afterEach(() => rmSync(dir, { recursive: true, force: true }))

  it('writes the file and leaves no temporary file', async () => {
    const path = join(dir, 'journal.csv')
    const result = await exportJournalCsv(db.pool, path)
    expect(result).toMatchObject({ path, lines: 2 })
    expect(readFileSync(path, 'utf8').split('\n')[0]).toBe(JOURNAL_CSV_HEADER)
    expect(readdirSync(dir)).toEqual(['journal.csv'])
  })

  it('a path naming a directory: rejects and leaves only the directory', async () => {
    const path = join(dir, 'taken')
    mkdirSync(path)
    const err = await rejection(exportJournalCsv(db.pool, path))
    expect(err).toMatchObject({ code: expect.stringMatching(/^E/) })
    expect(readdirSync(dir)).toEqual(['taken'])
  })

  it('a pool closed before the rows come: rejects with its DatabaseError and leaves nothing', async () => {
    const closed = await PoolFactory.create(db.url, { name: 'export-closed' })
    await closed.close()
    const err = await rejection(exportJournalCsv(closed, join(dir, 'journal.csv')))
    expect(err).toMatchObject({ code: 'POOL_CLOSED' })
    expect(readdirSync(dir)).toEqual([])
  })
})
