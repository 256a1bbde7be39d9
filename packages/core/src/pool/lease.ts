import { DatabaseError } from '../errors/database-error'
import type { PooledConnection } from './pooled-connection'

let nextLeaseId = 1

/** @internal One borrowing of a connection. Released exactly once; a second release throws. */
export class Lease<C> {
  readonly id = nextLeaseId++
  readonly acquiredAt = Date.now()
  /** Captured at acquire; its `.stack` is only formatted when a leak is reported. */
  readonly origin: Error | undefined
  leakReported = false
  #state: 'active' | 'released' | 'revoked' = 'active'

  constructor(
    readonly conn: PooledConnection<C>,
    trackOrigin: boolean,
  ) {
    this.origin = trackOrigin ? new Error('connection acquired here') : undefined
  }

  get active(): boolean {
    return this.#state === 'active'
  }

  get revoked(): boolean {
    return this.#state === 'revoked'
  }

  /** Marks the lease released; throws on a second release. Returns false when it was revoked by close(). */
  markReleased(): boolean {
    if (this.#state === 'released') {
      throw new DatabaseError('QUERY_FAILED', `lease ${this.id} of connection ${this.conn.id} was already released`)
    }
    const wasActive = this.#state === 'active'
    this.#state = 'released'
    return wasActive
  }

  /** close() took the connection back; the holder's later release is a no-op. */
  revoke(): void {
    if (this.#state === 'active') this.#state = 'revoked'
  }

  /** The acquirer's stack, without the first line. */
  stack(): string {
    return this.origin?.stack?.split('\n').slice(1).join('\n') ?? '(stack capture disabled)'
  }
}
