// Removes the containers of one @dbpool/testing runner once that runner is gone, however it went
// (a SIGKILL of the test process group included), for engines where testcontainers' reaper (ryuk)
// is disabled or cannot run. Started by postgres-runner.mjs in a session of its own.
//
// Input: one JSON argument { watchPid, labels }: the runner's pid and the labels its containers
// carry ('dbpool.testing': 'runner', 'dbpool.testing.host', 'dbpool.testing.pid').
// On start it also removes containers of earlier runners of this host whose process is gone. It
// exits once the runner is gone and its containers are removed (two passes a second apart, for a
// container whose creation was still under way).
import { hostname } from 'node:os'

const { watchPid, labels } = JSON.parse(process.argv[2] ?? '{}')

function alive(pid) {
  try {
    process.kill(pid, 0)
    return true
  } catch (err) {
    return err?.code === 'EPERM'
  }
}

let dockerode
async function engine() {
  if (!dockerode) {
    const { getContainerRuntimeClient } = await import('testcontainers')
    dockerode = (await getContainerRuntimeClient()).container.dockerode
  }
  return dockerode
}

async function remove(filters, keep = () => false) {
  const docker = await engine()
  const found = await docker.listContainers({ all: true, filters: JSON.stringify(filters) })
  for (const info of found) {
    if (keep(info)) continue
    await docker
      .getContainer(info.Id)
      .remove({ force: true, v: true })
      .catch(() => undefined)
  }
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

try {
  // leftovers of runners of this host that died with everything around them
  await remove({ label: ['dbpool.testing=runner', `dbpool.testing.host=${hostname()}`] }, (info) =>
    alive(Number(info.Labels?.['dbpool.testing.pid'])),
  ).catch(() => undefined)
  while (alive(watchPid)) await sleep(500)
  const mine = { label: Object.entries(labels).map(([key, value]) => `${key}=${value}`) }
  await remove(mine)
  await sleep(1_000)
  await remove(mine)
} finally {
  process.exit(0)
}
