import { sql } from 'kysely'
import { openKyselyDb, rejection, type KyselyTestDb } from './helpers'

// SQLite: a multi-statement text sent with sql.raw runs as a script, which binds nothing; its
// placeholders ran as NULL. Refused now (INVALID_PARAMETER) before anything runs, as Postgres refuses it.
describe('sql.raw with a multi-statement text holding a placeholder on sqlite', () => {
  let t: KyselyTestDb
  beforeAll(async () => {
    t = await openKyselyDb('sqlite')
    await sql.raw('create table t (id integer primary key, v text)').execute(t.db)
  })
  afterAll(() => t.close())

  it('is INVALID_PARAMETER and runs nothing', async () => {
    const err = await rejection(sql.raw("insert into t values (1, 'ok'); insert into t values (2, ?)").execute(t.db))
    expect(err).toMatchObject({ code: 'INVALID_PARAMETER', detail: { placeholder: '?' } })
    const { rows } = await sql<{ n: number }>`select count(*) as n from t`.execute(t.db)
    expect(rows).toEqual([{ n: 0 }])
  })
})
