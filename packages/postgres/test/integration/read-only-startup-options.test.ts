import type { DatabasePool } from '@dbpool/core'
import type { PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { poolOn, rejection } from './helpers'

// Review r7 item 4 (of eb7c002): a pool whose startup options make every session read-only answers a
// write READ_ONLY retryable: false, nothing evicted; but only `default_transaction_read_only=(on|true|
// yes|1)` was recognised. PostgreSQL also takes `-c default-transaction-read-only=on`, `--name=value`,
// `-cname=value`, any parse_bool spelling (t, tr, y, ye, ON, 1...) and the last setting wins: those were
// taken for a failover (the write replayed per attempt, every connection evicted, "fenced primary").
// Each spelling is checked against what the server makes of it (`show default_transaction_read_only`).
let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase()
}, 60_000)

afterAll(async () => {
  await db?.drop()
})

async function warmPool(options: string): Promise<{ pool: DatabasePool<PostgresConnection>; destroyed: string[] }> {
  const pool = poolOn(db.url, { min: 0, max: 4, name: 'read-only-options' }, {}, { options })
  const destroyed: string[] = []
  pool.on('destroy', (event) => destroyed.push(event.reason))
  await Promise.all([1, 2].map(() => pool.withConnection((conn) => conn.query('select 1'))))
  return { pool, destroyed }
}

describe('a pool read-only by its startup options, however PostgreSQL spells them', () => {
  it.each([
    '-c default_transaction_read_only=on',
    '-c default-transaction-read-only=on',
    '--default_transaction_read_only=on',
    '--default-transaction-read-only=yes',
    '-cdefault_transaction_read_only=TR',
    '-c DEFAULT_Transaction_Read_Only=t',
    '-c default_transaction_read_only=y',
    '-c default_transaction_read_only=1',
    '-c default_transaction_read_only=\\on',
    '-c statement_timeout=0 -c default_transaction_read_only=off --default-transaction-read-only=ye',
  ])('%s: READ_ONLY not retryable, one attempt, nothing evicted', async (options) => {
    const { pool, destroyed } = await warmPool(options)
    try {
      const { rows } = await pool.query<{ v: string }>("select current_setting('default_transaction_read_only') as v")
      expect(rows[0]!.v).toBe('on')
      const err = await rejection(pool.query('create table options_write (a int)'))
      expect(err).toMatchObject({ code: 'READ_ONLY', retryable: false, sqlState: '25006' })
      expect(err.message).toContain("the pool's startup options (options, PGOPTIONS) set default_transaction_read_only")
      let attempts = 0
      const failed = await rejection(
        pool.transaction(
          async (tx) => {
            attempts++
            await tx.query('create temp table options_write (a int)')
          },
          { retry: 4 },
        ),
      )
      expect(failed.code).toBe('READ_ONLY')
      expect(attempts).toBe(1)
      expect(destroyed).toEqual([])
      expect(pool.stats().size).toBe(2)
    } finally {
      await pool.close()
    }
  })

  it.each([
    '-c default_transaction_read_only=of',
    '-c default_transaction_read_only=on -c default-transaction-read-only=f',
    '--default_transaction_read_only=NO -c statement_timeout=0',
    '-c default_transaction_read_only=0',
  ])('%s (read-write): the write commits', async (options) => {
    const { pool } = await warmPool(options)
    try {
      const { rows } = await pool.query<{ v: string }>("select current_setting('default_transaction_read_only') as v")
      expect(rows[0]!.v).toBe('off')
      await pool.query('create temp table if not exists options_ok (a int)')
      await pool.transaction((tx) => tx.query('create temp table options_ok_tx (a int)'))
    } finally {
      await pool.close()
    }
  })

  it('options whose last setting is off do not make a read pool: a 25006 there is judged as on any write pool', async () => {
    // a transaction made read-only inside a function (no statement text shows it): the one 25006 a
    // read-write session can get here; with the last setting off the pool is not meant to be read-only
    const { pool } = await warmPool('-c default_transaction_read_only=on -c default-transaction-read-only=f')
    try {
      await pool.query(
        "create or replace function options_ro() returns void language plpgsql as $$ begin perform set_config('transaction_' || 'read' || '_only', 'on', true); end $$",
      )
      const err = await rejection(
        pool.withConnection(async (conn) => {
          await conn.query('begin')
          await conn.query('select options_ro()')
          await conn.query('create table options_ro_write (a int)')
        }),
      )
      expect(err).toMatchObject({ code: 'READ_ONLY', sqlState: '25006' })
      expect(err.message).not.toContain("the pool's startup options")
    } finally {
      await pool.close()
    }
  })
})
