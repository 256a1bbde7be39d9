import { DatabaseError, isOutcomeUnknown } from '@dbpool/core'
import { duplicateColumn, duplicateColumnError } from '@dbpool/core/internal'

const columns = (...names: string[]): { name: string }[] => names.map((name) => ({ name }))

describe('duplicateColumn', () => {
  it('finds the first name used twice, with both 1-based positions; case-sensitive like the row keys', () => {
    expect(duplicateColumn([])).toBeUndefined()
    expect(duplicateColumn(columns('a'))).toBeUndefined()
    expect(duplicateColumn(columns('a', 'A', 'b'))).toBeUndefined()
    expect(duplicateColumn(columns('a', 'b', 'a'))).toEqual({ name: 'a', positions: [1, 3] })
    expect(duplicateColumn(columns('x', 'b', 'c', 'b', 'x'))).toEqual({ name: 'b', positions: [2, 4] })
  })

  it('the same for wide results (a map past 16 columns)', () => {
    const names = Array.from({ length: 40 }, (_, i) => `c${i}`)
    expect(duplicateColumn(columns(...names))).toBeUndefined()
    expect(duplicateColumn(columns(...names, 'c7'))).toEqual({ name: 'c7', positions: [8, 41] })
  })
})

describe('duplicateColumnError', () => {
  it('SYNTAX_ERROR naming the column and saying to alias it; Postgres ?column? explained', () => {
    const err = duplicateColumnError({ name: '?column?', positions: [1, 2] }, 'postgres', { ran: true })
    expect(DatabaseError.is(err, 'SYNTAX_ERROR')).toBe(true)
    expect(err.retryable).toBe(false)
    expect(err.backend).toBe('postgres')
    expect(err.detail).toEqual({ column: '?column?', positions: [1, 2] })
    expect(err.message).toMatch(/two columns named "\?column\?" \(columns 1 and 2\).*without an alias.*with AS.*already ran/)
    expect(isOutcomeUnknown(err)).toBe(false)
  })

  it('a statement that may have committed says so, with detail.outcome unknown', () => {
    const err = duplicateColumnError({ name: 'id', positions: [1, 2] }, 'postgres', { ran: true, mayHaveCommitted: true })
    expect(isOutcomeUnknown(err)).toBe(true)
    expect(err.message).toContain('may have committed')
    expect(duplicateColumnError({ name: 'id', positions: [1, 2] }, 'sqlite').message).toContain('was not run')
  })
})
