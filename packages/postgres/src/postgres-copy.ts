import { PassThrough, type Readable } from 'node:stream'
import { from as copyFromStdin, to as copyToStdout } from 'pg-copy-streams'
import { DatabaseError, OUTCOME_UNKNOWN, type DatabasePool, type PoolConnection } from '@dbpool/core'
import { loneSurrogateAt, nativeWorkDone, isErrorLike } from '@dbpool/core/internal'
import { sendCancelRequest } from './postgres-cancel'
import type { PostgresConnection } from './postgres-connection'
import { CopyDeadline, type CopyOptions } from './postgres-copy-deadline'
import { startDeadline, type Deadline } from './postgres-deadline'
import { checkCopyStatement, copyToMayWrite } from './postgres-copy-statement'
import { copyFromRowFormat, ROW_FORMAT_OPTIONS, type RowFormat } from './postgres-copy-syntax'
import { mapPostgresError } from './postgres-errors'
import { notSentError, unknownOutcomeError } from './postgres-outcome'
import { requirePostgresPool } from './postgres-feature'
import { postgresParameters } from './postgres-params'

/**
 * What `copyFrom()` reads: a `Readable` (bytes or objects) or any (async) iterable of chunks. A chunk
 * is COPY data as it goes on the wire (a string, a Buffer or Uint8Array, holding whole or partial
 * lines in the statement's format) or one row as an array of values, encoded for the statement's
 * format (text or CSV; values follow `pool.query()`'s parameter contract).
 */
export type CopySource = Readable | AsyncIterable<CopyChunk> | Iterable<CopyChunk>

/** One chunk of {@link CopySource}: COPY data, or one row as an array of values. */
export type CopyChunk = string | Uint8Array | readonly unknown[]

/** Bytes of encoded rows collected before one CopyData message is written. */
const WRITE_BYTES = 64 * 1024
/**
 * Longest run of back-to-back source reads and writes before copyFrom yields to the event loop (one
 * `setImmediate`: timers and I/O run first), as a SQLite stream cuts its work into slices: a fast
 * source (an array, a generator) never waits on I/O, so without it a deadline, an abort, keepalives
 * and the pool's other work would wait for the end of the COPY.
 */
const YIELD_AFTER_MS = 4
/** Chunks between two reads of the clock (a read costs a few tens of ns; a chunk at least as much). */
const CLOCK_EVERY = 64
/** How long an aborted COPY may take to be confirmed by the server before its connection is closed. */
const SETTLE_MS = 5_000
/** The span attribute of a COPY's row count (copyTo also sets `db.response.returned_rows`). */
const ROWS_ATTRIBUTE = 'dbpool.copy.rows'
/** COPY's span: `db.operation.name` COPY however the text spells it. */
const COPY_SPAN = { operation: 'COPY' } as const
/** SQLSTATE query_canceled: the server's answer to a cancel request. */
const QUERY_CANCELED = '57014'

/**
 * Runs `COPY ... FROM STDIN` on a connection of `pool` (one lease, released whatever happens) and
 * streams `source` into it with backpressure (pg-copy-streams); resolves with the row count the
 * server reports. Rows given as arrays are encoded for the statement's format (text, or CSV when the
 * options say `csv`; with `binary`, `header` or a custom `delimiter`/`null`/`quote` write the data
 * yourself: array rows are then CONFIGURATION, since with HEADER the server would skip the first row).
 *
 * ```ts
 * const n = await copyFrom(pool, 'copy journal (id, account, amount) from stdin', rows) // rows: [1, 'cash', 100n], ...
 * await copyFrom(pool, "copy t (a, b) from stdin with (format csv)", createReadStream('t.csv'))
 * ```
 *
 * Errors (rejections): CONFIGURATION for a SQLite pool or a text that is not one `COPY ... FROM STDIN`
 * statement (see `checkCopyStatement`);
 * INVALID_PARAMETER for a row value the contract refuses (`detail.row`), an empty row `[]` (it wrote an
 * empty line: `''` in the text format, NULL in CSV) and a string chunk holding a lone UTF-16 surrogate
 * (`detail.chunk`; UTF-8 would store U+FFFD: string chunks follow the contract's string rule; a
 * surrogate pair split across two string chunks is joined, never encoded half by half); the server's error, mapped (a bad line:
 * QUERY_FAILED with `sqlState`, e.g. 22P02); QUERY_FAILED wrapping the source's own error. On every
 * error the COPY is ended (a CopyFail when the source failed: the server writes nothing) and the
 * connection is reset, or closed if the server does not confirm within 5 s. A connection lost after
 * the server reported the COPY complete (it commits before it says so) resolves with the row count:
 * the rows are in, and a rejection would invite a retry that loads them twice. A connection lost
 * before that (CONNECTION_LOST; POOL_CLOSED when `close()` revoked the lease) while the data was still
 * being sent keeps its code's retryability (nothing can have committed); once it was all sent
 * (CopyDone) the server may run on and commit: `retryable: false`, `detail.outcome` `'unknown'`.
 *
 * `options` ({@link CopyOptions}): `timeoutMs` (the wait for a connection included) and `signal`.
 * CONFIGURATION naming `copyFrom.timeoutMs`, `copyFrom.signal` or an unknown `copyFrom.<key>` and the
 * value, before anything else happens. At the deadline QUERY_TIMEOUT (ACQUIRE_TIMEOUT naming
 * `copyFrom.timeoutMs`, retryable, when it passed before a connection was had: nothing was sent), on
 * abort QUERY_CANCELLED (`cause`: the signal's reason; an already aborted signal takes no
 * connection): the source is stopped
 * (a Readable destroyed, an iterator's `return()` called) and the COPY stopped on the server. While
 * the data is still being sent the server cannot commit: the connection is closed (a cancel request
 * sent first), which aborts the COPY, so nothing is loaded. Once it was all sent (CopyDone), a cancel
 * request is sent and the server's answer awaited (up to 5 s): canceled (57014) is the timeout, the
 * COPY reported complete resolves with the row count (it committed), and no answer closes the
 * connection and rejects with QUERY_TIMEOUT / QUERY_CANCELLED with `detail.outcome` `'unknown'`
 * (check the table before loading again). The lease is released in every case.
 *
 * Given a connection handle instead of a pool (`withConnection`'s `conn`, a transaction's `tx`), the
 * COPY runs on that connection: inside a transaction it commits or rolls back with the transaction's
 * other statements (a stopped COPY then closes the connection: the transaction fails, nothing of it
 * is committed); outside one it commits at once, as with a pool. QUERY_FAILED when the connection is
 * busy (a statement or a stream of the handle still running) or the handle was released; no span.
 */
export async function copyFrom(
  target: DatabasePool | PoolConnection,
  text: string,
  source: CopySource,
  options?: CopyOptions,
): Promise<number> {
  if (isHandle(target)) return copyFromHandle(target, text, source, options)
  const db = requirePostgresPool(target, 'copyFrom')
  checkCopyStatement(text, 'from stdin', 'copyFrom')
  checkSource(source)
  const format = copyFromRowFormat(text)
  checkRowFormat(source, format)
  const deadline = new CopyDeadline('copyFrom', options)
  let lent = false
  try {
    if (deadline.stopped) throw deadline.reason
    return await db.traced(
      text,
      async (span) => {
        const rows = await db.withConnection(
          (conn) => {
            lent = true
            nameServer(span, conn.native)
            return copyIn(conn.native, text, source, format, deadline)
          },
          { signal: deadline.signal },
        )
        span.setAttribute(ROWS_ATTRIBUTE, rows)
        return rows
      },
      COPY_SPAN,
    )
  } catch (err) {
    if (lent) throw err
    // the COPY never started: its source will never be read
    stopSource(source, undefined)
    // the deadline or the signal took the caller out of the queue: report why
    throw deadline.beforeConnection(err)
  } finally {
    deadline.dispose()
  }
}

/** The span names the server the COPY's connection reached (a multi-host target: not always the first host). */
function nameServer(span: { setAttribute(key: string, value: string | number): unknown }, native: PostgresConnection): void {
  span.setAttribute('server.address', native.host)
  span.setAttribute('server.port', native.port)
}

function checkSource(source: unknown): asserts source is CopySource {
  if (source === null || typeof source !== 'object' || !(Symbol.asyncIterator in source || Symbol.iterator in source))
    throw new DatabaseError('CONFIGURATION', 'copyFrom(): source must be a Readable or an (async) iterable of chunks or rows', {
      retryable: false,
    })
}

/** A `withConnection` / transaction handle: it has a `native` connection and no `withConnection`. */
function isHandle(target: unknown): target is PoolConnection {
  const candidate = target as Partial<PoolConnection & DatabasePool> | null
  return (
    typeof candidate === 'object' &&
    candidate !== null &&
    typeof candidate.withConnection !== 'function' &&
    typeof candidate.query === 'function' &&
    'native' in candidate
  )
}

/** `copyFrom(conn or tx, ...)`: on the handle's own connection, in its transaction when one is open. */
async function copyFromHandle(conn: PoolConnection, text: string, source: CopySource, options: CopyOptions | undefined): Promise<number> {
  if (conn.backend !== 'postgres')
    throw new DatabaseError(
      'CONFIGURATION',
      `copyFrom() is a PostgreSQL feature; this connection is a ${String(conn.backend)} connection: SQLite has no COPY protocol`,
      { retryable: false, detail: { feature: 'copyFrom', backend: conn.backend } },
    )
  checkCopyStatement(text, 'from stdin', 'copyFrom')
  checkSource(source)
  const deadline = new CopyDeadline('copyFrom', options)
  try {
    if (deadline.stopped) throw deadline.reason
    // refused (QUERY_FAILED) once the handle was released
    const native = conn.native as PostgresConnection
    const client = native.client as unknown as { _activeQuery: unknown; _queryQueue: unknown[] }
    if (client._activeQuery != null || client._queryQueue.length > 0 || native.queued.length > 0)
      throw new DatabaseError(
        'QUERY_FAILED',
        'copyFrom() refused: the connection is busy (a statement or a stream of this handle is still running); await it or finish the stream first',
        { backend: 'postgres', retryable: false },
      )
    const autoCommit = native.client.getTransactionStatus() === 'I'
    const format = copyFromRowFormat(text)
    checkRowFormat(source, format)
    const rows = await copyIn(native, text, source, format, deadline, autoCommit)
    // readYourWrites: recorded before the caller resumes (a read-lane read later in the callback sees it)
    await nativeWorkDone(conn)
    return rows
  } catch (err) {
    stopSource(source, undefined)
    throw err
  } finally {
    deadline.dispose()
  }
}

/**
 * `autoCommit`: no transaction is open, so the server commits at CommandComplete (the committed
 * window rules apply); inside one nothing commits before the transaction does.
 */
async function copyIn(
  native: PostgresConnection,
  text: string,
  source: CopySource,
  format: RowFormat,
  deadline: CopyDeadline,
  autoCommit = true,
): Promise<number> {
  if (deadline.stopped) {
    stopSource(source, undefined)
    throw deadline.reason
  }
  const copy = native.submit(copyFromStdin(text))
  // The server commits an auto-commit COPY before it sends CommandComplete (exec_simple_query ends the
  // transaction, then reports the command), and pg-copy-streams settles only at ReadyForQuery: a
  // connection lost between the two must not report committed rows as failed (a retry would load
  // them twice). Inside a transaction (`copyFrom(tx, ...)`) CommandComplete commits nothing.
  let committed = false
  const hooks = copy as unknown as { handleCommandComplete(msg: unknown): void }
  const onCommandComplete = hooks.handleCommandComplete.bind(copy)
  hooks.handleCommandComplete = (msg: unknown): void => {
    committed = autoCommit
    onCommandComplete(msg)
  }
  let serverError: unknown
  let interrupt: ((err: unknown) => void) | undefined
  const finished = new Promise<void>((resolve, reject) => {
    copy.once('finish', resolve)
    copy.on('error', (err) => {
      serverError ??= err
      reject(err)
      interrupt?.(err)
    })
  })
  finished.catch(() => undefined)
  const unwatch = deadline.onStop((reason) => interrupt?.(reason))
  // `wait`, or the server's error as soon as it comes, or the deadline / abort: a server error (the
  // COPY refused, a bad line) ends a wait for the source's next chunk, for a drain or for the server's
  // answer, so a slow or idle source does not hold the lease and the rejection until it produces one.
  // One wait at a time; nothing is left attached to a long-lived promise per chunk (a Promise.race
  // against `finished` would keep one reaction per chunk until the COPY ends).
  const untilServerError = <T>(wait: Promise<T>): Promise<T> => {
    if (serverError !== undefined) return Promise.reject(serverError as Error)
    if (deadline.stopped) return Promise.reject(deadline.reason)
    return new Promise<T>((resolve, reject) => {
      interrupt = reject
      wait.then(
        (value) => {
          interrupt = undefined
          resolve(value)
        },
        (err: unknown) => {
          interrupt = undefined
          reject(err)
        },
      )
    })
  }
  const write = async (chunk: Uint8Array): Promise<void> => {
    if (serverError !== undefined) throw serverError
    if (!copy.write(chunk)) await untilServerError(new Promise((resolve) => copy.once('drain', resolve)))
  }
  const chunks = iterate(source)
  try {
    let pending = ''
    // a high surrogate ending a string chunk, held back: its low half may start the next string chunk
    // (encoding it alone, at a flush, wrote U+FFFD for each half of the pair)
    let carry = ''
    let chunkNumber = 0
    let row = 0
    let sliceStart = performance.now()
    let sinceClock = 0
    for (;;) {
      if (++sinceClock >= CLOCK_EVERY) {
        sinceClock = 0
        if (performance.now() - sliceStart >= YIELD_AFTER_MS) {
          // a deadline or an abort that fires meanwhile ends the wait (untilServerError)
          await untilServerError(nextTurn())
          sliceStart = performance.now()
        }
      }
      const step = await untilServerError(chunks.next())
      if (step.done === true) break
      const chunk: unknown = step.value
      if (serverError !== undefined) throw serverError
      chunkNumber++
      if (typeof chunk === 'string') {
        const text = carry === '' ? chunk : carry + chunk
        carry = endsWithHighSurrogate(text) ? text.slice(-1) : ''
        const body = carry === '' ? text : text.slice(0, -1)
        if (!(body as string & { isWellFormed(): boolean }).isWellFormed()) throw loneSurrogateChunk(chunkNumber, body)
        pending += body
      } else {
        if (carry !== '') throw loneSurrogateChunk(chunkNumber - 1, carry)
        if (chunk instanceof Uint8Array) {
          if (pending) await write(Buffer.from(pending))
          pending = ''
          await write(chunk)
          continue
        } else if (Array.isArray(chunk)) pending += encodeRow(chunk as unknown[], format, ++row)
        else throw badChunk(chunk)
      }
      if (pending.length >= WRITE_BYTES) {
        await write(Buffer.from(pending))
        pending = ''
      }
    }
    if (carry !== '') throw loneSurrogateChunk(chunkNumber, carry)
    if (pending) await write(Buffer.from(pending))
    copy.end()
    await untilServerError(finished)
    return copy.rowCount
  } catch (err) {
    stopSource(source, chunks)
    const fromServer = serverError
    if (committed && fromServer !== undefined) {
      native.markBroken(new DatabaseError('CONNECTION_LOST', 'the connection was lost after the COPY committed', { backend: 'postgres' }))
      return copy.rowCount
    }
    // the connection went mid-COPY (socket lost, or close() revoked the lease): not a server's answer
    if (fromServer !== undefined && !hasSqlState(fromServer) && !native.usable) throw lostError(native, copy, fromServer, autoCommit)
    const stop = deadline.reason
    if (fromServer === undefined && stop !== undefined && err === stop) {
      // still waiting its turn behind a statement on the connection: taken out, never sent, the connection kept
      if (native.unqueue(copy)) throw notSentError(stop)
      if (!autoCommit) {
        // nothing commits before the transaction does: the connection goes, and the transaction with it
        native.markBroken(stop)
        void cancel(native)
        native.kill()
        throw stop
      }
      return await stopCopy(
        native,
        copy,
        stop,
        finished,
        () => committed,
        () => serverError,
      )
    }
    // the source (or a row's encoding) failed: the server must hear of it (its answer to the CopyFail is not the error)
    if (fromServer === undefined) await abort(native, copy, err)
    throw copyError(native, fromServer ?? err)
  } finally {
    unwatch()
  }
}

/**
 * The deadline passed or the signal aborted mid-COPY. Before CopyDone the server cannot commit: the
 * connection is closed (after a cancel request, for a server busy with the data it has). After it,
 * the server may be committing: it is asked to cancel and its answer awaited (see `copyFrom()`).
 */
async function stopCopy(
  native: PostgresConnection,
  copy: ReturnType<typeof copyFromStdin>,
  reason: DatabaseError,
  finished: Promise<void>,
  committed: () => boolean,
  serverError: () => unknown,
): Promise<number> {
  if (!copyDoneSent(copy) && !committed()) {
    native.markBroken(reason)
    void cancel(native)
    native.kill()
    throw reason
  }
  const cancelling = committed() ? undefined : cancel(native)
  // the statements issued behind the COPY wait for the server's confirmation: a cancel landing after
  // the COPY completed must never hit the next one
  if (cancelling !== undefined) native.holdForCancel(cancelling)
  const answered = await settles(finished.catch(() => undefined))
  if (!answered) closeBroken(native, 'the server did not answer a COPY stopped after all its data was sent')
  // a cancel still in flight could hit the next statement on this connection: confirmed, or the connection goes
  if (cancelling && native.usable && !(await cancelling)) native.markBroken(new Error('a cancel request was not confirmed by the server'))
  // the server reported the COPY complete: it committed, whatever the deadline says
  if (committed()) return copy.rowCount
  const fromServer = serverError()
  if (answered && fromServer !== undefined && (fromServer as { code?: unknown }).code !== QUERY_CANCELED)
    throw copyError(native, fromServer)
  if (answered) throw reason
  throw new DatabaseError(
    reason.code,
    `${reason.message}; all its data had been sent and the server did not answer the cancel within ${SETTLE_MS} ms: whether the rows were committed is unknown (check before loading them again); the connection was closed`,
    { backend: 'postgres', retryable: false, cause: reason.cause, detail: { ...reason.detail, outcome: 'unknown' } },
  )
}

/** Resolves on the event loop's next check phase, after the timers and I/O due now. */
function nextTurn(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve))
}

/** Whether CopyDone was (or is being) written: pg-copy-streams' `_final` sets `cb_ReadyForQuery` before it writes it. */
function copyDoneSent(copy: ReturnType<typeof copyFromStdin>): boolean {
  return (copy as unknown as { cb_ReadyForQuery: unknown }).cb_ReadyForQuery != null
}

/**
 * The connection was lost mid-COPY before the server reported it complete: `err` is pg's error for
 * it (no SQLSTATE). POOL_CLOSED when the pool closed it (`close()` revoked the lease: the connection
 * was closed by dbpool, not lost), else CONNECTION_LOST. Before CopyDone, or inside a transaction,
 * nothing can have committed (the server aborts an unfinished COPY, and rolls back the transaction
 * of a dead session): the error keeps its code's retryability. After CopyDone in auto-commit the
 * server may run on without its client and commit: `retryable: false`, `detail.outcome` `'unknown'`.
 */
function lostError(native: PostgresConnection, copy: ReturnType<typeof copyFromStdin>, err: unknown, autoCommit: boolean): DatabaseError {
  const base = lostBase(native, err)
  if (!autoCommit || !copyDoneSent(copy)) return base
  return new DatabaseError(
    base.code,
    `${base.message}; all the COPY's data had been sent: the server may have committed the rows, its outcome is unknown (check the table before loading them again)`,
    { backend: 'postgres', retryable: false, cause: base.cause ?? err, detail: { ...base.detail, outcome: OUTCOME_UNKNOWN } },
  )
}

/**
 * The error of a COPY whose connection went mid-way (`err`: pg's error for it, no SQLSTATE):
 * POOL_CLOSED when the pool closed it (`close()` revoked the lease), else CONNECTION_LOST.
 */
function lostBase(native: PostgresConnection, err: unknown): DatabaseError {
  // only the pool's destroy closes a leased connection (close() revoking its lease); a loss leaves `closing` false
  return native.closing
    ? new DatabaseError('POOL_CLOSED', 'the pool was closed during the COPY: close() revoked its lease and closed the connection', {
        backend: 'postgres',
        retryable: false,
        cause: err,
      })
    : mapPostgresError(err, { connectionBroken: true })
}

function hasSqlState(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code
  return typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)
}

/** Asks the server to cancel what runs on `native` (on a socket of its own); true once the server confirmed. */
function cancel(native: PostgresConnection): Promise<boolean> {
  const { processId, secretKey } = native
  if (processId === null || secretKey === null) return Promise.resolve(false)
  return sendCancelRequest({ host: native.address, port: native.port, processId, secretKey }, SETTLE_MS).then(
    () => true,
    () => false,
  )
}

/** The source's chunks as one async iterator (a sync iterable's `next()` throwing becomes a rejection). */
function iterate(source: CopySource): AsyncIterator<unknown> {
  if (Symbol.asyncIterator in source) return (source as AsyncIterable<unknown>)[Symbol.asyncIterator]()
  const iterator = (source as Iterable<unknown>)[Symbol.iterator]()
  return {
    next: async () => iterator.next(),
    return: async (value?: unknown) => iterator.return?.(value) ?? { done: true, value },
  }
}

/**
 * The COPY failed or the loop left early: the source is stopped as `for await` would stop it, without
 * waiting (a `next()` may still be pending, behind which an async generator's `return()` queues): a
 * Readable is destroyed, an iterator's `return()` is called.
 */
function stopSource(source: CopySource, chunks: AsyncIterator<unknown> | undefined): void {
  const readable = source as Partial<Readable>
  if (typeof readable.destroy === 'function') {
    if (readable.destroyed !== true) readable.destroy()
    return
  }
  // never iterated: an iterator given as the source (a generator) is stopped all the same
  const maybe = source as Partial<AsyncIterator<unknown>>
  const iterator = chunks ?? (typeof maybe.next === 'function' ? (maybe as AsyncIterator<unknown>) : undefined)
  iterator?.return?.()?.catch?.(() => undefined)
}

/** The source (or encoding) failed: CopyFail ends the COPY; the server's answer is awaited, or the connection closed. */
async function abort(native: PostgresConnection, copy: ReturnType<typeof copyFromStdin>, reason: unknown): Promise<void> {
  if (copy.destroyed) return
  const closed = new Promise<void>((resolve) => copy.once('close', () => resolve()))
  copy.on('error', () => undefined)
  copy.destroy(isErrorLike(reason) ? reason : new Error(String(reason)))
  if (!(await settles(closed))) closeBroken(native, 'the server did not confirm the end of an aborted COPY')
}

/**
 * Runs `COPY ... TO STDOUT` on a connection of `pool` and returns its data as a `Readable` of
 * Buffers (pg-copy-streams), with backpressure: the server's data is read from the socket only as
 * fast as the consumer reads. The Readable ends once the server reported the COPY complete
 * (CommandComplete: a writing query has committed then). The lease is taken at once and released
 * when the data ends, the COPY fails, or the consumer destroys the Readable early (the connection,
 * mid-COPY, is then closed; a writing query's outcome is then unknown).
 *
 * ```ts
 * await pipeline(copyTo(pool, 'copy (select * from journal order by id) to stdout with (format csv)'), createWriteStream('journal.csv'))
 * ```
 *
 * `options` ({@link CopyOptions}): `timeoutMs` runs from the call (the wait for a connection
 * included) until the server's last data was read from the socket, so a consumer that stops reading
 * holds it up; at the deadline the Readable fails with QUERY_TIMEOUT (ACQUIRE_TIMEOUT naming
 * `copyTo.timeoutMs` when no connection was had by then: nothing sent), on abort with QUERY_CANCELLED
 * (`cause`: the signal's reason): a cancel request is sent and the connection closed (never reused
 * mid-COPY), the lease released.
 *
 * Errors (the Readable's `error`): the server's error, mapped (e.g. a statement failing mid-way, a
 * commit refused): a definite failure, nothing committed; CONNECTION_LOST (POOL_CLOSED when
 * `close()` revoked the lease), ACQUIRE_TIMEOUT as for `pool.query()`; QUERY_TIMEOUT, QUERY_CANCELLED.
 * The COPY runs in auto-commit: when its session ends after it was sent and before the server
 * reported it complete (connection lost, closed at the deadline or on abort) and its query may
 * write (`COPY (INSERT / UPDATE / DELETE ... RETURNING ...)`, a `WITH` holding one, a call the strict
 * classifier of `readRouting: 'auto'` does not know: see `copyToMayWrite`), the server may have
 * committed it: same code, `retryable: false`, `detail.outcome` `'unknown'` (check before running it
 * again). A COPY of a table and a known read-only `COPY (query)` keep their code's retryability. Thrown at once:
 * CONFIGURATION for a SQLite pool, a text that is not one `COPY ... TO STDOUT` statement (see
 * `checkCopyStatement`), or invalid options (naming `copyTo.timeoutMs`, `copyTo.signal` or an unknown
 * `copyTo.<key>`, and the value).
 */
export function copyTo(pool: DatabasePool, text: string, options?: CopyOptions): Readable {
  const db = requirePostgresPool(pool, 'copyTo')
  checkCopyStatement(text, 'to stdout', 'copyTo')
  const deadline = new CopyDeadline('copyTo', options)
  const out = new PassThrough()
  if (deadline.stopped) {
    out.destroy(deadline.reason)
    return out
  }
  let lent = false
  db.traced(
    text,
    async (span) => {
      const rows = await db.withConnection(
        async (conn) => {
          lent = true
          nameServer(span, conn.native)
          const outcome = await copyOut(conn.native, text, out, deadline, () => nativeWorkDone(conn))
          if (typeof outcome !== 'number') throw outcome
          return outcome
        },
        { signal: deadline.signal },
      )
      span.setAttribute('db.response.returned_rows', rows)
      span.setAttribute(ROWS_ATTRIBUTE, rows)
    },
    COPY_SPAN,
  )
    .catch((err: unknown) => {
      // the deadline or the signal took the caller out of the queue: report why
      const error =
        !lent && deadline.reason ? (deadline.beforeConnection(err) as DatabaseError) : DatabaseError.is(err) ? err : mapPostgresError(err)
      if (!out.destroyed) out.destroy(error)
    })
    .finally(() => deadline.dispose())
  return out
}

/**
 * Pipes the COPY's data into `out`; resolves (never rejects) once the lease may be released: with the
 * row count when the COPY ended (or the consumer stopped early: the rows sent so far), else with the
 * error `out` was destroyed with. `out` ends only once the server reported the COPY complete
 * (CommandComplete: an auto-commit COPY has committed then), so a failure after its last data (a
 * commit refused, a connection lost before the commit was confirmed) reaches the consumer.
 *
 * When the session ends (connection lost, closed at the deadline) after the COPY was sent and before
 * the server reported it complete, and its query may write ({@link copyToMayWrite}), the server may
 * have committed: the error is restated by `unknownOutcomeError` (`retryable: false`,
 * `detail.outcome: 'unknown'`). The server's ErrorResponse before completing it (57P01 included) is a
 * definite failure: nothing committed.
 *
 * `recordWrite`: called once the COPY completed when its query may write; `out` ends after the promise
 * it returns (`readYourWrites` records the write position: a read-lane read right after the end sees it).
 */
function copyOut(
  native: PostgresConnection,
  text: string,
  out: PassThrough,
  deadline: CopyDeadline,
  recordWrite: () => Promise<void> | undefined,
): Promise<number | DatabaseError> {
  if (out.destroyed) return Promise.resolve(0)
  if (deadline.reason) {
    out.destroy(deadline.reason)
    return Promise.resolve(deadline.reason)
  }
  const mayWrite = copyToMayWrite(text)
  const copy = native.submit(copyToStdout(text))
  // The server commits an auto-commit COPY before it sends CommandComplete; after it, all the data
  // was read from the socket (CopyDone comes first) and nothing can fail the COPY any more
  let completed = false
  const hooks = copy as unknown as { handleCommandComplete(msg: unknown): void }
  const onCommandComplete = hooks.handleCommandComplete.bind(copy)
  hooks.handleCommandComplete = (msg: unknown): void => {
    completed = true
    onCommandComplete(msg)
  }
  return new Promise<number | DatabaseError>((resolve) => {
    // 'data': the server's data is being read; 'confirming': all of it was read, the server's
    // CommandComplete and ReadyForQuery are awaited; 'done': settled
    let phase: 'data' | 'confirming' | 'done' = 'data'
    // an error that came once the data was all read, or after CommandComplete
    let late: unknown
    let confirmTimer: Deadline | undefined
    const connection = (native.client as unknown as { connection: NodeJS.EventEmitter }).connection
    const fail = (error: DatabaseError): void => {
      phase = 'done'
      unwatch()
      out.destroy(error)
      resolve(error)
    }
    const unwatch = deadline.onStop((reason) => {
      // after CommandComplete all the data was read from the socket: the deadline's span is over
      if (phase !== 'data' || completed) return
      // still waiting its turn behind a statement on the connection: taken out, never sent, the connection kept
      if (native.unqueue(copy)) {
        copy.unpipe(out)
        fail(notSentError(reason))
        return
      }
      // the server would keep sending: it is asked to cancel and this connection is never reused
      copy.unpipe(out)
      native.markBroken(reason)
      void cancel(native)
      native.kill()
      fail(mayWrite ? unknownOutcomeError(reason, text) : reason)
    })
    const confirmed = (): void => {
      if (phase !== 'confirming') return
      phase = 'done'
      confirmTimer?.clear()
      connection.removeListener('readyForQuery', confirmed)
      // the server refused the COPY after its data (a commit failing), or the session ended before it
      // reported the COPY complete: a write may have committed; a read has all its data
      const error =
        late === undefined || completed || (!mayWrite && !hasSqlState(late)) ? undefined : copyToError(native, late, text, mayWrite, true)
      if (error !== undefined) {
        out.destroy(error)
        resolve(error)
        return
      }
      // readYourWrites: a query that may write has its position recorded before the consumer sees the end
      const recording = mayWrite ? recordWrite() : undefined
      if (recording === undefined) end()
      else void recording.then(end, end)
    }
    const end = (): void => {
      if (!out.destroyed) out.end()
      resolve(copy.rowCount)
    }
    copy.on('error', (err) => {
      if (phase === 'done') return
      if (phase === 'confirming' || completed) {
        // judged once the data was all read (a loss after CommandComplete changes nothing: it committed)
        late ??= err
        confirmed()
        return
      }
      fail(copyToError(native, err, text, mayWrite, false))
    })
    copy.once('end', () => {
      if (phase !== 'data') return
      phase = 'confirming'
      unwatch()
      // ended once the server said ReadyForQuery (the release would otherwise queue a ROLLBACK), or
      // failed; a server that says nothing within 5 s loses its connection
      if (late !== undefined || !native.usable || (native.client as unknown as { readyForQuery: boolean }).readyForQuery) {
        if (!native.usable) late ??= new Error('the connection was lost before the server reported the COPY complete')
        confirmed()
        return
      }
      connection.once('readyForQuery', confirmed)
      // an answer that arrived while the event loop was blocked is read before the timer judges (startDeadline)
      confirmTimer = startDeadline(SETTLE_MS, () => {
        const silent = new DatabaseError(
          'CONNECTION_LOST',
          `the server did not report the COPY complete within ${SETTLE_MS} ms; the connection was closed`,
          {
            backend: 'postgres',
          },
        )
        native.markBroken(silent)
        native.kill()
        late ??= silent
        confirmed()
      })
    })
    out.once('close', () => {
      if (phase !== 'data') return
      phase = 'done'
      unwatch()
      // the consumer stopped mid-COPY: the server would keep sending; this connection cannot be reused
      copy.unpipe(out)
      closeBroken(native, 'the consumer of copyTo() stopped reading before the end of the COPY')
      resolve(copy.rowCount)
    })
    copy.pipe(out, { end: false })
  })
}

/**
 * The error of a copyTo whose COPY failed with `err` (`afterData`: once all its data was read). The
 * server's ErrorResponse is a definite failure (it did not complete the COPY, so it committed
 * nothing); a lost session (no SQLSTATE: the socket, or `close()` revoking the lease, POOL_CLOSED)
 * is restated as outcome unknown when the query may write, else keeps its code's retryability.
 */
function copyToError(native: PostgresConnection, err: unknown, text: string, mayWrite: boolean, afterData: boolean): DatabaseError {
  if (hasSqlState(err) || (native.usable && !afterData && !DatabaseError.is(err))) return copyError(native, err)
  const base = DatabaseError.is(err) ? err : lostBase(native, err)
  native.abortedBy = base
  return mayWrite ? unknownOutcomeError(base, text) : base
}

/** One row in COPY's text format (tab-separated, `\N` for NULL, backslash escapes) or CSV (every value quoted, NULL unquoted empty). */
function encodeRow(values: unknown[], rowFormat: RowFormat, row: number): string {
  if (rowFormat.format === 'raw') throw arrayRowsRefused(rowFormat.reason)
  const format = rowFormat.format
  // an empty row wrote an empty line: one '' value in the text format, NULL in CSV (a missing value stored)
  if (values.length === 0)
    throw new DatabaseError(
      'INVALID_PARAMETER',
      `copyFrom() row ${row} is an empty array: a row needs one value per column (null for NULL); nothing was written`,
      { backend: 'postgres', retryable: false, detail: { row } },
    )
  let converted: readonly unknown[]
  try {
    converted = postgresParameters(values)
  } catch (err) {
    if (DatabaseError.is(err))
      throw new DatabaseError(err.code, `copyFrom() row ${row}: ${err.message}`, {
        backend: 'postgres',
        retryable: false,
        detail: { ...err.detail, row },
      })
    throw err
  }
  let line = ''
  for (let i = 0; i < converted.length; i++) {
    if (i > 0) line += format === 'csv' ? ',' : '\t'
    line += format === 'csv' ? csvField(converted[i]) : textField(converted[i])
  }
  return line + '\n'
}

/**
 * Array rows for a statement whose options {@link copyFromRowFormat} does not accept: CONFIGURATION,
 * `detail.reason` (thrown before the COPY is sent for an array source holding an array row, else at
 * the first array row: the COPY is then aborted, nothing written).
 */
function arrayRowsRefused(reason: string): DatabaseError {
  return new DatabaseError(
    'CONFIGURATION',
    `copyFrom(): rows given as arrays are encoded only for the text and CSV formats with no option that changes how the server reads them (${ROW_FORMAT_OPTIONS}); this statement has ${reason}: write the data as strings or Buffers. Nothing was written`,
    { backend: 'postgres', retryable: false, detail: { reason } },
  )
}

/** Refuses an array source holding array rows before anything is sent when the statement's options cannot encode them. */
function checkRowFormat(source: CopySource, format: RowFormat): void {
  if (format.format === 'raw' && Array.isArray(source) && source.some((chunk) => Array.isArray(chunk)))
    throw arrayRowsRefused(format.reason)
}

function plain(value: unknown): string {
  if (typeof value === 'boolean') return value ? 't' : 'f'
  if (value instanceof Uint8Array) return `\\x${Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')}`
  return String(value)
}

function textField(value: unknown): string {
  if (value === null || value === undefined) return '\\N'
  return plain(value).replace(/[\\\n\r\t]/g, (c) => (c === '\\' ? '\\\\' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : '\\t'))
}

function csvField(value: unknown): string {
  if (value === null || value === undefined) return ''
  return `"${plain(value).replace(/"/g, '""')}"`
}

function endsWithHighSurrogate(text: string): boolean {
  const last = text.charCodeAt(text.length - 1)
  return last >= 0xd800 && last <= 0xdbff
}

/**
 * A string chunk holding a lone UTF-16 surrogate (one not completed by the next string chunk either):
 * UTF-8 would store U+FFFD instead, so it is refused as the same string in an array row or a
 * parameter is (INVALID_PARAMETER, `detail.chunk`: the 1-based chunk number).
 */
function loneSurrogateChunk(chunk: number, text: string): DatabaseError {
  const at = loneSurrogateAt(text)
  return new DatabaseError(
    'INVALID_PARAMETER',
    `copyFrom() chunk ${chunk}: a string chunk holds a lone UTF-16 surrogate${at === -1 ? ' at its end, not completed by the next string chunk' : ` at offset ${at}`}, which UTF-8 would silently replace with U+FFFD; the COPY was aborted and wrote nothing`,
    { backend: 'postgres', retryable: false, detail: { chunk } },
  )
}

function badChunk(chunk: unknown): DatabaseError {
  return new DatabaseError(
    'INVALID_PARAMETER',
    `copyFrom(): a chunk must be a string, a Buffer/Uint8Array or an array of values (one row), got ${chunk === null ? 'null' : typeof chunk}`,
    { backend: 'postgres', retryable: false },
  )
}

function copyError(native: PostgresConnection, err: unknown): DatabaseError {
  const error = DatabaseError.is(err)
    ? err
    : hasSqlState(err) || !native.usable
      ? mapPostgresError(err, { connectionBroken: !native.usable })
      : new DatabaseError(
          'QUERY_FAILED',
          `the COPY source failed: ${isErrorLike(err) ? err.message : String(err)}; the COPY was aborted and wrote nothing`,
          { backend: 'postgres', retryable: false, cause: err },
        )
  // a failed COPY aborts the open transaction: a later statement's 25P02 names it as its cause
  native.abortedBy = error
  return error
}

function closeBroken(native: PostgresConnection, why: string): void {
  native.markBroken(new DatabaseError('CONNECTION_LOST', `${why}; the connection was closed`, { backend: 'postgres' }))
  native.kill()
}

/** True when `promise` settles within {@link SETTLE_MS}. */
async function settles(promise: Promise<unknown>): Promise<boolean> {
  let timer: Deadline | undefined
  // an answer already received is read before the deadline judges (startDeadline)
  const late = new Promise<false>((resolve) => (timer = startDeadline(SETTLE_MS, () => resolve(false))))
  try {
    return await Promise.race([promise.then(() => true as const), late])
  } finally {
    timer?.clear()
  }
}
