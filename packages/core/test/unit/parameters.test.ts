import { DatabaseError, isSqlJson, sql } from '@dbpool/core'
import { runInNewContext } from 'node:vm'
import { checkStatementText, describeValue, isPlainObject, jsonParameterText, stringProblem } from '@dbpool/core/internal'

function refusal(fn: () => unknown): DatabaseError {
  try {
    fn()
  } catch (err) {
    if (DatabaseError.is(err)) return err
    throw err
  }
  throw new Error('expected a DatabaseError')
}

describe('sql.json', () => {
  it('is exactly one parameter, arrays included, on both dialects', () => {
    const value = ['red', 'green', 'blue']
    for (const dialect of ['postgres', 'sqlite'] as const) {
      const compiled = sql`insert into t (v) values (${sql.json(value)})`.compile(dialect)
      expect(compiled.params).toHaveLength(1)
      expect(isSqlJson(compiled.params[0])).toBe(true)
      expect(compiled.text).toBe(dialect === 'postgres' ? 'insert into t (v) values ($1)' : 'insert into t (v) values (?)')
    }
  })
})

describe('jsonParameterText', () => {
  it('writes a bigint anywhere inside as a JSON integer of its exact digits', () => {
    expect(jsonParameterText({ id: 9007199254740993n, list: [1n, -2n] }, 1, 'postgres')).toBe('{"id":9007199254740993,"list":[1,-2]}')
    expect(jsonParameterText(12n, 1, 'sqlite')).toBe('12')
    expect(jsonParameterText({ s: '9007199254740993', n: 2n ** 70n }, 1, 'postgres')).toBe(
      '{"s":"9007199254740993","n":1180591620717411303424}',
    )
  })

  it("refuses a string holding dbpool's internal bigint mark, instead of writing it as a number", () => {
    for (const s of ['\u0000dbpool:bigint\u00005', 'x\u0000dbpool:bigint\u00005'])
      expect(() => jsonParameterText({ s, n: 1n }, 3, 'postgres')).toThrow(expect.objectContaining({ code: 'INVALID_PARAMETER' }))
  })

  it.each([
    [{ a: NaN }, /number NaN at key "a"/],
    // boxed: JSON.stringify writes the primitive, a boxed NaN / Infinity as null
    [{ a: Object(NaN) as unknown }, /boxed number NaN \(new Number\(NaN\)\) at key "a"/],
    [[Object(-Infinity) as unknown], /boxed number -Infinity .*at key "0"/],
    [Object(Infinity) as unknown, /boxed number Infinity .*at the top level/],
    [[1, Infinity], /number Infinity/],
    [{ f: () => 1 }, /function at key "f"/],
    [[undefined], /undefined/],
    [undefined, /undefined at the top level/],
    [Symbol('x'), /symbol/],
  ])('refuses %p with INVALID_PARAMETER naming the position', (value, message) => {
    const err = refusal(() => jsonParameterText(value, 3, 'postgres'))
    expect(err.code).toBe('INVALID_PARAMETER')
    expect(err.retryable).toBe(false)
    expect(err.message).toMatch(/^parameter 3 /)
    expect(err.message).toMatch(message)
    expect(err.detail).toMatchObject({ position: 3 })
  })

  it.each([
    ['a Map', { m: new Map([['k', 1]]) }, /Map at key "m", whose contents JSON.stringify would drop/],
    ['a Set', [new Set([1, 2])], /Set at key "0"/],
    ['a RegExp', { r: /x/ }, /RegExp at key "r"/],
    ['an Error', { e: new Error('x') }, /Error at key "e"/],
    ['a typed array', { bytes: new Uint8Array([1, 2]) }, /Uint8Array at key "bytes"/],
    ['an ArrayBuffer', { b: new ArrayBuffer(2) }, /ArrayBuffer at key "b"/],
    ['a Map subclass', { m: new (class Registry extends Map {})() }, /Registry at key "m"/],
    ['an invalid Date', { d: new Date('nope') }, /invalid Date at key "d", which JSON.stringify would write as null/],
    ['an invalid Date in an array', [new Date('nope')], /invalid Date at key "0"/],
    ['a Map at the top level', new Map(), /Map at the top level/],
    ['an invalid Date at the top level', new Date('nope'), /invalid Date at the top level/],
  ])('refuses %s inside JSON instead of writing {} or null', (_name, value, message) => {
    const err = refusal(() => jsonParameterText(value, 2, 'sqlite'))
    expect(err.code).toBe('INVALID_PARAMETER')
    expect(err.message).toMatch(/^parameter 2 /)
    expect(err.message).toMatch(message)
    expect(err.detail).toMatchObject({ position: 2 })
  })

  it('keeps what JSON.stringify writes without loss: plain objects, toJSON results, Dates, boxed primitives', () => {
    class Money {
      constructor(readonly cents: bigint) {}
      toJSON(): string {
        return `${this.cents}`
      }
    }
    const bare = Object.assign(Object.create(null) as object, { x: 1 })
    expect(
      jsonParameterText({ m: new Money(5n), at: new Date('2024-03-01T00:30:00Z'), s: Object(1) as unknown, bare }, 1, 'postgres'),
    ).toBe('{"m":"5","at":"2024-03-01T00:30:00.000Z","s":1,"bare":{"x":1}}')
    expect(jsonParameterText({ n: null, list: [null] }, 1, 'postgres')).toBe('{"n":null,"list":[null]}')
    expect(jsonParameterText(new Date('2024-03-01T00:30:00Z'), 1, 'postgres')).toBe('"2024-03-01T00:30:00.000Z"')
  })

  // one rule at every depth and at the top level: what JSON.stringify would change silently is refused
  it.each([
    ['a Buffer property', { b: Buffer.from('hi') }, /Buffer at key "b", which JSON.stringify would write as \{"type":"Buffer"/],
    ['a Buffer at the top level', Buffer.from('hi'), /Buffer at the top level/],
    ['a Buffer in an array', [Buffer.from('hi')], /Buffer at key "0"/],
    ['a Uint8Array property', { b: new Uint8Array([1]) }, /Uint8Array at key "b"/],
    ['a Float64Array property', { b: new Float64Array([1]) }, /Float64Array at key "b"/],
    ['a DataView property', { b: new DataView(new ArrayBuffer(1)) }, /DataView at key "b"/],
    [
      'a nested class instance',
      {
        c: new (class Point {
          x = 1
        })(),
      },
      /class instance \(Point\) at key "c"/,
    ],
    [
      'a class instance at the top level',
      new (class Point {
        x = 1
      })(),
      /class instance \(Point\) at the top level/,
    ],
    [
      'a class instance in an array',
      [
        new (class Point {
          x = 1
        })(),
      ],
      /class instance \(Point\) at key "0"/,
    ],
    ['an undefined property', { u: undefined, k: 1 }, /undefined at key "u", a property JSON.stringify would drop/],
    ['a nested undefined property', [[1, { a: undefined }]], /undefined at key "a"/],
  ])('refuses %s (JSON.stringify would change it silently)', (_name, value, message) => {
    for (const backend of ['postgres', 'sqlite'] as const) {
      const err = refusal(() => jsonParameterText(value, 4, backend))
      expect(err.code).toBe('INVALID_PARAMETER')
      expect(err.backend).toBe(backend)
      expect(err.message).toMatch(/^parameter 4 /)
      expect(err.message).toMatch(message)
    }
  })

  it('refuses a cycle with the serializer error as cause', () => {
    const cyclic: Record<string, unknown> = {}
    cyclic.self = cyclic
    const err = refusal(() => jsonParameterText(cyclic, 1, 'sqlite'))
    expect(err.code).toBe('INVALID_PARAMETER')
    expect(err.cause).toBeInstanceOf(Error)
  })

  it('never puts the value in the message (it may be a secret)', () => {
    const err = refusal(() => jsonParameterText({ password: 'hunter2', n: NaN }, 1, 'postgres'))
    expect(err.message).not.toContain('hunter2')
    expect(JSON.stringify(err)).not.toContain('hunter2')
  })
})

describe('describeValue', () => {
  it.each([
    [null, 'null'],
    [1, 'number'],
    [NaN, 'number NaN'],
    [-Infinity, 'number -Infinity'],
    [[1], 'Array'],
    [new Map(), 'Map'],
    [new Date(NaN), 'Date (invalid)'],
    [{}, 'object'],
    [Object.create(null), 'object'],
    [class Foo {}, 'function'],
  ])('%p -> %s', (value, expected) => {
    expect(describeValue(value)).toBe(expected)
  })
})

describe('values from another JS realm (a vm context)', () => {
  const [date, bytes, plain, nullProto, instance] = runInNewContext(
    '[new Date(0), new Uint8Array([1]), { a: 1, d: new Date(0) }, Object.assign(Object.create(null), { b: 2 }), new (class Foo {})()]',
  ) as object[]

  // a plain object made there was refused as a class instance on both backends
  it('isPlainObject accepts its plain objects, not its class instances, Dates or typed arrays', () => {
    expect(isPlainObject(plain!)).toBe(true)
    expect(isPlainObject(nullProto!)).toBe(true)
    expect(isPlainObject(instance!)).toBe(false)
    expect(isPlainObject(date!)).toBe(false)
    expect(isPlainObject(bytes!)).toBe(false)
    expect(jsonParameterText(plain, 1, 'sqlite')).toBe('{"a":1,"d":"1970-01-01T00:00:00.000Z"}')
  })

  it('describeValue calls its plain objects objects', () => {
    expect(describeValue(plain)).toBe('object')
    expect(describeValue(nullProto)).toBe('object')
  })
})

describe('checkStatementText', () => {
  it('refuses U+0000 with SYNTAX_ERROR naming the 1-based position', () => {
    const err = refusal(() => checkStatementText('select 1;\u0000drop table t', 'sqlite'))
    expect(err.code).toBe('SYNTAX_ERROR')
    expect(err.detail).toEqual({ position: 10 })
    expect(err.message).toMatch(/position 10/)
  })

  it('accepts text without NUL', () => {
    expect(() => checkStatementText('select 1', 'postgres')).not.toThrow()
  })

  it.each([
    ["select 'a\uD800b'", 10],
    ['select 1 as "k\uDC00"', 15],
    ["select '\uD83D\uDE00', '\uDE00'", 15],
    ["select 'x' || '\uD83D'", 16],
  ])('refuses a lone UTF-16 surrogate with SYNTAX_ERROR naming its position (%j)', (text, position) => {
    const err = refusal(() => checkStatementText(text, 'postgres'))
    expect(err.code).toBe('SYNTAX_ERROR')
    expect(err.detail).toEqual({ position })
    expect(err.message).toMatch(/lone UTF-16 surrogate at position/)
  })

  it('accepts well-formed text with surrogate pairs', () => {
    expect(() => checkStatementText('select \'\uD83D\uDE00\' as "\uD83D\uDE00"', 'sqlite')).not.toThrow()
  })
})

describe('stringProblem', () => {
  it('flags NUL and lone surrogates, accepts well-formed text', () => {
    expect(stringProblem('a\u0000b')).toMatch(/NUL/)
    expect(stringProblem('a\uD800b')).toMatch(/lone UTF-16 surrogate/)
    expect(stringProblem('emoji \uD83D\uDE00 ok')).toBeUndefined()
  })
})
