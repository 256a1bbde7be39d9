import type { CompiledQuery } from '../sql/sql'
import type { QueryResult } from '../driver/connection-manager'
import type { LanePool } from './lane-pool'
import type { Lease } from './lease'

/** @internal What statement sharing needs from the pool that owns it. */
export interface SharingHost {
  acquire(lane: LanePool<unknown>): Promise<Lease<unknown>>
  release(lease: Lease<unknown>): void | Promise<void>
  execute<R>(lease: Lease<unknown>, query: CompiledQuery): Promise<QueryResult<R>>
  isOpen(): boolean
}

/**
 * How long the statement at the head of a shared connection (the oldest one not answered: the server
 * runs pipelined statements one after another) may have been running before no statement joins it
 * any more while an exclusive lease (a transaction, a `withConnection`) is out on its lane, in ms.
 * Only reads are ever joined (see {@link StatementSharing}); a read waits on no row lock, but it
 * waits on an ACCESS EXCLUSIVE table lock (`LOCK TABLE`, `ALTER TABLE`, `TRUNCATE` in a transaction
 * not committed yet), which a transaction that calls `pool.query()` may hold: after this long, with
 * such a lease out, a statement takes a connection of its own instead, waiting for one at most
 * `acquireTimeoutMs` (ACQUIRE_TIMEOUT, nothing sent). With no exclusive lease out, nobody in this
 * pool holds a lock, so a stalled read (a long scan, `pg_sleep`) is joined as before.
 */
export const STALLED_HEAD_MS = 25

/** One leased connection carrying pipelined auto-commit statements (or about to: `lease` unset while opening). */
interface Slot {
  readonly lane: LanePool<unknown>
  readonly ready: Promise<Lease<unknown>>
  lease: Lease<unknown> | undefined
  inFlight: number
  /**
   * The statements in flight that are not known reads (see `ConnectionManager.canPipeline`: a write
   * may wait on a row lock the caller of a statement behind it holds): while any is, nothing joins.
   */
  unsafe: number
  /**
   * `performance.now()` when the statement now at the head started running: the first statement's
   * send (or the lease's arrival, for statements that joined while it opened), then each answer
   * while more are in flight (the next one runs from then on). See {@link STALLED_HEAD_MS}.
   */
  headSince: number
  releaseScheduled: boolean
  /**
   * Opened with a free or creatable connection and nobody waiting: its acquire queues behind no one,
   * so statements may join it while it opens (two issued in one tick share it, as they would a tick
   * later) without becoming waiters that maxWaitingClients counts.
   */
  readonly immediate: boolean
}

/**
 * @internal Runs lone auto-commit statements of a pipelining manager (pg.Client in pipeline mode)
 * several to a connection, the way postgres.js does, instead of one per lease:
 *
 * - when every connection is taken (or being opened), a statement joins the connection with the
 *   fewest statements in flight, below the depth, so 64 callers on 10 connections share them instead
 *   of queueing;
 * - a connection whose last statement finished is kept until the next macrotask, so a caller issuing
 *   statements one after another skips tarn entirely;
 * - while anyone waits for an exclusive lease (a transaction), no statement joins a busy connection:
 *   the connections drain and the waiter gets one, so sharing never starves transactions;
 * - a statement joins only behind reads (the manager's `canPipeline` verdict `'read'`: a Postgres
 *   SELECT known read-only, no locking clause): a write in flight may wait on a row lock that the
 *   caller of a statement behind it holds (a transaction calling `pool.query()` while another caller's
 *   `update` of its row blocks), and it would wait forever; it waits for a connection of its own,
 *   bounded by `acquireTimeoutMs`, as without sharing;
 * - while an exclusive lease is out on the lane, no statement joins a connection whose head read has
 *   run longer than {@link STALLED_HEAD_MS} (a read waits on an ACCESS EXCLUSIVE lock the transaction
 *   may hold). Within that window a joiner can still wait behind such a read: a transaction that
 *   takes `LOCK TABLE` / `ALTER TABLE` and then calls `pool.query()` on that table's readers should
 *   use its own handle.
 *
 * Only statements the manager calls safe (no transaction control, no session state) are shared.
 */
export class StatementSharing {
  readonly #host: SharingHost
  readonly #depth: number
  readonly #slots = new Set<Slot>()

  constructor(host: SharingHost, depth: number) {
    this.#host = host
    this.#depth = depth
  }

  /**
   * Runs one statement on a shared connection of `lane`; `read`: it waits on no row lock (the
   * manager's `canPipeline` said `'read'`), so others may join behind it.
   */
  async run<R>(lane: LanePool<unknown>, query: CompiledQuery, read: boolean): Promise<QueryResult<R>> {
    const slot = this.#pick(lane)
    // the clock is read when a statement becomes the head: sent on an idle connection, or answered
    // with more behind it (one read per statement on the back-to-back path, no timer)
    if (slot.inFlight++ === 0) slot.headSince = performance.now()
    if (!read) slot.unsafe++
    try {
      const lease = slot.lease ?? (await slot.ready)
      return await this.#host.execute<R>(lease, query)
    } finally {
      if (!read) slot.unsafe--
      if (--slot.inFlight === 0) {
        if (slot.lease) this.#settle(slot)
      } else slot.headSince = performance.now()
    }
  }

  /** Connections of `lane` held by a slot with nothing in flight (idle, from the caller's view). */
  idleHeld(lane: LanePool<unknown>): number {
    let n = 0
    for (const slot of this.#slots) if (slot.lane === lane && slot.lease && slot.inFlight === 0) n++
    return n
  }

  /**
   * Returns the idle slots of `lane` now (a caller would otherwise be refused with POOL_EXHAUSTED
   * while the connection only waits for the next macrotask); true when there was one.
   */
  reclaim(lane: LanePool<unknown>): boolean {
    let any = false
    for (const slot of this.#slots) {
      if (slot.lane === lane && slot.inFlight === 0 && slot.lease) {
        this.#finish(slot)
        any = true
      }
    }
    return any
  }

  /**
   * Returns the idle slots of `lane` now and resolves once their connections are back in the lane
   * (`validateConnections()` pings them there: a kept connection is idle to the caller, and the next
   * lone statement would be sent on it unchecked). Never rejects.
   */
  async returnIdle(lane: LanePool<unknown>): Promise<void> {
    const releases: Promise<void>[] = []
    for (const slot of this.#slots) {
      if (slot.lane !== lane || slot.inFlight !== 0 || !slot.lease) continue
      const releasing = this.#finish(slot)
      if (releasing) releases.push(releasing)
    }
    await Promise.all(releases)
  }

  /** Returns every idle slot at once (close() calls this before it waits for leases). */
  flush(): void {
    for (const slot of this.#slots) if (slot.inFlight === 0 && slot.lease) this.#finish(slot)
  }

  #pick(lane: LanePool<unknown>): Slot {
    // the common case first, without reading the pool's counters: a kept connection with nothing in flight
    for (const slot of this.#slots) {
      if (slot.lane === lane && slot.inFlight === 0 && slot.lease?.active && !slot.lease.conn.broken) return slot
    }
    const s = lane.stats()
    // an opening slot is worth joining only while its connection is being created or handed out at
    // once (immediate); one queued behind exclusive holders would turn joiners into unbounded waiters
    // (maxWaitingClients must hold)
    const creating = s.size - s.idle - s.used > 0
    const spare = s.idle > 0 || s.size < lane.max
    // exclusive leases out on the lane (transactions, withConnection, streams): every lease but the slots'
    let held = 0
    for (const slot of this.#slots) if (slot.lane === lane && slot.lease) held++
    // a head read started before this has stalled: with an exclusive lease out, nothing joins behind it
    const stalledBefore = s.used > held ? performance.now() - STALLED_HEAD_MS : -Infinity
    let best: Slot | undefined
    let opening = 0
    for (const slot of this.#slots) {
      if (slot.lane !== lane) continue
      const lease = slot.lease
      if (!lease) {
        opening++
        if (!creating && !slot.immediate) continue
      } else if (lease.conn.broken || !lease.active || (slot.inFlight > 0 && slot.headSince < stalledBefore)) continue
      // only behind reads: a write in flight may wait on a row lock a joiner's caller holds
      if (slot.unsafe > 0) continue
      if (slot.inFlight < this.#depth && (!best || slot.inFlight < best.inFlight)) best = slot
    }
    const exclusiveWaiting = s.pending - opening > 0
    return best && !exclusiveWaiting && !spare ? best : this.#open(lane, spare && s.pending === 0)
  }

  #open(lane: LanePool<unknown>, immediate: boolean): Slot {
    const slot: Slot = {
      lane,
      immediate,
      lease: undefined,
      inFlight: 0,
      unsafe: 0,
      headSince: 0,
      releaseScheduled: false,
      ready: this.#host.acquire(lane).then(
        (lease) => {
          slot.lease = lease
          // the statements that joined while it opened are sent now
          slot.headSince = performance.now()
          // every statement that joined while it opened may already have given up
          if (slot.inFlight === 0) this.#settle(slot)
          return lease
        },
        (err: unknown) => {
          this.#slots.delete(slot)
          throw err
        },
      ),
    }
    this.#slots.add(slot)
    return slot
  }

  #settle(slot: Slot): void {
    if (!this.#host.isOpen() || slot.lease?.conn.broken || slot.lane.waiting > 0) {
      this.#finish(slot)
      return
    }
    if (slot.releaseScheduled) return
    slot.releaseScheduled = true
    setImmediate(() => {
      slot.releaseScheduled = false
      if (slot.inFlight === 0) this.#finish(slot)
    })
  }

  /** Gives the slot's connection back; the release's promise (never rejects) when it is not synchronous. */
  #finish(slot: Slot): Promise<void> | undefined {
    if (!slot.lease || !this.#slots.delete(slot)) return undefined
    const releasing = this.#host.release(slot.lease)
    return releasing ? releasing.catch(() => undefined) : undefined
  }
}
