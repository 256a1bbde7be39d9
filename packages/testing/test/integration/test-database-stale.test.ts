import { spawn } from 'node:child_process'
import { resolve } from 'node:path'
import { testPostgresUrl } from '@dbpool/testing'
import { withAdmin } from '../../src/test-database'

// A test process that died before drop() (a crash, SIGKILL, a jest timeout) left its database on the
// server for ever. The first createTestDatabase() of a later process on that server drops those whose
// process is provably gone: same host tag (host name, boot id, pid namespace), pid gone, no session.
const dist = resolve(__dirname, '..', '..', 'dist', 'index.js')

/** Runs a node child that creates a test database, prints its name, then runs `then` (JS source, `db` in scope). */
function child(then: string): Promise<{ name: string; code: number | null; signal: NodeJS.Signals | null }> {
  const script = `require(${JSON.stringify(dist)}).createTestDatabase().then(async (db) => { process.stdout.write(db.name + '\\n'); ${then} }, (e) => { console.error(e); process.exit(1) })`
  const proc = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'], env: process.env })
  let out = ''
  proc.stdout.on('data', (chunk: Buffer) => (out += chunk.toString()))
  return new Promise((resolveExit) => proc.once('exit', (code, signal) => resolveExit({ name: out.trim(), code, signal })))
}

async function databases(): Promise<string[]> {
  const url = await testPostgresUrl()
  return withAdmin(url, async (c) => (await c.query<{ datname: string }>(`select datname from pg_database`)).rows.map((r) => r.datname))
}

it("drops the databases of a dead process of this host at the next process start; never a live process's or another host's", async () => {
  const url = await testPostgresUrl()
  const dead = await child(`process.kill(process.pid, 'SIGKILL')`)
  expect(dead.signal).toBe('SIGKILL')
  expect(dead.name).toMatch(/^dbpool_test_\d+_[0-9a-f]{8}_\d+_[0-9a-f]+$/)
  const [, deadPid, tag] = /^dbpool_test_(\d+)_([0-9a-f]{8})_/.exec(dead.name)!
  const otherTag = tag === '00000000' ? '11111111' : '00000000'
  // a live process's (this one's), another host's with the dead pid, and a name of another form
  const keep = [
    `dbpool_test_${process.pid}_${tag}_1_abcdef`,
    `dbpool_test_${deadPid}_${otherTag}_1_abcdef`,
    `dbpool_test_${deadPid}_1_abcdef`,
  ]
  await withAdmin(url, async (c) => {
    for (const name of keep) await c.query(`CREATE DATABASE "${name}"`)
  })
  try {
    // (another process's first createTestDatabase, e.g. a parallel jest worker's, may sweep it first:
    // the behaviour under test too; the keepers are never swept by anyone)
    const before = await databases()
    for (const name of keep) expect(before).toContain(name)
    const next = await child(`await db.drop()`)
    expect(next.code).toBe(0)
    const after = await databases()
    expect(after).not.toContain(dead.name)
    for (const name of keep) expect(after).toContain(name)
  } finally {
    await withAdmin(url, async (c) => {
      for (const name of [...keep, dead.name]) await c.query(`DROP DATABASE IF EXISTS "${name}"`)
    })
  }
}, 60_000)
