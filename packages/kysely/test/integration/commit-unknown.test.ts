import type { Client } from 'pg'
import { DatabaseError, isOutcomeUnknown } from '@dbpool/core'
import { createSchema, openKyselyDb, type KyselyTestDb } from './helpers'

// A Kysely query outside a transaction runs as an auto-commit statement on Postgres: lost after the
// server committed it (between CommandComplete and ReadyForQuery), it is CONNECTION_LOST with
// `retryable: false` and `detail.outcome: 'unknown'`, as through pool.query().
jest.setTimeout(60_000)

let t: KyselyTestDb | undefined

afterEach(async () => {
  await t?.close()
  t = undefined
})

/** Destroys the socket of `client` at the ReadyForQuery that follows the next CommandComplete. */
function loseAtCommandComplete(client: Client): Promise<void> {
  const connection = client.connection as unknown as NodeJS.EventEmitter & { stream: { destroy(): void } }
  const emit = connection.emit.bind(connection)
  return new Promise((resolve) => {
    let completed = false
    connection.emit = (event: string | symbol, ...args: unknown[]): boolean => {
      if (event === 'commandComplete') completed = true
      if (event === 'readyForQuery' && completed) {
        connection.emit = emit
        connection.stream.destroy()
        resolve()
        return true
      }
      return emit(event, ...args)
    }
  })
}

it('a Kysely insert outside a transaction lost after it committed: CONNECTION_LOST, not retryable, outcome unknown; the row is there', async () => {
  const opened = await openKyselyDb('postgres', { max: 1, min: 0 })
  t = opened
  opened.pool.on('error', () => undefined)
  await createSchema(opened.db, 'postgres')
  const client = await opened.pool.withConnection(async (conn) => (conn.native as { client: Client }).client)
  const lost = loseAtCommandComplete(client)
  const err = await opened.db
    .insertInto('person')
    .values({ first_name: 'Ada', last_name: null, email: 'ada@example.com' })
    .execute()
    .then(
      () => undefined,
      (e: unknown) => e,
    )
  await lost
  expect(DatabaseError.is(err, 'CONNECTION_LOST')).toBe(true)
  expect((err as DatabaseError).retryable).toBe(false)
  expect(isOutcomeUnknown(err)).toBe(true)
  expect(await opened.db.selectFrom('person').select('email').execute()).toEqual([{ email: 'ada@example.com' }])
})
