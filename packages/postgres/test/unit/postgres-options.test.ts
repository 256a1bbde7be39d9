import { once } from 'node:events'
import { createServer } from 'node:net'
import { DatabaseConfig, DatabaseError, DatabasePool } from '@dbpool/core'
import {
  PostgresConnectionManager,
  createPostgresPool,
  DEFAULT_PREPARE_MODE,
  createTypeParsers,
  resolveManagerOptions,
  sendCancelRequest,
} from '@dbpool/postgres'

function configError(fn: () => unknown): DatabaseError {
  try {
    fn()
  } catch (err) {
    if (DatabaseError.is(err, 'CONFIGURATION')) return err
    throw err
  }
  throw new Error('expected a CONFIGURATION error')
}

describe('manager options', () => {
  it('has defaults', () => {
    expect(resolveManagerOptions(undefined)).toEqual({
      sessionInit: [],
      connectTimeoutMs: 10_000,
      keepAliveInitialDelayMs: 10_000,
      cancelTimeoutMs: 5_000,
      int8: 'bigint',
      timestamptz: 'date',
      pipelineDepth: 8,
      sessionReset: 'none',
      prepare: DEFAULT_PREPARE_MODE,
      statementCacheSize: 100,
      pgbouncer: false,
    })
    expect(resolveManagerOptions({ sessionReset: 'clean' }).sessionReset).toBe('clean')
    expect(resolveManagerOptions({}, { connectTimeoutMs: 2_500 }).connectTimeoutMs).toBe(2_500)
    expect(resolveManagerOptions({ sessionInit: 'SET a = 1' }).sessionInit).toEqual(['SET a = 1'])
  })

  it('refuses a NUL character in sessionInit (a plain SET goes as a startup parameter: the rest would be further settings), its text not shown', () => {
    for (const sessionInit of ["SET application_name = 'app\u0000search_path\u0000evil'", ['SET a = 1', "SET b = 'x\u0000tok3n'"]]) {
      const err = configError(() => resolveManagerOptions({ sessionInit }))
      expect(err.message).toMatch(/postgres\.sessionInit(\[1\])? "\[hidden\]": contains a NUL character/)
      expect(err.message).not.toMatch(/evil|tok3n/)
    }
  })

  it.each([
    [{ sessionInit: '' }, 'postgres.sessionInit'],
    [{ sessionInit: ['SET a = 1', 42] }, 'postgres.sessionInit[1]'],
    [{ sessionInit: { sql: 'x' } }, 'postgres.sessionInit'],
    [{ connectTimeoutMs: 0 }, 'postgres.connectTimeoutMs'],
    [{ connectTimeoutMs: 1.5 }, 'postgres.connectTimeoutMs'],
    [{ keepAliveInitialDelayMs: -1 }, 'postgres.keepAliveInitialDelayMs'],
    [{ cancelTimeoutMs: 'soon' }, 'postgres.cancelTimeoutMs'],
    [{ int8: 'float' }, 'postgres.int8'],
    [{ sessionReset: 'discard' }, 'postgres.sessionReset'],
    [{ sesionInit: 'typo' }, 'postgres.sesionInit'],
    [{ prepare: 'first-use' }, 'postgres.prepare'],
    [{ prepare: 1 }, 'postgres.prepare'],
    [{ statementCacheSize: 0 }, 'postgres.statementCacheSize'],
    [{ statementCacheSize: 10_001 }, 'postgres.statementCacheSize'],
    [{ statementCacheSize: 2.5 }, 'postgres.statementCacheSize'],
  ])('rejects %j naming %s', (options, option) => {
    const err = configError(() => resolveManagerOptions(options as never))
    expect(err.detail?.option).toBe(option)
    expect(err.message).toContain(option)
  })

  it('prepare: true is the default mode, false turns it off, the modes are kept', () => {
    expect(DEFAULT_PREPARE_MODE).toBe('second-use')
    expect(resolveManagerOptions({ prepare: true }).prepare).toBe(DEFAULT_PREPARE_MODE)
    expect(resolveManagerOptions({ prepare: false }).prepare).toBe(false)
    expect(resolveManagerOptions({ prepare: 'always' }).prepare).toBe('always')
    expect(resolveManagerOptions({ prepare: 'second-use' }).prepare).toBe('second-use')
    expect(resolveManagerOptions({ statementCacheSize: 1 }).statementCacheSize).toBe(1)
  })

  it('pgbouncer=true turns prepare off, and refuses it when asked for', () => {
    expect(new PostgresConnectionManager('postgres://u@h/d?pgbouncer=true').options.prepare).toBe(false)
    expect(new PostgresConnectionManager('postgres://u@h/d?pgbouncer=true', { prepare: false }).options.prepare).toBe(false)
    expect(new PostgresConnectionManager({ host: 'h', pgbouncer: true }).options.prepare).toBe(false)
    expect(new PostgresConnectionManager('postgres://u@h/d?pgbouncer=false').options.prepare).toBe(DEFAULT_PREPARE_MODE)
    for (const prepare of [true, 'always', 'second-use'] as const) {
      const err = configError(() => new PostgresConnectionManager('postgres://u@h/d?pgbouncer=true', { prepare }))
      expect(err.detail?.option).toBe('postgres.prepare')
      expect(err.message).toContain('pgbouncer=true')
    }
  })

  it("a replica behind PgBouncer (?pgbouncer=true on its URL only) does not refuse the primary's prepare: replicas name nothing", () => {
    for (const prepare of [true, 'always', 'second-use'] as const) {
      // before: CONFIGURATION 'named prepared statements cannot be used with PgBouncer...' without naming the replica
      const manager = new PostgresConnectionManager('postgres://u@h/d', { prepare, replicas: ['postgres://u@r/d?pgbouncer=true'] })
      expect(manager.options.prepare).toBe(prepare === true ? DEFAULT_PREPARE_MODE : prepare)
    }
    // the primary behind PgBouncer still refuses it
    expect(
      configError(
        () => new PostgresConnectionManager('postgres://u@h/d?pgbouncer=true', { prepare: 'always', replicas: ['postgres://u@r/d'] }),
      ).detail?.option,
    ).toBe('postgres.prepare')
  })

  it('statementCacheSize with nothing named (prepare: false, pgbouncer=true): checked, accepted, without effect (one config for both environments)', () => {
    for (const manager of [
      new PostgresConnectionManager('postgres://u@h/d', { prepare: false, statementCacheSize: 5 }),
      new PostgresConnectionManager('postgres://u@h/d?pgbouncer=true', { statementCacheSize: 50 }),
    ]) {
      expect(manager.options.prepare).toBe(false)
      expect(manager.options.statementCacheSize).toBeGreaterThan(0)
    }
    // still checked: a typo'd value is refused there too
    expect(
      configError(() => new PostgresConnectionManager('postgres://u@h/d?pgbouncer=true', { statementCacheSize: 0 })).detail?.option,
    ).toBe('postgres.statementCacheSize')
  })

  it('createPostgresPool rejects unknown keys and accepts the metrics options', () => {
    expect(configError(() => createPostgresPool({ host: 'localhost' }, { min: 0 }, { nope: 1 } as never)).message).toContain(
      'postgres.nope',
    )
    const pool = createPostgresPool('postgres://app:secret@localhost:1/db', { min: 0 }, { metricsOptions: {} })
    expect(pool).toBeInstanceOf(DatabasePool)
    expect(pool.target).toBe('postgres://app@localhost:1/db')
    return pool.close()
  })
})

describe('PostgresConnectionManager', () => {
  const manager = new PostgresConnectionManager(new DatabaseConfig({ host: 'db', database: 'ledger', username: 'app', password: 'pw' }))

  it('describes itself without the password', () => {
    expect(manager.backend).toBe('postgres')
    expect(manager.dialect).toBe('postgres')
    expect(manager.lanes).toEqual({ readers: 0 })
    expect(manager.target).toBe('postgres://app@db:5432/ledger')
  })

  it.each([
    [{}, 'BEGIN'],
    [{ isolation: 'read committed' }, 'BEGIN ISOLATION LEVEL READ COMMITTED'],
    [{ isolation: 'repeatable read', readOnly: true }, 'BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY'],
    [{ isolation: 'serializable', readOnly: true, deferrable: true }, 'BEGIN ISOLATION LEVEL SERIALIZABLE READ ONLY DEFERRABLE'],
    [{ readOnly: false }, 'BEGIN'],
  ])('beginStatement(%j) is %s', (settings, text) => {
    expect(manager.beginStatement(settings as never)).toBe(text)
  })

  it('refuses DEFERRABLE outside serializable read only', () => {
    expect(configError(() => manager.beginStatement({ deferrable: true })).detail?.option).toBe('transaction.deferrable')
    expect(() => manager.beginStatement({ isolation: 'serializable', deferrable: true })).toThrow(DatabaseError)
  })

  it('fails to connect to a closed port with CONNECTION_FAILED, fast, naming the target', async () => {
    const probe = createServer()
    probe.listen(0, '127.0.0.1')
    await once(probe, 'listening')
    const port = (probe.address() as { port: number }).port
    await new Promise((r) => probe.close(r))
    const m = new PostgresConnectionManager({ host: '127.0.0.1', port, password: 'pw-not-shown', sslMode: 'disable' })
    const err = (await m.connect('write', { onLost: () => undefined }).catch((e: unknown) => e)) as DatabaseError
    expect(err.code).toBe('CONNECTION_FAILED')
    expect(err.retryable).toBe(true)
    expect(err.message).toContain(`connecting to postgres://postgres@127.0.0.1:${port}/postgres failed`)
    expect(err.message).not.toContain('pw-not-shown')
  })

  it('times out a connect to a server that never answers with CONNECTION_FAILED after connectTimeoutMs', async () => {
    const silent = createServer(() => undefined)
    silent.listen(0, '127.0.0.1')
    await once(silent, 'listening')
    const port = (silent.address() as { port: number }).port
    try {
      const m = new PostgresConnectionManager({ host: '127.0.0.1', port, sslMode: 'disable' }, { connectTimeoutMs: 200 })
      const started = performance.now()
      const err = (await m.connect('write', { onLost: () => undefined }).catch((e: unknown) => e)) as DatabaseError
      expect(err.code).toBe('CONNECTION_FAILED')
      expect(err.message).toContain('timed out after 200 ms')
      expect(performance.now() - started).toBeLessThan(1_000)
    } finally {
      silent.close()
    }
  })
})

describe('type parsers', () => {
  const text = (parsers: ReturnType<typeof createTypeParsers>, oid: number) =>
    parsers.getTypeParser(oid as never, 'text') as (v: string) => unknown

  it('int8 by mode, and its arrays', () => {
    expect(text(createTypeParsers('bigint'), 20)('9007199254740993')).toBe(9007199254740993n)
    expect(text(createTypeParsers('bigint'), 1016)('{1,NULL,-3}')).toEqual([1n, null, -3n])
    expect(text(createTypeParsers('string'), 20)('42')).toBe('42')
    expect(text(createTypeParsers('number'), 20)('42')).toBe(42)
    const asNumber = text(createTypeParsers('number'), 20)
    expect(asNumber('9007199254740991')).toBe(9007199254740991)
    expect(asNumber('-9007199254740991')).toBe(-9007199254740991)
    expect(asNumber('9007199254740992')).toBe(9007199254740992n) // beyond ±(2^53−1): exact bigint, never rounded
    expect(asNumber('-9223372036854775808')).toBe(-9223372036854775808n)
    expect(text(createTypeParsers('number'), 1016)('{1,NULL,9007199254740993}')).toEqual([1, null, 9007199254740993n])
  })

  it("date and timestamp stay text; timestamptz, numeric and json keep pg's parsers", () => {
    const p = createTypeParsers('bigint')
    expect(text(p, 1082)('2024-03-01')).toBe('2024-03-01')
    expect(text(p, 1114)('2024-03-01 10:00:00')).toBe('2024-03-01 10:00:00')
    expect(text(p, 1115)('{"2024-03-01 10:00:00",NULL}')).toEqual(['2024-03-01 10:00:00', null])
    expect(text(p, 1184)('2024-03-01 10:00:00+00')).toEqual(new Date('2024-03-01T10:00:00Z'))
    expect(text(p, 1700)('1.10')).toBe('1.10')
    expect(text(p, 3802)('{"a":1}')).toEqual({ a: 1 })
  })
})

describe('sendCancelRequest', () => {
  it('sends the 16-byte CancelRequest on its own socket and resolves when the server closes it', async () => {
    const received: Buffer[] = []
    const server = createServer((socket) => {
      socket.on('data', (chunk) => received.push(chunk))
      socket.on('end', () => socket.end())
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const port = (server.address() as { port: number }).port
    try {
      await sendCancelRequest({ host: '127.0.0.1', port, processId: 4242, secretKey: -123456 }, 1_000)
      const packet = Buffer.concat(received)
      expect(packet.length).toBe(16)
      expect(packet.readInt32BE(0)).toBe(16)
      expect(packet.readInt32BE(4)).toBe(80877102)
      expect(packet.readInt32BE(8)).toBe(4242)
      expect(packet.readInt32BE(12)).toBe(-123456)
    } finally {
      server.close()
    }
  })

  it('rejects after its timeout when nobody answers', async () => {
    const server = createServer(() => undefined)
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    const port = (server.address() as { port: number }).port
    try {
      await expect(sendCancelRequest({ host: '127.0.0.1', port, processId: 1, secretKey: 1 }, 100)).rejects.toThrow('within 100 ms')
    } finally {
      server.close()
    }
  })
})
