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
    expect(statementInvalidation(serverError('0A000', 'RevalidateCachedQuery'), false, false)).toBe('changed')
    expect(statementInvalidation(serverError('0A000', 'RevalidateCachedQuery'), true, false)).toBe('changed')
    // 42804 only when the run did not parse the statement (else the text itself is wrong)
    expect(statementInvalidation(serverError('42804', 'transformAssignedExpr'), true, false)).toBe('changed')
    expect(statementInvalidation(serverError('42804', 'transformAssignedExpr'), false, false)).toBeUndefined()
  })

  it('parse analysis errors of a statement parsed before (stale parameter types) are stale types', () => {
    for (const [code, routine] of [
      ['42883', 'op_error'],
      ['42804', 'coerce_to_boolean'],
      ['42846', 'coerce_type'],
      ['42725', 'ParseFuncOrColumn'],
    ] as const) {
      expect(statementInvalidation(serverError(code, routine), true, false)).toBe('types')
      // parsed by this run: the text itself is wrong
      expect(statementInvalidation(serverError(code, routine), false, false)).toBeUndefined()
      expect(statementInvalidation(serverError(code, routine, { where: IN_FUNCTION }), true, false)).toBeUndefined()
    }
  })

  it('a class 22 error converting a Bind value to the cached parameter type is a parameter error', () => {
    const bind = { where: "unnamed portal parameter $1 = '...'" }
    expect(statementInvalidation(serverError('22003', 'pg_strtoint32', bind), true, false)).toBe('parameter')
    expect(
      statementInvalidation(serverError('22P02', 'json_errsave_error', { where: 'portal "p" parameter $2 = \'...\'' }), true, false),
    ).toBe('parameter')
    // an input function's own context line before it
    const json = { where: "JSON data, line 1: not...\nunnamed portal parameter $1 = '...'" }
    expect(statementInvalidation(serverError('22P02', 'json_errsave_error', json), true, false)).toBe('parameter')
    // parsed by this run: the types are fresh
    expect(statementInvalidation(serverError('22003', 'pg_strtoint32', bind), false, false)).toBeUndefined()
    // raised while it ran (no Bind context), or inside a function
    expect(statementInvalidation(serverError('22003', 'pg_strtoint32'), true, false)).toBeUndefined()
    expect(statementInvalidation(serverError('22P02', 'pg_strtoint32', { where: IN_FUNCTION }), true, false)).toBeUndefined()
    // not class 22
    expect(statementInvalidation(serverError('42883', 'regprocedurein', bind), true, false)).toBeUndefined()
    // user code ran at Bind before the conversion failed: a domain CHECK calling a function (review r13a)
    const domainCheck = { where: "PL/pgSQL function audit_check(integer) line 4 at RAISE\nunnamed portal parameter $1 = '-5'" }
    expect(statementInvalidation(serverError('22023', 'exec_stmt_raise', domainCheck), true, false)).toBeUndefined()
    const sqlFunction = { where: 'SQL function "f" statement 1\nunnamed portal parameter $1' }
    expect(statementInvalidation(serverError('22012', 'int4div', sqlFunction), true, false)).toBeUndefined()
    // the value left out (log_parameter_max_length_on_error 0, the default)
    expect(statementInvalidation(serverError('22003', 'pg_strtoint32', { where: 'unnamed portal parameter $1' }), true, false)).toBe(
      'parameter',
    )
  })

  it('nothing after the server answered the Bind (BindComplete): the statement may have executed (review r13a)', () => {
    const bind = { where: "unnamed portal parameter $1 = '...'" }
    for (const err of [
      serverError('0A000', 'RevalidateCachedQuery'),
      serverError('42804', 'transformAssignedExpr'),
      serverError('42883', 'regprocedurein'),
      serverError('42725', 'ParseFuncOrColumn'),
      serverError('26000', 'FetchPreparedStatement'),
      serverError('22003', 'pg_strtoint32', bind),
    ]) {
      expect(statementInvalidation(err, true, false)).toBeDefined()
      expect(statementInvalidation(err, true, true)).toBeUndefined()
    }
  })

  it('a prepared statement the server does not hold is a dropped statement', () => {
    expect(statementInvalidation(serverError('26000', 'FetchPreparedStatement'), false, false)).toBe('dropped')
    // a pooler answering for the server may leave the routine out
    expect(statementInvalidation(serverError('26000', undefined), true, false)).toBe('dropped')
  })

  it('the same codes raised inside the statement’s own work (a function, a trigger, dynamic SQL) are not', () => {
    for (const [code, routine] of [
      ['0A000', 'RevalidateCachedQuery'],
      ['42804', 'transformAssignedExpr'],
      ['26000', 'FetchPreparedStatement'],
      ['26000', 'exec_stmt_raise'],
    ] as const) {
      expect(statementInvalidation(serverError(code, routine, { where: IN_FUNCTION }), true, false)).toBeUndefined()
      expect(statementInvalidation(serverError(code, routine, { internalQuery: 'select $1::int' }), true, false)).toBeUndefined()
    }
  })

  it('other errors, and errors that are not the server’s, are not', () => {
    expect(statementInvalidation(serverError('0A000', 'ExecSupportsBackwardScan'), true, false)).toBeUndefined()
    expect(statementInvalidation(serverError('42804', 'coerce_to_boolean'), false, false)).toBeUndefined()
    expect(statementInvalidation(serverError('22012', 'int4div'), true, false)).toBeUndefined()
    expect(statementInvalidation(serverError('23505', '_bt_check_unique'), true, false)).toBeUndefined()
    expect(statementInvalidation(new Error('Connection terminated unexpectedly'), true, false)).toBeUndefined()
    expect(statementInvalidation(undefined, true, false)).toBeUndefined()
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
