import { spawn } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { findPgBouncer, startPgBouncer, testPostgresUrl } from '@dbpool/testing'

// A test process that started startPgBouncer() and died before stop() (Ctrl-C, a CI cancel, a killed
// jest worker) left PgBouncer running and its temp directory, whose userlist.txt holds the upstream
// password in plaintext. A watchdog (the cluster's) now kills it and removes the directory.
// .ci/run installs pgbouncer; with CI set a missing binary fails this test instead of skipping it.
const available = findPgBouncer() !== undefined || Boolean(process.env.CI)
const suite = available ? describe : describe.skip

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

suite('startPgBouncer cleanup when its test process dies without stop()', () => {
  it.each(['SIGINT', 'SIGTERM', 'SIGKILL'] as const)(
    '%s: PgBouncer is stopped and its directory (userlist with the password) removed',
    async (signal) => {
      const upstream = await testPostgresUrl()
      // the built package (npm test builds first): a plain node child, signalled once PgBouncer is up
      const dist = resolve(__dirname, '..', '..', 'dist', 'index.js')
      const script = `require(${JSON.stringify(dist)}).startPgBouncer(${JSON.stringify(upstream)}).then((b) => { process.stdout.write(JSON.stringify({ pid: b.pid, dir: b.dir }) + '\\n'); setInterval(() => {}, 1000) }, (e) => { console.error(e); process.exit(1) })`
      const child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] })
      const started = await new Promise<{ pid: number; dir: string }>((resolveStarted, reject) => {
        let out = ''
        child.stdout.on('data', (chunk: Buffer) => {
          out += chunk.toString()
          if (out.includes('\n')) resolveStarted(JSON.parse(out) as { pid: number; dir: string })
        })
        child.once('exit', (code) => reject(new Error(`the child exited with ${code}`)))
      })
      expect(existsSync(resolve(started.dir, 'userlist.txt'))).toBe(true)
      expect(alive(started.pid)).toBe(true)
      child.kill(signal)
      try {
        for (let k = 0; existsSync(started.dir) || alive(started.pid); k++) {
          if (k > 150) throw new Error(`PgBouncer or ${started.dir} is still there 15 s after its owner died (${signal})`)
          await new Promise((r) => setTimeout(r, 100))
        }
      } finally {
        // the old code left them: clean up what a failing run leaves
        try {
          process.kill(-started.pid, 'SIGKILL')
        } catch {
          // gone
        }
        rmSync(started.dir, { recursive: true, force: true })
      }
    },
    60_000,
  )
})

suite('startPgBouncer refused', () => {
  /** The userlists of every startPgBouncer directory there is (other tests' too) that hold `password`. */
  const holding = (password: string): string[] =>
    readdirSync(tmpdir())
      .filter((name) => name.startsWith('dbpool-pgbouncer-'))
      .map((name) => join(tmpdir(), name, 'userlist.txt'))
      .filter((path) => existsSync(path) && readFileSync(path, 'utf8').includes(password))

  // a bad setting was refused after the watchdog started and the userlist (the upstream password in
  // plaintext) was written: both stayed until the test process exited (a whole jest run)
  it('a bad setting: nothing is written, no watchdog started, the password is nowhere on disk', async () => {
    const upstream = new URL(await testPostgresUrl())
    const password = `refused-${process.pid}-${Date.now()}`
    upstream.password = password
    const refused: Record<string, string | number>[] = [{ 'bad key': 1 }, { max_db_connections: '1\nlisten_addr = 0.0.0.0' }]
    for (const settings of refused) await expect(startPgBouncer(upstream.href, { settings })).rejects.toThrow(/bad setting/)
    expect(holding(password)).toEqual([])
  })
})
