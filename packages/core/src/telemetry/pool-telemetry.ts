import {
  context,
  ProxyTracerProvider,
  SpanKind,
  SpanStatusCode,
  trace,
  type Attributes,
  type Span,
  type Tracer,
  type TracerProvider,
} from '@opentelemetry/api'
import type { PoolConfig } from '../config/pool-config'
import type { Backend, ConnectedServer, FailoverInfo, Lane, TelemetryTarget } from '../driver/connection-manager'
import { DatabaseError, type PoolStatsSnapshot } from '../errors/database-error'
import type { MetricsCollector } from '../metrics/metrics-collector'
import { POOL_NAME_ATTRIBUTE } from '../metrics/metrics-collector'
import type { LeakInfo } from '../pool/pool-events'
import type { ReadFallbackInfo, ReplicaStateInfo } from '../pool/replica-set'
import type { CompiledQuery } from '../sql/sql'
import { PoolLog, type PoolLogger } from './logger'
import { operationName, readStatementHead, sanitizeStatementText, statementNumbers } from './statement-info'
import { notedServer } from './statement-server'
import { redactUrlPasswords } from '../util/redact'
import { parameterTexts } from '../util/parameter-texts'
import { ERROR_CAUSE_DEPTH, hideErrorLiterals, statementLiterals } from '../migrations/statement-preview'
import { isErrorLike } from '../util/error-like'

/** The instrumentation scope of dbpool's spans. */
export const TRACER_NAME = '@dbpool/core'

/** Name of the span of a transaction (kind INTERNAL; its statements are CLIENT spans under it). */
export const TRANSACTION_SPAN_NAME = 'transaction'

/** Name of the span of a caller's wait for a connection (kind INTERNAL), made when it waited or its acquire failed (then status ERROR). */
export const WAIT_SPAN_NAME = 'dbpool.acquire'

/** What an unregistered global provider delegates to: its tracers make non-recording spans. */
const NOOP_TRACER_PROVIDER: TracerProvider = new ProxyTracerProvider().getDelegate()

/** Statement texts whose attributes are kept (forgotten all at once beyond this). */
const MAX_REMEMBERED_TEXTS = 1_000

/** The longest statement text (UTF-16 code units) whose attributes are kept: longer ones are worked out per call. */
const MAX_REMEMBERED_TEXT_LENGTH = 16_384

/** The most characters the kept texts hold together, keys and shown texts (forgotten all at once beyond this). */
const MAX_REMEMBERED_CHARS = 2_000_000

const SYSTEM_NAMES: Record<Backend, string> = { postgres: 'postgresql', sqlite: 'sqlite' }

/** What a pool's telemetry is made from. */
export interface PoolTelemetryOptions {
  readonly backend: Backend
  readonly target: TelemetryTarget | undefined
  readonly config: PoolConfig
  readonly metrics: MetricsCollector
  /** An explicit tracer; default is the global provider's, taken once. */
  readonly tracer: Tracer | undefined
  readonly logger: PoolLogger | undefined
  /** The manager's secret scrubber (see `ConnectionManager.redact`). */
  readonly redact: ((text: string) => string) | undefined
  readonly stats: () => PoolStatsSnapshot
}

/**
 * @internal The span of {@link PoolTelemetry.operation}, as the work sees it: attributes and events
 * (OpenTelemetry's `Span` methods of the same names).
 */
export interface OperationSpan {
  setAttribute(key: string, value: string | number | boolean): unknown
  addEvent(name: string, attributes?: Record<string, string | number | boolean>): unknown
}

/** @internal How {@link PoolTelemetry.operation} names and kinds its span. */
export interface OperationOptions {
  /** `db.operation.name` (and the span name's first word) instead of the text's first keyword. */
  readonly operation?: string
  /** `'client'` (default) or `'internal'` (the work's own statements have CLIENT spans). */
  readonly kind?: 'client' | 'internal'
  /** More span attributes. */
  readonly attributes?: Readonly<Record<string, string | number | boolean>>
}

/** What work gets when no span records. */
const NO_SPAN: OperationSpan = Object.freeze({ setAttribute: () => undefined, addEvent: () => undefined })

/** What is worked out once per statement text. */
interface StatementInfo {
  readonly spanName: string
  /** The text with secrets hidden and, unless `rawQueryText`, literals as `?` (`db.query.text`, the slow-statement log). */
  readonly text: string
  readonly spanAttributes: Attributes
  readonly metricAttributes: Attributes
}

/**
 * @internal A pool's traces, operation metric and log lines, through `@opentelemetry/api` only (the
 * application brings the SDK). Spans follow the stable database conventions: one CLIENT span per
 * statement named `{db.operation.name} {db.collection.name | db.namespace}`, an INTERNAL span per
 * transaction with its statements as children, and an INTERNAL span for a caller's wait for a
 * connection when it waited. With no SDK behind the global tracer provider, no meter provider and no
 * slow-statement log, {@link watching} is false and the pool skips every step of this class.
 *
 * Nothing here throws into the pool: every call into the OpenTelemetry API or SDK (`startSpan`,
 * `isRecording`, `setAttribute(s)`, `setStatus`, `addEvent`, `end`, a histogram's `record`,
 * `context.bind`) is guarded, since the SDK runs the application's span processors and views
 * unguarded and one that throws would otherwise fail a caller whose work succeeded or strand a lease
 * (review r13 D1). The first failure is reported with `process.emitWarning` (`DbpoolWarning`, code
 * `DBPOOL_TELEMETRY_FAILED`), later ones are dropped, as a throwing logger's are; the work goes on
 * without the span or the measurement.
 */
export class PoolTelemetry {
  /** The pool's logger, wrapped; undefined without the `logger` option. */
  readonly log: PoolLog | undefined
  readonly #tracer: Tracer
  /** The global provider the tracer came from; undefined when the tracer was given (always asked). */
  readonly #provider: ProxyTracerProvider | undefined
  readonly #metrics: MetricsCollector
  readonly #slowMs: number
  readonly #logParameters: boolean
  readonly #rawQueryText: boolean
  /** The operation metric or the slow-statement log needs every statement timed. */
  readonly #timed: boolean
  readonly #base: Attributes
  readonly #system: string
  /** Whose lexical rules read statement texts (literals hidden, names read). */
  readonly #dialect: Backend
  readonly #namespace: string | undefined
  readonly #redact: (text: string) => string
  readonly #poolName: string
  readonly #stats: () => PoolStatsSnapshot
  /** What was worked out per statement text (see {@link #info}); emptied at {@link close}. */
  readonly #statements = new Map<string, StatementInfo>()
  /** The characters {@link #statements} holds (keys and shown texts). */
  #rememberedChars = 0
  #closed = false
  /**
   * The statement (text and parameters) a failed statement's error comes from, by error: its values
   * are hidden from span statuses and log lines unless `logParameters` (the error the caller gets
   * keeps them). See {@link #describe}.
   */
  readonly #failedWith = new WeakMap<object, CompiledQuery>()
  /** The texts {@link #describe} hides for an error (see `parameterTexts`), worked out once per error. */
  readonly #hiddenTexts = new WeakMap<object, readonly string[]>()
  /** A failure of the OpenTelemetry API or SDK was reported already (see {@link failed}). */
  #failureReported = false

  constructor(options: PoolTelemetryOptions) {
    const { config, target } = options
    const managerRedact = options.redact
    this.#redact = managerRedact ? (text) => managerRedact(redactUrlPasswords(text)) : redactUrlPasswords
    this.log = options.logger
      ? new PoolLog(
          options.logger,
          config.name,
          (text) => this.#redact(text),
          (err, from) => this.#describe(err, from),
        )
      : undefined
    this.#poolName = config.name
    if (options.tracer) {
      this.#tracer = options.tracer
      this.#provider = undefined
    } else {
      const provider = trace.getTracerProvider()
      this.#tracer = provider.getTracer(TRACER_NAME, '0.1.0')
      // the API's global provider is a proxy: whether an SDK is behind it is one property read
      this.#provider = provider instanceof ProxyTracerProvider ? provider : undefined
    }
    this.#metrics = options.metrics
    this.#slowMs = this.log ? config.slowQueryMs : 0
    this.#logParameters = config.logParameters
    this.#rawQueryText = config.rawQueryText
    this.#timed = options.metrics.recordsOperations || this.#slowMs > 0
    this.#system = SYSTEM_NAMES[options.backend]
    this.#dialect = options.backend
    this.#namespace = target?.namespace
    const base: Record<string, string | number> = { 'db.system.name': this.#system }
    if (target?.namespace !== undefined) base['db.namespace'] = target.namespace
    if (target?.serverAddress !== undefined) base['server.address'] = target.serverAddress
    if (target?.serverPort !== undefined) base['server.port'] = target.serverPort
    this.#base = Object.freeze(base)
    this.#stats = options.stats
  }

  /** Whether spans may record: a tracer was given, or an SDK is registered behind the global provider. */
  get tracing(): boolean {
    return this.#provider === undefined || this.#provider.getDelegate() !== NOOP_TRACER_PROVIDER
  }

  /** Whether statements must go through {@link statement}: anything at all watches them. */
  get watching(): boolean {
    return this.#timed || this.tracing
  }

  /**
   * Runs one statement under a CLIENT span (a child of the active context, active itself while `run`
   * runs), records `db.client.operation.duration` and logs it when slower than `slowQueryMs`.
   */
  statement<R>(query: CompiledQuery, run: () => Promise<R>): Promise<R> {
    const info = this.#info(query.text)
    const started = performance.now()
    let span: Span | undefined
    let running: Promise<R>
    const opened = this.tracing ? this.#startSpan(info.spanName, SpanKind.CLIENT, info.spanAttributes) : undefined
    if (opened !== undefined && this.#recording(opened)) span = opened
    try {
      // active even when not sampled: what runs under it (a driver's own spans) follows its decision
      running = opened !== undefined ? context.with(trace.setSpan(context.active(), opened), run) : run()
    } catch (err) {
      running = Promise.reject(err)
    }
    return running.then(
      (result) => {
        this.#finished(query, info, span, started, undefined, true, result)
        return result
      },
      (err: unknown) => {
        this.#finished(query, info, span, started, err)
        throw err
      },
    )
  }

  /**
   * Watches a stream (`pool.stream()`, `conn.stream()`): a CLIENT span, a child of the active context,
   * from the first read to the end of the iteration, and `db.client.operation.duration` over the same
   * time. Not the slow-statement log: a stream lasts as long as its consumer takes.
   */
  stream(query: CompiledQuery): { end(error: DatabaseError | undefined, server?: ConnectedServer): void } {
    const info = this.#info(query.text)
    const started = performance.now()
    let span: Span | undefined
    const opened = this.tracing ? this.#startSpan(info.spanName, SpanKind.CLIENT, info.spanAttributes) : undefined
    if (opened !== undefined && this.#recording(opened)) span = opened
    return { end: (error, server) => this.#finished(query, info, span, started, error, false, undefined, server) }
  }

  /**
   * Runs work that does not go through `query()` (a backend's COPY, LISTEN, NOTIFY) under a span named
   * and attributed from `text` as a statement is (`db.operation.name`, or `operation` when given,
   * `db.collection.name`, `db.query.text`, redacted), active while `run` runs; a failure sets status
   * ERROR and `error.type`. `run` gets the span ({@link OperationSpan}; a no-op one when nothing
   * records) for attributes and events such as a row count. CLIENT by default; INTERNAL when the work
   * runs its own statements (their CLIENT spans nest under it). Not the operation metric nor the
   * slow-statement log: such work lasts as long as its caller's data.
   */
  operation<R>(text: string, run: (span: OperationSpan) => Promise<R>, options: OperationOptions = {}): Promise<R> {
    if (!this.tracing) return run(NO_SPAN)
    const info = this.#info(text)
    let spanName = info.spanName
    let attributes = info.spanAttributes
    if (options.operation !== undefined) {
      const head = readStatementHead(info.text, this.#dialect)
      const target = head.collection ?? this.#namespace
      spanName = target ? `${options.operation} ${target}` : options.operation
      attributes = { ...attributes, 'db.operation.name': options.operation }
    }
    if (options.attributes) attributes = { ...attributes, ...options.attributes }
    const kind = options.kind === 'internal' ? SpanKind.INTERNAL : SpanKind.CLIENT
    const span = this.#startSpan(spanName, kind, attributes)
    const recording = span !== undefined && this.#recording(span)
    let running: Promise<R>
    try {
      // the work gets the span behind a guard: its attributes and events never throw into it either
      const given = recording ? this.#guarded(span) : NO_SPAN
      running = span !== undefined ? context.with(trace.setSpan(context.active(), span), () => run(given)) : run(given)
    } catch (err) {
      running = Promise.reject(err)
    }
    if (!recording) return running
    return running.then(
      (result) => {
        this.#endSpan(span, undefined)
        return result
      },
      (err: unknown) => {
        this.#endSpan(span, err)
        throw err
      },
    )
  }

  /**
   * Runs a transaction (every attempt) under an INTERNAL span, active while `run` runs so the
   * statements nest under it; the span fails with `error.type` when the transaction does.
   */
  transaction<T>(run: () => Promise<T>): Promise<T> {
    const span = this.tracing ? this.#startSpan(TRANSACTION_SPAN_NAME, SpanKind.INTERNAL, this.#base) : undefined
    let running: Promise<T>
    try {
      // active even when not sampled: the statements follow the transaction's sampling decision
      running = span !== undefined ? context.with(trace.setSpan(context.active(), span), run) : run()
    } catch (err) {
      running = Promise.reject(err)
    }
    if (span === undefined || !this.#recording(span)) return running
    return running.then(
      (result) => {
        this.#endSpan(span, undefined)
        return result
      },
      (err: unknown) => {
        this.#endSpan(span, err)
        throw err
      },
    )
  }

  /**
   * `fn` bound to the context active now, when spans may record: a callback the pool calls later (a
   * `withConnection` callback, a transaction attempt) runs in its caller's context even when the
   * connection came through another caller's release.
   */
  bind<F extends (...args: never[]) => unknown>(fn: F): F {
    if (!this.tracing) return fn
    try {
      return context.bind(context.active(), fn)
    } catch (err) {
      this.failed('context.bind', err)
      return fn
    }
  }

  /** @internal What is kept per statement text now: texts and their characters (keys and shown texts). */
  get remembered(): { readonly texts: number; readonly chars: number } {
    return { texts: this.#statements.size, chars: this.#rememberedChars }
  }

  /** The pool closed: what was kept per statement text is released (and nothing is kept any more). */
  close(): void {
    this.#closed = true
    this.#statements.clear()
    this.#rememberedChars = 0
  }

  /**
   * A caller waited for a connection from `started` to `now` (`performance.now()` readings); `error`:
   * its wait ended without one (ACQUIRE_TIMEOUT, POOL_EXHAUSTED, its signal, close(), a connect
   * error), and the span fails with it (status ERROR, `error.type`).
   */
  waited(started: number, now: number, lane: Lane, error?: unknown): void {
    if (!this.tracing) return
    const span = this.#startSpan(
      WAIT_SPAN_NAME,
      SpanKind.INTERNAL,
      { 'db.system.name': this.#system, [POOL_NAME_ATTRIBUTE]: this.#poolName, 'dbpool.lane': lane },
      started,
    )
    if (span !== undefined) this.#endSpan(span, error, undefined, now)
  }

  /**
   * A call into the OpenTelemetry API or SDK (or the metrics collector) threw: `what` was skipped, the
   * pool's work goes on. The first failure of the pool is reported with `process.emitWarning`
   * (`DbpoolWarning`, code `DBPOOL_TELEMETRY_FAILED`), later ones are dropped (an exporter that is
   * down would otherwise add a warning per statement).
   */
  failed(what: string, err: unknown): void {
    if (this.#failureReported) return
    this.#failureReported = true
    const shown = isErrorLike(err) ? `${err.name}: ${err.message}` : String(err)
    process.emitWarning(
      `dbpool: telemetry of pool "${this.#poolName}" failed (${what} threw: ${this.#redact(shown)}); the pool's work is not affected (later telemetry failures of this pool are not reported)`,
      { type: 'DbpoolWarning', code: 'DBPOOL_TELEMETRY_FAILED' },
    )
  }

  /** A transaction attempt failed with a replayable error and is replayed after `delayMs`. */
  retrying(attempt: number, error: DatabaseError, delayMs: number): void {
    try {
      const span = trace.getActiveSpan()
      if (span?.isRecording()) span.addEvent('dbpool.transaction.retry', { attempt, 'error.type': error.code, 'dbpool.delay_ms': delayMs })
    } catch (err) {
      this.failed('span.addEvent', err)
    }
    this.log?.write(
      'warn',
      'transactionRetry',
      { attempt, delayMs, err: this.log.error(error) },
      'transaction replayed after a retryable error',
    )
  }

  /** A physical connection was opened (debug). */
  connected(connectionId: number, lane: Lane, durationMs: number): void {
    this.log?.write('debug', 'connect', { connectionId, lane, durationMs: round(durationMs) }, 'connection opened')
  }

  /** A physical connection was closed (debug). */
  destroyed(connectionId: number, lane: Lane, reason: string): void {
    this.log?.write('debug', 'destroy', { connectionId, lane, reason: this.#redact(reason) }, 'connection closed')
  }

  /** A connection died (warn). */
  lost(connectionId: number, lane: Lane, idle: boolean, error: DatabaseError): void {
    this.log?.write('warn', 'connectionLost', { connectionId, lane, idle, err: this.log.error(error) }, 'connection lost')
  }

  /** New connections reach another server than before (a multi-host target) (warn). */
  failover(info: FailoverInfo): void {
    this.log?.write('warn', 'failover', { from: info.from, to: info.to, lane: info.lane }, 'failover: new connections reach another server')
  }

  /** A replica of the read lane was taken out (warn) or is usable again (info). */
  replica(info: ReplicaStateInfo): void {
    if (info.usable) this.log?.write('info', 'replica', { replica: info.replica, usable: true }, 'replica usable again')
    else
      this.log?.write(
        'warn',
        'replica',
        { replica: info.replica, usable: false, reason: info.reason, lagMs: info.lagMs, err: info.error && this.log.error(info.error) },
        'replica taken out of the read lane',
      )
  }

  /** Read-lane work runs on the primary: no replica is usable (warn). */
  readFallback(info: ReadFallbackInfo): void {
    this.log?.write('warn', 'readFallback', { replicas: info.replicas }, 'no usable replica: reads run on the primary')
  }

  /** A background failure (warm-up connect, keepalive, destroy) (warn). */
  backgroundError(error: DatabaseError): void {
    this.log?.write('warn', 'error', { err: this.log.error(error) }, 'background pool work failed')
  }

  /** A lease held past `leakDetectionThresholdMs`, with the acquirer's stack (warn). */
  leak(info: LeakInfo): void {
    this.log?.write(
      'warn',
      'leak',
      { leaseId: info.leaseId, lane: info.lane, heldForMs: info.heldForMs, stack: this.#redact(info.stack) },
      'connection held past leakDetectionThresholdMs (possible leak)',
    )
  }

  /** A listener of a pool event threw (warn). */
  listenerThrew(event: string, err: unknown): void {
    this.log?.write('warn', 'listenerError', { listenerOf: event, err: this.log.error(err) }, 'a pool event listener threw')
  }

  #finished(
    query: CompiledQuery,
    info: StatementInfo,
    span: Span | undefined,
    started: number,
    err: unknown,
    logSlow = true,
    result?: unknown,
    ranOn?: ConnectedServer,
  ): void {
    const ms = performance.now() - started
    // a multi-host target or a replica: the server the statement ran on, not the target's first host
    const server = ranOn ?? notedServer(err ?? result)
    let errorType: string | undefined
    let status: string | undefined
    if (err !== undefined) {
      if (!this.#logParameters && typeof err === 'object' && err !== null && !this.#failedWith.has(err)) this.#failedWith.set(err, query)
      errorType = DatabaseError.is(err) ? err.code : isErrorLike(err) ? err.name : '_OTHER'
      status = DatabaseError.is(err) ? (err.sqlState ?? err.sqliteCode) : undefined
    }
    // the caller gets its own result or error whatever happens below (review r13 D1)
    if (span) this.#endSpan(span, err, server)
    if (this.#metrics.recordsOperations) {
      let attributes = info.metricAttributes
      if (server !== undefined) attributes = { ...attributes, ...serverAttributes(server) }
      if (errorType !== undefined) {
        attributes = { ...attributes, 'error.type': errorType }
        if (status !== undefined) attributes['db.response.status_code'] = status
      }
      try {
        this.#metrics.recordOperation(ms / 1000, attributes)
      } catch (e) {
        this.failed('db.client.operation.duration record', e)
      }
    }
    if (logSlow && this.#slowMs > 0 && ms > this.#slowMs) {
      try {
        this.#slow(query, info, ms, err)
      } catch (e) {
        this.failed('the slow-statement log', e)
      }
    }
  }

  /** `tracer.startSpan`, guarded: undefined when it threw (the work then runs without a span). */
  #startSpan(name: string, kind: SpanKind, attributes: Attributes, startTime?: number): Span | undefined {
    try {
      return this.#tracer.startSpan(name, startTime === undefined ? { kind, attributes } : { kind, attributes, startTime })
    } catch (err) {
      this.failed('tracer.startSpan', err)
      return undefined
    }
  }

  /** `span.isRecording()`, guarded: false when it threw. */
  #recording(span: Span): boolean {
    try {
      return span.isRecording()
    } catch (err) {
      this.failed('span.isRecording', err)
      return false
    }
  }

  /** Ends `span` (at `endTime`, else now), failed with `err` when given; never throws. */
  #endSpan(span: Span, err: unknown, server?: ConnectedServer, endTime?: number): void {
    try {
      if (server !== undefined) span.setAttributes(serverAttributes(server))
      if (err !== undefined) this.#failSpan(span, err)
    } catch (e) {
      this.failed('span.setAttribute', e)
    }
    try {
      span.end(endTime)
    } catch (e) {
      this.failed('span.end', e)
    }
  }

  /** `span` as {@link operation}'s work gets it: its attributes and events never throw. */
  #guarded(span: Span): OperationSpan {
    return {
      setAttribute: (key, value) => {
        try {
          span.setAttribute(key, value)
        } catch (err) {
          this.failed('span.setAttribute', err)
        }
      },
      addEvent: (name, attributes) => {
        try {
          span.addEvent(name, attributes)
        } catch (err) {
          this.failed('span.addEvent', err)
        }
      },
    }
  }

  #slow(query: CompiledQuery, info: StatementInfo, ms: number, err: unknown): void {
    const log = this.log!
    const fields: Record<string, unknown> = { text: info.text, durationMs: round(ms), slowQueryMs: this.#slowMs, stats: this.#stats() }
    // the values as sent, with the secrets the text and `err` hide hidden in them too (review r13 D9)
    if (this.#logParameters) fields.params = query.params.map((value) => loggable(value, this.#redact, 0))
    if (err !== undefined) fields.err = log.error(err)
    log.write('warn', 'slowStatement', fields, `statement took ${round(ms)} ms (slowQueryMs ${this.#slowMs})`)
  }

  #failSpan(span: Span, err: unknown): void {
    if (DatabaseError.is(err)) {
      span.setAttribute('error.type', err.code)
      const status = err.sqlState ?? err.sqliteCode
      if (status !== undefined) span.setAttribute('db.response.status_code', status)
    } else span.setAttribute('error.type', isErrorLike(err) ? err.name : '_OTHER')
    span.setStatus({ code: SpanStatusCode.ERROR, message: isErrorLike(err) ? this.#describe(err, err) : undefined })
  }

  /**
   * The message of `err` (`from` itself or one of its causes) as telemetry shows it: secrets hidden
   * (`[REDACTED]`) and, unless `logParameters`, whatever the database may repeat of the values of the
   * statement that failed (`[PARAMETER]`, core's `hideErrorLiterals`, the Migrator's rules): each
   * parameter of that statement (of `from` or an error in its `cause` chain) in every form it is sent
   * in (`parameterTexts`: text, array literal and each element, JSON, Date and bytes texts), where the
   * message quotes it or, from 4 characters on, repeats it as a whole token; unless `rawQueryText`,
   * the literals of its text likewise, numbers included (`db.query.text` shows them as `?`; a number
   * the message quotes as the token a syntax error stopped at); a string literal a syntax
   * error echoes; and, for a Postgres data exception (SQLSTATE class 22, whatever the statement:
   * also a COPY row's field), the input value it quotes.
   */
  #describe(err: Error, from: Error): string {
    if (this.#logParameters) return this.#redact(err.message)
    return this.#redact(hideErrorLiterals(err, this.#hidden(from), HIDDEN_PARAMETER))
  }

  /** The texts to hide in the messages of `err` and its causes (see {@link #describe}). */
  #hidden(err: Error): readonly string[] {
    const known = this.#hiddenTexts.get(err)
    if (known) return known
    const texts: string[] = []
    for (let e: unknown = err, depth = 0; isErrorLike(e) && depth < ERROR_CAUSE_DEPTH; e = e.cause, depth++) {
      const query = this.#failedWith.get(e)
      if (query) texts.push(...parameterTexts(query.params))
      // the text's literals, recorded as `?`, are not shown where the message repeats them either
      // numbers too (review r14d: `syntax error at or near "4111111111111111"`; see statementNumbers)
      if (query && !this.#rawQueryText)
        texts.push(...statementLiterals(query.text, this.#dialect), ...statementNumbers(query.text, this.#dialect))
    }
    this.#hiddenTexts.set(err, texts)
    return texts
  }

  #info(text: string): StatementInfo {
    const known = this.#statements.get(text)
    if (known) return known
    const redacted = this.#redact(text)
    // read from the redacted text: the span's name and db.collection.name carry no secret either
    const head = readStatementHead(redacted, this.#dialect)
    const operation = operationName(head.operation)
    const collection = head.collection
    const target = collection ?? this.#namespace
    const spanName = operation ? (target ? `${operation} ${target}` : operation) : (target ?? this.#system)
    const metricAttributes: Attributes = { ...this.#base }
    if (operation) metricAttributes['db.operation.name'] = operation
    if (collection) metricAttributes['db.collection.name'] = collection
    // literals as `?` unless rawQueryText (the conventions: db.query.text is not recorded unsanitised by default)
    const shown = this.#rawQueryText ? redacted : sanitizeStatementText(redacted, this.#dialect)
    const info: StatementInfo = {
      spanName,
      text: shown,
      metricAttributes: Object.freeze(metricAttributes),
      spanAttributes: Object.freeze({ ...metricAttributes, 'db.query.text': shown }),
    }
    // a long text is worked out per call (linear), never pinned; the kept ones are bounded in count and size
    if (this.#closed || text.length > MAX_REMEMBERED_TEXT_LENGTH) return info
    const chars = text.length + (info.text === text ? 0 : info.text.length)
    if (this.#statements.size >= MAX_REMEMBERED_TEXTS || this.#rememberedChars + chars > MAX_REMEMBERED_CHARS) {
      this.#statements.clear()
      this.#rememberedChars = 0
    }
    this.#statements.set(text, info)
    this.#rememberedChars += chars
    return info
  }
}

/** What replaces a parameter value in a message. */
const HIDDEN_PARAMETER = '[PARAMETER]'

function round(ms: number): number {
  return Math.round(ms * 1000) / 1000
}

/** How deep {@link loggable} follows arrays and objects inside a parameter (deeper: `[nested]`). */
const MAX_LOGGED_DEPTH = 16

/**
 * A parameter value as a log line can carry it (pino's JSON has no bigint, and bytes are noise), with
 * `redact` applied to every string in it: the value itself, and the strings inside an array or an
 * object (as its JSON, the form it is sent in: `toJSON()` followed, own enumerable properties).
 */
function loggable(value: unknown, redact: (text: string) => string, depth: number): unknown {
  if (typeof value === 'string') return redact(value)
  if (typeof value === 'bigint') return value.toString()
  if (typeof value !== 'object' || value === null) return value
  if (value instanceof Uint8Array) return `[${value.byteLength} bytes]`
  if (value instanceof Date) return value
  if (depth >= MAX_LOGGED_DEPTH) return '[nested]'
  if (Array.isArray(value)) return value.map((item: unknown) => loggable(item, redact, depth + 1))
  try {
    const toJSON = (value as { toJSON?: unknown }).toJSON
    if (typeof toJSON === 'function') return loggable(toJSON.call(value), redact, depth + 1)
    const out: Record<string, unknown> = {}
    for (const [key, item] of Object.entries(value)) out[redact(key)] = loggable(item, redact, depth + 1)
    return out
  } catch {
    // a getter or toJSON that throws: nothing of it is shown
    return '[unserializable]'
  }
}

/** `server.address` and `server.port` of a connected server. */
function serverAttributes(server: ConnectedServer): Attributes {
  return server.port === undefined ? { 'server.address': server.address } : { 'server.address': server.address, 'server.port': server.port }
}
