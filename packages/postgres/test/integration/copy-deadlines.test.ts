import { Readable } from 'node:stream'
import type { DatabasePool } from '@dbpool/core'
import { copyFrom, copyTo, type PostgresConnection } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { eventually, poolOn, rejection, sleep, watchProcess, within } from './helpers'

// copyFrom()/copyTo() with timeoutMs and signal: the wait for a connection is covered, the COPY is
// stopped on the server, nothing half-loaded is committed, the source is stopped, the lease released
// and the connection clean or closed. Each of these hung (or ignored the options) before they existed.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection>

/** The bound a stopped COPY must settle within: a hang guard, far above the deadlines used. */
const SETTLED_MS = 8_000

beforeAll(async () => {
  db = await createTestDatabase()
  pool = poolOn(db.url, { min: 0, max: 2, name: 'copy-deadlines' })
  await pool.query('create table items (id int primary key, label text)')
  await pool.query("insert into items values (0, 'before')")
  await pool.query('create table bulk (id int, label text)')
}, 120_000)

afterAll(async () => {
  await pool?.close()
  await db?.drop()
}, 60_000)

async function ids(): Promise<number[]> {
  return (await pool.query<{ id: number }>('select id from items order by id')).rows.map((r) => r.id)
}

/** A Readable that gives `rows` lines of COPY text at once, then never ends; `reading` resolves once they were taken. */
function endless(rows: number): { source: Readable; reading: Promise<void> } {
  let lines = ''
  for (let i = 1; i <= rows; i++) lines += `${i}\trow ${i}\n`
  let given = false
  let taken!: () => void
  const reading = new Promise<void>((resolve) => (taken = resolve))
  const source = new Readable({
    read() {
      if (given) {
        taken()
        return
      }
      given = true
      this.push(lines)
    },
  })
  return { source, reading }
}

async function released(): Promise<void> {
  await eventually(() => pool.stats().used === 0 && pool.stats().pending === 0, 5_000, 'the COPY lease to be released')
}

async function poolWorks(): Promise<void> {
  expect((await pool.query('select 1 as one')).rows).toEqual([{ one: 1 }])
  expect(await copyFrom(pool, 'copy items (id, label) from stdin', [[-1, 'after']])).toBe(1)
  await pool.query('delete from items where id = -1')
}

describe('copyFrom deadlines', () => {
  it('a source that never ends with timeoutMs: QUERY_TIMEOUT within a bound, the rows sent are not committed, the source destroyed, the lease released', async () => {
    const watch = watchProcess()
    const { source, reading } = endless(1_000)
    const copying = copyFrom(pool, 'copy items (id, label) from stdin', source, { timeoutMs: 300 })
    await reading
    const outcome = await within(copying, SETTLED_MS)
    expect(outcome).not.toBe('pending')
    const error = await rejection(copying)
    expect(error.code).toBe('QUERY_TIMEOUT')
    expect(error.message).toContain('copyFrom.timeoutMs')
    expect(source.destroyed).toBe(true)
    await released()
    expect(await ids()).toEqual([0])
    await poolWorks()
    watch.stop()
    expect(watch.failures).toEqual([])
  }, 20_000)

  it('abort mid-copy: QUERY_CANCELLED with the signal reason as cause, the table unchanged, an async generator source stopped', async () => {
    const controller = new AbortController()
    let stopped = false
    let sent = 0
    async function* rows(): AsyncGenerator<unknown[]> {
      try {
        for (let id = 1; ; id++) {
          sent++
          yield [id, `row ${id}`]
          if (id % 5_000 === 0) await sleep(5)
        }
      } finally {
        stopped = true
      }
    }
    const copying = copyFrom(pool, 'copy items (id, label) from stdin', rows(), { signal: controller.signal })
    await eventually(() => sent > 20_000, 10_000, 'rows to flow')
    const reason = new Error('user pressed stop')
    controller.abort(reason)
    const outcome = await within(copying, SETTLED_MS)
    expect(outcome).not.toBe('pending')
    const error = await rejection(copying)
    expect(error.code).toBe('QUERY_CANCELLED')
    expect(error.cause).toBe(reason)
    await eventually(() => stopped, 2_000, 'the generator to be stopped')
    await released()
    expect(await ids()).toEqual([0])
    await poolWorks()
  }, 20_000)

  it('a fast source (an array of 1,000,000 rows) does not hold the event loop: a 10 ms timer keeps ticking during the COPY', async () => {
    await pool.query('truncate bulk')
    const rows = Array.from({ length: 1_000_000 }, (_, i) => [i, `r${i}`])
    let ticks = 0
    const timer = setInterval(() => ticks++, 10)
    const started = performance.now()
    try {
      expect(await copyFrom(pool, 'copy bulk (id, label) from stdin', rows)).toBe(1_000_000)
    } finally {
      clearInterval(timer)
    }
    const elapsed = performance.now() - started
    // a liveness check, not a speed one: at least one tick per 50 ms of COPY (it ticked 1-3 times in all when it never yielded)
    expect(ticks).toBeGreaterThanOrEqual(Math.max(5, Math.floor(elapsed / 50)))
    await pool.query('truncate bulk')
  }, 60_000)

  it.each([
    ['an array of 1,000,000 rows, timeoutMs 100', 'QUERY_TIMEOUT', 'array'],
    ['a sync generator of 2,000,000 rows, aborted after 100 ms', 'QUERY_CANCELLED', 'generator'],
  ] as const)(
    'a fast source is stopped mid-COPY: %s gives %s soon after, nothing committed',
    async (_what, code, kind) => {
      await pool.query('truncate bulk')
      const controller = new AbortController()
      function* generated(): Generator<unknown[]> {
        for (let i = 0; i < 2_000_000; i++) yield [i, `r${i}`]
      }
      const source = kind === 'array' ? Array.from({ length: 1_000_000 }, (_, i) => [i, `r${i}`]) : generated()
      const options = kind === 'array' ? { timeoutMs: 100 } : { signal: controller.signal }
      let stoppedAt = 0
      const stop = setTimeout(() => {
        stoppedAt = performance.now()
        controller.abort(new Error('stop'))
      }, 100)
      const copying = copyFrom(pool, 'copy bulk (id, label) from stdin', source, options)
      const error = await rejection(copying)
      const settledAt = performance.now()
      clearTimeout(stop)
      expect(error.code).toBe(code)
      // the stop was seen mid-COPY, not after all the rows went (a hang guard, far above one 4 ms slice)
      expect(stoppedAt).toBeGreaterThan(0)
      expect(settledAt - stoppedAt).toBeLessThan(1_500)
      await released()
      expect((await pool.query<{ n: number }>('select count(*)::int as n from bulk')).rows).toEqual([{ n: 0 }])
      await poolWorks()
    },
    60_000,
  )

  it('a signal aborted before the call: QUERY_CANCELLED, no lease taken, nothing sent, the source destroyed', async () => {
    const controller = new AbortController()
    controller.abort('too late')
    const source = Readable.from(['1\tone\n'])
    const acquired = pool.metrics.snapshot().acquired
    const error = await rejection(copyFrom(pool, 'copy items (id, label) from stdin', source, { signal: controller.signal }))
    expect(error.code).toBe('QUERY_CANCELLED')
    expect(error.cause).toBe('too late')
    expect(source.destroyed).toBe(true)
    expect(pool.metrics.snapshot().acquired).toBe(acquired)
    expect(await ids()).toEqual([0])
  })

  it('timeoutMs covers the wait for a connection: ACQUIRE_TIMEOUT naming copyFrom.timeoutMs / copyTo.timeoutMs (retryable: nothing sent), the caller leaves the queue, each counted in timeouts', async () => {
    const small = poolOn(db.url, { min: 0, max: 1, name: 'copy-wait', acquireTimeoutMs: 30_000 })
    try {
      let release!: () => void
      const held = small.withConnection(() => new Promise<void>((resolve) => (release = resolve)))
      await eventually(() => small.stats().used === 1, 5_000, 'the only connection to be held')
      const timeouts = small.metrics.snapshot().timeouts
      const copying = copyFrom(small, 'copy items (id, label) from stdin', [[5, 'five']], { timeoutMs: 200 })
      const outcome = await within(copying, SETTLED_MS)
      expect(outcome).not.toBe('pending')
      const error = await rejection(copying)
      expect(error.code).toBe('ACQUIRE_TIMEOUT')
      expect(error.retryable).toBe(true)
      expect(error.message).toContain('copyFrom.timeoutMs')
      expect(error.detail).toMatchObject({ timeoutMs: 200 })
      expect(small.stats().pending).toBe(0)
      const reading = copyTo(small, 'copy items to stdout', { timeoutMs: 150 }).toArray()
      const readError = await rejection(reading)
      expect(readError.code).toBe('ACQUIRE_TIMEOUT')
      expect(readError.retryable).toBe(true)
      expect(readError.message).toContain('copyTo.timeoutMs')
      expect(small.stats().pending).toBe(0)
      // each counted once, as every ACQUIRE_TIMEOUT a caller receives (db.client.connection.timeouts)
      expect(small.metrics.snapshot().timeouts).toBe(timeouts + 2)
      release()
      await held
      expect(await ids()).toEqual([0])
    } finally {
      await small.close()
    }
  }, 20_000)

  it('stopped after all the data was sent (a deferred trigger runs at commit): the server cancels, QUERY_TIMEOUT, nothing committed, the connection reusable', async () => {
    await pool.query('create table slow (id int primary key)')
    await pool.query("create function slow_commit() returns trigger language plpgsql as 'begin perform pg_sleep(3); return null; end'")
    await pool.query(
      'create constraint trigger slow_commit after insert on slow deferrable initially deferred for each row execute function slow_commit()',
    )
    try {
      const started = performance.now()
      const error = await rejection(copyFrom(pool, 'copy slow (id) from stdin', [[1]], { timeoutMs: 300 }))
      expect(error.code).toBe('QUERY_TIMEOUT')
      // the server's cancel ended the pg_sleep: it did not run its 3 s
      expect(performance.now() - started).toBeLessThan(2_900)
      await released()
      expect((await pool.query('select count(*)::int as n from slow')).rows).toEqual([{ n: 0 }])
      await poolWorks()
    } finally {
      await pool.query('drop table slow')
      await pool.query('drop function slow_commit()')
    }
  }, 20_000)

  it('the server reported the COPY complete before the deadline but the event loop was blocked past it: the row count, not QUERY_TIMEOUT', async () => {
    const own = poolOn(db.url, { min: 1, max: 1, name: 'copy-blocked' })
    try {
      const socket = await own.withConnection(async (c) => c.native.client.connection.stream)
      const write = socket.write.bind(socket) as (...args: unknown[]) => boolean
      // once CopyDone ('c', length 4) is on the wire: block the loop past the deadline while the answer arrives
      socket.write = ((chunk: unknown, ...rest: unknown[]) => {
        const sent = write(chunk, ...rest)
        if (Buffer.isBuffer(chunk) && chunk.includes(Buffer.from([0x63, 0, 0, 0, 4])))
          setImmediate(() => {
            const end = Date.now() + 400
            while (Date.now() < end);
          })
        return sent
      }) as typeof socket.write
      const count = await copyFrom(
        own,
        'copy bulk (id, label) from stdin',
        [
          [501, 'a'],
          [502, 'b'],
        ],
        { timeoutMs: 150 },
      )
      expect(count).toBe(2)
      expect(Number((await own.query<{ n: bigint }>('select count(*) as n from bulk where id in (501, 502)')).rows[0]!.n)).toBe(2)
      await own.query('delete from bulk where id in (501, 502)')
    } finally {
      await own.close()
    }
  })

  it('invalid options are CONFIGURATION naming the option and the value, before anything is sent', async () => {
    const cases: [unknown, string][] = [
      [{ timeoutMs: 0 }, 'copyFrom.timeoutMs 0'],
      [{ timeoutMs: 1.5 }, 'copyFrom.timeoutMs 1.5'],
      [{ timeoutMs: 2 ** 31 }, `copyFrom.timeoutMs ${2 ** 31}`],
      [{ timeoutMs: '100' }, 'copyFrom.timeoutMs "100"'],
      [{ signal: {} }, 'copyFrom.signal'],
      [{ timeout: 100 }, 'copyFrom.timeout 100'],
      ['fast', 'copyFrom options "fast"'],
    ]
    for (const [options, named] of cases) {
      const source = [[9, 'nine']]
      const error = await rejection(copyFrom(pool, 'copy items (id, label) from stdin', source, options as never))
      expect(error.code).toBe('CONFIGURATION')
      expect(error.message).toContain(named)
    }
    expect(() => copyTo(pool, 'copy items to stdout', { timeoutMs: -1 })).toThrow(/copyTo\.timeoutMs -1/)
    expect(() => copyTo(pool, 'copy items to stdout', { limit: 1 } as never)).toThrow(/copyTo\.limit 1/)
    expect(await ids()).toEqual([0])
  })
})

describe('copyTo deadlines', () => {
  const big = 'copy (select i, repeat($$x$$, 200) from generate_series(1, 2000000) as s(i)) to stdout'

  it('a consumer that stops reading with timeoutMs: the Readable fails with QUERY_TIMEOUT, the connection is closed, the lease released', async () => {
    const watch = watchProcess()
    const out = copyTo(pool, big, { timeoutMs: 400 })
    const failed = new Promise<unknown>((resolve) => out.once('error', resolve))
    // on a loaded machine the 400 ms can pass before the first chunk: then the Readable fails without
    // one (waiting for 'data' alone hung until the test's budget)
    await Promise.race([new Promise<void>((resolve) => out.once('data', () => resolve())), failed])
    out.pause()
    const outcome = await within(failed, SETTLED_MS)
    expect(outcome).not.toBe('pending')
    expect((outcome as { value: { code: string } }).value.code).toBe('QUERY_TIMEOUT')
    await released()
    await poolWorks()
    watch.stop()
    expect(watch.failures).toEqual([])
  }, 20_000)

  it('abort mid-copy: QUERY_CANCELLED with the reason as cause; a finished copyTo ignores a later abort', async () => {
    const controller = new AbortController()
    const out = copyTo(pool, big, { signal: controller.signal })
    const failed = new Promise<{ code: string; cause: unknown }>((resolve) => out.once('error', resolve as never))
    await new Promise<void>((resolve) => out.once('data', () => resolve()))
    out.pause()
    controller.abort('enough')
    const error = await failed
    expect(error.code).toBe('QUERY_CANCELLED')
    expect(error.cause).toBe('enough')
    await released()
    const late = new AbortController()
    let text = ''
    for await (const chunk of copyTo(pool, 'copy (select 7) to stdout', { signal: late.signal, timeoutMs: 60_000 })) text += String(chunk)
    late.abort()
    expect(text).toBe('7\n')
    await released()
    await poolWorks()
  }, 20_000)
})
