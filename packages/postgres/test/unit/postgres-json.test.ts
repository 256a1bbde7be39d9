import { ReadGuard, UnreadableValue } from '../../src/postgres-read-guard'
import { MAX_SPELLED_DIGITS, parseJson } from '../../src/postgres-types'

describe('parseJson: json / jsonb values', () => {
  it('reads an integer JS would round as the exact bigint, at any depth', () => {
    expect(parseJson('{"id":12345678901234567890,"n":[9007199254740993,-9007199254740993]}')).toEqual({
      id: 12345678901234567890n,
      n: [9007199254740993n, -9007199254740993n],
    })
    expect(parseJson('123456789012345678901234567890')).toBe(123456789012345678901234567890n)
    expect(parseJson('1' + '0'.repeat(400))).toBe(10n ** 400n)
  })

  it('keeps a number wherever JSON.parse is exact or JS writes the same text back', () => {
    for (const text of [
      '9007199254740991',
      '-9007199254740991',
      '1152921504606847000', // JSON.stringify(2 ** 60)
      '1000000000000000000000', // jsonb's text of 1e21
      '-1000000000000000000000',
      '1e+21',
      '12345678901234567.5', // a fraction: a double, as JSON.parse
      '0.1234567890123456789',
    ])
      expect(parseJson(text)).toBe(JSON.parse(text))
    const stored = JSON.stringify({ big: 2 ** 60, huge: 1e21, neg: -(2 ** 70) })
    expect(parseJson(stored)).toEqual({ big: 2 ** 60, huge: 1e21, neg: -(2 ** 70) })
  })

  it('leaves digits inside strings and short numbers to JSON.parse', () => {
    expect(parseJson('{"s":"12345678901234567890","n":42}')).toEqual({ s: '12345678901234567890', n: 42 })
    expect(parseJson('[1.5,true,null,"x"]')).toEqual([1.5, true, null, 'x'])
  })

  it('duplicate keys anywhere (json keeps them): the last wins, as in JSON.parse, and big integers stay exact (they fell back to JSON.parse: rounded)', () => {
    expect(parseJson('{"id": 1, "id": 12345678901234567890}')).toEqual({ id: 12345678901234567890n })
    expect(parseJson('{"other": {"a": 1, "a": 2}, "id": 9007199254740993}')).toEqual({ other: { a: 2 }, id: 9007199254740993n })
    const text = '{"b":1,"a":1,"b":[2,{"c":3,"c":4}]}'
    expect(parseJson(text)).toEqual(JSON.parse(text))
    expect(Object.keys(parseJson(text) as object)).toEqual(Object.keys(JSON.parse(text) as object))
  })

  it('an integer written with an exponent or a fraction part is exact too (9007199254740993e0, 1e400 read as 9007199254740992, Infinity)', () => {
    expect(parseJson('{"id": 9007199254740993e0}')).toEqual({ id: 9007199254740993n })
    expect(parseJson('{"n": 1e400}')).toEqual({ n: 10n ** 400n })
    expect(parseJson('[-1.5E+400, 12345678901234567.890e3]')).toEqual([-15n * 10n ** 399n, 12345678901234567890n])
    // what a double prints back as written stays a number, as with JSON.parse
    expect(parseJson('[1e21, 1.5e3, 2.5e-3, 0e400, -0.0e0, 1152921504606847e3]')).toEqual([1e21, 1500, 0.0025, 0, -0, 1152921504606847000])
  })

  it('a fraction a double cannot hold (Infinity, or a non-zero read as 0) is unreadable, never rounded silently', () => {
    const guard = new ReadGuard()
    expect(parseJson(`{"x": 1${'0'.repeat(400)}.5}`, guard)).toEqual({ x: expect.any(UnreadableValue) })
    expect(parseJson('[1e-400]', guard)).toEqual([expect.any(UnreadableValue)])
    expect(parseJson('[1e100000000]', guard)).toEqual([expect.any(UnreadableValue)])
    expect(guard.count).toBe(3)
    expect(parseJson('[0.1e1, 5e-324]', guard)).toEqual([1, 5e-324])
    expect(guard.count).toBe(3)
  })

  it('integers spelled by exponents share a budget of digits per value: 1e9999 once is exact, twice is unreadable', () => {
    expect(MAX_SPELLED_DIGITS).toBe(10_000)
    const guard = new ReadGuard()
    expect(parseJson('[1e9999]', guard)).toEqual([10n ** 9999n])
    expect(guard.count).toBe(0)
    // 6 bytes each spelled 10,000 digits: 100,000 of them took 31 s and 400 MB
    const many = parseJson(`[${Array(1000).fill('1e9999').join(',')}]`, guard) as unknown[]
    expect(many[0]).toBe(10n ** 9999n)
    expect(many[1]).toBeInstanceOf(UnreadableValue)
    expect(guard.count).toBe(999)
    // a fresh budget per value; the shared one (a json[] value's elements) runs out across them
    expect(parseJson('1e9999', guard)).toBe(10n ** 9999n)
    const budget = { left: MAX_SPELLED_DIGITS }
    expect(parseJson('1e5000', guard, budget)).toBe(10n ** 5000n)
    expect(parseJson('1e5000', guard, budget)).toBeInstanceOf(UnreadableValue)
    // what a double holds exactly costs nothing: 100,000 copies of 1e300 read as the double
    const doubles = parseJson(`[${Array(100_000).fill('1e300').join(',')}, 9007199254740993e0]`, guard) as unknown[]
    expect(doubles[0]).toBe(1e300)
    expect(doubles[100_000]).toBe(9007199254740993n)
    // real ids and amounts, written out in digits, are never counted
    expect(parseJson(`[${Array(2000).fill('12345678901234567890').join(',')}]`, guard)).toEqual(Array(2000).fill(12345678901234567890n))
  })
})
