import { randomBytes } from 'node:crypto'
import { Client } from 'pg'
import { DatabaseConfig, DatabaseError, type DatabaseOptions, type DatabasePool, type ErrorCode, type PoolOptions } from '@dbpool/core'
import { createPostgresPool, type PostgresConnection, type PostgresPoolOptions } from '@dbpool/postgres'

/** A unique application_name, so a test can find (and kill) exactly its pool's backends. */
export function uniqueAppName(prefix: string): string {
  return `${prefix}-${randomBytes(4).toString('hex')}`
}

/** A pool on `url` with a unique application_name. */
export function poolOn(
  url: string,
  poolOptions: PoolOptions = {},
  options: PostgresPoolOptions = {},
  overrides: DatabaseOptions = {},
): DatabasePool<PostgresConnection> {
  const config = DatabaseConfig.fromUrl(url, {
    applicationName: uniqueAppName(poolOptions.name ?? 'test'),
    sslMode: 'disable',
    ...overrides,
  })
  return createPostgresPool(config, { name: 'test', ...poolOptions }, options)
}

/** Runs `fn` on a plain pg.Client of its own (outside every pool). */
export async function admin<T>(url: string, fn: (client: Client) => Promise<T>): Promise<T> {
  const client = new Client({ connectionString: url, application_name: 'dbpool-test-admin' })
  client.on('error', () => undefined)
  await client.connect()
  try {
    return await fn(client)
  } finally {
    await client.end().catch(() => undefined)
  }
}

/** Backends of one application_name. */
export async function backends(url: string, applicationName: string): Promise<{ pid: number; state: string; query: string }[]> {
  return admin(
    url,
    async (c) => (await c.query('select pid, state, query from pg_stat_activity where application_name = $1', [applicationName])).rows,
  )
}

/** Terminates every backend of one application_name; resolves with how many. */
export async function terminate(url: string, applicationName: string): Promise<number> {
  return admin(
    url,
    async (c) =>
      (await c.query('select pg_terminate_backend(pid) from pg_stat_activity where application_name = $1', [applicationName])).rowCount ??
      0,
  )
}

/** The error a promise rejects with (fails the test if it resolves). */
export async function rejection(promise: Promise<unknown>): Promise<DatabaseError> {
  try {
    await promise
  } catch (err) {
    if (!DatabaseError.is(err)) throw new Error(`expected a DatabaseError, got ${String(err)}`, { cause: err })
    return err
  }
  throw new Error('expected a rejection, but it resolved')
}

/** Asserts a DatabaseError code. */
export function expectCode(err: DatabaseError, code: ErrorCode): void {
  if (err.code !== code) throw new Error(`expected ${code}, got ${err.code}: ${err.message}`, { cause: err })
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Polls `check` until it returns true or `timeoutMs` passes. */
export async function eventually(check: () => Promise<boolean> | boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await sleep(25)
  }
}

/** Records process-level failures (uncaught exceptions, unhandled rejections) during a test. */
export function watchProcess(): { readonly failures: unknown[]; stop(): void } {
  const failures: unknown[] = []
  const onError = (err: unknown): void => {
    failures.push(err)
  }
  process.on('uncaughtException', onError)
  process.on('unhandledRejection', onError)
  return {
    failures,
    stop() {
      process.off('uncaughtException', onError)
      process.off('unhandledRejection', onError)
    },
  }
}

/** How a promise settled ({@link within}). */
export type Outcome<T> = { value: T } | { error: unknown } | 'pending'

/** How `promise` settled, or 'pending' if it did not within `ms`. */
export async function within<T>(promise: Promise<T>, ms: number): Promise<Outcome<T>> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<'pending'>((resolve) => {
    timer = setTimeout(() => resolve('pending'), ms)
  })
  try {
    return await Promise.race([
      promise.then(
        (value) => ({ value }),
        (error: unknown) => ({ error }),
      ),
      late,
    ])
  } finally {
    clearTimeout(timer)
  }
}

/** pg.Client fields the tests read that @types/pg does not declare. */
export interface PgClientInternals {
  readonly processID: number
  readonly _activeQuery: object | null
}

/**
 * Resolves when a pg-cursor on `client` gets its CommandComplete, after the socket's writes were
 * corked there: the Close and Sync pg-cursor sends then stay on the client, so no ReadyForQuery comes.
 */
export function corkAtCursorCommandComplete(client: Client): Promise<void> {
  const connection = client.connection as unknown as NodeJS.EventEmitter & { stream: { cork(): void } }
  return new Promise((resolve) => {
    const onComplete = (): void => {
      if ((client as unknown as PgClientInternals)._activeQuery?.constructor.name !== 'Cursor') return
      connection.removeListener('commandComplete', onComplete)
      connection.stream.cork()
      resolve()
    }
    connection.prependListener('commandComplete', onComplete)
  })
}
