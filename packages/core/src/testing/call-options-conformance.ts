import assert from 'node:assert/strict'
import { DatabaseError } from '../errors/database-error'
import { HealthChecker } from '../health/health-checker'
import { PoolManager } from '../manager/pool-manager'
import type { DatabasePool } from '../pool/database-pool'
import type { PoolConnection } from '../pool/pool-connection'

/** One call with a bad option: `option` is what the CONFIGURATION message must name (`invalid <option> ...`). */
interface BadCall {
  readonly what: string
  readonly option: string
  run(pool: DatabasePool<unknown>): Promise<unknown>
}

/** What every bad call tries to run: an insert into `conf_call_options`, which must stay empty. */
const INSERT = 'insert into conf_call_options (id) values (1)'

async function drain(rows: AsyncIterable<unknown>): Promise<void> {
  for await (const row of rows) void row
}

const notASignal = 'nope' as unknown as AbortSignal
const bad = <T>(value: unknown): T => value as T

/** The bad per-call inputs, the same for every backend. */
const BAD_CALLS: readonly BadCall[] = [
  // pool.query(q, params, options)
  ...(
    [
      ['timeoutMs -5', 'query.timeoutMs', { timeoutMs: -5 }],
      ['timeoutMs 0', 'query.timeoutMs', { timeoutMs: 0 }],
      ['timeoutMs "x"', 'query.timeoutMs', { timeoutMs: 'x' }],
      ['timeoutMs 1.5', 'query.timeoutMs', { timeoutMs: 1.5 }],
      ['timeoutMs NaN', 'query.timeoutMs', { timeoutMs: Number.NaN }],
      ['timeoutMs 2^31', 'query.timeoutMs', { timeoutMs: 2 ** 31 }],
      ['signal "nope"', 'query.signal', { signal: 'nope' }],
      ['signal {}', 'query.signal', { signal: {} }],
      ['an unknown key', 'query.bogus', { bogus: 1 }],
      ['an unknown key next to a valid one', 'query.timeout', { timeoutMs: 1_000, timeout: 5 }],
      ['lane "primary"', 'query.lane', { lane: 'primary' }],
      ['null options', 'query options', null],
      ['array options', 'query options', []],
      ['a Map of options', 'query options', new Map([['timeoutMs', 5]])],
      ['an inherited unknown key', 'query.bogus', Object.create({ bogus: 1 }) as object],
    ] as const
  ).map(([what, option, options]): BadCall => ({
    what: `pool.query() with ${what}`,
    option,
    run: (pool) => pool.query(INSERT, [], bad(options)),
  })),
  // conn.query() and tx.query(): the same checks, and no lane (the connection is the handle's)
  ...(
    [
      ['timeoutMs -5', 'query.timeoutMs', { timeoutMs: -5 }],
      ['signal "nope"', 'query.signal', { signal: 'nope' }],
      ['an unknown key', 'query.bogus', { bogus: 1 }],
      ['a lane', 'query.lane', { lane: 'write' }],
    ] as const
  ).flatMap(([what, option, options]): BadCall[] => [
    {
      what: `conn.query() with ${what}`,
      option,
      run: (pool) => pool.withConnection((conn) => conn.query(INSERT, [], bad(options))),
    },
    {
      what: `tx.query() with ${what}`,
      option,
      run: (pool) => pool.transaction((tx) => tx.query(INSERT, [], bad(options))),
    },
    {
      what: `conn.transaction()'s tx.query() with ${what}`,
      option,
      run: (pool) => pool.withConnection((conn) => conn.transaction((tx) => tx.query(INSERT, [], bad(options)))),
    },
  ]),
  // a query that is neither SQL text nor an sql`` fragment, on every statement path
  ...([undefined, 42, {}] as const).flatMap((text): BadCall[] => [
    { what: `pool.query(${String(JSON.stringify(text))})`, option: 'query', run: (pool) => pool.query(bad(text)) },
    {
      what: `conn.query(${String(JSON.stringify(text))})`,
      option: 'query',
      run: (pool) => pool.withConnection((conn) => conn.query(bad(text))),
    },
    { what: `tx.query(${String(JSON.stringify(text))})`, option: 'query', run: (pool) => pool.transaction((tx) => tx.query(bad(text))) },
    { what: `pool.stream(${String(JSON.stringify(text))})`, option: 'query', run: (pool) => drain(pool.stream(bad(text))) },
    {
      what: `conn.stream(${String(JSON.stringify(text))})`,
      option: 'query',
      run: (pool) => pool.withConnection((conn) => drain(conn.stream(bad(text)))),
    },
  ]),
  // streams: refused when the iteration starts, before a connection is taken
  { what: 'pool.stream() with batchSize 0', option: 'stream.batchSize', run: (pool) => drain(pool.stream(INSERT, [], { batchSize: 0 })) },
  { what: 'pool.stream() with timeoutMs -5', option: 'stream.timeoutMs', run: (pool) => drain(pool.stream(INSERT, [], { timeoutMs: -5 })) },
  {
    what: 'pool.stream() with signal "nope"',
    option: 'stream.signal',
    run: (pool) => drain(pool.stream(INSERT, [], { signal: notASignal })),
  },
  { what: 'pool.stream() with an unknown key', option: 'stream.bogus', run: (pool) => drain(pool.stream(INSERT, [], bad({ bogus: 1 }))) },
  {
    what: 'conn.stream() with a lane',
    option: 'stream.lane',
    run: (pool) => pool.withConnection((conn) => drain(conn.stream(INSERT, [], bad({ lane: 'read' })))),
  },
  {
    what: 'tx.stream() with timeoutMs "x"',
    option: 'stream.timeoutMs',
    run: (pool) => pool.transaction((tx) => drain(tx.stream(INSERT, [], bad({ timeoutMs: 'x' })))),
  },
  // withConnection(fn, options)
  {
    what: 'withConnection() with lane "x"',
    option: 'withConnection.lane',
    run: (pool) => pool.withConnection((conn) => conn.query(INSERT), bad({ lane: 'x' })),
  },
  {
    what: 'withConnection() with an unknown key',
    option: 'withConnection.timeoutMs',
    run: (pool) => pool.withConnection((conn) => conn.query(INSERT), bad({ timeoutMs: 5 })),
  },
  {
    what: 'withConnection() with null options',
    option: 'withConnection options',
    run: (pool) => pool.withConnection((conn) => conn.query(INSERT), bad(null)),
  },
  { what: 'withConnection() without a callback', option: 'withConnection callback', run: (pool) => pool.withConnection(bad(undefined)) },
  // transaction(fn, options) and conn.transaction(fn, settings)
  ...(
    [
      ['isolation "snapshot"', 'transaction.isolation', { isolation: 'snapshot' }],
      ['readOnly "yes"', 'transaction.readOnly', { readOnly: 'yes' }],
      ['deferrable without serializable read only', 'transaction.deferrable', { deferrable: true }],
      ['a timeoutMs (not a transaction option)', 'transaction.timeoutMs', { timeoutMs: 1_000 }],
      ['a lane (not a transaction option)', 'transaction.lane', { lane: 'read' }],
    ] as const
  ).flatMap(([what, option, options]): BadCall[] => [
    {
      what: `transaction() with ${what}`,
      option,
      run: (pool) => pool.transaction((tx) => tx.query(INSERT), bad(options)),
    },
    {
      what: `conn.transaction() with ${what}`,
      option,
      run: (pool) => pool.withConnection((conn: PoolConnection) => conn.transaction((tx) => tx.query(INSERT), bad(options))),
    },
  ]),
  {
    what: 'transaction() with retry -1',
    option: 'transaction.retry',
    run: (pool) => pool.transaction((tx) => tx.query(INSERT), { retry: -1 }),
  },
  {
    what: 'transaction() with an unknown retry key',
    option: 'transaction.retry.attempts',
    run: (pool) => pool.transaction((tx) => tx.query(INSERT), { retry: bad({ attempts: 3 }) }),
  },
  {
    what: 'transaction() with retry baseDelayMs above maxDelayMs',
    option: 'transaction.retry.baseDelayMs',
    run: (pool) => pool.transaction((tx) => tx.query(INSERT), { retry: { baseDelayMs: 100, maxDelayMs: 1 } }),
  },
  {
    what: 'conn.transaction() with retry',
    option: 'transaction.retry',
    run: (pool) => pool.withConnection((conn) => conn.transaction((tx) => tx.query(INSERT), bad({ retry: true }))),
  },
  {
    what: 'tx.transaction() (a savepoint) without a callback',
    option: 'transaction callback',
    run: (pool) => pool.transaction((tx) => tx.transaction(bad(undefined))),
  },
  { what: 'transaction() without a callback', option: 'transaction callback', run: (pool) => pool.transaction(bad('not a function')) },
  // ping(), backendChecks(), HealthChecker
  { what: 'ping(-1)', option: 'ping.timeoutMs', run: (pool) => pool.ping(-1) },
  { what: 'ping("x")', option: 'ping.timeoutMs', run: (pool) => pool.ping(bad('x')) },
  { what: 'backendChecks() with deep "yes"', option: 'backendChecks.deep', run: (pool) => pool.backendChecks(bad({ deep: 'yes' })) },
  { what: 'backendChecks() with an unknown key', option: 'backendChecks.bogus', run: (pool) => pool.backendChecks(bad({ bogus: 1 })) },
  { what: 'a HealthChecker with timeoutMs -1', option: 'health.timeoutMs', run: async () => new HealthChecker({ timeoutMs: -1 }) },
  // on(event, listener): an event that never comes, a listener that is not a function
  { what: "on('bogus', fn)", option: 'on.event', run: async (pool) => pool.on(bad<'error'>('bogus'), () => undefined) },
  { what: "on('error', 5)", option: 'on.listener', run: async (pool) => pool.on('error', bad(5)) },
  { what: "off('bogus', fn)", option: 'off.event', run: async (pool) => pool.off(bad<'error'>('bogus'), () => undefined) },
  {
    what: 'HealthChecker.validateConnections(pool, { bogus: 1 })',
    option: 'validateConnections argument',
    run: (pool) =>
      (new HealthChecker() as unknown as { validateConnections(...a: unknown[]): Promise<unknown> }).validateConnections(pool, {
        bogus: 1,
      }),
  },
  // stats(lane), metrics.snapshot(): an argument they do not take
  { what: 'stats({ x: 1 })', option: 'stats.lane', run: async (pool) => pool.stats(bad({ x: 1 })) },
  {
    what: 'metrics.snapshot({ bogus: 1 })',
    option: 'metrics.snapshot argument',
    run: async (pool) => (pool.metrics as unknown as { snapshot(...a: unknown[]): unknown }).snapshot({ bogus: 1 }),
  },
  // PoolManager.closeAll(options): checked even with no pool registered
  { what: 'PoolManager.closeAll() with timeoutMs -1', option: 'close.timeoutMs', run: () => new PoolManager().closeAll({ timeoutMs: -1 }) },
  { what: 'PoolManager.closeAll("x")', option: 'close options', run: () => new PoolManager().closeAll(bad('x')) },
  // close(options): refused, and the pool stays open
  { what: 'close() with timeoutMs -1', option: 'close.timeoutMs', run: (pool) => pool.close({ timeoutMs: -1 }) },
  { what: 'close() with timeoutMs "x"', option: 'close.timeoutMs', run: (pool) => pool.close(bad({ timeoutMs: 'x' })) },
  { what: 'close() with an unknown key', option: 'close.timeout', run: (pool) => pool.close(bad({ timeout: 5_000 })) },
  { what: 'close() with null options', option: 'close options', run: (pool) => pool.close(bad(null)) },
]

/**
 * @internal Runs every bad per-call input of {@link BAD_CALLS} on `pool`: each must reject (or throw)
 * CONFIGURATION whose message begins `invalid <call>.<option>`, before anything ran: the pool's table
 * `conf_call_options` stays empty, no connection stays in use, and the pool stays open (a bad
 * `close()` closes nothing). Creates and drops that table.
 */
export async function checkBadCallOptions(pool: DatabasePool<unknown>): Promise<void> {
  await pool.query('drop table if exists conf_call_options')
  await pool.query('create table conf_call_options (id integer)')
  const accepted: string[] = []
  for (const call of BAD_CALLS) {
    const outcome = await call.run(pool).then(
      () => undefined,
      (err: unknown) => err,
    )
    if (!DatabaseError.is(outcome) || outcome.code !== 'CONFIGURATION' || !outcome.message.startsWith(`invalid ${call.option} `))
      accepted.push(`${call.what}: ${outcome === undefined ? 'accepted' : String(outcome)}`)
  }
  assert.deepEqual(accepted, [], 'every bad option is refused with CONFIGURATION naming it')
  assert.equal(pool.isOpen, true, 'a refused close() closes nothing')
  const { rows } = await pool.query<{ n: unknown }>('select count(*) as n from conf_call_options')
  assert.equal(Number(rows[0]?.n), 0, 'no statement with a bad option ran')
  assert.equal(pool.stats().used, 0)
  await pool.query('drop table conf_call_options')
}
