import { DatabaseError, isOutcomeUnknown } from '@dbpool/core'
import {
  endsSession,
  innerCommitPoint,
  mayHaveCommitted,
  mayHavePartlyCommitted,
  outcomeUnknown,
  partlyCommittedError,
  StatementProgress,
  unknownOutcomeError,
} from '../../src/postgres-outcome'

function progress(fields: Partial<StatementProgress>): StatementProgress {
  return Object.assign(new StatementProgress(), fields)
}

describe('mayHaveCommitted: a statement lost in flight outside a transaction', () => {
  it.each([
    'insert into t values (1)',
    'update t set a = 1',
    'delete from t',
    'with d as (delete from t returning *) select * from d',
    "select nextval('s')",
    'select my_function(1)',
    "select pg_notify('c', 'x')",
    'call p()',
    'do $$ begin perform 1; end $$',
    'create table t (id int)',
    'begin; insert into t values (1); commit',
    'select 1; insert into t values (1)',
    'COMMIT',
    'end',
    "commit prepared 'gid'",
    "rollback prepared 'gid'",
    'copy t from stdin',
    'select 1 /* unterminated',
  ])('%s may have committed', (text) => {
    expect(mayHaveCommitted(text, false)).toBe(true)
  })

  it.each([
    'select 1',
    'SELECT id FROM t WHERE id = $1',
    'select pg_sleep(1)',
    'BEGIN',
    'begin isolation level serializable',
    'START TRANSACTION',
    'rollback',
    'abort;',
    'show search_path',
    "set statement_timeout = '1s'",
    'reset all',
  ])('%s cannot have committed', (text) => {
    expect(mayHaveCommitted(text, false)).toBe(false)
  })
})

describe('mayHaveCommitted: a statement lost in flight inside a transaction (the server rolls it back)', () => {
  it.each([
    'COMMIT',
    'commit work',
    'END',
    "PREPARE TRANSACTION 'gid'",
    'insert into t values (1); commit',
    'rollback; insert into t values (1)',
  ])('%s may have committed', (text) => {
    expect(mayHaveCommitted(text, true)).toBe(true)
  })

  it.each([
    'insert into t values (1)',
    'update t set a = 1',
    'select my_function(1)',
    'call p()',
    'ROLLBACK',
    'rollback to savepoint s',
    'release savepoint s',
    'savepoint s',
    "select 'commit'",
    '-- commit\nselect 1',
  ])('%s cannot have committed', (text) => {
    expect(mayHaveCommitted(text, true)).toBe(false)
  })
})

describe('outcomeUnknown', () => {
  const write = 'insert into t values (1)'

  it('is unknown for a write sent outside a transaction whose session ended without the server refusing it', () => {
    expect(outcomeUnknown(progress({ sent: true }), write, true, false)).toBe(true)
    // FATAL after CommandComplete (simple protocol: committed; extended: maybe committed at Sync)
    expect(outcomeUnknown(progress({ sent: true, completed: 1 }), write, true, true)).toBe(true)
  })

  it('is known when the statement was never sent, the session did not end, or the server refused it before completing it', () => {
    expect(outcomeUnknown(progress({ sent: false }), write, true, false)).toBe(false)
    expect(outcomeUnknown(progress({ sent: true }), write, false, false)).toBe(false)
    expect(outcomeUnknown(progress({ sent: true, completed: 0 }), write, true, true)).toBe(false)
  })

  it('is known for a write inside a transaction and for a read, unknown for a COMMIT', () => {
    expect(outcomeUnknown(progress({ sent: true, inTransaction: true }), write, true, false)).toBe(false)
    expect(outcomeUnknown(progress({ sent: true }), 'select 1', true, false)).toBe(false)
    expect(outcomeUnknown(progress({ sent: true, inTransaction: true }), 'COMMIT', true, false)).toBe(true)
  })
})

describe('innerCommitPoint: where a text can commit part of its work before it ends', () => {
  it.each([
    ['call p()', false, { index: 0, kind: 'CALL' }],
    ['CALL p($1)', false, { index: 0, kind: 'CALL' }],
    ['do $$ begin commit; end $$', false, { index: 0, kind: 'DO' }],
    ["insert into t values (1); commit; set lock_timeout = '1s'; lock table y", false, { index: 1, kind: 'COMMIT' }],
    ['begin; insert into t values (1); end; select 1', false, { index: 2, kind: 'END' }],
    ["insert into t values (1); prepare transaction 'g'; select 1", true, { index: 1, kind: 'PREPARE TRANSACTION' }],
    ["commit prepared 'g'; select 1", false, { index: 0, kind: 'COMMIT PREPARED' }],
    ['insert into t values (1); commit and chain; insert into t values (2)', true, { index: 1, kind: 'COMMIT' }],
    // inside a transaction a ROLLBACK leaves auto-commit: a CALL after it can commit
    ['rollback; call p()', true, { index: 1, kind: 'CALL' }],
  ])('%s (in a transaction: %s) can commit at %o', (text, inTransaction, point) => {
    expect(innerCommitPoint(text, inTransaction)).toEqual(point)
  })

  it.each([
    ['insert into t values (1)', false],
    ['insert into t values (1); lock table y', false],
    ['insert into t values (1); commit', false],
    ['begin; insert into t values (1); commit', false],
    ['select my_function(1)', false],
    // a CALL or DO inside a transaction block cannot commit (2D000)
    ['call p()', true],
    ['do $$ begin perform 1; end $$', true],
    ['begin; call p(); commit', false],
    ['rollback and chain; call p()', true],
    ['COMMIT', true],
  ])('%s (in a transaction: %s) cannot', (text, inTransaction) => {
    expect(innerCommitPoint(text, inTransaction)).toBeUndefined()
  })

  // sent in a failed transaction (E): its COMMIT rolls it back, committing nothing (re-review r10 item 2)
  it.each([
    ['commit; insert into t values (1)', undefined],
    ['end; insert into t values (1)', undefined],
    ['commit; begin; insert into t values (1); commit; select 1', { index: 3, kind: 'COMMIT' }],
    ['commit; call p()', { index: 1, kind: 'CALL' }],
    ['commit and chain; call p()', undefined],
    ['rollback to s; insert into t values (1); commit; select 1', { index: 2, kind: 'COMMIT' }],
  ])('%s sent in a failed transaction: %o', (text, point) => {
    expect(innerCommitPoint(text, true, true)).toEqual(point)
  })
})

describe('mayHavePartlyCommitted', () => {
  const script = 'insert into t values (1); commit; lock table y'
  it('a CALL or DO that started, a text past its COMMIT', () => {
    expect(mayHavePartlyCommitted(progress({ sent: true, completed: 0 }), 'call p()')).toEqual({ index: 0, kind: 'CALL' })
    expect(mayHavePartlyCommitted(progress({ sent: true, completed: 2 }), script)).toEqual({ index: 1, kind: 'COMMIT' })
  })
  it('not before its commit point, not unsent, not in a transaction block', () => {
    // the INSERT failed (0 complete), the COMMIT itself failed (1 complete)
    expect(mayHavePartlyCommitted(progress({ sent: true, completed: 0 }), script)).toBeUndefined()
    expect(mayHavePartlyCommitted(progress({ sent: true, completed: 1 }), script)).toBeUndefined()
    expect(mayHavePartlyCommitted(progress({ sent: false }), 'call p()')).toBeUndefined()
    expect(mayHavePartlyCommitted(progress({ sent: true, inTransaction: true }), 'call p()')).toBeUndefined()
  })
  it('outcomeUnknown: a FATAL for a CALL before any CommandComplete is unknown (its body may have committed)', () => {
    expect(outcomeUnknown(progress({ sent: true, completed: 0 }), 'call p()', true, true)).toBe(true)
    expect(outcomeUnknown(progress({ sent: true, completed: 0 }), 'do $$ begin commit; end $$', true, true)).toBe(true)
    expect(outcomeUnknown(progress({ sent: true, completed: 0, inTransaction: true }), 'call p()', true, true)).toBe(false)
  })
  it('partlyCommittedError: not retryable, outcome unknown, same code', () => {
    const busy = new DatabaseError('BUSY', 'canceling statement due to lock timeout', { backend: 'postgres', sqlState: '55P03' })
    const err = partlyCommittedError(busy, { index: 0, kind: 'CALL' })
    expect(err.code).toBe('BUSY')
    expect(err.sqlState).toBe('55P03')
    expect(err.retryable).toBe(false)
    expect(isOutcomeUnknown(err)).toBe(true)
    expect(err.message).toMatch(/a CALL run outside a transaction block failed, and its body may have committed/)
  })
})

describe('unknownOutcomeError', () => {
  it('keeps code, SQLSTATE, cause and detail; not retryable; says so in the message and detail.outcome', () => {
    const cause = new Error('terminating connection due to administrator command')
    const lost = new DatabaseError('CONNECTION_LOST', 'terminating connection', {
      backend: 'postgres',
      sqlState: '57P01',
      cause,
      detail: { severity: 'FATAL' },
    })
    const err = unknownOutcomeError(lost, 'COMMIT')
    expect(err).toMatchObject({ code: 'CONNECTION_LOST', sqlState: '57P01', retryable: false, backend: 'postgres', cause })
    expect(err.detail).toEqual({ severity: 'FATAL', outcome: 'unknown' })
    expect(err.message).toBe(
      'terminating connection (the connection was lost while COMMIT was in flight: its outcome is unknown, it may have committed; check before running it again)',
    )
    expect(isOutcomeUnknown(err)).toBe(true)
    expect(isOutcomeUnknown(lost)).toBe(false)
    expect(isOutcomeUnknown(new Error('x'))).toBe(false)
  })

  it('endsSession: FATAL and PANIC ErrorResponses end the session', () => {
    expect(endsSession({ severity: 'FATAL' })).toBe(true)
    expect(endsSession({ severity: 'PANIC' })).toBe(true)
    expect(endsSession({ severity: 'ERROR' })).toBe(false)
    expect(endsSession(null)).toBe(false)
  })
})

describe('unknownOutcomeError names COMMIT / END, in linear time', () => {
  const lost = new DatabaseError('CONNECTION_LOST', 'lost')
  it('reads a COMMIT with 1 MB of blanks around its ";" (two \\s* around an optional ";" split them every way)', () => {
    const blanks = ' '.repeat(1 << 20)
    expect(unknownOutcomeError(lost, `commit${blanks};${blanks}`).message).toContain('while COMMIT was in flight')
    expect(unknownOutcomeError(lost, `end${blanks}`).message).toContain('while END was in flight')
    expect(unknownOutcomeError(lost, `commit${blanks}x`).message).toContain('while the statement was in flight')
  })
})
