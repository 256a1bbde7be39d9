import { Query, type Client, type QueryResult as PgQueryResult } from 'pg'
import { rememberColumns, sharesColumnName } from './postgres-columns'
import type { PostgresConnection } from './postgres-connection'
import type { StatementProgress } from './postgres-outcome'
import type { CachedStatement, StatementCache, StatementDescription } from './postgres-statement-cache'
import { queryDdlOfText } from './postgres-statement-traits'

/** What pg answers for one statement text: one result, or one per statement of a multi-statement text. */
export type PgAnswer = PgQueryResult | PgQueryResult[]

/** The pg Connection methods a statement writes with (pg's Connection, typed by the subset used). */
interface PgWire {
  readonly stream: { cork?: () => void; uncork?: () => void }
  close(msg: { type: 'S'; name: string }): void
  parse(msg: { text: string; name: string; types: unknown }): void
  bind(msg: { portal: string; statement: string; values: unknown[]; binary: boolean; valueMapper: (value: unknown) => unknown }): void
  describe(msg: { type: 'P'; name: string }): void
  sync(): void
  readonly submittedNamedStatements: Record<string, string | undefined>
}

/** The pg Query members a statement uses or overrides (stable since pg 8.0, undeclared in @types/pg). */
interface PgQueryInternals {
  text: string
  values: unknown[]
  name: string | undefined
  types: unknown
  portal: string
  binary: boolean
  callback: ((err: Error | null, result?: PgAnswer) => void) | undefined
  hasBeenParsed(connection: PgWire): boolean
  handleRowDescription(msg: StatementDescription): void
  handleCommandComplete(msg: { text?: string }, connection: PgWire): void
  handleError(err: Error, connection: PgWire): void
  submit(connection: PgWire): Error | null
  _getRows(connection: PgWire, rows: number | undefined): void
  _accumulateRows: unknown
  readonly _result: PgResultInternals
}

/** What pg's Result builds from a row description (`addFields`) and reads for every row. */
interface PgResultInternals {
  fields: readonly unknown[]
  _parsers: readonly unknown[] | undefined
  _prebuiltEmptyResultObject: object | null
}

/** pg's Query, constructed from a text and values (a config object would be copied property by property). */
const PgQuery = Query as unknown as new (text: string, values: unknown[]) => PgQueryInternals

const NO_FIELDS: StatementDescription = Object.freeze({ fields: Object.freeze([]) })

/**
 * The rejection of a statement run again after its named statement was prepared again (see
 * `runStatement`'s `onlyWhenIdle`) that was not sent: when its turn came, the connection was inside
 * a transaction, where the run would have joined (and shared the fate of) someone else's work.
 */
export class RerunRefused extends Error {
  constructor() {
    super('not run again: the connection was inside a transaction when its turn came')
    this.name = 'RerunRefused'
  }
}

/**
 * One statement as pg's Query runs it, plus what the statement cache needs: the names to Close
 * written in front of it, no Describe for a named statement whose row description is known (as
 * postgres.js does: its answer is then Bind, Execute and Sync only), and the command tags that drop
 * prepared statements on the server (`DEALLOCATE`, `DISCARD ALL`). A subclass of pg's Query, so pg
 * accepts it in pipeline mode too.
 */
class PgStatement extends PgQuery {
  readonly #entry: CachedStatement | undefined
  readonly #cache: StatementCache | undefined
  readonly #client: Client
  readonly #progress: StatementProgress | undefined
  /** Sent only if the connection is idle (`I`) when pg writes it: a run again of a statement that failed outside a transaction. */
  readonly #onlyWhenIdle: boolean
  /** The cache generation of the named statement as this run was written, and whether it sent Describe. */
  #describedIn: number | undefined
  /** The row description this run received (from its Describe). */
  described: StatementDescription | undefined
  /** This run sent Parse (the statement was not parsed on the connection before it). */
  parsing = false
  /**
   * The server answered this run's Bind with BindComplete (see {@link trackBindComplete}): from then
   * on, the statement may have executed. An error before it was raised at Bind.
   */
  bound = false

  constructor(
    client: Client,
    text: string,
    values: unknown[],
    entry: CachedStatement | undefined,
    cache: StatementCache | undefined,
    progress: StatementProgress | undefined,
    onlyWhenIdle: boolean,
  ) {
    super(text, values)
    if (entry !== undefined) this.name = entry.name
    this.#client = client
    this.#entry = entry
    this.#cache = cache
    this.#progress = progress
    this.#onlyWhenIdle = onlyWhenIdle
  }

  /**
   * pg's submit (called when pg writes the statement), noting in `progress` that it was sent and in
   * which transaction status. With `onlyWhenIdle`, nothing is written unless the status is `I`: pg
   * then fails the statement with {@link RerunRefused} (its handleError, on the next tick).
   */
  override submit(connection: PgWire): Error | null {
    if (this.#progress?.withdrawn !== undefined) return this.#progress.withdrawn
    if (this.#onlyWhenIdle && this.#client.getTransactionStatus() !== 'I') return new RerunRefused()
    const refused = super.submit(connection)
    const progress = this.#progress
    if (refused == null && (progress !== undefined || this.parsing)) {
      const status = this.#client.getTransactionStatus()
      const inTransaction = status === 'T' || status === 'E'
      if (progress !== undefined) {
        progress.sent = true
        progress.inTransaction = inTransaction
        progress.aborted = status === 'E'
      }
      if (this.parsing && this.#entry !== undefined) this.#cache?.parsed(this.#entry, inTransaction)
    }
    return refused
  }

  /** This is a run of the statement whose progress `progress` records. */
  runs(progress: StatementProgress): boolean {
    return this.#progress === progress
  }

  /**
   * pg's Query.prepare (Parse unless parsed, Bind, Describe, Execute, Sync), with the cache's pending
   * Close messages in front, a Close of the name in front of its Parse, and Describe only when needed.
   */
  prepare(connection: PgWire): void {
    const cache = this.#cache
    const entry = this.#entry
    const closing = cache?.takeClosing()
    if (closing !== undefined) for (const name of closing) connection.close({ type: 'S', name })
    // invalidated while it waited in pg's queue (a DEALLOCATE ALL, a changed result type reported
    // before it): parsed again now, instead of a round trip that fails
    if (entry !== undefined) cache?.refreshStale(entry)
    const name = this.name
    if (!this.hasBeenParsed(connection)) {
      // a name dropped by dbpool but perhaps alive on the server (or parsed by another client, behind a
      // pooler) is closed first: Parse of an existing name would fail with 42P05
      if (name) connection.close({ type: 'S', name })
      this.parsing = true
      connection.parse({ text: this.text, name: name ?? '', types: this.types })
      if (name) connection.submittedNamedStatements[name] = this.text
    }
    try {
      connection.bind({ portal: this.portal, statement: name ?? '', values: this.values, binary: this.binary, valueMapper: wireValue })
    } catch (err) {
      // unreachable for converted parameters; unlike pg, the named statement is kept (its Parse may have succeeded)
      connection.sync()
      this.handleError(err as Error, connection)
      return
    }
    const known = entry?.description
    if (known === undefined || this.binary) {
      connection.describe({ type: 'P', name: this.portal })
      this.#describedIn = entry?.generation
    } else if (known.fields.length > 0) this.#describedBefore(known)
    this._getRows(connection, undefined)
  }

  /** As if the server had sent the kept row description: pg's Result gets the parsers built for it before. */
  #describedBefore(known: StatementDescription): void {
    const result = this._result
    if (known.parsers === undefined || known.emptyRow === undefined) {
      super.handleRowDescription(known)
      return
    }
    // what Result.addFields would build again, identical for every run of this statement on this connection
    result.fields = known.fields
    result._parsers = known.parsers
    result._prebuiltEmptyResultObject = known.emptyRow
    // as handleRowDescription does for a query with a callback
    this._accumulateRows = true
  }

  override handleRowDescription(msg: StatementDescription): void {
    this.described = msg
    super.handleRowDescription(msg)
  }

  override handleCommandComplete(msg: { text?: string }, connection: PgWire): void {
    const tag = msg.text
    const cache = this.#cache
    if (cache !== undefined && tag !== undefined) {
      const first = tag.charCodeAt(0)
      // 'DEALLOCATE', 'DEALLOCATE ALL', 'DISCARD ALL': the server dropped prepared statements
      if (first === 68 && droppedStatements(tag)) cache.invalidateAll()
      // 'ALTER TABLE', 'DROP VIEW', 'CREATE TABLE', 'DO', 'CALL', 'IMPORT FOREIGN SCHEMA'...: cached statements may see stale objects or types
      else if (first === 65 || first === 67 || first === 68 || first === 73) {
        const change = schemaChangeOf(tag, this.text)
        if (change !== undefined) cache.schemaChanged(change === 'everywhere')
      }
      // 'SELECT n' of CREATE TABLE ... AS, SELECT ... INTO, CREATE MATERIALIZED VIEW ('EXPLAIN' of one):
      // the text's traits (a field of a named statement's entry; an unnamed one's text is read only when
      // it holds the word CREATE or INTO: see queryDdlOfText)
      else if ((first === 83 || first === 69) && (tag.startsWith('SELECT') || tag === 'EXPLAIN')) {
        const change = this.#entry !== undefined ? this.#entry.traits.queryDdl : queryDdlOfText(this.text)
        if (change !== undefined) cache.schemaChanged(change === 'everywhere')
      }
    }
    if (this.#progress !== undefined) this.#progress.completed++
    super.handleCommandComplete(msg, connection)
  }

  /** After a successful run: remember the row description of a named statement, and what pg built from it. */
  remember(): void {
    const entry = this.#entry
    // only a run that described the statement as it is parsed now: a run sent before the statement was
    // parsed again (pipelined) described, or skipped describing, the old one
    if (entry === undefined || entry.description !== undefined || this.#describedIn !== entry.generation) return
    const described = this.described
    if (described === undefined) {
      entry.description = NO_FIELDS
      return
    }
    // its columns are checked for a shared name once here, not on every later run's result
    rememberColumns(described.fields)
    const result = this._result
    const parsers = result._parsers
    const emptyRow = result._prebuiltEmptyResultObject
    entry.description =
      Array.isArray(parsers) && result.fields === described.fields && emptyRow !== null && typeof emptyRow === 'object'
        ? { fields: described.fields, parsers, emptyRow }
        : described
  }
}

/**
 * Sends one statement on `client`: unnamed, or as the named statement `entry` of `cache` (parsed on
 * its first run, then Bind/Execute only). `entry` is released from in-flight when pg answers. A
 * failure goes to `recover` when given, with whether the statement was parsed before this run (no
 * Parse sent) and whether the server answered its Bind with BindComplete (see
 * {@link trackBindComplete}: without it, nothing of the statement executed), and its promise, or its throw, settles the statement: one
 * promise fewer than a `.catch` on the way of every success. `progress`, when given, records whether
 * it was sent, in which transaction status, and how many CommandCompletes came back (see
 * StatementProgress): what decides whether a lost connection left its outcome unknown. With
 * `onlyWhenIdle` (a run again after the named statement was prepared again), it is sent only if the
 * connection is outside a transaction when its turn comes, else it fails with {@link RerunRefused}.
 */
export function runStatement(
  conn: PostgresConnection,
  text: string,
  values: unknown[],
  entry: CachedStatement | undefined,
  cache: StatementCache | undefined,
  recover?: (err: Error, parsedBefore: boolean, bound: boolean) => Promise<PgAnswer>,
  progress?: StatementProgress,
  onlyWhenIdle = false,
): Promise<PgAnswer> {
  return new Promise<PgAnswer>((resolve, reject) => {
    const statement = new PgStatement(conn.client, text, values, entry, cache, progress, onlyWhenIdle)
    let settled = false
    statement.callback = (err, result) => {
      // pg can call back twice for one run (an error while writing, then ReadyForQuery)
      if (settled) return
      settled = true
      if (entry !== undefined) {
        cache?.done(entry)
        if (!err) statement.remember()
      }
      if (!err) {
        // called at its ReadyForQuery, before pg hands over the next statement: a result the manager
        // will refuse inside a transaction keeps the ones issued after it until it aborted it (see
        // refusalAhead)
        if (progress !== undefined && refusalAhead(conn, result as PgAnswer)) progress.hold = conn.hold()
        resolve(result as PgAnswer)
      } else if (recover === undefined) reject(err)
      else {
        try {
          // parsed before: this run only bound and executed it
          resolve(recover(err, !statement.parsing, statement.bound))
        } catch (thrown) {
          reject(thrown as Error)
        }
      }
    }
    // in turn: pg is handed one statement at a time (see PostgresConnection.submit)
    conn.submit(statement)
  })
}

/**
 * One text (simple protocol, as `client.query(text)` sends it) on `conn`, in turn with its other
 * statements (see PostgresConnection.submit): for the manager's own statements outside runStatement.
 * With `checking` (an array check's pg_type lookup), the query is `checking.checking` until answered.
 */
export function runText<R extends Record<string, unknown> = Record<string, unknown>>(
  conn: PostgresConnection,
  text: string,
  checking?: StatementProgress,
): Promise<PgQueryResult<R>> {
  return new Promise<PgQueryResult<R>>((resolve, reject) => {
    const query = new Query(text)
    ;(query as unknown as PgQueryInternals).callback = (err, result) => {
      if (checking !== undefined && checking.checking === query) checking.checking = undefined
      if (err) reject(err)
      else resolve(result as PgQueryResult<R>)
    }
    if (checking !== undefined) checking.checking = query
    conn.submit(query)
  })
}

/**
 * Whether `answer`, just answered with the session in an open transaction (`T`), is one the manager
 * refuses (two columns of one name, see resultColumnsError; a value the type parsers could not read,
 * see findUnreadable: any seen on the connection counts) and so must abort that transaction
 * (`#refusedAfterRun`) before the server runs any statement issued after it, which would otherwise
 * join the transaction unaware. Read synchronously at the statement's ReadyForQuery, where the
 * transaction status is current and pg has not handed over the next statement yet.
 */
function refusalAhead(conn: PostgresConnection, answer: PgAnswer): boolean {
  if (conn.client.getTransactionStatus() !== 'T') return false
  if ((conn.reads?.guard.count ?? 0) > 0) return true
  const last = Array.isArray(answer) ? answer[answer.length - 1] : answer
  const fields = last?.fields as readonly unknown[] | undefined
  return fields !== undefined && sharesColumnName(fields)
}

/**
 * Sends `text` (simple protocol) on `conn` ahead of every statement kept there (see
 * PostgresConnection.submitFirst), for a text meant to fail: resolves, once its ReadyForQuery came,
 * with the transaction status it reported (`undefined` when the connection ended first). `undefined`
 * at once, and nothing sent, when pg has a statement in hand (it cannot go first).
 */
export function runTextFirst(conn: PostgresConnection, text: string): Promise<string | undefined> | undefined {
  const query = new Query(text)
  const client = conn.client
  const connection = client.connection
  let settle!: (status: string | undefined) => void
  const settled = new Promise<string | undefined>((resolve) => (settle = resolve))
  const onEnd = (): void => done(undefined)
  const onReady = (): void => done(client.getTransactionStatus() ?? undefined)
  const done = (status: string | undefined): void => {
    connection.off('readyForQuery', onReady)
    client.off('end', onEnd)
    settle(status)
  }
  ;(query as unknown as PgQueryInternals).callback = (err) => {
    // a success is called back at its ReadyForQuery (the status is current); a failure at its
    // ErrorResponse, before the ReadyForQuery that reports the status
    if (err) connection.once('readyForQuery', onReady)
    else onReady()
  }
  if (!conn.submitFirst(query)) return undefined
  client.on('end', onEnd)
  return settled
}

/**
 * Takes the run of the statement `progress` records out of the statements waiting their turn on
 * `conn` (kept by PostgresConnection.submit, or in pg's queue), not yet sent (see
 * StatementProgress.withdrawn), and fails it with `error`: nothing of it reaches the server, and the
 * statements queued behind it move up. False when it is not waiting there (sent, or held behind an
 * array check).
 */
export function withdrawQueued(conn: PostgresConnection, progress: StatementProgress, error: Error): boolean {
  const kept = conn.queued.find((queued) => queued instanceof PgStatement && queued.runs(progress)) as PgStatement | undefined
  if (kept !== undefined && conn.unqueue(kept)) {
    kept.callback?.(error)
    return true
  }
  const queue = (conn.client as unknown as { _queryQueue?: unknown[] })._queryQueue
  if (queue === undefined) return false
  const at = queue.findIndex((queued) => queued instanceof PgStatement && queued.runs(progress))
  if (at < 0) return false
  const [statement] = queue.splice(at, 1) as [PgStatement]
  statement.callback?.(error)
  return true
}

/**
 * Records, on the statement pg is being answered for (`_getActiveQuery()`, the one answered in
 * pipeline mode too), the server's BindComplete: the proof that its Bind succeeded, so that an error
 * after it may have been raised while the statement executed (a `nextval`, a write through dblink
 * done), and one without it was raised at Bind, before the portal existed (see
 * `statementInvalidation`). Called once per connection, before its first statement.
 */
export function trackBindComplete(client: Client): void {
  const answered = client as unknown as { _getActiveQuery(): unknown }
  client.connection.on('bindComplete', () => {
    const statement = answered._getActiveQuery()
    if (statement instanceof PgStatement) statement.bound = true
  })
}

function droppedStatements(tag: string): boolean {
  return tag.startsWith('DEALLOCATE') || tag === 'DISCARD ALL'
}

/**
 * What a command tag says about the schema the connection's cached statements were parsed against
 * (see StatementCache.schemaChanged): `'everywhere'` for `ALTER ...`, `DROP ...`, `CREATE ...`,
 * `IMPORT FOREIGN SCHEMA` (a column type, a function other connections' statements use; a table
 * created earlier in `search_path` that shadows one a statement resolved), `DO` and `CALL` (a block
 * or procedure may run any DDL, which has no tag of its own: a column type it changed would
 * otherwise reach another connection's cached statement as a silent conversion, `'007'` stored as
 * `'7'`); `'here'` for a text that is one `CREATE TEMP ...` (a temp table shadows for this session
 * only: an application creating one per lease does not make every connection re-prepare);
 * `undefined` for anything else. DDL the server reports with a query's tag (`SELECT n` for `CREATE
 * TABLE ... AS`, `SELECT ... INTO`, `CREATE MATERIALIZED VIEW`) is read from the text instead (see
 * StatementTraits.queryDdl). DDL run inside a function (`SELECT f()`) has no tag of its own: a
 * statement it invalidates fails once (0A000, 26000, 42804...) and is prepared again then; a
 * column type it changed in a way the old parameter type still converts to, or a temp table it
 * creates, is not seen (see the README's caveat). The cost of `CALL`: every connection parses its
 * statements once again after each procedure call.
 *
 * @param text The statement text that produced the tag.
 */
export function schemaChangeOf(tag: string, text: string): 'everywhere' | 'here' | undefined {
  if (tag.startsWith('ALTER ') || tag.startsWith('DROP ')) return 'everywhere'
  if (tag.startsWith('CREATE ')) return loneCreateTemp(text) ? 'here' : 'everywhere'
  if (tag === 'DO' || tag === 'CALL') return 'everywhere'
  if (tag === 'IMPORT FOREIGN SCHEMA') return 'everywhere'
  return undefined
}

/** A text that is one `CREATE [GLOBAL | LOCAL] TEMP[ORARY] ...` statement (no `;` but a trailing one): its object is this session's. */
function loneCreateTemp(text: string): boolean {
  if (!CREATE_TEMP.test(text)) return false
  const body = text.trimEnd()
  const semicolon = body.indexOf(';')
  return semicolon < 0 || semicolon === body.length - 1
}

const CREATE_TEMP = /^\s*create\s+(?:(?:global|local)\s+)?temp(?:orary)?\s/i

/**
 * A converted parameter (see postgresParameters: strings, numbers, booleans, bigints, null, bytes) as
 * pg's Bind writes it; the same as pg's `prepareValue` for these values.
 */
function wireValue(value: unknown): unknown {
  if (value === null || value === undefined) return null
  if (typeof value === 'string') return value
  if (typeof value === 'object') {
    if (value instanceof Buffer) return value
    if (ArrayBuffer.isView(value)) return Buffer.from(value.buffer, value.byteOffset, value.byteLength)
    return JSON.stringify(value)
  }
  return String(value)
}
