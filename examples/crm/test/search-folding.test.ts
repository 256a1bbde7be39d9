import { sql } from '@dbpool/core'
import { backfillCustomerSearch, checkCrmInvariants, CustomerRepository, foldForSearch, migrateCrm, resetCrm } from '../src'
import { BACKENDS, openTestDb, type TestDb } from './helpers'

jest.setTimeout(60_000)

describe('foldForSearch', () => {
  it('is NFKC, then toLowerCase', () => {
    expect(foldForSearch('ÉMILE')).toBe('émile')
    expect(foldForSearch('ÖKO')).toBe('öko')
    expect(foldForSearch('Ｆｕｌｌ')).toBe('full')
    expect(foldForSearch('ﬁle')).toBe('file')
    // decomposed É (E + U+0301) composes to the same text as the precomposed one
    expect(foldForSearch('E\u0301mile')).toBe(foldForSearch('Émile'))
    expect(foldForSearch('Straße')).toBe('straße')
  })
})

describe.each(BACKENDS)('customer search folds every script the same way on %s', (backend) => {
  let db: TestDb
  let customers: CustomerRepository

  const names = async (term: string): Promise<string[]> => (await customers.search(term)).items.map((c) => c.name)

  beforeAll(async () => {
    db = await openTestDb(backend)
  }, 180_000)
  afterAll(() => db?.close())
  beforeEach(async () => {
    await resetCrm(db.pool)
    customers = new CustomerRepository(db.pool)
  })
  afterEach(async () => {
    expect((await checkCrmInvariants(db.pool)).checks.filter((c) => !c.ok)).toEqual([])
  })

  it('finds non-ASCII names and emails whatever their case or compatibility form', async () => {
    await customers.create({ name: 'Émile Zola', email: 'EMILE@Example.com' })
    await customers.create({ name: 'émile durand', email: 'e2@example.com' })
    await customers.create({ name: 'ÖKO Bau', email: 'oeko@bau.de' })
    await customers.create({ name: 'Straße GmbH', email: 'info@gmbh.de' })
    await customers.create({ name: 'Ｆｕｌｌ Ｗｉｄｔｈ', email: 'ｗｉｄｅ@example.jp' })
    await customers.create({ name: 'Ωmega', email: 'ΣΟΦΙΑ@example.gr' })
    expect(await names('ÉMILE')).toEqual(['Émile Zola', 'émile durand'])
    expect(await names('émile')).toEqual(['Émile Zola', 'émile durand'])
    expect(await names('E\u0301MILE')).toEqual(['Émile Zola', 'émile durand'])
    expect(await names('öko')).toEqual(['ÖKO Bau'])
    expect(await names('Öko')).toEqual(['ÖKO Bau'])
    expect(await names('STRAßE')).toEqual(['Straße GmbH'])
    expect(await names('full width')).toEqual(['Ｆｕｌｌ Ｗｉｄｔｈ'])
    expect(await names('wide@')).toEqual(['Ｆｕｌｌ Ｗｉｄｔｈ'])
    expect(await names('ωMEGA')).toEqual(['Ωmega'])
    expect(await names('σοφια@')).toEqual(['Ωmega'])
    // the documented limits: no full case folding, accents kept
    expect(await names('STRASSE')).toEqual([])
    expect(await names('zola emile')).toEqual([])
    expect(await names('emile z')).toEqual([])
  })

  it('keeps the search columns in step with an update', async () => {
    const c = await customers.create({ name: 'Orsted', email: 'o@example.dk' })
    await customers.update(c.id, { name: 'ØRSTED', email: 'ÆBLE@example.dk' })
    expect(await names('ørsted')).toEqual(['ØRSTED'])
    expect(await names('æble')).toEqual(['ØRSTED'])
    expect(await names('orsted')).toEqual([])
  })

  it('migrateCrm backfills rows written without the search columns; until then they are found as before', async () => {
    const at = new Date('2024-06-01T09:00:00.000Z')
    for (const [id, name, email] of [
      ['legacy-1', 'ÖKO Alt', 'alt@oeko.de'],
      ['legacy-2', 'Plain Old', 'plain@old.test'],
    ] as const) {
      await db.pool.query(sql`
        insert into customers (id, name, email, phone, created_at, updated_at, deleted_at)
        values (${id}, ${name}, ${email}, ${null}, ${at}, ${at}, ${null})`)
    }
    expect(await names('plain')).toEqual(['Plain Old'])
    await migrateCrm(db.pool)
    expect(await names('öko')).toEqual(['ÖKO Alt'])
    expect(await names('PLAIN')).toEqual(['Plain Old'])
    expect(await backfillCustomerSearch(db.pool)).toBe(0)
  })
})
