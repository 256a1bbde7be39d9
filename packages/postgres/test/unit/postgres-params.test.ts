import { DatabaseError, sql } from '@dbpool/core'
import { MAX_PARAMETERS, pgQuery, postgresParameters } from '@dbpool/postgres'
import { withTimeZone } from '../time-zone'

/** The INVALID_PARAMETER error `fn` throws (fails the test otherwise). */
function refusal(fn: () => unknown): DatabaseError {
  try {
    fn()
  } catch (err) {
    if (DatabaseError.is(err)) return err
    throw err
  }
  throw new Error('expected a refusal')
}

class Money {
  constructor(readonly cents: number) {}
}

describe('postgresParameters', () => {
  it('refuses a hole in the params array (a stray comma: it was bound as NULL), naming its position; undefined itself stays NULL', () => {
    // eslint-disable-next-line no-sparse-arrays
    const sparse = [1, , 'x']
    expect(() => postgresParameters(sparse)).toThrow(
      expect.objectContaining({
        code: 'INVALID_PARAMETER',
        message: expect.stringContaining('parameter 2'),
        detail: { position: 2, type: 'hole' },
      }),
    )
    expect(() => postgresParameters(new Array(2))).toThrow(expect.objectContaining({ detail: { position: 1, type: 'hole' } }))
    // eslint-disable-next-line no-sparse-arrays
    expect(() => postgresParameters([[1, , 3]])).toThrow(
      expect.objectContaining({ code: 'INVALID_PARAMETER', detail: { position: 1, type: 'hole', path: '[1]' } }),
    )
    expect(postgresParameters([[1, undefined, null]])).toEqual(['{1,NULL,NULL}'])
  })

  it('returns the same array, unconverted, when every value is sent as is (numbers, strings, booleans, null, bigint, bytes)', () => {
    const params = [1, -0.5, 'text', '', true, null, undefined, 9007199254740993n, Buffer.from([1]), new Uint8Array([2])]
    expect(postgresParameters(params)).toBe(params)
    expect(postgresParameters([])).toEqual([])
  })

  it('sends an integral number beyond ±(2^53 - 1) as the exact integer the double holds, in arrays too (String(n) rounded it)', () => {
    const params = [2 ** 53, -(2 ** 60), 1e21, 2 ** 70, Number.MAX_SAFE_INTEGER, 0.1, -0]
    expect(postgresParameters(params)).toEqual([
      '9007199254740992',
      '-1152921504606846976',
      '1000000000000000000000',
      '1180591620717411303424',
      Number.MAX_SAFE_INTEGER,
      0.1,
      -0,
    ])
    expect(postgresParameters([[2 ** 60, 1.5, -(2 ** 63)]])).toEqual(['{1152921504606846976,1.5,-9223372036854775808}'])
  })

  it('sends a Date as ISO-8601 UTC text whatever the process time zone', async () => {
    const instant = new Date('2024-03-01T00:30:00Z')
    for (const [tz, offset] of [
      ['UTC', 0],
      ['America/New_York', 300],
      ['Asia/Kolkata', -330],
    ] as const) {
      await withTimeZone(tz, () => {
        expect(instant.getTimezoneOffset()).toBe(offset) // the zone is in effect
        expect(postgresParameters([instant])).toEqual(['2024-03-01T00:30:00.000Z'])
        expect(postgresParameters([[instant, null]])).toEqual(['{"2024-03-01T00:30:00.000Z",NULL}'])
      })
    }
  })

  it('writes years outside 1..9999 the way Postgres reads them', () => {
    expect(postgresParameters([new Date('0044-03-15T12:00:00Z')])).toEqual(['0044-03-15T12:00:00.000Z'])
    const yearZero = new Date(Date.UTC(2000, 0, 1))
    yearZero.setUTCFullYear(0) // 1 BC
    const year44Bc = new Date(Date.UTC(2000, 2, 15, 12))
    year44Bc.setUTCFullYear(-43)
    const far = new Date(Date.UTC(2000, 0, 1))
    far.setUTCFullYear(12345)
    expect(postgresParameters([yearZero, year44Bc, far])).toEqual([
      '0001-01-01T00:00:00.000Z BC',
      '0044-03-15T12:00:00.000Z BC',
      '12345-01-01T00:00:00.000Z',
    ])
  })

  it('sends plain objects and sql.json values as JSON text, a bigint inside as a JSON integer of its digits', () => {
    const nullProto = Object.assign(Object.create(null) as object, { a: 1 })
    expect(postgresParameters([{ a: 1, big: 9007199254740993n }, nullProto, sql.json([1, 'two', { n: 2n }]), sql.json('text')])).toEqual([
      '{"a":1,"big":9007199254740993}',
      '{"a":1}',
      '[1,"two",{"n":2}]',
      '"text"',
    ])
  })

  it('sends arrays as Postgres array literals, elements converted by the same rules', () => {
    expect(postgresParameters([[1, 2, 3]])).toEqual(['{1,2,3}'])
    expect(postgresParameters([['a', 'b"c', 'back\\slash', 'NULL', 'x,y', '', null, undefined]])).toEqual([
      '{"a","b\\"c","back\\\\slash","NULL","x,y","",NULL,NULL}',
    ])
    expect(
      postgresParameters([
        [
          [1, 2],
          [3, 4],
        ],
        [true, false],
        [9007199254740993n],
        [],
      ]),
    ).toEqual(['{{1,2},{3,4}}', '{true,false}', '{9007199254740993}', '{}'])
    expect(postgresParameters([[Buffer.from([1, 255]), new Uint8Array([16])]])).toEqual(['{"\\\\x01ff","\\\\x10"}'])
    expect(postgresParameters([[{ a: 'q"' }, sql.json([1, 2n])]])).toEqual(['{"{\\"a\\":\\"q\\\\\\"\\"}","[1,2]"}'])
  })

  it.each<[string, unknown, string]>([
    ['NaN', Number.NaN, 'number NaN'],
    ['Infinity', Number.POSITIVE_INFINITY, 'number Infinity'],
    ['-Infinity', Number.NEGATIVE_INFINITY, 'number -Infinity'],
    ['an invalid Date', new Date('nope'), 'Date (invalid)'],
    ['a string with U+0000', 'a\u0000b', 'string'],
    ['a string with a lone surrogate', 'a\ud800b', 'string'],
    ['a Map', new Map([[1, 2]]), 'Map'],
    ['a Set', new Set([1]), 'Set'],
    ['a class instance', new Money(100), 'Money'],
    ['a RegExp', /x/, 'RegExp'],
    ['a boxed string', new String('x'), 'String'],
    ['an Int32Array', new Int32Array([1]), 'Int32Array'],
    ['a function', () => 1, 'function'],
    ['a symbol', Symbol('s'), 'symbol'],
  ])('refuses %s with INVALID_PARAMETER naming the 1-based position and the type', (_what, value, type) => {
    const err = refusal(() => postgresParameters([1, 'ok', value]))
    expect(err.code).toBe('INVALID_PARAMETER')
    expect(err.retryable).toBe(false)
    expect(err.message).toMatch(new RegExp(`^parameter 3 \\(${type.replace(/[()]/g, '\\$&')}\\) `))
    expect(err.detail).toEqual({ position: 3, type })
  })

  it.each<[string, unknown, RegExp]>([
    ['NaN', Number.NaN, /holds number NaN at \[1\]/],
    ['a Map', new Map(), /holds Map at \[1\]/],
    ['a nested invalid Date', [new Date('nope')], /holds an invalid Date at \[1\]\[0\]/],
    ['a string with U+0000', 'a\u0000', /holds a string at \[1\] that contains a NUL character/],
    ['an object with NaN inside', { n: Number.NaN }, /NaN/],
  ])('refuses an array holding %s, naming the parameter and the element', (_what, element, message) => {
    const err = refusal(() => postgresParameters(['x', [1, element]]))
    expect(err.code).toBe('INVALID_PARAMETER')
    expect(err.message).toMatch(/^parameter 2 /)
    expect(err.message).toMatch(message)
  })

  it('refuses arrays nested deeper than 6 dimensions, and an array that holds itself', () => {
    expect(postgresParameters([[[[[[[1]]]]]]])).toEqual(['{{{{{{1}}}}}}'])
    expect(refusal(() => postgresParameters([[[[[[[[1]]]]]]]])).message).toMatch(/deeper than Postgres's 6 dimensions/)
    const cycle: unknown[] = [1]
    cycle.push(cycle)
    expect(refusal(() => postgresParameters([cycle])).code).toBe('INVALID_PARAMETER')
  })

  it(`refuses more than ${MAX_PARAMETERS} parameters (the protocol's Int16 count)`, () => {
    expect(postgresParameters(new Array<number>(MAX_PARAMETERS).fill(1))).toHaveLength(MAX_PARAMETERS)
    const err = refusal(() => postgresParameters(new Array<number>(MAX_PARAMETERS + 1).fill(1)))
    expect(err.code).toBe('INVALID_PARAMETER')
    expect(err.message).toContain('65536 parameters')
    expect(err.detail).toEqual({ count: 65_536, max: 65_535 })
  })
})

describe('pgQuery', () => {
  it('refuses statement text holding U+0000 with SYNTAX_ERROR naming the position', () => {
    const err = refusal(() => pgQuery({ text: 'select 1\u0000; drop table t', params: [] }))
    expect(err.code).toBe('SYNTAX_ERROR')
    expect(err.detail).toEqual({ position: 9 })
  })

  it('hands pg the text and the converted values', () => {
    expect(pgQuery({ text: 'select $1', params: [new Date(0)] })).toEqual({ text: 'select $1', values: ['1970-01-01T00:00:00.000Z'] })
  })
})
