import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, relative as relativePath } from 'node:path'
import { PoolFactory } from '@dbpool/core'
import { AccountRepository, exportJournalCsv, JOURNAL_CSV_HEADER, resetFinance, runFinanceDemo, TransactionRepository } from '../src'
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

  it('refuses (CONFIGURATION) a path that is the SQLite database or a file beside it, and leaves the database as it was', async () => {
    // DEMO_EXPORT set to the database's own path used to rename the CSV over the live database
    const before = await new TransactionRepository(db.pool).counts()
    const files = (await db.pool.query<{ file: string }>(backend === 'sqlite' ? 'pragma database_list' : 'select 1 as file')).rows
    if (backend === 'postgres') {
      // the database's files are on the server: any local path is an export path
      const path = join(dir, 'journal.csv')
      await expect(exportJournalCsv(db.pool, path)).resolves.toMatchObject({ lines: 2 })
      return
    }
    const file = files[0]?.file as string
    const link = join(dir, 'link.db')
    symlinkSync(file, link)
    const relative = relativePath(process.cwd(), file)
    for (const path of [file, relative, `${file}-wal`, `${file}-shm`, `${file}-journal`, link]) {
      await expect(exportJournalCsv(db.pool, path)).rejects.toMatchObject({
        code: 'CONFIGURATION',
        message: expect.stringContaining('exportJournalCsv.path'),
      })
      // inside a transaction too (the transaction's connection is asked)
      await expect(db.pool.transaction((tx) => exportJournalCsv(tx, path))).rejects.toMatchObject({ code: 'CONFIGURATION' })
    }
    // the demo (DEMO_EXPORT) refuses it before it resets anything, no longer after the run
    const output: string[] = []
    await expect(runFinanceDemo(db.pool, { exportPath: file, sink: { write: (t: string) => output.push(t) } })).rejects.toMatchObject({
      code: 'CONFIGURATION',
      message: expect.stringContaining('exportPath'),
    })
    expect(output).toEqual([])
    expect(readFileSync(file).subarray(0, 15).toString('latin1')).toBe('SQLite format 3')
    expect(await new TransactionRepository(db.pool).counts()).toEqual(before)
    expect(readdirSync(dirname(file)).filter((f) => f.endsWith('.tmp'))).toEqual([])
  })

  it('a pool closed before the rows come: rejects with its DatabaseError and leaves nothing', async () => {
    const closed = await PoolFactory.create(db.url, { name: 'export-closed' })
    await closed.close()
    const err = await rejection(exportJournalCsv(closed, join(dir, 'journal.csv')))
    expect(err).toMatchObject({ code: 'POOL_CLOSED' })
    expect(readdirSync(dir)).toEqual([])
  })
})
