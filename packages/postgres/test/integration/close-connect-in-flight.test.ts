import { once } from 'node:events'
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { poolOn } from './helpers'

// close() against a server that accepts TCP and never answers: close() returned, but the connect's
// socket and its deadline timers (createTimeoutMs, tarn's backstop) kept the process alive until
// createTimeoutMs. A connect nobody waits for any more is abandoned: its socket destroyed.
let server: Server
let port: number
const accepted: Socket[] = []

beforeAll(async () => {
  server = createServer((socket) => accepted.push(socket))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  port = (server.address() as AddressInfo).port
})

afterAll(async () => {
  for (const socket of accepted) socket.destroy()
  await new Promise((resolve) => server.close(resolve))
})

/** Resolves 'closed' when the client closed `socket`, 'open' after `ms`. */
function closedWithin(socket: Socket, ms: number): Promise<'closed' | 'open'> {
  if (socket.destroyed || socket.readableEnded) return Promise.resolve('closed')
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve('open'), ms)
    socket.once('close', () => {
      clearTimeout(timer)
      resolve('closed')
    })
    socket.resume()
  })
}

async function firstAccepted(from: number): Promise<Socket[]> {
  while (accepted.length <= from) await new Promise((resolve) => setTimeout(resolve, 10))
  return accepted.slice(from)
}

it("close() abandons a caller's connect in flight: its socket is destroyed, not left open until createTimeoutMs", async () => {
  const from = accepted.length
  const pool = poolOn(`postgres://postgres:pw@127.0.0.1:${port}/x`, { name: 'blackhole', min: 0, max: 1, createTimeoutMs: 15_000 })
  const query = pool.query('select 1', [], { timeoutMs: 300 }).catch((err: unknown) => err)
  const [socket] = await firstAccepted(from)
  expect(await query).toMatchObject({ code: 'ACQUIRE_TIMEOUT' })
  const report = await pool.close({ timeoutMs: 300 })
  expect(report.timedOut).toBe(false)
  expect(await closedWithin(socket!, 3_000)).toBe('closed')
})

it("close() abandons the warm-up's connects (min) too", async () => {
  const from = accepted.length
  const pool = poolOn(`postgres://postgres:pw@127.0.0.1:${port}/x`, { name: 'blackhole-min', min: 2, max: 2, createTimeoutMs: 15_000 })
  const sockets = await firstAccepted(from)
  await pool.close({ timeoutMs: 100 })
  for (const socket of sockets) expect(await closedWithin(socket, 3_000)).toBe('closed')
})
