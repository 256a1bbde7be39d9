import { DEFAULT_POOL_OPTIONS, DatabaseError, PoolConfig } from '@dbpool/core'

function configErrorOf(fn: () => unknown): DatabaseError {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(DatabaseError)
    expect((err as DatabaseError).code).toBe('CONFIGURATION')
    return err as DatabaseError
  }
  throw new Error('expected a CONFIGURATION error')
}

describe('PoolConfig', () => {
  it('applies the seed defaults', () => {
    const c = new PoolConfig()
    expect(c).toMatchObject({
      min: 1,
      max: 10,
      acquireTimeoutMs: 30_000,
      idleTimeoutMs: 600_000,
      maxLifetimeMs: 1_800_000,
      name: 'default',
    })
    expect(c.toJSON()).toEqual(DEFAULT_POOL_OPTIONS)
    expect(Object.isFrozen(c)).toBe(true)
  })

  it.each([
    [{ max: 0 }, /invalid pool\.max 0/],
    [{ max: 1.5 }, /invalid pool\.max 1\.5/],
    [{ min: -1 }, /invalid pool\.min -1/],
    [{ min: 5, max: 2 }, /invalid pool\.min 5: must not exceed pool\.max \(2\)/],
    [{ acquireTimeoutMs: -1 }, /pool\.acquireTimeoutMs -1/],
    [{ acquireTimeoutMs: 0 }, /pool\.acquireTimeoutMs 0/],
    // the range named is the one accepted: 0 is refused, so no refusal says "between 0 and ..."
    [{ acquireTimeoutMs: NaN }, /pool\.acquireTimeoutMs NaN: must be an integer between 1 and 2147483647$/],
    [{ acquireTimeoutMs: 0 }, /pool\.acquireTimeoutMs 0: must be an integer between 1 and 2147483647$/],
    [{ createTimeoutMs: 3e9 }, /pool\.createTimeoutMs 3000000000: must be an integer between 1 and 2147483647$/],
    [{ idleTimeoutMs: NaN }, /pool\.idleTimeoutMs NaN: must be an integer between 0 and 2147483647$/],
    [{ createTimeoutMs: 0 }, /pool\.createTimeoutMs 0/],
    [{ idleTimeoutMs: 10.5 }, /pool\.idleTimeoutMs 10\.5/],
    [{ maxLifetimeMs: '5' }, /pool\.maxLifetimeMs "5"/],
    [{ maxLifetimeJitter: 1 }, /pool\.maxLifetimeJitter 1/],
    [{ maxLifetimeJitter: -0.1 }, /pool\.maxLifetimeJitter -0\.1/],
    [{ validateAfterIdleMs: NaN }, /pool\.validateAfterIdleMs NaN/],
    [{ keepaliveIntervalMs: -5 }, /pool\.keepaliveIntervalMs -5/],
    [{ leakDetectionThresholdMs: null }, /pool\.leakDetectionThresholdMs null/],
    [{ maxWaitingClients: -1 }, /pool\.maxWaitingClients -1/],
    [{ name: '' }, /pool\.name ""/],
    [{ allowExitOnIdle: 'yes' }, /invalid pool\.allowExitOnIdle "yes": must be true or false/],
    [{ allowExitOnIdle: 1 }, /invalid pool\.allowExitOnIdle 1/],
    [{ slowQueryMs: -1 }, /invalid pool\.slowQueryMs -1/],
    [{ slowQueryMs: 2.5 }, /invalid pool\.slowQueryMs 2\.5/],
    [{ slowQueryMs: '100' }, /invalid pool\.slowQueryMs "100"/],
    [{ logParameters: 'yes' }, /invalid pool\.logParameters "yes": must be true or false/],
    [{ maxSize: 3 }, /invalid pool\.maxSize 3: unknown option/],
  ])('rejects %j naming the option and value', (options, message) => {
    expect(configErrorOf(() => new PoolConfig(options as never)).message).toMatch(message)
  })

  it('rejects a non-object', () => {
    expect(configErrorOf(() => new PoolConfig('x' as never)).message).toMatch(/invalid pool "x": must be an object/)
  })

  it('builds fluently and validates on build', () => {
    const c = PoolConfig.builder()
      .min(2)
      .max(4)
      .acquireTimeoutMs(1)
      .createTimeoutMs(2)
      .idleTimeoutMs(3)
      .maxLifetimeMs(4)
      .maxLifetimeJitter(0.2)
      .validateAfterIdleMs(5)
      .keepaliveIntervalMs(6)
      .leakDetectionThresholdMs(7)
      .maxWaitingClients(8)
      .allowExitOnIdle(true)
      .slowQueryMs(9)
      .logParameters(true)
      .rawQueryText(true)
      .name('b')
      .build()
    expect(c.toJSON()).toEqual({
      min: 2,
      max: 4,
      acquireTimeoutMs: 1,
      createTimeoutMs: 2,
      idleTimeoutMs: 3,
      maxLifetimeMs: 4,
      maxLifetimeJitter: 0.2,
      validateAfterIdleMs: 5,
      keepaliveIntervalMs: 6,
      leakDetectionThresholdMs: 7,
      maxWaitingClients: 8,
      allowExitOnIdle: true,
      slowQueryMs: 9,
      logParameters: true,
      rawQueryText: true,
      name: 'b',
    })
    expect(() => PoolConfig.builder().min(3).max(2).build()).toThrow(/pool\.min/)
  })

  it('reads the environment, naming a malformed variable', () => {
    const c = PoolConfig.fromEnv({
      DBPOOL_POOL_MAX: '20',
      DBPOOL_POOL_MIN: '2',
      DBPOOL_POOL_NAME: 'env',
      DBPOOL_POOL_MAX_LIFETIME_JITTER: '0.25',
      DBPOOL_POOL_IDLE_TIMEOUT_MS: '',
    })
    expect(c).toMatchObject({ max: 20, min: 2, name: 'env', maxLifetimeJitter: 0.25, idleTimeoutMs: 600_000 })
    expect(configErrorOf(() => PoolConfig.fromEnv({ DBPOOL_POOL_MAX: 'ten' })).message).toMatch(/DBPOOL_POOL_MAX "ten"/)
    expect(configErrorOf(() => PoolConfig.fromEnv({ DBPOOL_POOL_MAX_LIFETIME_JITTER: 'x' })).message).toMatch(/JITTER "x"/)
    expect(PoolConfig.fromEnv({ APP_MAX: '3' }, 'APP_', { min: 0 })).toMatchObject({ max: 3, min: 0 })
    // a misspelt variable under dbpool's own prefix was ignored: now named, whatever its value
    expect(configErrorOf(() => PoolConfig.fromEnv({ DBPOOL_POOL_MAXX: '50' }))).toMatchObject({ detail: { option: 'DBPOOL_POOL_MAXX' } })
    expect(configErrorOf(() => PoolConfig.fromEnv({ DBPOOL_POOL_max: '5' })).message).toContain('DBPOOL_POOL_max')
    // another prefix may share its namespace with other variables: only its known names are read
    expect(PoolConfig.fromEnv({ APP_MAX: '3', APP_MAXX: 'x' }, 'APP_')).toMatchObject({ max: 3 })
  })

  it('names the variable of a well-formed value out of range, not the option it sets', () => {
    for (const [env, variable, rule] of [
      [{ APP_MAX: '-3' }, 'APP_MAX', /between 1 and/],
      [{ APP_MAX: '0' }, 'APP_MAX', /between 1 and/],
      [{ APP_MIN: '50' }, 'APP_MIN', /must not exceed pool\.max/],
      [{ APP_ACQUIRE_TIMEOUT_MS: '-1' }, 'APP_ACQUIRE_TIMEOUT_MS', /between 1 and/],
    ] as const) {
      const err = configErrorOf(() => PoolConfig.fromEnv(env, 'APP_', {}))
      expect(err.message).toMatch(new RegExp(`^invalid ${variable} "`))
      expect(err.message).toMatch(rule)
      expect(err.detail).toMatchObject({ option: variable })
      expect(DatabaseError.is(err.cause, 'CONFIGURATION')).toBe(true)
    }
    // an option from base, not from a variable, keeps its own name
    expect(configErrorOf(() => PoolConfig.fromEnv({}, 'APP_', { max: 0 })).detail).toMatchObject({ option: 'pool.max' })
  })

  it('allowExitOnIdle defaults to false and reads true/false/1/0 from the environment', () => {
    expect(new PoolConfig().allowExitOnIdle).toBe(false)
    expect(PoolConfig.fromEnv({ DBPOOL_POOL_ALLOW_EXIT_ON_IDLE: 'true' }).allowExitOnIdle).toBe(true)
    expect(PoolConfig.fromEnv({ DBPOOL_POOL_ALLOW_EXIT_ON_IDLE: '1' }).allowExitOnIdle).toBe(true)
    expect(PoolConfig.fromEnv({ DBPOOL_POOL_ALLOW_EXIT_ON_IDLE: ' FALSE ' }).allowExitOnIdle).toBe(false)
    expect(PoolConfig.fromEnv({ DBPOOL_POOL_ALLOW_EXIT_ON_IDLE: '0' }).allowExitOnIdle).toBe(false)
    expect(configErrorOf(() => PoolConfig.fromEnv({ DBPOOL_POOL_ALLOW_EXIT_ON_IDLE: 'yes' })).message).toMatch(
      /DBPOOL_POOL_ALLOW_EXIT_ON_IDLE "yes": must be true, false, 1 or 0/,
    )
  })

  it('slowQueryMs is off (0) and logParameters false by default; both read from the environment', () => {
    expect(new PoolConfig()).toMatchObject({ slowQueryMs: 0, logParameters: false, rawQueryText: false })
    const c = PoolConfig.fromEnv({ DBPOOL_POOL_SLOW_QUERY_MS: '250', DBPOOL_POOL_LOG_PARAMETERS: 'true', DBPOOL_POOL_RAW_QUERY_TEXT: '1' })
    expect(c).toMatchObject({ slowQueryMs: 250, logParameters: true, rawQueryText: true })
    expect(configErrorOf(() => new PoolConfig({ rawQueryText: 'yes' as never })).message).toMatch(/invalid pool\.rawQueryText "yes"/)
    expect(configErrorOf(() => PoolConfig.fromEnv({ DBPOOL_POOL_SLOW_QUERY_MS: 'slow' })).message).toMatch(
      /DBPOOL_POOL_SLOW_QUERY_MS "slow"/,
    )
  })

  it('from() passes configs through and validates plain options', () => {
    const c = new PoolConfig({ max: 3 })
    expect(PoolConfig.from(c)).toBe(c)
    expect(PoolConfig.from({ max: 4 }).max).toBe(4)
    expect(PoolConfig.from(undefined).max).toBe(10)
  })

  it('with() validates the change; validate() returns the config', () => {
    const c = new PoolConfig({ max: 3 })
    expect(c.with({ max: 5 }).max).toBe(5)
    expect(() => c.with({ min: 9 })).toThrow(/pool\.min/)
    expect(c.validate()).toBe(c)
  })

  it('with(): an option given as undefined keeps its current value (never the default)', () => {
    const c = new PoolConfig({ max: 50, acquireTimeoutMs: 1000, name: 'ledger' })
    const unset = process.env.DBPOOL_TEST_SURELY_UNSET
    const d = c.with({ max: unset as never, name: unset, acquireTimeoutMs: unset as never })
    expect(d.toJSON()).toEqual(c.toJSON())
    expect(() => c.with(null as never)).toThrow(/pool/)
  })
})
