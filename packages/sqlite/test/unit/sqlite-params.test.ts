import { DatabaseError, sql } from '@dbpool/core'
import { DEFAULT_MAX_PARAMETERS, sqliteParameters } from '@dbpool/sqlite'

const MAX = DEFAULT_MAX_PARAMETERS

function refusal(params: unknown[], max = MAX): DatabaseError {
  try {
    sqliteParameters(params, max)
  } catch (err) {
    if (DatabaseError.is(err)) return err
    throw err
  }
  throw new Error('expected INVALID_PARAMETER')
}

describe('sqliteParameters', () => {
  it('refuses a hole in the params array (a stray comma: it was bound as NULL), naming its position; undefined itself stays NULL', () => {
    // eslint-disable-next-line no-sparse-arrays
    const sparse = [1, , 'x']
    expect(() => sqliteParameters(sparse, DEFAULT_MAX_PARAMETERS)).toThrow(
      expect.objectContaining({
        code: 'INVALID_PARAMETER',
        message: expect.stringContaining('parameter 2'),
        detail: { position: 2, type: 'hole' },
      }),
    )
    expect(() => sqliteParameters(new Array(2), DEFAULT_MAX_PARAMETERS)).toThrow(
      expect.objectContaining({ detail: { position: 1, type: 'hole' } }),
    )
  })

  it('hands back the same array when nothing needs converting', () => {
    const params = [2.5, 'text', null, 9n, -(2n ** 63n), 2n ** 63n - 1n, Buffer.from('ab'), '😀', 1e300]
    expect(sqliteParameters(params, MAX)).toBe(params)
    const empty: unknown[] = []
    expect(sqliteParameters(empty, MAX)).toBe(empty)
  })

  it('converts booleans, undefined, Dates, Uint8Arrays, plain objects and sql.json values, one value each', () => {
    const when = new Date(Date.UTC(2024, 1, 29, 12, 30, 0, 5))
    const u8 = new Uint8Array([1, 2, 3]).subarray(1)
    const params = [
      true,
      false,
      undefined,
      when,
      u8,
      { a: 1, big: 2n ** 64n },
      Object.assign(Object.create(null), { n: 1 }),
      sql.json([1, 'x']),
    ]
    const out = sqliteParameters(params, MAX)
    expect(out).not.toBe(params)
    expect(out).toEqual([
      // INTEGER 1 / 0: a JS number would be bound as a double (REAL, '1.0' in a TEXT column)
      1n,
      0n,
      null,
      '2024-02-29T12:30:00.005Z',
      Buffer.from([2, 3]),
      '{"a":1,"big":18446744073709551616}',
      '{"n":1}',
      '[1,"x"]',
    ])
    expect(Buffer.isBuffer(out[4])).toBe(true)
    // the caller's array is untouched
    expect(params[0]).toBe(true)
  })

  it.each([
    [['a', ['red']], 2, 'Array', /SQLite has no arrays: use sql\.json\(v\) for JSON or sql\.join\(v\) for a list of parameters/],
    [[NaN], 1, 'number NaN', /not a finite number/],
    [[1, Infinity], 2, 'number Infinity', /not a finite number/],
    [[-Infinity], 1, 'number -Infinity', /not a finite number/],
    [[2n ** 63n], 1, 'bigint', /signed 64-bit/],
    [[-(2n ** 63n) - 1n], 1, 'bigint', /signed 64-bit/],
    [['a\u0000b'], 1, 'string', /NUL/],
    [['x', 'lone \uD800'], 2, 'string', /surrogate/],
    [[new Date(NaN)], 1, 'Date (invalid)', /invalid Date/],
    [[new Map()], 1, 'Map', /no SQLite representation/],
    [[new Set([1])], 1, 'Set', /no SQLite representation/],
    [[new (class Money {})()], 1, 'Money', /no SQLite representation/],
    [[new Float32Array(2)], 1, 'Float32Array', /no SQLite representation/],
    [[() => 1], 1, 'function', /no SQLite representation/],
    [[Symbol('s')], 1, 'symbol', /no SQLite representation/],
    [[/re/], 1, 'RegExp', /no SQLite representation/],
    [[{ n: NaN }], 1, 'object', /NaN/],
    [[sql.json([undefined])], 1, 'Array', /undefined/],
  ])('refuses %p: INVALID_PARAMETER naming position %i and type %s', (params, position, type, reason) => {
    const err = refusal(params)
    expect(err.code).toBe('INVALID_PARAMETER')
    expect(err.retryable).toBe(false)
    expect(err.backend).toBe('sqlite')
    expect(err.detail).toMatchObject({ position, type })
    expect(err.message).toContain(`parameter ${position} (${type})`)
    expect(err.message).toMatch(reason)
  })

  it('refuses more values than the limit, naming the count and the limit', () => {
    const err = refusal([1, 2, 3, 4], 3)
    expect(err.code).toBe('INVALID_PARAMETER')
    expect(err.detail).toEqual({ count: 4, max: 3 })
    expect(err.message).toMatch(/4 parameters.*at most 3/)
    expect(sqliteParameters([1, 2, 3], 3)).toEqual([1n, 2n, 3n])
  })

  it('binds an integral number within signed 64 bits as an INTEGER (a bigint, its exact value), -0 as 0; fractions and larger doubles stay doubles', () => {
    const max = Number.MAX_SAFE_INTEGER
    expect(sqliteParameters([1, -0, max, -max, 2.5, 2 ** 53, 2 ** 60, -(2 ** 63), 2 ** 63, 1e21, 1e300], MAX)).toEqual([
      1n,
      0n,
      BigInt(max),
      BigInt(-max),
      2.5,
      2n ** 53n,
      2n ** 60n,
      -(2n ** 63n),
      2 ** 63,
      1e21,
      1e300,
    ])
  })

  it('never leaves a plain object for better-sqlite3 to read as named parameters', () => {
    const out = sqliteParameters([{ a: 1 }, [1].length, { b: { c: [1, 2] } }], MAX)
    for (const value of out) expect(typeof value === 'object' && value !== null && !Buffer.isBuffer(value)).toBe(false)
  })
})
