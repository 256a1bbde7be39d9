import { createServer, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { buildCli, runCli } from './cli-helpers'

// `health` / `check --timeout N` against a server that accepts TCP and never answers: the report
// said "checked in N ms" but came seconds later, and the process lived until the 10 s connect timeout.
let server: Server
const sockets = new Set<Socket>()
let url: string

beforeAll(async () => {
  await buildCli()
  // accepts and never answers
  server = createServer((socket) => {
    sockets.add(socket)
    socket.on('close', () => sockets.delete(socket))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  url = `postgres://app@127.0.0.1:${address.port}/x`
}, 240_000)

afterAll(async () => {
  for (const socket of sockets) socket.destroy()
  await new Promise<void>((resolve) => server.close(() => resolve()))
})

describe('--timeout bounds the whole command', () => {
  it.each([['health'], ['check']])(
    '%s --timeout 1000 reports and exits non-zero well before the 10 s connect timeout',
    async (command) => {
      const started = Date.now()
      const res = await runCli(['--url', url, command, '--timeout', '1000'], { cwd: tmpdir(), timeoutMs: 30_000 })
      const elapsed = Date.now() - started
      expect(res.code).toBe(2)
      expect(res.stdout).toMatch(command === 'health' ? /overall: unhealthy/ : /default: FAILED/)
      // a bound, not a speed: the old code took over 10 s (the connect timeout); this one the timeout,
      // process start and a few hundred ms
      expect(elapsed).toBeLessThan(7_000)
    },
    40_000,
  )
})

describe('a failed command reports before its pools are closed', () => {
  it('stats: ACQUIRE_TIMEOUT after the 5 s statement timeout, not after a further 5 s close held by the connection attempt', async () => {
    const started = Date.now()
    const res = await runCli(['--url', url, 'stats'], { cwd: tmpdir(), timeoutMs: 30_000 })
    const elapsed = Date.now() - started
    expect(res.code).toBe(1)
    expect(res.stderr).toMatch(/^dbpool: ACQUIRE_TIMEOUT: /)
    // a bound, not a speed: the old code took over 10 s (5 s timeout, then up to 5 s for the close);
    // this one the timeout, process start and a few hundred ms
    expect(elapsed).toBeLessThan(9_000)
  }, 40_000)
})
