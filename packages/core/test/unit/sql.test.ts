import { DatabaseError, isSqlFragment, sql } from '@dbpool/core'

describe('sql tag', () => {
  it('turns values into placeholders per dialect', () => {
    const q = sql`select * from t where a = ${1} and b = ${'x'}`
    expect(q.compile('postgres')).toEqual({ text: 'select * from t where a = $1 and b = $2', params: [1, 'x'] })
    expect(q.compile('sqlite')).toEqual({ text: 'select * from t where a = ? and b = ?', params: [1, 'x'] })
  })

  it('composes fragments with continuous numbering', () => {
    const where = sql`owner = ${'o'} and kind = ${'k'}`
    const q = sql`select ${sql.id('a')} from t where ${where} limit ${5}`
    expect(q.compile('postgres')).toEqual({ text: 'select "a" from t where owner = $1 and kind = $2 limit $3', params: ['o', 'k', 5] })
  })

  it('never splices a malicious value into the text', () => {
    const evil = "'; drop table users; --"
    const { text, params } = sql`select ${evil}`.compile('postgres')
    expect(text).toBe('select $1')
    expect(params).toEqual([evil])
  })

  it('quotes identifiers, escaping embedded quotes, and rejects bad names', () => {
    expect(sql`${sql.id('public', 'we"ird')}`.compile('sqlite').text).toBe('"public"."we""ird"')
    expect(() => sql.id()).toThrow(DatabaseError)
    expect(() => sql.id('')).toThrow(/invalid SQL identifier/)
    expect(() => sql.id('a\u0000')).toThrow(/invalid SQL identifier/)
  })

  it('joins values and fragments', () => {
    expect(sql`in (${sql.join([1, 2, 3])})`.compile('postgres')).toEqual({ text: 'in ($1, $2, $3)', params: [1, 2, 3] })
    expect(sql`${sql.join([sql`a = ${1}`, sql`b = ${2}`], ' and ')}`.compile('sqlite')).toEqual({ text: 'a = ? and b = ?', params: [1, 2] })
    expect(sql`x${sql.join([])}`.compile('postgres').text).toBe('x')
  })

  it('refuses a sparse array (a hole dropped the separator after it: `$1$2, $3`)', () => {
    // eslint-disable-next-line no-sparse-arrays
    for (const separator of [', ', sql`, `]) expect(() => sql.join([1, , 3], separator)).toThrow(/hole at index 1/)
    // eslint-disable-next-line no-sparse-arrays
    expect(() => sql.join([1, 2, ,])).toThrow(/hole at index 2/)
    expect(sql`${sql.join([1, undefined, null])}`.compile('postgres')).toEqual({ text: '$1, $2, $3', params: [1, undefined, null] })
  })

  it('sql.id refuses a lone UTF-16 surrogate as it refuses NUL (UTF-8 would turn it into U+FFFD: another name)', () => {
    expect(() => sql.id('k\uD800')).toThrow(/invalid SQL identifier.*lone UTF-16 surrogate/)
    expect(() => sql.id('ok', '\uDC00x')).toThrow(DatabaseError)
    expect(sql.id('\uD83D\uDE00').compile('postgres').text).toBe('"\uD83D\uDE00"')
  })

  it('joins with a fragment as separator, and refuses other separators and non-array items', () => {
    expect(sql`${sql.join([sql`a = ${1}`, sql`b = ${2}`, 3], sql` and ${'x'} `)}`.compile('postgres')).toEqual({
      text: 'a = $1 and $2 b = $3 and $4 $5',
      params: [1, 'x', 2, 'x', 3],
    })
    expect(sql`(${sql.join([1, 2], sql`, `)})`.compile('sqlite')).toEqual({ text: '(?, ?)', params: [1, 2] })
    expect(() => sql.join([1, 2], 5 as never)).toThrow(/sql\.join\(\) needs a string or sql fragment as separator/)
    expect(() => sql.join(new Set([1]) as never)).toThrow(/sql\.join\(\) needs an array/)
  })

  it('splices trusted raw text and empty fragments', () => {
    expect(sql`select 1 ${sql.raw('for update')}${sql.empty}`.compile('postgres')).toEqual({ text: 'select 1 for update', params: [] })
    expect(() => sql.raw(1 as never)).toThrow(DatabaseError)
  })

  it('recognises fragments', () => {
    expect(isSqlFragment(sql`x`)).toBe(true)
    expect(isSqlFragment('x')).toBe(false)
  })
})

describe('compiled text cache (per template call site)', () => {
  const where = (value: unknown) => sql`select * from t where ${value}`

  it('gives the same call site different text when a value is a fragment, an identifier or raw text', () => {
    expect(where(1).compile('postgres')).toEqual({ text: 'select * from t where $1', params: [1] })
    expect(where(sql`a = ${2}`).compile('postgres')).toEqual({ text: 'select * from t where a = $1', params: [2] })
    expect(where(sql.id('flag')).compile('sqlite')).toEqual({ text: 'select * from t where "flag"', params: [] })
    expect(where(sql.raw('true')).compile('sqlite')).toEqual({ text: 'select * from t where true', params: [] })
    expect(where(3).compile('sqlite')).toEqual({ text: 'select * from t where ?', params: [3] })
    expect(where(4).compile('postgres')).toEqual({ text: 'select * from t where $1', params: [4] })
  })

  it('keeps each dialect apart and the parameters of each call', () => {
    const q = (a: unknown, b: unknown) => sql`insert into t (a, b) values (${a}, ${b})`
    expect(q(1, 'x').compile('sqlite')).toEqual({ text: 'insert into t (a, b) values (?, ?)', params: [1, 'x'] })
    expect(q(2, 'y').compile('postgres')).toEqual({ text: 'insert into t (a, b) values ($1, $2)', params: [2, 'y'] })
    expect(q(3, sql.json([1])).compile('postgres').params).toHaveLength(2)
  })
})
