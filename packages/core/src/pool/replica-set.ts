import type { PoolConfig } from '../config/pool-config'
import { DatabaseError } from '../errors/database-error'
import type { CompiledQuery } from '../sql/sql'
import type { ConnectionManager, ReplicaStatus } from '../driver/connection-manager'
import { splitSqlStatements } from '../migrations/sql-splitter'
import { LanePool, withDeadline, type LaneHost } from './lane-pool'
import type { Lease } from './lease'
import type { PooledConnection } from './pooled-connection'

/**
 * Why a replica is not used for reads: `'unreachable'` (connect or status query failed), `'lagging'`
 * (replay lag beyond `maxReplicaLagMs`), `'not-standby'` (the server is not in recovery: promoted, or
 * a primary configured as a replica; its connections are closed and new ones refused until it is a
 * standby again).
 */
export type ReplicaOutReason = 'unreachable' | 'lagging' | 'not-standby'

/** What the `replica` pool event carries: a replica of the read lane was taken out or came back. */
export interface ReplicaStateInfo {
  /** The replica, `host:port`. */
  readonly replica: string
  /** `true`: reads may use it again; `false`: taken out (re-probed in each keepalive pass). */
  readonly usable: boolean
  /** Why it was taken out. */
  readonly reason?: ReplicaOutReason
  /** The lag measured, when it is the reason. */
  readonly lagMs?: number
  /** The error, when it is unreachable. */
  readonly error?: DatabaseError
}

/** What the `readFallback` pool event carries: read-lane work runs on the primary since no replica is usable. */
export interface ReadFallbackInfo {
  /** Each replica and why it is out. */
  readonly replicas: readonly { readonly replica: string; readonly reason: ReplicaOutReason }[]
}

/** Counters of the read lane's replicas (`pool.replicaStats()`). */
export interface ReplicaStats {
  readonly replicas: readonly {
    readonly replica: string
    readonly usable: boolean
    readonly reason?: ReplicaOutReason
    /** Lag at the last keepalive pass, in ms (`undefined` before the first). */
    readonly lagMs?: number
    /** Connections open, in use, waiting. */
    readonly size: number
    readonly used: number
    readonly pending: number
  }[]
  /**
   * The primary's read-only pool (read-lane work no replica may serve; Postgres, not behind
   * PgBouncer in transaction mode): connections open, in use, waiting. Up to the pool's `max` of its own, counted in
   * `stats('read')` and `stats().max`; `undefined` without one (such reads run on the write lane).
   */
  readonly primary?: { readonly size: number; readonly used: number; readonly pending: number }
  /** Read-lane acquires served by a replica (an acquire whose replica failed and that ran elsewhere counts where it ran). */
  readonly readsOnReplicas: number
  /** Read-lane acquires served by the primary because no replica was usable. */
  readonly readsOnPrimaryFallback: number
  /** Read-lane acquires served by the primary because no usable replica had replayed this process's last write (`readYourWrites`). */
  readonly readsOnPrimaryForWrites: number
  /** Write positions recorded for `readYourWrites` (one round trip each). */
  readonly positionsRecorded: number
}

/** @internal What the replica set needs from the pool. */
export interface ReplicaHost {
  readonly laneHost: LaneHost<unknown>
  readonly maxLagMs: number
  readonly readYourWrites: boolean
  isReadOnly(query: CompiledQuery): boolean
  replicaStatus(native: unknown, timeoutMs: number): Promise<ReplicaStatus>
  writePosition(native: unknown, timeoutMs: number): Promise<bigint>
  emitState(info: ReplicaStateInfo): void
  emitFallback(info: ReadFallbackInfo): void
}

class Target {
  usable = true
  reason: ReplicaOutReason | undefined = undefined
  lagMs: number | undefined = undefined
  /**
   * The highest position known replayed by one of its connections; 0 when not known (after a failure
   * or a restart). A hint for choosing: behind a load balancer or a multi-host URL its connections
   * reach different standbys, so a read checks the connection that serves it (see `ReplicaSet.check`).
   */
  position = 0n
  refreshing: Promise<void> | undefined = undefined

  constructor(
    readonly label: string,
    readonly pool: LanePool<unknown>,
  ) {}
}

/** Above every real position: no replica is known to have replayed that far. */
const UNKNOWN = BigInt('0xFFFFFFFFFFFFFFFF')

/**
 * Transaction control, a text of one statement (no `;`): neither a read nor a write by itself.
 * `COMMIT PREPARED` is not (it commits a prepared transaction's writes).
 */
const TRANSACTION_CONTROL = /^\s*(begin|start\s+transaction|commit(?!\s+prepared\b)|end|rollback|abort|savepoint|release)\b/i

/** The same, for one statement of a text of several (its first words, upper-cased: `SqlStatement.head`). */
function isTransactionControl(head: readonly string[]): boolean {
  const [first, second] = head
  switch (first) {
    case 'BEGIN':
    case 'END':
    case 'ABORT':
    case 'ROLLBACK':
    case 'SAVEPOINT':
    case 'RELEASE':
      return true
    case 'COMMIT':
      return second !== 'PREPARED'
    case 'START':
      return second === 'TRANSACTION'
    default:
      return false
  }
}

/**
 * @internal The read lane of a pool whose manager has several read targets (Postgres replicas): one
 * {@link LanePool} per replica, each up to the pool's `max`. A read-lane acquire goes to the least
 * busy usable replica (fewest connections in use and waiting, relative to its size); a replica whose
 * connect fails, or whose lag measured in the keepalive pass exceeds `maxReplicaLagMs`, is taken out
 * (`replica` event) and probed again in each pass; with none usable, reads run on the primary
 * (`readFallback` event, once per spell, and a counter): on its read-only pool when the manager
 * offers one (`lanes.readOnlyFallback`), else on the write lane.
 *
 * `readYourWrites`: each write-lane lease that ran a statement not known to be read-only records the
 * primary's write position before its caller sees the result (at its release; on a lease the caller
 * holds, after the statement that left the write committed: see `DatabasePool`), one round trip (see
 * `ConnectionManager.writePosition`); the set keeps the highest (process-wide). A read then runs on a
 * replica connection only once **that connection** is known to have replayed that far (a replica URL
 * may reach several standbys: a load balancer, a multi-host URL): known from an earlier answer on the
 * same connection (no round trip), else asked on it (one round trip, {@link check}); behind, the read
 * runs on the primary. Lone read-lane statements then take a lease instead of sharing a pipelined
 * connection, so that the connection is checked. A failed recording, or a lease that may have written
 * whose connection was lost (its outcome unknown, {@link lostWrite}), leaves the position unknown:
 * every read runs on the primary until a recording started after it succeeds.
 */
export class ReplicaSet {
  readonly #host: ReplicaHost
  readonly #targets: Target[]
  /** Read-only connections to the primary (`lanes.readOnlyFallback`): read-lane work no replica serves; else `undefined` (the write lane). */
  readonly #primary: LanePool<unknown> | undefined
  /** Statements judged read-only from their text that a standby refused as writes (see refusedOnReplica). */
  readonly #refused = new WeakSet<CompiledQuery>()
  /** The highest write position this process recorded (readYourWrites); {@link UNKNOWN} after a failed recording. */
  #written = 0n
  /** Recordings started so far; one that started after a failed one may clear {@link UNKNOWN}. */
  #recordings = 0
  /** The last recording that failed: only a recording started after it knows a position past that write. */
  #failedRecording = 0
  #fallingBack = false
  #readsOnReplicas = 0
  #readsOnPrimaryFallback = 0
  #readsOnPrimaryForWrites = 0
  #positions = 0
  /** readYourWrites: how far each replica connection is known to have replayed (asked on it). */
  readonly #replayed = new WeakMap<PooledConnection<unknown>, bigint>()
  readonly #statusTimeoutMs: number

  /** Whether write positions are recorded (`readYourWrites`). */
  get readYourWrites(): boolean {
    return this.#host.readYourWrites
  }

  constructor(host: ReplicaHost, labels: readonly string[], max: number, min: number, statusTimeoutMs = 5_000, readOnlyFallback = false) {
    this.#host = host
    this.#statusTimeoutMs = statusTimeoutMs
    this.#targets = labels.map((label, i) => new Target(label, new LanePool(host.laneHost, 'read', max, min, i)))
    // opened only when needed (min 0): with healthy replicas it holds no connection
    this.#primary = readOnlyFallback ? new LanePool(host.laneHost, 'read', max, 0, labels.length, 'primary read-only') : undefined
  }

  /** Every replica's lane pool, and the primary's read-only one. */
  get pools(): LanePool<unknown>[] {
    const pools = this.#targets.map((t) => t.pool)
    if (this.#primary) pools.push(this.#primary)
    return pools
  }

  /** The lane pool a read-lane connection belongs to. */
  poolOf(conn: PooledConnection<unknown>): LanePool<unknown> {
    return conn.target === this.#targets.length ? this.#primary! : (this.#targets[conn.target] as Target).pool
  }

  /** Whether `pool` is the primary's read-only pool (not a replica: nothing to check, nothing to take out). */
  isPrimary(pool: LanePool<unknown>): boolean {
    return pool === this.#primary
  }

  /**
   * Where the next read-lane acquire goes: a replica's pool, or the primary's read-only pool
   * (`undefined` without one: the write lane). With
   * `readYourWrites` after a write, a replica known (from one of its connections) to have replayed it
   * first, else the least busy one: the connection handed out is checked by {@link check}; `skip`:
   * the replicas whose connection was found behind for this read (none left: the primary).
   */
  choose(skip?: ReadonlySet<LanePool<unknown>>): LanePool<unknown> | undefined {
    let candidates = this.#usable()
    if (skip !== undefined) {
      candidates = candidates.filter((t) => !skip.has(t.pool))
      if (candidates.length === 0) {
        this.#readsOnPrimaryForWrites++
        return this.#primary
      }
    }
    if (candidates.length === 0) return this.#onPrimary()
    this.#fallingBack = false
    if (!this.#host.readYourWrites || this.#written === 0n) return this.#onReplica(candidates[0] as Target)
    if (this.#written === UNKNOWN) {
      // no replica can be shown to have it: asking them would only add round trips
      this.#readsOnPrimaryForWrites++
      return this.#primary
    }
    return this.#onReplica(candidates.find((t) => t.position >= this.#written) ?? (candidates[0] as Target))
  }

  /** Whether read-lane work must check the replica connection that serves it ({@link check}): `readYourWrites` after a write. */
  get checksConnections(): boolean {
    return this.#host.readYourWrites && this.#written !== 0n
  }

  /**
   * `readYourWrites`: whether the replica connection `conn`, handed out for a read, has replayed this
   * process's last write. `undefined` (no round trip) when nothing is to be waited for or `conn` is
   * known to have replayed it; else a promise: asks `conn` itself how far it replayed (one round
   * trip). `false`: behind (or the question failed: `conn.broken` is then set, or it is not a
   * standby: the replica is taken out); the read goes to the next choice, skipping this replica.
   */
  check(conn: PooledConnection<unknown>): Promise<boolean> | undefined {
    const wanted = this.#written
    if (!this.#host.readYourWrites || wanted === 0n || (this.#replayed.get(conn) ?? 0n) >= wanted) return undefined
    return this.#ask(conn, wanted)
  }

  async #ask(conn: PooledConnection<unknown>, wanted: bigint): Promise<boolean> {
    const target = this.#targets[conn.target] as Target
    try {
      const status = await this.#host.replicaStatus(conn.native, this.#statusTimeoutMs)
      if (!status.inRecovery) {
        await this.#notStandby(target)
      } else {
        this.#replayed.set(conn, status.position)
        if (status.position > target.position) target.position = status.position
        if (status.position >= wanted) return true
      }
    } catch (err) {
      conn.broken ??= DatabaseError.is(err) ? err : this.#host.laneHost.manager.mapError(err)
    }
    // not served here after all: the next choice counts it
    this.#readsOnReplicas--
    return false
  }

  /**
   * A read-lane acquire on `pool` failed before anything ran (CONNECTION_FAILED...): the replica is
   * out (`not-standby` when the connect found a server that is not in recovery: `detail.standby: false`),
   * and the read, which the caller runs on the next choice, is not counted on it (`readsOnReplicas`);
   * `servedThere`: it was sent and is not run again (its outcome unknown), it stays counted there.
   */
  failed(pool: LanePool<unknown>, error: DatabaseError, servedThere = false): void {
    const target = this.#targets.find((t) => t.pool === pool)
    if (!target) return
    // not served there: the next choice counts it where it runs
    if (!servedThere) this.#readsOnReplicas--
    this.#takeOut(target, reasonOf(error), { error })
  }

  /**
   * A statement ran on a write-lane lease: remember whether it may have written. A text of several
   * statements (`BEGIN; INSERT ...; COMMIT`, `COMMIT; INSERT ...`) may write when any of them may:
   * only a text made of transaction control alone writes nothing.
   */
  noteStatement(lease: Lease<unknown>, query: CompiledQuery): void {
    if (lease.wrote || !this.#host.readYourWrites || lease.conn.lane !== 'write') return
    if (this.#readOnly(query) || this.#onlyTransactionControl(query.text)) return
    lease.wrote = true
  }

  /**
   * A write-lane lease that may have written lost its connection (or its statement's outcome is
   * otherwise unknown): what it sent may have committed, and no position can be asked on it. As
   * after a failed recording ({@link recordWrite}), no replica can be shown to have it: read-lane
   * work runs on the primary until a recording started after this one succeeds.
   */
  lostWrite(lease: Lease<unknown>): void {
    lease.wrote = false
    this.#written = UNKNOWN
    this.#failedRecording = this.#recordings
  }

  /** Whether a lone statement on the write lane must run on a lease of its own (its release records the write position). */
  needsLease(query: CompiledQuery): boolean {
    return this.#host.readYourWrites && !this.#readOnly(query)
  }

  /** A statement `readRouting: 'auto'` judged read-only that a standby refused as a write: it runs again on the primary as a write. */
  refusedOnReplica(query: CompiledQuery): void {
    this.#refused.add(query)
  }

  /** Whether `text` is transaction control only (`BEGIN`, `COMMIT; BEGIN`...): nothing that writes. */
  #onlyTransactionControl(text: string): boolean {
    if (!text.includes(';')) return TRANSACTION_CONTROL.test(text)
    const statements = splitSqlStatements(text, this.#host.laneHost.manager.backend)
    return statements.length > 0 && statements.every((s) => isTransactionControl(s.head))
  }

  #readOnly(query: CompiledQuery): boolean {
    return !this.#refused.has(query) && this.#host.isReadOnly(query)
  }

  /**
   * Before a lease that may have written is released: records the primary's write position (its
   * caller's promise settles after this). A failure records nothing known: every read goes to the
   * primary until a later write records a position again.
   */
  async recordWrite(lease: Lease<unknown>, timeoutMs: number): Promise<void> {
    lease.wrote = false
    this.#positions++
    const recording = ++this.#recordings
    try {
      const position = await this.#host.writePosition(lease.conn.native, timeoutMs)
      // a recording that started after the failed one was asked after that write committed
      if (this.#written === UNKNOWN && recording > this.#failedRecording) this.#written = position
      else if (position > this.#written) this.#written = position
    } catch {
      // not known how far: no replica can be shown to have it, until a later recording succeeds
      this.#written = UNKNOWN
      // an earlier recording failing late does not let one started before a later failure clear it
      this.#failedRecording = Math.max(this.#failedRecording, recording)
    }
  }

  /** The keepalive pass: measures every replica (lag, position); takes out or brings back. */
  async probe(timeoutMs: number): Promise<void> {
    await Promise.all(
      this.#targets.map(async (target) => {
        await this.#refresh(target, timeoutMs)
        if (target.lagMs === undefined) return
        if (target.lagMs > this.#host.maxLagMs) this.#takeOut(target, 'lagging', { lagMs: target.lagMs })
        else if (!target.usable && target.reason !== undefined) this.#bringBack(target)
      }),
    )
  }

  stats(): ReplicaStats {
    return {
      replicas: this.#targets.map((t) => {
        const s = t.pool.stats()
        return { replica: t.label, usable: t.usable, reason: t.reason, lagMs: t.lagMs, size: s.size, used: s.used, pending: s.pending }
      }),
      primary: this.#primary && sizesOf(this.#primary),
      readsOnReplicas: this.#readsOnReplicas,
      readsOnPrimaryFallback: this.#readsOnPrimaryFallback,
      readsOnPrimaryForWrites: this.#readsOnPrimaryForWrites,
      positionsRecorded: this.#positions,
    }
  }

  /**
   * Asks a replica how far it replayed (one connection of its own pool; when every one of them is
   * leased, one opened for the question and closed after: see {@link #statusAside}); a failure takes it out.
   * The whole question is bounded by `timeoutMs` (`min(createTimeoutMs, 5000)`), the wait for the
   * connection included (a validation ping of an idle one, a connect to a server that accepts the
   * socket and then says nothing): at the deadline the wait is given up (the acquire leaves the
   * queue, the connect aside is aborted) and the replica is out as not answering (QUERY_TIMEOUT,
   * see {@link #interrupt}), so a standby that stops answering is out within about
   * `keepaliveIntervalMs` + `timeoutMs`, not when a connect of its pool times out (`createTimeoutMs`).
   */
  #refresh(target: Target, timeoutMs = 5_000): Promise<void> {
    target.refreshing ??= (async () => {
      const stop = new AbortController()
      try {
        const asking = isFull(target.pool)
          ? this.#statusAside(target, timeoutMs, stop.signal)
          : this.#statusPooled(target, timeoutMs, stop.signal)
        const standby = await withDeadline(
          asking,
          timeoutMs,
          () => {
            const error = new DatabaseError(
              'QUERY_TIMEOUT',
              `the replica ${target.label} did not answer the keepalive's status query within ${timeoutMs} ms (the wait for a connection to ask it on included)`,
              { retryable: true, detail: { replica: target.label, timeoutMs } },
            )
            stop.abort(error)
            return error
          },
          { unref: true },
        )
        if (!standby) {
          await this.#notStandby(target)
          return
        }
        if (!target.usable && target.reason !== 'lagging' && target.lagMs! <= this.#host.maxLagMs) this.#bringBack(target)
      } catch (err) {
        const error = DatabaseError.is(err) ? err : this.#host.laneHost.manager.mapError(err)
        target.lagMs = undefined
        this.#takeOut(target, reasonOf(error), { error })
        if (notAnswering(error)) await this.#interrupt(target, error)
      } finally {
        target.refreshing = undefined
      }
    })()
    return target.refreshing
  }

  /**
   * The keepalive's status query on one of the replica's pooled connections; resolves whether it is a
   * standby. `stop` aborting (the deadline of {@link #refresh}) takes the wait for the connection out
   * of the queue (QUERY_CANCELLED: no caller receives it, it is not an acquire timeout).
   */
  async #statusPooled(target: Target, timeoutMs: number, stop: AbortSignal): Promise<boolean> {
    const conn = await target.pool.acquire(connectionOf, undefined, undefined, performance.now(), undefined, stop)
    try {
      const status = await this.#host.replicaStatus(conn.native, timeoutMs)
      const standby = status.inRecovery
      // a server out of recovery writes on a timeline of its own: its positions say nothing of the primary's
      target.lagMs = standby ? status.lagMs : undefined
      if (standby) this.#replayed.set(conn, status.position)
      if (standby && status.position > target.position) target.position = status.position
      return standby
    } catch (err) {
      conn.broken ??= DatabaseError.is(err) ? err : this.#host.laneHost.manager.mapError(err)
      throw err
    } finally {
      if (conn.broken) {
        await target.pool.evict(conn, `broken: ${conn.broken.code}`)
        target.pool.release(conn)
        target.pool.dropDestroyed()
      } else target.pool.release(conn)
    }
  }

  /**
   * The keepalive's status query when every connection of the replica's pool is leased (each may be
   * stuck on a server that stopped answering, and waiting for one would hold the pass until the
   * acquire timed out, never finding out): on a connection opened for it (bounded by the manager's
   * connect timeout), outside the pool, closed after.
   */
  async #statusAside(target: Target, timeoutMs: number, stop: AbortSignal): Promise<boolean> {
    const manager = this.#host.laneHost.manager
    let native: unknown
    try {
      // `stop` (the deadline of #refresh) makes the manager give the connect up
      native = await manager.connect('read', { onLost: () => undefined, signal: stop }, target.pool.target)
      if (stop.aborted) {
        await manager.destroy(native)
        throw stop.reason
      }
    } catch (err) {
      // the connect found a server that is not a standby: as the status query would have
      if (DatabaseError.is(err) && reasonOf(err) === 'not-standby') {
        target.lagMs = undefined
        return false
      }
      throw err
    }
    try {
      const status = await this.#host.replicaStatus(native, timeoutMs)
      target.lagMs = status.inRecovery ? status.lagMs : undefined
      if (status.inRecovery && status.position > target.position) target.position = status.position
      return status.inRecovery
    } finally {
      await manager.destroy(native)
    }
  }

  #usable(): Target[] {
    const usable = this.#targets.filter((t) => t.usable)
    if (usable.length > 1) usable.sort((a, b) => load(a.pool) - load(b.pool))
    return usable
  }

  #onReplica(target: Target): LanePool<unknown> {
    this.#readsOnReplicas++
    return target.pool
  }

  #onPrimary(): LanePool<unknown> | undefined {
    this.#readsOnPrimaryFallback++
    if (!this.#fallingBack) {
      this.#fallingBack = true
      this.#host.emitFallback({ replicas: this.#targets.map((t) => ({ replica: t.label, reason: t.reason ?? 'unreachable' })) })
    }
    return this.#primary
  }

  /**
   * The status query found the replica out of recovery (promoted): out at once, and every connection
   * to it is closed (idle ones now, leased ones when their lease ends), so no read-lane work runs on
   * a server that takes writes. New connections to it fail their standby check until it is one again.
   */
  #notStandby(target: Target): Promise<void> {
    const error = new DatabaseError('CONNECTION_FAILED', `the replica ${target.label} is not a standby any more (not in recovery)`, {
      retryable: true,
      detail: { standby: false },
    })
    // out of recovery it has no lag behind the primary: a lag measured before (the connect that found
    // it not a standby leaves the last one) made the keepalive pass bring it back at once (probe())
    target.lagMs = undefined
    this.#takeOut(target, 'not-standby', { error })
    for (const conn of target.pool.live) conn.broken ??= error
    return target.pool.sweep()
  }

  /**
   * The keepalive pass found the replica not answering (see notAnswering): its connections are not
   * reused, and the work in flight on them fails now (CONNECTION_LOST, through
   * `ConnectionManager.interrupt`) instead of waiting, without a deadline, for an answer that will
   * not come. A read the pool runs again elsewhere (a lone read-lane statement) is; the rest is the caller's.
   * Callers still waiting for one of its connections fail with CONNECTION_FAILED, which sends a
   * read-lane acquire to the next choice (another replica, the primary) at once.
   */
  #interrupt(target: Target, cause: DatabaseError): Promise<void> {
    const manager = this.#host.laneHost.manager
    const lost = new DatabaseError(
      'CONNECTION_LOST',
      `the replica ${target.label} stopped answering (the keepalive pass: ${cause.code}); the connection was closed with the work in flight on it`,
      { retryable: true, cause, detail: { replica: target.label } },
    )
    for (const conn of target.pool.live) {
      if (conn.destroyed) continue
      conn.broken ??= lost
      if (conn.leased) manager.interrupt?.(conn.native, lost)
    }
    // callers waiting for a connection there (a connect that hangs until createTimeoutMs) go to the
    // next choice now: nothing was sent, and the replica is out (a read-lane acquire's CONNECTION_FAILED)
    target.pool.failWaiting(
      new DatabaseError('CONNECTION_FAILED', `the replica ${target.label} stopped answering (the keepalive pass: ${cause.code})`, {
        retryable: true,
        cause,
        detail: { replica: target.label },
      }),
    )
    return target.pool.sweep()
  }

  #takeOut(target: Target, reason: ReplicaOutReason, extra: { readonly lagMs?: number; readonly error?: DatabaseError }): void {
    // after a failure its replayed position is not known any more (a restarted standby may show less)
    if (reason !== 'lagging') target.position = 0n
    if (!target.usable && target.reason === reason) return
    target.usable = false
    target.reason = reason
    this.#host.emitState({ replica: target.label, usable: false, reason, ...extra })
  }

  #bringBack(target: Target): void {
    target.usable = true
    target.reason = undefined
    this.#host.emitState({ replica: target.label, usable: true })
  }
}

/** Why a replica whose connect or status query failed is out: a connect that found no standby says so in `detail.standby`. */
function reasonOf(error: DatabaseError): ReplicaOutReason {
  return (error.detail as { standby?: unknown } | undefined)?.standby === false ? 'not-standby' : 'unreachable'
}

/**
 * Whether a failed status query or connect says the replica is not answering at all: a deadline
 * (QUERY_TIMEOUT, a connect timeout) or a lost or refused connection, with no answer from the server
 * (no SQLSTATE: a server that refuses with one, as for too many connections or a wrong password, is
 * answering, and the work already running there goes on). Not a server found out of recovery.
 */
function notAnswering(error: DatabaseError): boolean {
  if (error.sqlState !== undefined || reasonOf(error) === 'not-standby') return false
  return error.code === 'QUERY_TIMEOUT' || error.code === 'CONNECTION_LOST' || error.code === 'CONNECTION_FAILED'
}

/** Every connection the pool may hold is leased: an acquire would wait for a release. */
function isFull(pool: LanePool<unknown>): boolean {
  const s = pool.stats()
  return s.used >= s.max
}

function sizesOf(pool: LanePool<unknown>): { size: number; used: number; pending: number } {
  const s = pool.stats()
  return { size: s.size, used: s.used, pending: s.pending }
}

/** Share of a pool's capacity in use or asked for. */
function load(pool: LanePool<unknown>): number {
  const s = pool.stats()
  return (s.used + s.pending) / s.max
}

function connectionOf(conn: PooledConnection<unknown>): PooledConnection<unknown> {
  return conn
}

/** @internal Builds the replica set of a pool whose manager declares read targets. */
export function createReplicaSet(
  manager: ConnectionManager<unknown>,
  laneHost: LaneHost<unknown>,
  config: PoolConfig,
  emit: Pick<ReplicaHost, 'emitState' | 'emitFallback'>,
): ReplicaSet | undefined {
  const targets = manager.lanes.readTargets
  if (!targets || targets.length === 0) return undefined
  const unsupported = (what: string) => () =>
    Promise.reject(new DatabaseError('CONFIGURATION', `the ${manager.backend} manager has read targets but no ${what}`))
  const host: ReplicaHost = {
    laneHost,
    maxLagMs: manager.maxReplicaLagMs ?? 10_000,
    readYourWrites: manager.readYourWrites === true,
    isReadOnly: (query) => manager.isReadOnly?.(query) ?? false,
    replicaStatus: manager.replicaStatus ? (native, ms) => manager.replicaStatus!(native, ms) : unsupported('replicaStatus()'),
    writePosition: manager.writePosition ? (native, ms) => manager.writePosition!(native, ms) : unsupported('writePosition()'),
    ...emit,
  }
  return new ReplicaSet(
    host,
    targets,
    config.max,
    config.min,
    Math.min(config.createTimeoutMs, 5_000),
    manager.lanes.readOnlyFallback === true,
  )
}
