import { spawn, type ChildProcess } from 'node:child_process'
import { join } from 'node:path'
import { Client } from 'pg'
import { getContainerRuntimeClient } from 'testcontainers'
import { dockerAnswers, startPostgres, type PostgresServer } from '@dbpool/testing'

// The container provider against a real Docker engine. It runs when the container provider is
// forced (DBPOOL_TEST_PG_PROVIDER=container, as .ci/containers does, with
// TESTCONTAINERS_RYUK_DISABLED=true: no reaper image can be pulled there); then a missing engine
// fails it. Otherwise it is skipped with a note: in `auto` mode the image may be one that cannot
// start (DBPOOL_TEST_PG_IMAGE), which is the fallback's business (container-fallback.test.ts).
const forced = process.env.DBPOOL_TEST_PG_PROVIDER === 'container'
const TS_NODE = ['-r', 'ts-node/register/transpile-only']
const containerIt = forced ? it : it.skip

beforeAll(async () => {
  if (!forced) return
  const probe = await dockerAnswers()
  if (!probe.ok) throw new Error(`DBPOOL_TEST_PG_PROVIDER=container but ${probe.reason}`)
})

/** The engine's containers publishing `port` on the host (any label). */
async function containersOnPort(port: number): Promise<{ id: string; labels: Record<string, string> }[]> {
  const docker = (await getContainerRuntimeClient()).container.dockerode
  const all = await docker.listContainers({ all: true })
  return all.filter((c) => c.Ports.some((p) => p.PublicPort === port)).map((c) => ({ id: c.Id, labels: c.Labels }))
}

async function waitUntil(check: () => Promise<boolean>, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) return false
    await new Promise((r) => setTimeout(r, 250))
  }
  return true
}

const portOf = (url: string): number => Number(new URL(url).port)

containerIt(
  'starts PostgreSQL 18 in a container, password-protected and labelled; stop() removes it',
  async () => {
    const server: PostgresServer = await startPostgres({ provider: 'container' })
    let stopped = false
    try {
      expect(server.provider).toBe('container')
      const client = new Client({ connectionString: server.url })
      await client.connect()
      const { rows } = await client.query<{ v: string }>("select current_setting('server_version_num') as v")
      await client.end()
      expect(Number(rows[0]?.v)).toBeGreaterThanOrEqual(180000)
      const wrong = new URL(server.url)
      wrong.password = 'not-the-password'
      const bad = new Client({ connectionString: wrong.toString() })
      bad.on('error', () => undefined)
      await expect(bad.connect()).rejects.toMatchObject({ code: '28P01' })
      const [container] = await containersOnPort(portOf(server.url))
      expect(container?.labels['dbpool.testing']).toBe('runner')
      await server.stop()
      stopped = true
      expect(await containersOnPort(portOf(server.url))).toEqual([])
    } finally {
      if (!stopped) await server.stop()
    }
  },
  180_000,
)

/** A test process of its own that starts a container (its runner is forked: same process group). */
async function ownerWithContainer(): Promise<{ owner: ChildProcess; url: string }> {
  const testing = join(__dirname, '..', '..', 'src', 'index.ts')
  const script = `require(${JSON.stringify(testing)}).startPostgres({ provider: 'container' }).then(
    (s) => { process.stdout.write(s.url + '\\n'); setInterval(() => undefined, 1000) },
    (e) => { console.error(e); process.exit(1) })`
  const owner = spawn(process.execPath, [...TS_NODE, '-e', script], {
    detached: true, // a process group of its own, killed whole below
    env: { ...process.env, DBPOOL_TEST_PG_URL: '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  })
  const url = await new Promise<string>((resolve, reject) => {
    let out = ''
    owner.stdout!.on('data', (d: Buffer) => {
      out += d.toString()
      if (out.includes('\n')) resolve(out.trim())
    })
    owner.on('exit', (code) => reject(new Error(`the owner exited early (${code})`)))
  })
  return { owner, url }
}

containerIt(
  'a container is removed when its test process is killed (SIGKILL), without the reaper',
  async () => {
    const { owner, url } = await ownerWithContainer()
    expect(await containersOnPort(portOf(url))).toHaveLength(1)
    owner.kill('SIGKILL')
    expect(await waitUntil(async () => (await containersOnPort(portOf(url))).length === 0, 30_000)).toBe(true)
  },
  180_000,
)

containerIt(
  'a container is removed when the test process and its runner are killed together (the process group, SIGKILL)',
  async () => {
    const { owner, url } = await ownerWithContainer()
    expect(await containersOnPort(portOf(url))).toHaveLength(1)
    process.kill(-owner.pid!, 'SIGKILL')
    expect(await waitUntil(async () => (await containersOnPort(portOf(url))).length === 0, 30_000)).toBe(true)
  },
  180_000,
)
