import { runInNewContext } from 'node:vm'
import { toBigInteger, toDate, toInteger, ValueReadError } from '../src/values'

// The value readers used to coerce as JavaScript does: toInteger('') was 0, ' 7 ' 7, '0x1f' 31 and
// '1e3' 1000 (toBigInteger refused them), and toDate read text without a time zone in the process
// time zone. Both are strict now, with one error type.
function refusal(read: () => unknown): ValueReadError {
  try {
    read()
  } catch (err) {
    if (err instanceof ValueReadError) return err
    throw err
  }
  throw new Error('expected a ValueReadError')
}

describe('toInteger and toBigInteger', () => {
  it.each(['', ' 7 ', '7 ', '+7', '0x1f', '1e3', '1.0', '1.5', '-', 'NaN', 'Infinity', '٣'])(
    'refuse the text %p, both of them (ValueReadError, a RangeError naming the column)',
    (text) => {
      const small = refusal(() => toInteger(text, 'amount'))
      expect(small).toBeInstanceOf(RangeError)
      expect(small).toMatchObject({ what: 'amount', expected: 'safe integer', value: text })
      expect(refusal(() => toBigInteger(text, 'amount'))).toMatchObject({ what: 'amount', expected: 'exact integer' })
    },
  )

  it.each([null, undefined, 1.5, NaN, Infinity, true, {}, [7]])('refuse %p', (value) => {
    expect(refusal(() => toInteger(value)).expected).toBe('safe integer')
    expect(refusal(() => toBigInteger(value)).expected).toBe('exact integer')
  })

  it('read what the backends return: numbers, bigints and decimal digits, alike', () => {
    for (const value of [42, 42n, '42']) {
      expect(toInteger(value)).toBe(42)
      expect(toBigInteger(value)).toBe(42n)
    }
    expect(toInteger('-9007199254740991')).toBe(-9007199254740991)
    expect(toInteger(-0)).toBe(0)
    expect(Object.is(toInteger('-0'), 0)).toBe(true)
    expect(toBigInteger('9007199254740993')).toBe(9007199254740993n)
  })

  it('toInteger refuses an integer beyond ±(2^53 - 1) in every form instead of rounding it', () => {
    for (const value of [2 ** 53, 9007199254740993n, '9007199254740993', '-9007199254740992']) {
      expect(refusal(() => toInteger(value, 'balance')).message).toMatch(/balance .* (is beyond|is not a safe integer)/)
    }
  })
})

describe('toDate', () => {
  const previous = process.env.TZ
  afterEach(() => {
    process.env.TZ = previous
  })

  it('refuses text without a time zone, whatever the process time zone (it was read as local time)', () => {
    for (const zone of ['UTC', 'America/New_York']) {
      process.env.TZ = zone
      for (const text of ['2024-03-01 00:30:00', '2024-03-01T00:30:00.000', '2024-03-01T00:30']) {
        const err = refusal(() => toDate(text, 'posted_at'))
        expect(err).toMatchObject({ what: 'posted_at', expected: 'timestamp', value: text })
        expect(err.message).toMatch(/no time zone/)
      }
    }
  })

  it('reads text with a zone as that instant, in any process time zone', () => {
    process.env.TZ = 'America/New_York'
    const instant = '2024-03-01T00:30:00.000Z'
    for (const text of [
      instant,
      '2024-03-01T00:30:00Z',
      '2024-03-01 00:30:00+00',
      '2024-03-01T01:30:00+01:00',
      '2024-02-29T19:30:00-0500',
      '2024-03-01T00:30Z',
    ]) {
      expect(toDate(text).toISOString()).toBe(instant)
    }
    expect(toDate('2024-03-01T00:30:00.5Z').toISOString()).toBe('2024-03-01T00:30:00.500Z')
    expect(toDate('0000-01-01T00:00:00.000Z').toISOString()).toBe('0000-01-01T00:00:00.000Z')
  })

  it.each([
    '2024-02-30T00:00:00Z',
    '2023-02-29T00:00:00Z',
    '2024-03-01T24:00:00Z',
    '2024-13-01T00:00:00Z',
    '2024-03-01T00:30:00.123456Z',
    'March 1, 2024',
    '',
    '2024-03-01',
  ])('refuses %p (a date that does not exist, more than milliseconds, not a timestamp)', (text) => {
    expect(refusal(() => toDate(text)).expected).toBe('timestamp')
  })

  it('reads a Date of any realm (the driver’s) as a new Date; refuses an invalid one and a fake', () => {
    const original = new Date(Date.UTC(2024, 2, 1))
    const copy = toDate(original)
    expect(copy).not.toBe(original)
    expect(copy.getTime()).toBe(original.getTime())
    const foreign = runInNewContext('new Date(Date.UTC(2024, 2, 1))') as unknown
    expect(toDate(foreign).getTime()).toBe(original.getTime())
    expect(refusal(() => toDate(new Date(NaN))).expected).toBe('timestamp')
    expect(refusal(() => toDate({ [Symbol.toStringTag]: 'Date', getTime: () => 0 })).expected).toBe('timestamp')
    expect(refusal(() => toDate(1709253000000)).expected).toBe('timestamp')
  })
})
