import { AsyncResource } from 'node:async_hooks'
import { DatabaseError, MAX_TIMER_MS, type DatabasePool, type PoolExtension } from '@dbpool/core'
import {
  checkInteger,
  checkSignal,
  inBackground,
  rejectExtraArguments,
  rejectUnknownKeys,
  requireObject,
  type OperationSpan,
} from '@dbpool/core/internal'
import type { PostgresConnection } from './postgres-connection'
import { PostgresConnectionManager } from './postgres-connection-manager'
import { requirePostgresPool } from './postgres-feature'

/** What a notification handler gets besides the payload. */
export interface NotificationInfo {
  /** The channel, as given to `listen()`. */
  readonly channel: string
  /** The notifying backend's process id. */
  readonly processId: number
}

/**
 * Called for every notification on the channel, in the order the server sent them (an async
 * handler is not awaited: the next notification does not wait for it), in the async context of the
 * `listen()` call that subscribed it (its AsyncLocalStorage stores, its active OpenTelemetry span),
 * whoever else listens on the pool. A handler that throws, or
 * returns a promise that rejects, is an `error` event of its subscription (QUERY_FAILED, the
 * handler's error as `cause`), never an uncaught exception or unhandled rejection.
 */
export type NotificationHandler = (payload: string, info: NotificationInfo) => void

/** What a `reconnect` event carries. */
export interface ReconnectInfo {
  /** Connection attempts it took (1 when the first one succeeded). */
  readonly attempts: number
  /** How long the pool was not listening, in ms: notifications sent meanwhile were missed. */
  readonly downMs: number
}

/** Events of a {@link Subscription}. */
export interface SubscriptionEvents {
  /**
   * The dedicated connection was lost and is back, every channel listened again: notifications sent
   * in between were missed, so resync what they would have told (reload the cache, poll the jobs).
   */
  reconnect: (info: ReconnectInfo) => void
  /**
   * A reconnect attempt failed (it is retried with backoff), the connection failed its liveness check
   * (CONNECTION_LOST: it is reopened, `reconnect` follows), or the handler threw. Nobody listening:
   * a line on the pool's `logger` (event `listen`), else a process warning, at most one a minute per pool.
   */
  error: (error: DatabaseError) => void
}

/** One handler listening to one channel (see {@link listen}). */
export interface Subscription {
  readonly channel: string
  /**
   * Stops this handler. The last handler of a channel sends UNLISTEN; the last of the pool closes the
   * dedicated connection (so a process with nothing else to do can exit). Idempotent.
   */
  unlisten(): Promise<void>
  on<E extends keyof SubscriptionEvents>(event: E, listener: SubscriptionEvents[E]): this
  off<E extends keyof SubscriptionEvents>(event: E, listener: SubscriptionEvents[E]): this
}

/** First reconnect delay, in ms; doubled per failed attempt up to {@link MAX_BACKOFF_MS}, with ±20% jitter. */
const FIRST_BACKOFF_MS = 50
const MAX_BACKOFF_MS = 800
/** Postgres identifiers (and channel names) hold at most NAMEDATALEN - 1 bytes; longer ones are truncated. */
const MAX_CHANNEL_BYTES = 63

const LISTENER = Symbol('dbpool.postgres.listener')
const NOTIFY_TEXT = 'select pg_notify($1, $2)'
/** Span attribute: the channel of a NOTIFY. */
const CHANNEL_ATTRIBUTE = 'dbpool.channel'
/** Span attributes of the LISTEN that (re)opens the connection: whether it is a reconnect, and which attempt. */
const RECONNECT_ATTRIBUTE = 'dbpool.listen.reconnect'
const ATTEMPT_ATTRIBUTE = 'dbpool.listen.attempt'
/** Span event of a LISTEN connection opened again after a loss. */
const RECONNECTED_EVENT = 'dbpool.listen.reconnected'
/** The `event` of the pool logger's lines about the LISTEN connection. */
const LOG_EVENT = 'listen'
/**
 * Without a logger, an error no `error` listener took becomes a process warning, at most one per
 * this many ms per pool (the next one counts those left out), so a server down for minutes does not
 * print a line per attempt per subscription.
 */
const WARNING_INTERVAL_MS = 60_000
/**
 * The LISTEN connection's liveness check runs every `keepaliveIntervalMs` of the pool, at most this
 * many ms apart (also when the pool's keepalive is off): a partition that neither end sees (no RST, no
 * FIN) would otherwise leave the pool deaf, losing notifications without any event.
 */
const MAX_LIVENESS_INTERVAL_MS = 30_000
const LIVENESS_TEXT = 'SELECT 1'

/**
 * Calls `handler` for every notification on `channel` (Postgres LISTEN). Every subscription of a pool
 * shares one dedicated connection, opened by the pool's manager (same target, TLS, password function,
 * session settings) outside the lanes: it is never lent out, it shows in `pool.stats().dedicated`,
 * and `pool.close()` ends it. Resolves once the server confirmed LISTEN, so a notification sent after
 * that arrives.
 *
 * When the connection is lost (`pg_terminate_backend`, a server restart, a network cut) it is opened
 * again with backoff (50 ms doubling to 800 ms, ±20%), every channel is listened again, and each
 * subscription emits `reconnect`: what was notified in between is lost, so resync then. A link that
 * dies silently (a partition, a dead server host: no RST) is found by a liveness check, `SELECT 1`
 * every `keepaliveIntervalMs` of the pool (at most 30 s) with a deadline of `cancelTimeoutMs`: within
 * about their sum the connection is closed, `error` (CONNECTION_LOST) emitted and the reconnect
 * begins. PostgreSQL keeps no notification for a session that is gone: those sent while the pool was
 * not listening are lost. The channel
 * is sent as a quoted identifier (any text, case kept, up to 63 bytes), matching `notify()` and
 * `pg_notify()`.
 *
 * The handler, and the listeners of the subscription's events, run in the async context of this
 * call (AsyncLocalStorage, the active OpenTelemetry span), never in another subscriber's. The
 * dedicated connection's own work (its socket, liveness checks, reconnects and their spans) runs in
 * no caller's context: a reconnect's span is a root span, not part of the first subscriber's trace.
 *
 * ```ts
 * const sub = await listen(pool, 'accounts_changed', (payload) => cache.delete(payload))
 * sub.on('reconnect', () => cache.clear())
 * await sub.unlisten()
 * ```
 *
 * Errors: CONFIGURATION for a SQLite pool, an invalid channel, or a pool behind PgBouncer in
 * transaction mode (`pool.sessionFeatures.sessions` false: `pgbouncer: true`, or the option `pgbouncer: 'transaction'`)
 * (PgBouncer in transaction mode gives each transaction any server session, so a LISTEN would not
 * stay anywhere); POOL_CLOSED; the connect error (CONNECTION_FAILED, AUTHENTICATION_FAILED).
 */
export function listen(pool: DatabasePool, channel: string, handler: NotificationHandler, ...extra: []): Promise<Subscription> {
  try {
    rejectExtraArguments('listen', extra)
    const db = requirePostgresPool(pool, 'listen')
    checkChannel('listen', channel)
    if (typeof handler !== 'function')
      throw new DatabaseError('CONFIGURATION', 'invalid listen.handler: must be a function (payload, info) => void', { retryable: false })
    const listener = db.extension(LISTENER, (manager) => new PostgresListener(checkManager(manager), db))
    // the caller's async context, captured now: the handler runs in it (see ChannelSubscription.deliver)
    return listener.subscribe(channel, handler, new AsyncResource('dbpool.listen'))
  } catch (err) {
    return Promise.reject(err)
  }
}

/** Options of {@link notify}: those of the `pool.query()` it runs. */
export interface NotifyOptions {
  /** Deadline of the statement in ms (1 to 2147483647), as `pool.query()`'s `timeoutMs`. Default: none. */
  readonly timeoutMs?: number
  /** Cancels the statement, as `pool.query()`'s `signal`. */
  readonly signal?: AbortSignal
}

const NOTIFY_OPTION_KEYS = ['timeoutMs', 'signal'] as const

/**
 * Sends a notification: `select pg_notify($1, $2)` through `pool.query()`, the channel and payload as
 * parameters (never spliced into the text), with `options` ({@link NotifyOptions}) as the statement's.
 * Delivered when the sender's transaction commits (at once outside one). Errors: CONFIGURATION for a
 * SQLite pool, an invalid channel, options that are not an object, an unknown option or a bad
 * `timeoutMs`/`signal` (naming `notify.<option>`, before anything is sent); INVALID_PARAMETER for a
 * payload that is not a string; the server's error (a payload of 8000 bytes or more is refused).
 */
export async function notify(pool: DatabasePool, channel: string, payload = '', options?: NotifyOptions): Promise<void> {
  const db = requirePostgresPool(pool, 'notify')
  checkChannel('notify', channel)
  if (typeof payload !== 'string')
    throw new DatabaseError('INVALID_PARAMETER', `notify(): payload must be a string, got ${typeof payload}`, {
      backend: 'postgres',
      retryable: false,
    })
  const raw = requireObject('notify options', options)
  rejectUnknownKeys('notify', raw, NOTIFY_OPTION_KEYS)
  const timeoutMs = raw.timeoutMs === undefined ? undefined : checkInteger('notify.timeoutMs', raw.timeoutMs, 1, MAX_TIMER_MS)
  const signal = raw.signal === undefined ? undefined : checkSignal('notify.signal', raw.signal)
  const queryOptions = { ...(timeoutMs === undefined ? {} : { timeoutMs }), ...(signal === undefined ? {} : { signal }) }
  // an INTERNAL span: the statement's own CLIENT span nests under it
  await db.traced(NOTIFY_TEXT, () => db.query(NOTIFY_TEXT, [channel, payload], queryOptions), {
    operation: 'NOTIFY',
    kind: 'internal',
    attributes: { [CHANNEL_ATTRIBUTE]: channel },
  })
}

/** A channel as a quoted identifier: `"` doubled inside, case kept (pg_notify() takes the text as is). */
export function quoteChannel(channel: string): string {
  return `"${channel.replace(/"/g, '""')}"`
}

function checkChannel(fn: string, channel: unknown): asserts channel is string {
  const bytes = typeof channel === 'string' ? Buffer.byteLength(channel) : 0
  if (
    typeof channel !== 'string' ||
    bytes === 0 ||
    bytes > MAX_CHANNEL_BYTES ||
    channel.includes('\u0000') ||
    !(channel as string & { isWellFormed(): boolean }).isWellFormed()
  )
    throw new DatabaseError(
      'CONFIGURATION',
      `invalid ${fn}.channel ${JSON.stringify(channel)}: must be a string of 1 to ${MAX_CHANNEL_BYTES} bytes without U+0000 or a lone UTF-16 surrogate (Postgres truncates longer identifiers; UTF-8 would turn a lone surrogate into U+FFFD, another channel)`,
      { retryable: false, detail: { option: `${fn}.channel` } },
    )
}

function checkManager(manager: unknown): PostgresConnectionManager {
  if (!(manager instanceof PostgresConnectionManager))
    throw new DatabaseError('CONFIGURATION', 'listen() needs a pool on a PostgresConnectionManager', { retryable: false })
  // the manager's pooling mode, not the config flag alone: the option pgbouncer: 'transaction' refuses
  // too, pgbouncer: 'session' (or false) over a pgbouncer=true URL allows it
  const { sessions, reason } = manager.sessionFeatures
  if (!sessions)
    throw new DatabaseError(
      'CONFIGURATION',
      `listen() is refused on ${manager.target}: ${reason ?? 'the target keeps no session'}; point a pool without pgbouncer at the server itself`,
      { backend: 'postgres', retryable: false, detail: { option: 'pgbouncer' } },
    )
  return manager
}

/** @internal The pool's LISTEN connection and its subscriptions (a {@link PoolExtension}). */
class PostgresListener implements PoolExtension {
  readonly #manager: PostgresConnectionManager
  /** The pool: its tracer spans the LISTEN / UNLISTEN statements and the reconnects. */
  readonly #pool: DatabasePool<PostgresConnection>
  readonly #channels = new Map<string, Set<ChannelSubscription>>()
  #conn: PostgresConnection | undefined
  #retry: NodeJS.Timeout | undefined
  /** The liveness check's timer (see {@link #checkAlive}), while the listener has a connection or reconnects. */
  #liveness: NodeJS.Timeout | undefined
  #attempts = 0
  #lostAt = 0
  /** The pool's logger got a line about the current loss (else its return warns when nobody hears `reconnect`). */
  #lossLogged = false
  #closed = false
  /** When the last process warning was emitted, and how many were left out since (see WARNING_INTERVAL_MS). */
  #warnedAt = -Infinity
  #unwarned = 0
  /** LISTEN, UNLISTEN, connects and closes run one after another. */
  #chain: Promise<unknown> = Promise.resolve()
  /** Aborts the connect in flight (see {@link #abandonConnect}). */
  #connecting: AbortController | undefined

  constructor(manager: PostgresConnectionManager, pool: DatabasePool<PostgresConnection>) {
    this.#manager = manager
    this.#pool = pool
  }

  get connections(): number {
    return this.#conn?.usable ? 1 : 0
  }

  subscribe(channel: string, handler: NotificationHandler, scope: AsyncResource): Promise<Subscription> {
    return this.#serial(async () => {
      if (this.#closed) throw new DatabaseError('POOL_CLOSED', 'the pool is closed: listen() refused')
      const subscription = new ChannelSubscription(this, channel, handler, scope)
      let set = this.#channels.get(channel)
      const first = set === undefined
      if (set === undefined) this.#channels.set(channel, (set = new Set()))
      set.add(subscription)
      try {
        const conn = this.#conn
        if (conn?.usable) {
          if (first) await this.#traced(conn, `LISTEN ${quoteChannel(channel)}`)
        } else {
          // no connection yet, or one lost without notice: open one listening to every channel
          await this.#listenAll(subscription)
        }
      } catch (err) {
        set.delete(subscription)
        if (set.size === 0) this.#channels.delete(channel)
        if (this.#channels.size === 0) await this.#end()
        else if (this.#conn && !this.#conn.usable) this.#lost(this.#conn)
        // the other channels are not listened to while there is no connection: keep trying
        else if (this.#conn === undefined) this.#scheduleReconnect()
        throw err
      }
      return subscription
    })
  }

  unsubscribe(subscription: ChannelSubscription): Promise<void> {
    // the last subscription going: a (re)connect in flight is for nobody, and would hold unlisten() up to its connect timeout
    const others = [...this.#channels.values()].some((set) => set.size > (set.has(subscription) ? 1 : 0))
    if (!others) this.#abandonConnect()
    return this.#serial(async () => {
      const { channel } = subscription
      const set = this.#channels.get(channel)
      if (!set?.delete(subscription) || set.size > 0) return
      this.#channels.delete(channel)
      // closing the session ends every LISTEN at once
      if (this.#channels.size === 0) return this.#end()
      const conn = this.#conn
      if (conn?.usable) await this.#traced(conn, `UNLISTEN ${quoteChannel(channel)}`).catch(() => undefined)
    })
  }

  async close(): Promise<void> {
    this.#closed = true
    this.#channels.clear()
    clearTimeout(this.#retry)
    this.#retry = undefined
    // a reconnect in flight (a host that does not answer) would hold close() up to its connect timeout
    this.#abandonConnect()
    await this.#serial(() => this.#end())
  }

  /** Aborts the connect in flight, if any: the manager destroys its socket and tries no further host. */
  #abandonConnect(): void {
    this.#connecting?.abort(new DatabaseError('POOL_CLOSED', 'the LISTEN connection is no longer wanted: connect abandoned'))
  }

  #serial<T>(step: () => Promise<T>): Promise<T> {
    const next = this.#chain.then(step, step)
    this.#chain = next.catch(() => undefined)
    return next
  }

  async #connect(): Promise<PostgresConnection> {
    const controller = (this.#connecting = new AbortController())
    let conn: PostgresConnection
    try {
      // in no caller's context: the socket's events (notifications, a loss, the reconnect it starts)
      // would otherwise run for good in the context of the subscriber that happened to open it
      const hooks = { onLost: () => this.#lost(conn), signal: controller.signal }
      conn = await inBackground(() => this.#manager.connect('write', hooks))
    } catch (err) {
      if (controller.signal.aborted) throw controller.signal.reason
      throw err
    } finally {
      if (this.#connecting === controller) this.#connecting = undefined
    }
    if (controller.signal.aborted && !this.#closed) {
      // connected just as the last subscription went: not wanted any more
      await this.#manager.destroy(conn)
      throw controller.signal.reason
    }
    conn.client.on('notification', (message) => {
      if (this.#conn !== conn) return
      const set = this.#channels.get(message.channel)
      if (set === undefined) return
      const info: NotificationInfo = { channel: message.channel, processId: message.processId }
      for (const subscription of set) subscription.deliver(message.payload ?? '', info)
    })
    if (this.#closed) {
      await this.#manager.destroy(conn)
      throw new DatabaseError('POOL_CLOSED', 'the pool was closed while listen() connected')
    }
    this.#conn = conn
    if (this.#liveness === undefined) {
      const keepalive = this.#pool.config.keepaliveIntervalMs
      const every = keepalive > 0 ? Math.min(keepalive, MAX_LIVENESS_INTERVAL_MS) : MAX_LIVENESS_INTERVAL_MS
      // unref'd: the connection's own socket keeps a listening process up; no caller's context
      this.#liveness = inBackground(() => setInterval(() => void this.#checkAlive(), every)).unref()
    }
    return conn
  }

  /**
   * The liveness check: `SELECT 1` on the LISTEN connection with a deadline of `cancelTimeoutMs` (of
   * the manager's options; an answer already received when it expires is read first, so a handler
   * that blocked the event loop past it does not make a healthy connection look dead). No answer in time (a partition, a dead server host), or a connection
   * found unusable: it is closed, every subscription gets `error` (CONNECTION_LOST), and it is
   * reopened with backoff, which ends with `reconnect`. A dead link is so noticed within
   * `keepaliveIntervalMs` (at most 30 s) plus `cancelTimeoutMs`; notifications sent while the pool
   * was not listening are lost, as PostgreSQL keeps none for a session that is gone.
   */
  #checkAlive(): Promise<void> {
    return this.#serial(async () => {
      const conn = this.#conn
      if (conn === undefined || this.#closed) return
      const timeoutMs = this.#manager.options.cancelTimeoutMs
      let failure: unknown
      if (conn.usable) {
        try {
          await this.#run(conn, LIVENESS_TEXT)
          return
        } catch (err) {
          failure = err
        }
      }
      if (this.#conn !== conn) return
      const error = new DatabaseError(
        'CONNECTION_LOST',
        `the LISTEN connection did not pass its liveness check (${LIVENESS_TEXT} not answered within ${timeoutMs} ms, or the connection unusable); it is closed and opened again, and notifications sent until then are lost`,
        { backend: 'postgres', cause: failure ?? conn.brokenBy },
      )
      conn.markBroken(error)
      const logged = this.#lost(conn, error)
      let unheard = false
      for (const set of this.#channels.values()) for (const subscription of set) if (!subscription.emit('error', error)) unheard = true
      const lossLogged = this.#lossLogged
      this.#lossLogged = false
      if (unheard && !logged && !lossLogged)
        this.#warn(`listen(${[...this.#channels.keys()].map((c) => JSON.stringify(c)).join(', ')}): ${error.message}`)
    })
  }

  #run(conn: PostgresConnection, text: string): Promise<unknown> {
    return this.#manager.execute(conn, { text, params: [] }, { timeoutMs: this.#manager.options.cancelTimeoutMs })
  }

  /** {@link #run} under a CLIENT span of the pool (`LISTEN`, `UNLISTEN`). */
  #traced(conn: PostgresConnection, text: string): Promise<unknown> {
    return this.#pool.traced(text, () => this.#run(conn, text))
  }

  /** The connection is gone (`reason`: why, else what broke it): reopened with backoff. True when the pool's logger got a line about it. */
  #lost(conn: PostgresConnection, reason?: DatabaseError): boolean {
    if (this.#conn !== conn) return false
    this.#conn = undefined
    this.#lostAt ||= performance.now()
    const channels = [...this.#channels.keys()]
    const message = 'LISTEN connection lost; reconnecting (notifications sent until it is back are lost)'
    const logged = this.#pool.log('warn', LOG_EVENT, message, { channels }, reason ?? conn.brokenBy)
    if (logged) this.#lossLogged = true
    void this.#manager.destroy(conn)
    this.#scheduleReconnect()
    return logged
  }

  #scheduleReconnect(): void {
    if (this.#retry !== undefined || this.#closed || this.#channels.size === 0) return
    const delay = Math.min(MAX_BACKOFF_MS, FIRST_BACKOFF_MS * 2 ** this.#attempts) * (0.8 + Math.random() * 0.4)
    // ref'd on purpose: a process whose work is listening stays up while it reconnects. In no
    // caller's context (a failed listen() schedules it too): the reconnect's span is a root span
    this.#retry = inBackground(() =>
      setTimeout(() => {
        this.#retry = undefined
        void this.#reconnect()
      }, delay),
    )
  }

  #reconnect(): Promise<void> {
    return this.#serial(async () => {
      if (this.#closed || this.#channels.size === 0 || this.#conn?.usable) return
      try {
        await this.#listenAll(undefined)
      } catch (err) {
        // close() or the last unlisten() abandoned the attempt: nothing to report or retry
        if (this.#closed || (DatabaseError.is(err) && err.code === 'POOL_CLOSED')) return
        const error = DatabaseError.is(err) ? err : this.#manager.mapError(err)
        const attempt = this.#attempts
        let unheard = false
        for (const set of this.#channels.values()) for (const subscription of set) if (!subscription.emit('error', error)) unheard = true
        // one line per attempt, whatever the number of subscriptions
        const channels = [...this.#channels.keys()]
        const logged = this.#pool.log(
          'warn',
          LOG_EVENT,
          'LISTEN reconnect attempt failed; retrying with backoff',
          { channels, attempt },
          error,
        )
        if (!logged && unheard)
          this.#warn(`listen(${channels.map((c) => JSON.stringify(c)).join(', ')}): reconnect attempt ${attempt} failed: ${error.message}`)
        this.#scheduleReconnect()
      }
    })
  }

  /**
   * @internal An error of one subscription that no `error` listener took (a handler threw): a line on
   * the pool's logger, else a process warning (rate-limited).
   */
  unheard(channel: string, error: DatabaseError): void {
    if (!this.#pool.log('warn', LOG_EVENT, 'a notification handler threw', { channels: [channel] }, error))
      this.#warn(`listen(${JSON.stringify(channel)}): ${error.message}`)
  }

  /** A process warning, at most one per WARNING_INTERVAL_MS (the next one says how many were left out). */
  #warn(text: string): void {
    const now = performance.now()
    if (now - this.#warnedAt < WARNING_INTERVAL_MS) {
      this.#unwarned++
      return
    }
    const more = this.#unwarned > 0 ? ` (${this.#unwarned} similar warning(s) left out in the last ${WARNING_INTERVAL_MS / 1000} s)` : ''
    this.#warnedAt = now
    this.#unwarned = 0
    process.emitWarning(`dbpool: ${text}${more}`, 'DbpoolWarning')
  }

  /**
   * Opens the connection and LISTENs every channel in one round trip. When channels were listened
   * before (a reconnect), their subscriptions other than `joining` get `reconnect`.
   */
  #listenAll(joining: ChannelSubscription | undefined): Promise<void> {
    const text = [...this.#channels.keys()].map((channel) => `LISTEN ${quoteChannel(channel)}`).join('; ')
    // one CLIENT span for the connect and its LISTENs: a reconnect (and each failed attempt) is one too
    const attributes = { [RECONNECT_ATTRIBUTE]: this.#lostAt > 0 || this.#conn !== undefined, [ATTEMPT_ATTRIBUTE]: this.#attempts + 1 }
    return this.#pool.traced(text, (span) => this.#openAndListen(joining, text, span), { attributes })
  }

  async #openAndListen(joining: ChannelSubscription | undefined, text: string, span: OperationSpan): Promise<void> {
    const stale = this.#conn
    if (stale) {
      // lost without an event (a LISTEN that timed out closed it): the channels missed what came meanwhile
      this.#lostAt ||= performance.now()
      this.#conn = undefined
      await this.#manager.destroy(stale)
    }
    clearTimeout(this.#retry)
    this.#retry = undefined
    this.#attempts++
    const conn = await this.#connect().catch((err: unknown) => {
      throw DatabaseError.is(err) ? err : this.#manager.mapError(err)
    })
    try {
      await this.#run(conn, text)
    } catch (err) {
      if (this.#conn === conn) this.#conn = undefined
      await this.#manager.destroy(conn)
      throw err
    }
    const reconnected = this.#lostAt > 0
    const info: ReconnectInfo = { attempts: this.#attempts, downMs: Math.round(performance.now() - this.#lostAt) }
    this.#attempts = 0
    this.#lostAt = 0
    if (!reconnected) return
    span.addEvent(RECONNECTED_EVENT, { attempts: info.attempts, 'dbpool.down_ms': info.downMs })
    const channels = [...this.#channels.keys()]
    const logged = this.#pool.log('info', LOG_EVENT, 'LISTEN connection back; notifications sent while it was down were lost', {
      channels,
      attempts: info.attempts,
      downMs: info.downMs,
    })
    let unheard = false
    for (const set of this.#channels.values())
      for (const subscription of set) if (subscription !== joining && !subscription.emit('reconnect', info)) unheard = true
    // the loss would otherwise go unnoticed: nobody resyncs, nothing is logged
    const lossLogged = this.#lossLogged
    this.#lossLogged = false
    if (unheard && !logged && !lossLogged)
      this.#warn(
        `listen(${channels.map((c) => JSON.stringify(c)).join(', ')}): the LISTEN connection was lost and is back after ${info.downMs} ms; notifications sent meanwhile were lost (listen to 'reconnect' to resync, or give the pool a logger)`,
      )
  }

  async #end(): Promise<void> {
    clearTimeout(this.#retry)
    this.#retry = undefined
    clearInterval(this.#liveness)
    this.#liveness = undefined
    this.#attempts = 0
    this.#lostAt = 0
    this.#lossLogged = false
    const conn = this.#conn
    this.#conn = undefined
    if (conn) await this.#manager.destroy(conn)
  }
}

/** @internal */
class ChannelSubscription implements Subscription {
  readonly #listener: PostgresListener
  readonly #handler: NotificationHandler
  /** The async context of the `listen()` call: the handler and the event listeners run in it. */
  readonly #scope: AsyncResource
  readonly #events = new Map<keyof SubscriptionEvents, Set<(arg: never) => void>>()
  #active = true

  constructor(
    listener: PostgresListener,
    readonly channel: string,
    handler: NotificationHandler,
    scope: AsyncResource,
  ) {
    this.#listener = listener
    this.#handler = handler
    this.#scope = scope
  }

  unlisten(): Promise<void> {
    if (!this.#active) return Promise.resolve()
    this.#active = false
    return this.#listener.unsubscribe(this)
  }

  on<E extends keyof SubscriptionEvents>(event: E, listener: SubscriptionEvents[E]): this {
    let set = this.#events.get(event)
    if (set === undefined) this.#events.set(event, (set = new Set()))
    set.add(listener as (arg: never) => void)
    return this
  }

  off<E extends keyof SubscriptionEvents>(event: E, listener: SubscriptionEvents[E]): this {
    this.#events.get(event)?.delete(listener as (arg: never) => void)
    return this
  }

  /** @internal Calls the handler, in the async context of the `listen()` call (not the connection's). */
  deliver(payload: string, info: NotificationInfo): void {
    if (!this.#active) return
    this.#scope.runInAsyncScope(this.#call, this, payload, info)
  }

  #call(payload: string, info: NotificationInfo): void {
    try {
      const result: unknown = this.#handler(payload, info)
      // an async handler's rejection would otherwise be an unhandled rejection, which ends the process
      if (isThenable(result)) result.then(undefined, (err: unknown) => this.#handlerFailed(err))
    } catch (err) {
      this.#handlerFailed(err)
    }
  }

  #handlerFailed(err: unknown): void {
    const error = new DatabaseError('QUERY_FAILED', `a notification handler of channel ${JSON.stringify(this.channel)} threw`, {
      backend: 'postgres',
      cause: err,
    })
    if (!this.emit('error', error)) this.#listener.unheard(this.channel, error)
  }

  /**
   * @internal Calls the listeners of `event`, in the async context of the `listen()` call; false
   * when it has none (the listener then reports an `error` on the pool's logger or as a
   * rate-limited process warning). A throwing event listener never breaks the listener.
   */
  emit<E extends keyof SubscriptionEvents>(event: E, arg: Parameters<SubscriptionEvents[E]>[0]): boolean {
    const set = this.#events.get(event)
    if (!set || set.size === 0) return false
    this.#scope.runInAsyncScope(callEach, undefined, set, arg)
    return true
  }
}

/** Calls each event listener with `arg`; a listener's own failure is its business. */
function callEach(set: Set<(arg: never) => void>, arg: unknown): void {
  for (const listener of set) {
    try {
      ;(listener as (value: unknown) => void)(arg)
    } catch {
      // a listener's own failure is its business
    }
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (
    (typeof value === 'object' || typeof value === 'function') &&
    value !== null &&
    typeof (value as PromiseLike<unknown>).then === 'function'
  )
}
