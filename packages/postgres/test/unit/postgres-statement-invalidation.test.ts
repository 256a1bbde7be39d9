import { isCachedPlanChange, statementInvalidation } from '../../src/postgres-statement-invalidation'

/** A server error as pg builds it from an ErrorResponse: absent fields are undefined, as pg-protocol leaves them. */
function serverError(code: string, routine: string | undefined, fields: { where?: string; internalQuery?: string } = {}): Error {
  return Object.assign(new Error('native message'), {
    code,
    severity: 'ERROR',
    routine,
    where: fields.where,
    internalQuery: fields.internalQuery,
  })
}

const IN_FUNCTION = 'SQL statement "insert into t (n) values ($1)"\nPL/pgSQL function f(text) line 2 at EXECUTE'

describe('statementInvalidation', () => {
  it('a cached plan whose result type changed, or whose parameter types no longer fit, is a changed statement', () => {
    expect(statementInvalidation(serverError('0A000', 'RevalidateCachedQuery'), false)).toBe('changed')
    expect(statementInvalidation(serverError('0A000', 'RevalidateCachedQuery'), true)).toBe('changed')
    // 42804 only when the run did not parse the statement (else the text itself is wrong)
    expect(statementInvalidation(serverError('42804', 'transformAssignedExpr'), true)).toBe('changed')
    expect(statementInvalidation(serverError('42804', 'transformAssignedExpr'), false)).toBeUndefined()
  })

  it('parse analysis errors of a statement parsed before (stale parameter types) are stale types', () => {
    for (const [code, routine] of [
      ['42883', 'op_error'],
      ['42804', 'coerce_to_boolean'],
      ['42846', 'coerce_type'],
      ['42725', 'ParseFuncOrColumn'],
    ] as const) {
      expect(statementInvalidation(serverError(code, routine), true)).toBe('types')
      // parsed by this run: the text itself is wrong
      expect(statementInvalidation(serverError(code, routine), false)).toBeUndefined()
      expect(statementInvalidation(serverError(code, routine, { where: IN_FUNCTION }), true)).toBeUndefined()
    }
  })

  it('a class 22 error converting a Bind value to the cached parameter type is a parameter error', () => {
    const bind = { where: "unnamed portal parameter $1 = '...'" }
    expect(statementInvalidation(serverError('22003', 'pg_strtoint32', bind), true)).toBe('parameter')
    expect(statementInvalidation(serverError('22P02', 'json_errsave_error', { where: 'portal "p" parameter $2 = \'...\'' }), true)).toBe(
      'parameter',
    )
    // an input function's own context line before it
    const json = { where: "JSON data, line 1: not...\nunnamed portal parameter $1 = '...'" }
    expect(statementInvalidation(serverError('22P02', 'json_errsave_error', json), true)).toBe('parameter')
    // parsed by this run: the types are fresh
    expect(statementInvalidation(serverError('22003', 'pg_strtoint32', bind), false)).toBeUndefined()
    // raised while it ran (no Bind context), or inside a function
    expect(statementInvalidation(serverError('22003', 'pg_strtoint32'), true)).toBeUndefined()
    expect(statementInvalidation(serverError('22P02', 'pg_strtoint32', { where: IN_FUNCTION }), true)).toBeUndefined()
    // not class 22
    expect(statementInvalidation(serverError('42883', 'regprocedurein', bind), true)).toBeUndefined()
  })

  it('a prepared statement the server does not hold is a dropped statement', () => {
    expect(statementInvalidation(serverError('26000', 'FetchPreparedStatement'), false)).toBe('dropped')
    // a pooler answering for the server may leave the routine out
    expect(statementInvalidation(serverError('26000', undefined), true)).toBe('dropped')
  })

  it('the same codes raised inside the statement’s own work (a function, a trigger, dynamic SQL) are not', () => {
    for (const [code, routine] of [
      ['0A000', 'RevalidateCachedQuery'],
      ['42804', 'transformAssignedExpr'],
      ['26000', 'FetchPreparedStatement'],
      ['26000', 'exec_stmt_raise'],
    ] as const) {
      expect(statementInvalidation(serverError(code, routine, { where: IN_FUNCTION }), true)).toBeUndefined()
      expect(statementInvalidation(serverError(code, routine, { internalQuery: 'select $1::int' }), true)).toBeUndefined()
    }
  })

  it('other errors, and errors that are not the server’s, are not', () => {
    expect(statementInvalidation(serverError('0A000', 'ExecSupportsBackwardScan'), true)).toBeUndefined()
    expect(statementInvalidation(serverError('42804', 'coerce_to_boolean'), false)).toBeUndefined()
    expect(statementInvalidation(serverError('22012', 'int4div'), true)).toBeUndefined()
    expect(statementInvalidation(serverError('23505', '_bt_check_unique'), true)).toBeUndefined()
    expect(statementInvalidation(new Error('Connection terminated unexpectedly'), true)).toBeUndefined()
    expect(statementInvalidation(undefined, true)).toBeUndefined()
  })
})

describe('isCachedPlanChange', () => {
  it('0A000 from RevalidateCachedQuery wherever it was raised (the session is fine), nothing else', () => {
    expect(isCachedPlanChange(serverError('0A000', 'RevalidateCachedQuery'))).toBe(true)
    expect(isCachedPlanChange(serverError('0A000', 'RevalidateCachedQuery', { where: IN_FUNCTION }))).toBe(true)
    expect(isCachedPlanChange(serverError('0A000', 'exec_stmt_raise'))).toBe(false)
    expect(isCachedPlanChange(serverError('26000', 'FetchPreparedStatement'))).toBe(false)
  })
})
