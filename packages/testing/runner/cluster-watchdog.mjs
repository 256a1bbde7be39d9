// Cleans up after a Postgres cluster of @dbpool/testing (startPostgresCluster), or a PgBouncer (startPgBouncer), whose test process
// died without calling close(): the servers are daemons started by pg_ctl and PgBouncer runs detached,
// so nothing else would stop them.
//
// Input: one JSON argument { watchPid, root, pgCtl, asPostgres }. Every 500 ms it checks that
// watchPid is alive; when it is gone it stops every server whose data directory is
// <root>/member-*/data (pg_ctl stop -m immediate), kills the process groups listed one per line in
// <root>/kill.pids, removes the directories listed one per line in <root>/remove.dirs and then <root>,
// and exits. close() ends the watchdog itself (SIGTERM: exit without touching anything).
import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import path from 'node:path'

const spec = JSON.parse(process.argv[2] ?? '{}')

function lines(file) {
  try {
    return readFileSync(path.join(spec.root, file), 'utf8')
      .split('\n')
      .map((line) => line.trim())
      .filter(Boolean)
  } catch {
    return []
  }
}

function cleanUp() {
  let members = []
  try {
    members = readdirSync(spec.root).filter((name) => name.startsWith('member-'))
  } catch {
    // already removed
  }
  for (const member of members) {
    const data = path.join(spec.root, member, 'data')
    if (!existsSync(path.join(data, 'postmaster.pid'))) continue
    const args = [spec.pgCtl, '-D', data, '-m', 'immediate', '-w', '-t', '20', 'stop']
    try {
      if (spec.asPostgres) execFileSync('runuser', ['-u', 'postgres', '--', ...args], { stdio: 'ignore' })
      else execFileSync(args[0], args.slice(1), { stdio: 'ignore' })
    } catch {
      // not running any more
    }
  }
  for (const pid of lines('kill.pids')) {
    try {
      process.kill(-Number(pid), 'SIGKILL')
    } catch {
      // gone
    }
  }
  for (const dir of lines('remove.dirs')) rmSync(dir, { recursive: true, force: true })
  rmSync(spec.root, { recursive: true, force: true })
}

process.on('SIGTERM', () => process.exit(0))
process.on('SIGINT', () => process.exit(0))
setInterval(() => {
  try {
    process.kill(spec.watchPid, 0)
  } catch {
    cleanUp()
    process.exit(0)
  }
}, 500)
