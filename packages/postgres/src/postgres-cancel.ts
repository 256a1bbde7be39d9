import { connect, type Socket } from 'node:net'
import { sharedDnsLookup } from './postgres-addresses'

/** Where and what to cancel. */
export interface CancelTarget {
  readonly host: string
  readonly port: number
  readonly processId: number
  readonly secretKey: number
}

const CANCEL_REQUEST_CODE = 80877102

/**
 * Sends a protocol CancelRequest on a socket of its own (never through the pool, which may be
 * exhausted) and resolves when the server has processed it, i.e. closed the socket. Rejects after
 * `timeoutMs` or on a socket error; never leaves a timer or socket behind.
 */
export function sendCancelRequest(target: CancelTarget, timeoutMs: number): Promise<void> {
  const packet = Buffer.alloc(16)
  packet.writeInt32BE(16, 0)
  packet.writeInt32BE(CANCEL_REQUEST_CODE, 4)
  packet.writeInt32BE(target.processId, 8)
  packet.writeInt32BE(target.secretKey, 12)
  return new Promise<void>((resolve, reject) => {
    const socket: Socket = target.host.startsWith('/')
      ? connect(`${target.host}/.s.PGSQL.${target.port}`)
      : // a name is looked up once for every connect racing on it (see sharedDnsLookup)
        connect({ port: target.port, host: target.host, lookup: sharedDnsLookup })
    const timer = setTimeout(
      () => finish(new Error(`cancel request to ${target.host}:${target.port} got no answer within ${timeoutMs} ms`)),
      timeoutMs,
    )
    timer.unref()
    let done = false
    function finish(err?: Error): void {
      if (done) return
      done = true
      clearTimeout(timer)
      socket.destroy()
      if (err) reject(err)
      else resolve()
    }
    socket.unref()
    socket.setNoDelay(true)
    socket.on('connect', () => socket.end(packet))
    socket.on('error', (err) => finish(err))
    // the postmaster closes the socket once it has signalled the backend
    socket.on('close', () => finish())
  })
}
