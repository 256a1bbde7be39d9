import type { CustomTypesConfig } from 'pg'
import Cursor from 'pg-cursor'
import { DatabaseError, type RowCursor } from '@dbpool/core'
import type { PostgresConnection } from './postgres-connection'
import { resultColumnsError } from './postgres-columns'
import { checkCancelledError, mayHaveCommitted, notSentError, StatementProgress } from './postgres-outcome'
import { checkState, withdrawCheck } from './postgres-array-params'
import type { PgQuery } from './postgres-params'
import { findUnreadable, unreadableError, type UnreadableFound } from './postgres-read-guard'
import { startDeadline, type Deadline } from './postgres-deadline'

/** @internal What a cursor needs from its manager. */
export interface PostgresCursorHooks {
  /** The connection's type parsers (the same as `execute`'s: int8 as bigint, ...). */
  readonly types: CustomTypesConfig
  /** Deadline of closing an unfinished cursor (the manager's `cancelTimeoutMs`). */
  readonly closeTimeoutMs: number
  /**
   * Maps a statement error; marks the connection broken on a fatal one. With `progress`, a loss after
   * the cursor's Sync was sent is restated as outcome unknown when the text may have committed.
   */
  fail(err: unknown, progress?: StatementProgress): DatabaseError
  /**
   * Gives up on the connection at once: a cancel request, then the socket closed. Returns the error
   * to report: `reason`, or with `progress` showing the statement's commit in flight (the cursor's
   * Sync sent outside a transaction, a text that may write), `reason` as outcome unknown.
   */
  abandon(reason: DatabaseError, progress?: StatementProgress): DatabaseError
  /**
   * A result refused in the client after the statement ran (two columns of one name), the cursor
   * closed: inside a transaction, aborts it in the server as a server error would. Resolves with the
   * error to report.
   */
  refused(error: DatabaseError): Promise<unknown>
  /**
   * Submits the cursor (`submit`) in its turn with the statements issued before it on the connection,
   * those held behind an array check too, after its own array check (see ArrayParameterCheck):
   * `undefined` when submitted at once, else a promise that settles once it is (rejecting with the
   * check's failure, or with `progress.withdrawn`: never submitted then). May throw INVALID_PARAMETER.
   */
  open(submit: () => void, progress: StatementProgress): Promise<void> | undefined
}

/**
 * @internal A server-side cursor through pg-cursor on a connection in classic mode: Parse, Bind and
 * Describe of an unnamed statement into a named portal, then one `Execute(batchSize)` per `read()`,
 * so the server holds the rest of the result and the client never more than one batch. Reading to
 * the end closes the portal (pg-cursor sends Close and Sync at CommandComplete); `close()` before
 * that closes it and waits for the server's ReadyForQuery, bounded by `closeTimeoutMs` (past it the
 * connection is marked broken and killed, never reused with a portal open).
 */
export class PostgresCursor<R> implements RowCursor<R> {
  readonly #conn: PostgresConnection
  readonly #query: PgQuery
  readonly #batchSize: number
  readonly #hooks: PostgresCursorHooks
  #cursor: Cursor<R> | undefined
  #done = false
  /**
   * pg wrote the cursor (Parse, Bind, Describe): until then it waits its turn behind the statements
   * issued before it on the connection (see PostgresConnection.submit).
   */
  #sent = false
  /**
   * The session was inside a transaction (`T`, `E`) when pg wrote the cursor: read then, not at the
   * first `read()`, as a COMMIT or BEGIN issued before the stream and still waiting its turn or its
   * answer changes it.
   */
  #inTransaction = false
  /** The error a cursor taken out unsent was failed with (see {@link #withdraw}). */
  #withdrawn: DatabaseError | undefined = undefined
  /** The first read was issued: its row description is checked for columns of one name. */
  #checked = false
  /**
   * Handed to PostgresConnection.submit (see {@link PostgresCursorHooks.open}): before that it waits
   * behind an array check, or in its own, and {@link #turn} tells where.
   */
  #submitted = false
  /** Its turn before {@link #submitted}: `withdrawn` once given up on, `checking` its array check's probe or lookup. */
  readonly #turn = new StatementProgress()
  /** Outside a transaction: a ReadyForQuery `I` answered the Sync that ended the portal (its work committed). */
  #committed = false
  /**
   * The server's error that came after the Sync ending the portal (pg-cursor already `done`): the
   * implicit transaction's COMMIT failed (a deferred constraint) and rolled everything back. Its
   * ReadyForQuery is `I` too, so only the absence of this error proves the commit.
   */
  #commitError: unknown = undefined

  constructor(conn: PostgresConnection, query: PgQuery, batchSize: number, hooks: PostgresCursorHooks) {
    this.#conn = conn
    this.#query = query
    this.#batchSize = batchSize
    this.#hooks = hooks
  }

  read(): Promise<R[]> {
    if (this.#done) return Promise.resolve([])
    let cursor = this.#cursor
    if (cursor === undefined) {
      const created = (cursor = this.#cursor = this.#create())
      let opening: Promise<void> | undefined
      try {
        // in turn with the connection's other statements (see PostgresConnection.submit)
        opening = this.#hooks.open(() => {
          this.#submitted = true
          this.#conn.submit(created)
        }, this.#turn)
      } catch (err) {
        this.#done = true
        return Promise.reject(this.#hooks.fail(err))
      }
      if (opening !== undefined)
        return opening.then(
          () => (this.#done ? this.#endedBeforeRead() : this.#read(created)),
          (err: unknown) => {
            this.#done = true
            // given up on behind its array check (see #withdrawTurn): never sent
            if (this.#withdrawn !== undefined) throw this.#withdrawn
            throw this.#hooks.fail(err)
          },
        )
    }
    return this.#read(cursor)
  }

  /** Closed between its submission and its first read: failed with the withdrawal when taken out unsent. */
  #endedBeforeRead(): Promise<R[]> {
    return this.#withdrawn !== undefined ? Promise.reject(this.#withdrawn) : Promise.resolve([])
  }

  #read(cursor: Cursor<R>): Promise<R[]> {
    const first = !this.#checked
    this.#checked = true
    return this.#untilLost(cursor.read(this.#batchSize)).then(
      (rows) => {
        if (first) {
          if (this.#columnsError(cursor) !== undefined) return this.#refuse(cursor)
        }
        // a value the type parsers could not read exactly (see UnreadableValue): no row of it is handed out
        const unreadable = findUnreadable(this.#conn.reads?.guard, rows, this.#fields(cursor))
        if (unreadable !== undefined) return this.#refuseUnreadable(unreadable)
        if (rows.length === 0) this.#done = true
        // the read settles at the ReadyForQuery that answers the Sync sent at CommandComplete
        if (this.#synced(cursor)) this.#noteCommit()
        return rows
      },
      (err: unknown) => {
        // taken out unsent (see #withdraw): nothing of it reached the server
        if (this.#withdrawn !== undefined) throw this.#withdrawn
        // the server ended the portal with the error (pg-cursor sent Sync): nothing left to close
        this.#done = true
        throw this.#hooks.fail(err, this.#progress(cursor))
      },
    )
  }

  close(): void | Promise<void> {
    if (this.#done) return
    this.#done = true
    const cursor = this.#cursor
    if (cursor === undefined || !this.#conn.usable) return
    const unsent = new DatabaseError(
      'QUERY_FAILED',
      'the stream was closed (its handle released, or the pool closing) while its statement still waited its turn behind the statements issued before it on its connection: it was never sent',
      { backend: 'postgres', retryable: true, detail: { started: false } },
    )
    // behind an array check, or in its own: never submitted (its probe or lookup taken out when still
    // kept; one on the server ends on its own, and the release waits for it); its pending read fails unsent
    if (!this.#submitted) {
      this.#withdrawTurn(unsent)
      return
    }
    // still waiting its turn: taken out, never sent (nothing to close on the server)
    if (this.#withdraw(cursor, unsent)) return
    // called synchronously: a statement queued on the client after this runs after the Close
    const closing = cursor.close()
    let timer: Deadline | undefined
    // the server's answer to the Close, if it arrived while the event loop was blocked, is read first (startDeadline)
    const deadline = new Promise<void>((resolve) => {
      timer = startDeadline(this.#hooks.closeTimeoutMs, () => {
        this.abandon(this.#closeTimeout())
        resolve()
      })
    })
    const closed = this.#untilLost(closing).then(
      () => this.#noteCommit(),
      (err: unknown) => void this.#hooks.fail(err),
    )
    return Promise.race([closed, deadline]).finally(() => timer?.clear())
  }

  /**
   * What became of a statement that may write ({@link mayHaveCommitted}) run outside a transaction,
   * once the stream ended: `'committed'` when a ReadyForQuery `I` answered the Sync that ended its
   * portal (pg-cursor sends Close and Sync at CommandComplete, or when the cursor is closed early:
   * the implicit transaction then commits what the portal did: an `INSERT ... RETURNING` ran whole at
   * the first Execute); `'unknown'` when that Sync was sent but the connection was lost before its
   * answer; undefined when the connection was closed before the Sync (the server rolls the implicit
   * transaction back with the session), the statement failed (its implicit COMMIT too: a deferred
   * constraint's ErrorResponse before that ReadyForQuery, which is `I` as well), reads, or ran inside
   * a transaction.
   */
  outcome(): 'committed' | 'unknown' | undefined {
    const cursor = this.#cursor
    if (cursor === undefined || !this.#sent || this.#inTransaction || !mayHaveCommitted(this.#query.text, false)) return undefined
    if (this.#committed) return 'committed'
    if (this.#commitError !== undefined) return undefined
    return this.#synced(cursor) ? 'unknown' : undefined
  }

  /** pg-cursor sent the Sync that ends the portal's implicit transaction (its state is then `done`, never `error`). */
  #synced(cursor: Cursor<R>): boolean {
    return (cursor as unknown as { state?: string }).state === 'done'
  }

  /** A ReadyForQuery was just seen for the cursor's Sync: `I` outside a transaction means its work committed. */
  #noteCommit(): void {
    if (this.#commitError !== undefined || !this.#sent) return
    if (!this.#inTransaction && this.#conn.client.getTransactionStatus() === 'I') this.#committed = true
  }

  /**
   * Gives up on the read in flight (the stream's deadline or abort). A cursor still waiting its turn
   * behind the statements issued before it on the connection (or behind its array check) is taken out
   * and never sent: `reason` as not started (`retryable: true`, `detail.started: false`), no cancel
   * request, the connection kept (the statement running there is not this stream's); its array check's
   * probe or lookup still kept is taken out too. Only a cursor pg has written, or whose array check
   * runs on the server (`checkCancelledError`: the cursor itself never sent), is abandoned through the
   * manager (a cancel request, the connection closed).
   */
  abandon(reason: DatabaseError): DatabaseError {
    const cursor = this.#cursor
    if (!this.#sent) {
      // its own array check's probe or lookup on the server: cancelled as a running statement (the
      // connection closed); the cursor itself is never sent
      if (!this.#submitted && checkState(this.#conn, this.#turn) === 'running') {
        const cancelled = checkCancelledError(reason, true)
        this.#withdrawTurn(cancelled)
        return this.#hooks.abandon(cancelled)
      }
      const notSent = notSentError(reason)
      // behind an array check, or in its own (its probe or lookup still kept: taken out too)
      if (!this.#submitted) {
        this.#withdrawTurn(notSent)
        return notSent
      }
      if (this.#withdraw(cursor!, notSent)) {
        this.#done = true
        return notSent
      }
    }
    this.#done = true
    return this.#hooks.abandon(reason, cursor === undefined ? undefined : this.#progress(cursor))
  }

  /** The pg-cursor, noting the transaction status when pg writes it (its turn has come: see {@link #inTransaction}). */
  #create(): Cursor<R> {
    const cursor = new Cursor<R>(this.#query.text, this.#query.values, { types: this.#hooks.types })
    const submit = cursor.submit.bind(cursor)
    cursor.submit = (connection) => {
      const status = this.#conn.client.getTransactionStatus()
      this.#inTransaction = status === 'T' || status === 'E'
      this.#sent = true
      submit(connection)
    }
    return cursor
  }

  /**
   * Gives up on a cursor not submitted yet (see {@link #submitted}): it never will be, its pending
   * read fails with `error`, and its array check's probe or lookup still kept in the connection's
   * queue is taken out (never sent).
   */
  #withdrawTurn(error: DatabaseError): void {
    this.#done = true
    this.#withdrawn = error
    this.#turn.withdrawn = error
    withdrawCheck(this.#conn, this.#turn, error)
  }

  /**
   * Takes `cursor` out of the statements waiting their turn on the connection when it is still there
   * (not sent), and fails its pending read with `error` (pg-cursor, never submitted, touches no
   * connection then). False when pg already has it.
   */
  #withdraw(cursor: Cursor<R>, error: DatabaseError): boolean {
    if (this.#sent || !this.#conn.unqueue(cursor)) return false
    this.#withdrawn = error
    ;(cursor as unknown as { handleError(err: Error): void }).handleError(error)
    return true
  }

  /**
   * `work`, or a rejection with the connection's loss if its socket ends or fails first. pg-cursor
   * alone never settles a read whose connection dies between CommandComplete and ReadyForQuery: at
   * CommandComplete it marks itself done (and sends Close and Sync), so pg's error for the lost
   * connection (the server's FATAL, then `Connection terminated unexpectedly`) is ignored and the
   * read's callback, called only at ReadyForQuery, never runs. Its `close()` waits for a
   * ReadyForQuery the same way.
   */
  #untilLost<T>(work: Promise<T>): Promise<T> {
    const client = this.#conn.client
    let onError!: (err: Error) => void
    const lost = new Promise<never>((_, reject) => {
      onError = reject
    })
    const onEnd = (): void => onError(this.#conn.brokenBy ?? new Error('the server closed the connection'))
    // an ErrorResponse once pg-cursor is `done` (its Sync sent): the implicit COMMIT failed. pg hands it
    // to the cursor, which ignores it, and clears its active query, so the read's callback never runs:
    // the error is kept and reported at the ReadyForQuery that follows (the session is idle again)
    const connection = (client as unknown as { connection: NodeJS.EventEmitter }).connection
    const onReady = (): void => onError(this.#commitError as Error)
    const onErrorMessage = (msg: unknown): void => {
      if (this.#commitError !== undefined || !this.#synced(this.#cursor!)) return
      this.#commitError = msg
      connection.once('readyForQuery', onReady)
    }
    client.on('error', onError)
    client.on('end', onEnd)
    connection.on('errorMessage', onErrorMessage)
    return Promise.race([work, lost]).finally(() => {
      client.off('error', onError)
      client.off('end', onEnd)
      connection.off('errorMessage', onErrorMessage)
      connection.off('readyForQuery', onReady)
    })
  }

  /**
   * SYNTAX_ERROR when two columns of the result share a name (pg-cursor builds rows keyed by name: one
   * value would be lost), judged from the row description that came with the first batch; see
   * resultColumnsError. A write outside a transaction (`INSERT ... RETURNING`) commits when the
   * cursor is closed, so that error says it may have committed.
   */
  #columnsError(cursor: Cursor<R>, closed = false): DatabaseError | undefined {
    const fields = (cursor as unknown as { _result?: { fields?: readonly unknown[] } })._result?.fields
    if (fields === undefined) return undefined
    // once the cursor is closed, the session's status tells what became of the statement
    // a failed implicit COMMIT leaves the session idle too: its status then proves nothing
    const answered = closed && this.#commitError === undefined
    return resultColumnsError(fields, this.#query.text, this.#inTransaction, answered ? this.#conn : undefined)
  }

  #fields(cursor: Cursor<R>): readonly unknown[] | undefined {
    return (cursor as unknown as { _result?: { fields?: readonly unknown[] } })._result?.fields
  }

  /** Closes the cursor (no row of the batch is handed out), then rejects naming the column (see unreadableError). */
  async #refuseUnreadable(found: UnreadableFound): Promise<never> {
    await this.close()
    const answered = this.#commitError === undefined && this.#conn.usable
    throw await this.#hooks.refused(unreadableError(found, this.#query.text, this.#inTransaction, answered ? this.#conn : undefined))
  }

  /**
   * Closes the cursor (no row is handed out), then rejects with the refusal, told what became of the
   * statement (committed outside a transaction; inside one, the transaction aborted: see `refused`).
   */
  async #refuse(cursor: Cursor<R>): Promise<never> {
    await this.close()
    throw await this.#hooks.refused(this.#columnsError(cursor, true)!)
  }

  /**
   * What the cursor's statement reached: outside a transaction its implicit one commits at the Sync
   * pg-cursor sends at CommandComplete (its state is then `done`), so only a loss after that may
   * leave a write committed; before it the server rolls the portal's work back with the session.
   */
  #progress(cursor: Cursor<R>): StatementProgress {
    const progress = new StatementProgress()
    const synced = this.#synced(cursor)
    progress.sent = synced
    progress.completed = synced ? 1 : 0
    progress.inTransaction = this.#inTransaction
    return progress
  }

  #closeTimeout(): DatabaseError {
    return new DatabaseError(
      'QUERY_TIMEOUT',
      `closing an unfinished cursor took longer than ${this.#hooks.closeTimeoutMs} ms (cancelTimeoutMs); the connection was closed`,
      { backend: 'postgres', retryable: false },
    )
  }
}
