'use strict'
// Read replicas (issue 12), on a cluster of its own (startPostgresCluster: a primary and one streaming
// standby, PostgreSQL binaries with pg_basebackup), both servers on this machine:
// - read throughput: a point select by primary key from 32 callers through a pool on the primary alone
//   (the usual pool.query) and through a pool whose read lane is the standby (lane: 'read'), alternating
//   within each round; replica ÷ primary per round. On one machine this measures the routing, not
//   scale-out: the standby shares the same cores;
// - readYourWrites: single-row UPDATEs from one caller, with and without readYourWrites (a pool with
//   the standby as its replica either way), alternating; the cost per write is the difference of the
//   mean latencies (one pg_current_wal_insert_lsn() round trip expected).
const { ROUNDS, size, spread, ratios, throughput, runStandalone } = require('./lib')

const ROWS = 10_000
const READERS = 32
const READ_MS = size(3_000, 300)
const WRITE_MS = size(3_000, 300)

async function main() {
  const { startPostgresCluster } = require('@dbpool/testing')
  const { createPostgresPool } = require('@dbpool/postgres')
  const cluster = await startPostgresCluster({ replicas: 1 })
  const open = (options = {}) => createPostgresPool(cluster.primaryUrl, { min: 0, max: 10, name: 'bench-replicas' }, options)
  try {
    const setup = open()
    await setup.query(
      `create table kv (id int primary key, v text not null); insert into kv select g, md5(g::text) from generate_series(1, ${ROWS}) g`,
    )
    await setup.close()
    await cluster.waitForReplay(1)
    const read = { primary: [], replica: [] }
    const write = { plain: [], ryw: [] }
    const select = 'select v from kv where id = $1'
    const update = 'update kv set v = $2 where id = $1'
    for (let round = 0; round < ROUNDS; round++) {
      for (const side of ['primary', 'replica']) {
        const pool = side === 'primary' ? open() : open({ replicas: cluster.replicaUrls })
        const options = side === 'primary' ? undefined : { lane: 'read' }
        const op = (i) => pool.query(select, [(i % ROWS) + 1], options)
        await throughput(op, READERS, 100)
        if (side === 'replica' && pool.replicaStats().readsOnReplicas === 0) throw new Error('the reads did not reach the replica')
        read[side].push(await throughput(op, READERS, READ_MS))
        await pool.close()
      }
      for (const side of ['plain', 'ryw']) {
        const pool = open({ replicas: cluster.replicaUrls, readYourWrites: side === 'ryw' })
        const op = (i) => pool.query(update, [(i % ROWS) + 1, `r${round}-${i}`])
        await throughput(op, 1, 100)
        write[side].push(await throughput(op, 1, WRITE_MS))
        if (side === 'ryw' && pool.replicaStats().positionsRecorded === 0) throw new Error('readYourWrites recorded no write position')
        await pool.close()
      }
    }
    const rate = (x) => String(Math.round(x))
    const us = (x) => `${Math.round(x)} µs`
    const costPerWrite = write.ryw.map((w, i) => 1e6 / w - 1e6 / write.plain[i])
    return {
      rows: [
        {
          case: `point select, ${READERS} callers`,
          'primary only ops/s': spread(read.primary, rate),
          'read lane on the replica ops/s': spread(read.replica, rate),
          'replica ÷ primary': spread(ratios(read.replica, read.primary)),
        },
      ],
      tables: [
        {
          heading: 'readYourWrites: the cost per write (single-row UPDATE, one caller)',
          meaning:
            'The same pool (primary plus the standby as replica) with and without readYourWrites, alternating within each round; the cost per write is the difference of the mean latencies, per round.',
          rows: [
            {
              'writes/s without': spread(write.plain, rate),
              'writes/s with readYourWrites': spread(write.ryw, rate),
              'with ÷ without': spread(ratios(write.ryw, write.plain)),
              'cost per write': spread(costPerWrite, us),
            },
          ],
        },
      ],
      notes: [
        'Both servers run on this machine (fsync off), so the ratio shows what routing to the read lane costs or gains here, not the capacity a replica on its own hardware adds.',
        'readYourWrites costs one round trip per write (pg_current_wal_insert_lsn() on the same connection before the caller resumes); reads pay a round trip only while no replica is known to have replayed the last write.',
      ],
    }
  } finally {
    await cluster.close()
  }
}

module.exports = { main }

if (require.main === module) runStandalone(main)
