import type { Client } from 'pg'

/** The pg.Client fields we read that @types/pg does not declare (set from BackendKeyData). */
interface PgClientKeys {
  readonly processID: number | null
  readonly secretKey: number | null
}

/**
 * One physical Postgres connection: a pg.Client plus what the pool needs to know about it. The
 * client has an `error` listener from the moment it exists, so a socket error or a server kill is
 * recorded here (and reported through `onLost`), never thrown at the process.
 */
export class PostgresConnection {
  readonly client: Client
  /** The first fatal problem seen; once set the connection is never reused. */
  #broken: Error | undefined
  #ready = false
  #closing = false
  #lostReported = false
  readonly #onLost: (err: Error) => void

  /** @internal */
  constructor(client: Client, onLost: (err: Error) => void) {
    this.client = client
    this.#onLost = onLost
    client.on('error', (err) => this.#fail(err))
    client.on('end', () => this.#fail(new Error('the server closed the connection')))
  }

  /** The backend's process id (`pg_backend_pid()`), once connected. */
  get processId(): number | null {
    return (this.client as unknown as PgClientKeys).processID
  }

  /** @internal The cancel key sent by the server at startup. */
  get secretKey(): number | null {
    return (this.client as unknown as PgClientKeys).secretKey
  }

  /** False once the socket failed, the server ended the session, a fatal error was seen, or it was closed. */
  get usable(): boolean {
    return this.#broken === undefined && !this.#closing
  }

  /** Why it is not usable, if it is not. */
  get brokenBy(): Error | undefined {
    return this.#broken
  }

  /** True after {@link close} began. */
  get closing(): boolean {
    return this.#closing
  }

  /** @internal Connect and session setup done: from now on a loss is reported through `onLost`. */
  markReady(): void {
    this.#ready = true
  }

  /** @internal Never reuse this connection (fatal SQLSTATE, deadline, failed reset). */
  markBroken(reason: Error): void {
    this.#broken ??= reason
  }

  /** @internal Destroys the socket at once, without the Terminate handshake. */
  kill(): void {
    this.#closing = true
    this.client.connection.stream.destroy()
  }

  /** @internal Closes gracefully when healthy (Terminate, bounded by `timeoutMs`), else destroys the socket. */
  async close(timeoutMs: number): Promise<void> {
    const wasUsable = this.usable
    this.#closing = true
    if (!wasUsable) {
      this.client.connection.stream.destroy()
      return
    }
    let timer: NodeJS.Timeout | undefined
    const deadline = new Promise<void>((resolve) => {
      timer = setTimeout(() => {
        this.client.connection.stream.destroy()
        resolve()
      }, timeoutMs)
    })
    try {
      await Promise.race([this.client.end().catch(() => undefined), deadline])
    } finally {
      clearTimeout(timer)
    }
  }

  #fail(err: Error): void {
    if (this.#closing) return
    this.#broken ??= err
    if (!this.#ready || this.#lostReported) return
    this.#lostReported = true
    this.#onLost(err)
  }
}
