import { writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { expect, it } from 'vitest'
import { createTestDatabase } from '@dbpool/testing'
import pg from 'pg'

it('gets a database on the run’s shared server', async () => {
  const db = await createTestDatabase()
  try {
    const client = new pg.Client({ connectionString: db.url })
    await client.connect()
    const { rows } = await client.query('select 1 as n')
    await client.end()
    expect(rows).toEqual([{ n: 1 }])
    const server = new URL(db.url)
    const report = { host: server.host, shared: process.env.DBPOOL_TEST_PG_SHARED }
    await writeFile(join(process.env.DBPOOL_VITEST_OUT, 'a.json'), JSON.stringify(report))
  } finally {
    await db.drop()
  }
})
