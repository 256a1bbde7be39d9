import { parseJson } from '../../src/postgres-types'

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

  it('never throws where JSON.parse would not: duplicate keys in json keep the last', () => {
    expect(parseJson('{"a":1,"a":12345678901234567890}')).toEqual(JSON.parse('{"a":1,"a":12345678901234567890}'))
  })
})
