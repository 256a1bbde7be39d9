import { Readable } from 'node:stream'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { DatabaseError, PoolFactory, sql, type DatabasePool } from '@dbpool/core'
import { copyFrom, copyTo, listen, notify, type PostgresConnection } from '@dbpool/postgres'
import { createTempSqlite, createTestDatabase, type TestDatabase } from '@dbpool/testing'
import { poolOn, rejection, sleep, watchProcess } from './helpers'

// COPY FROM STDIN / TO STDOUT through the pool (pg-copy-streams): rows encoded by the parameter
// contract, backpressure, and every failure ending the COPY, releasing the lease, leaving the pool usable.
let db: TestDatabase
let pool: DatabasePool<PostgresConnection>

beforeAll(async () => {
  db = await createTestDatabase()
  pool = poolOn(db.url, { min: 0, max: 3, name: 'copy' })
  await pool.query(
    'create table items (id int primary key, label text, big bigint, at timestamptz, raw bytea, doc jsonb, flag boolean, tags text[])',
  )
}, 120_000)

afterEach(async () => {
  await pool.query('truncate items')
})

afterAll(async () => {
  await pool?.close()
  await db?.drop()
}, 60_000)

async function readAll(stream: Readable): Promise<string> {
  let text = ''
  for await (const chunk of stream) text += (chunk as Buffer).toString('utf8')
  return text
}

async function count(): Promise<number> {
  return Number((await pool.query<{ n: bigint }>('select count(*) as n from items')).rows[0]!.n)
}

const awkward = 'tab\there, newline\nhere, backslash \\ and "quotes", comma, \\N'
const row = (id: number): unknown[] => [
  id,
  id === 2 ? awkward : `item ${id}`,
  2n ** 62n + BigInt(id),
  new Date(Date.UTC(2024, 2, 1, 0, 30, id % 60)),
  Buffer.from([0, 1, 2, id % 256]),
  { id, nested: { ok: true } },
  id % 2 === 0,
  ['a', 'b,c', null, '"q"'],
]

describe.each(['text', 'csv'] as const)('copyFrom with rows as arrays (%s format)', (format) => {
  it('writes every value as pool.query() would bind it (NULL, escapes, bigint, Date, bytea, json, boolean, array) and returns the row count', async () => {
    const text = `copy items (id, label, big, at, raw, doc, flag, tags) from stdin${format === 'csv' ? ' with (format csv)' : ''}`
    const rows = [row(1), row(2), [3, null, null, null, null, null, null, null]]
    expect(await copyFrom(pool, text, rows)).toBe(3)
    const { rows: back } = await pool.query('select * from items order by id')
    expect(back[0]).toEqual({
      id: 1,
      label: 'item 1',
      big: 2n ** 62n + 1n,
      at: new Date(Date.UTC(2024, 2, 1, 0, 30, 1)),
      raw: Buffer.from([0, 1, 2, 1]),
      doc: { id: 1, nested: { ok: true } },
      flag: false,
      tags: ['a', 'b,c', null, '"q"'],
    })
    expect(back[1]!.label).toBe(awkward)
    expect(back[2]).toEqual({ id: 3, label: null, big: null, at: null, raw: null, doc: null, flag: null, tags: null })
    expect(pool.stats().used).toBe(0)
  })
})

describe('copyFrom', () => {
  it('takes a Readable of strings and an async generator of 20,000 rows (backpressure), as chunks and rows', async () => {
    expect(await copyFrom(pool, 'copy items (id, label) from stdin with (format csv)', Readable.from(['1,one\n2,', 'two\n']))).toBe(2)
    async function* generate(): AsyncGenerator<unknown[]> {
      for (let id = 3; id <= 20_002; id++) yield [id, `row ${id}`]
    }
    expect(await copyFrom(pool, 'copy items (id, label) from stdin', generate())).toBe(20_000)
    expect(await count()).toBe(20_002)
    expect(pool.stats().used).toBe(0)
  })

  it('a source that throws mid-stream aborts the COPY (nothing written), rejects with a typed error, releases the lease', async () => {
    const watch = watchProcess()
    async function* failing(): AsyncGenerator<unknown[]> {
      for (let id = 1; id <= 10_000; id++) {
        if (id === 5_000) throw new Error('upstream broke')
        yield [id, 'x']
      }
    }
    const error = await rejection(copyFrom(pool, 'copy items (id, label) from stdin', failing()))
    expect(error.code).toBe('QUERY_FAILED')
    expect(error.message).toContain('upstream broke')
    expect(await count()).toBe(0)
    expect(pool.stats().used).toBe(0)
    expect((await pool.query('select 1 as one')).rows).toEqual([{ one: 1 }])
    watch.stop()
    expect(watch.failures).toEqual([])
  })

  it('a line the server refuses mid-stream rejects with its SQLSTATE, nothing written; the connection is reused after', async () => {
    async function* rows(): AsyncGenerator<string> {
      for (let id = 1; id <= 50_000; id++) yield id === 30_000 ? 'not-a-number\tx\n' : `${id}\tx\n`
    }
    const error = await rejection(copyFrom(pool, 'copy items (id, label) from stdin', rows()))
    expect(error.code).toBe('QUERY_FAILED')
    expect(error.sqlState).toBe('22P02')
    expect(await count()).toBe(0)
    expect(pool.stats().used).toBe(0)
    expect(await copyFrom(pool, 'copy items (id, label) from stdin', [[1, 'ok']])).toBe(1)
  })

  it('a server error while the source is idle rejects at once and stops the source (it used to wait for the next chunk, holding the lease)', async () => {
    let openGate!: () => void
    const gate = new Promise<void>((resolve) => (openGate = resolve))
    let resumed = false
    let stopped = false
    async function* idleAfterOne(): AsyncGenerator<string> {
      try {
        yield '1\tone\n'
        await gate // a source with nothing to send for now (a queue, a socket)
        resumed = true
        yield '2\ttwo\n'
      } finally {
        stopped = true
      }
    }
    const readable = new Readable({ read: () => undefined })
    readable.push('1\tone\n')
    try {
      for (const source of [idleAfterOne(), readable]) {
        let timer: NodeJS.Timeout | undefined
        const outcome = await Promise.race([
          rejection(copyFrom(pool, 'copy no_such_table from stdin', source)),
          new Promise((resolve) => (timer = setTimeout(() => resolve('still waiting for the source'), 5_000))),
        ]).finally(() => clearTimeout(timer))
        expect(outcome).toMatchObject({ code: 'SYNTAX_ERROR', sqlState: '42P01' })
        expect(resumed).toBe(false)
        expect(pool.stats().used).toBe(0)
      }
      expect(readable.destroyed).toBe(true)
    } finally {
      openGate()
    }
    // the generator's return() ran once its pending step ended
    for (let i = 0; i < 100 && !stopped; i++) await sleep(10)
    expect(stopped).toBe(true)
  })

  it('a long COPY keeps no state per chunk: the heap after 300,000 rows is what it was after 50,000', async () => {
    setFlagsFromString('--expose-gc')
    const gc = runInNewContext('gc') as () => void
    const heap: number[] = []
    async function* rows(): AsyncGenerator<unknown[]> {
      for (let id = 1; id <= 300_000; id++) {
        if (id === 50_000 || id === 300_000) {
          gc()
          heap.push(process.memoryUsage().heapUsed)
        }
        yield [id, 'x']
      }
    }
    expect(await copyFrom(pool, 'copy items (id, label) from stdin', rows())).toBe(300_000)
    // the race against the server's error once kept a reaction per chunk until the end: 570 bytes a row
    expect(heap[1]! - heap[0]!).toBeLessThan(16 * 1024 * 1024)
    // about 1.5 s alone; the bound is on memory, not time, and a loaded full run exceeded jest's 5 s default
  }, 60_000)

  it('a row value the parameter contract refuses is INVALID_PARAMETER naming the row; nothing written', async () => {
    const error = await rejection(
      copyFrom(pool, 'copy items (id, label) from stdin', [
        [1, 'a'],
        [NaN, 'b'],
      ]),
    )
    expect(error.code).toBe('INVALID_PARAMETER')
    expect(error.message).toContain('row 2')
    expect(await count()).toBe(0)
    expect(pool.stats().used).toBe(0)
  })

  it('a row with a hole ([1, , 3], a stray comma) is INVALID_PARAMETER naming the row and position; nothing written (it was NULL)', async () => {
    // eslint-disable-next-line no-sparse-arrays
    const holed = [2, , 'x'].slice(0, 2)
    const error = await rejection(copyFrom(pool, 'copy items (id, label) from stdin', [[1, 'a'], holed]))
    expect(error.code).toBe('INVALID_PARAMETER')
    expect(error.detail).toMatchObject({ row: 2, position: 2, type: 'hole' })
    expect(await count()).toBe(0)
  })

  it.each(['copy items (id, label) from stdin', 'copy items (id, label) from stdin with (format csv)'])(
    'an empty row [] is INVALID_PARAMETER naming the row, nothing written (it stored an empty string in the text format, NULL in CSV): %s',
    async (text) => {
      const error = await rejection(copyFrom(pool, text, [[1, 'a'], [], [3, 'c']]))
      expect(error.code).toBe('INVALID_PARAMETER')
      expect(error.detail).toMatchObject({ row: 2 })
      expect(await count()).toBe(0)
      await pool.query('create table if not exists one_col (body text)')
      expect((await rejection(copyFrom(pool, text.replace('items (id, label)', 'one_col'), [[]]))).code).toBe('INVALID_PARAMETER')
      expect((await pool.query('select count(*)::int as n from one_col')).rows).toEqual([{ n: 0 }])
    },
  )

  it('string chunks: a lone surrogate is INVALID_PARAMETER, nothing written (it was stored as U+FFFD); a pair split across two chunks is stored whole', async () => {
    // the high half ends a chunk of 64 KiB and more (it was encoded alone at the flush: two U+FFFD); right(..., 3) counts code points
    const big = '1\t' + 'a'.repeat(70_000) + '\ud83d'
    expect(await copyFrom(pool, 'copy items (id, label) from stdin', [big, '\ude00\n', '2\tx\ud83d', '\ude00y\n'])).toBe(2)
    const { rows } = await pool.query<{ id: number; tail: string }>('select id, right(label, 3) as tail from items order by id')
    expect(rows).toEqual([
      { id: 1, tail: 'aa\ud83d\ude00' },
      { id: 2, tail: 'x\ud83d\ude00y' },
    ])
    await pool.query('truncate items')
    const refused: [string, unknown[], number][] = [
      ['a lone high surrogate inside a chunk', ['3\tlone \ud800 surrogate\n'], 1],
      ['a lone low surrogate', ['3\tlone \udc00\n'], 1],
      ['a high half at the end, then a chunk not starting with its low half', ['3\tx\ud83d', 'y\n'], 2],
      ['a high half at the end of the last chunk', ['3\tx\n4\ty\ud83d'], 1],
      ['a high half at the end, then a Buffer', ['3\tx\ud83d', Buffer.from('\n')], 1],
      ['a high half at the end, then an array row', ['3\tx\ud83d', [4, 'y']], 1],
    ]
    for (const [what, chunks, chunk] of refused) {
      const error = await rejection(copyFrom(pool, 'copy items (id, label) from stdin', chunks as never))
      expect([what, error.code, error.detail]).toEqual([what, 'INVALID_PARAMETER', { chunk }])
      expect(await count()).toBe(0)
    }
    expect(pool.stats().used).toBe(0)
  })

  it('array rows with HEADER are CONFIGURATION, nothing written (the server skipped the first row: 2 rows given, 1 stored)', async () => {
    for (const text of [
      'copy items (id, label) from stdin with (format csv, header true)',
      'copy items (id, label) from stdin csv header',
      'copy items (id, label) from stdin with (format csv, header)',
      "copy items (id, label) from stdin with (format csv, header 'on')",
    ]) {
      const error = await rejection(
        copyFrom(pool, text, [
          [1, 'a'],
          [2, 'b'],
        ]),
      )
      expect(error.code).toBe('CONFIGURATION')
      expect(error.message).toContain('header')
      expect(await count()).toBe(0)
    }
    expect(
      await copyFrom(pool, 'copy items (id, label) from stdin with (format csv, header false)', [
        [1, 'a'],
        [2, 'b'],
      ]),
    ).toBe(2)
    expect(await copyFrom(pool, 'copy items (id, label) from stdin with (format csv, header true)', ['id,label\n3,c\n'])).toBe(1)
    expect(await count()).toBe(3)
    expect(pool.stats().used).toBe(0)
  })

  it('refuses what is not COPY ... FROM STDIN, and array rows with custom format options, with CONFIGURATION', async () => {
    expect((await rejection(copyFrom(pool, 'select 1', []))).code).toBe('CONFIGURATION')
    expect((await rejection(copyFrom(pool, "copy items from '/etc/passwd'", []))).code).toBe('CONFIGURATION')
    expect((await rejection(copyFrom(pool, 'copy items from stdin', 5 as never))).code).toBe('CONFIGURATION')
    const custom = await rejection(copyFrom(pool, "copy items (id, label) from stdin with (delimiter '|')", [[1, 'a']]))
    expect(custom.code).toBe('CONFIGURATION')
    expect(await copyFrom(pool, "copy items (id, label) from stdin with (delimiter '|')", ['1|a\n'])).toBe(1)
    expect(pool.stats().used).toBe(0)
  })
})

describe('array rows are encoded for the format the server reads (options read by its COPY grammar, not by words)', () => {
  // one text column: the stored values show the format they were read in
  const values = ['first', 'a\\b', null, 'x', 'tab\there', 'a"b', '\\N']
  beforeAll(async () => {
    await pool.query('create table one (t text)')
  })
  afterEach(async () => {
    await pool.query('truncate one')
  })
  const stored = async (): Promise<unknown[]> => (await pool.query<{ t: unknown }>('select t from one order by ctid')).rows.map((r) => r.t)

  it('quoted option names, dollar-quoted and quoted-name values, legacy forms and a WHERE clause mentioning csv store every value as given', async () => {
    // each used to be misread: "header" skipped the first row, format $$csv$$ / "csv" stored '\\N' and doubled
    // backslashes, a WHERE clause naming 'csv' stored the quotes
    for (const text of [
      'copy one from stdin with (format $$csv$$)',
      'copy one from stdin with (format "csv")',
      'copy one from stdin with ("format" csv)',
      'copy one from stdin with (format csv, "header" false)',
      "copy one from stdin where t is distinct from 'csv'",
      'copy one from stdin csv',
      'copy one from stdin with (freeze false, format text)',
    ]) {
      expect([
        text,
        await copyFrom(
          pool,
          text,
          values.map((v) => [v]),
        ),
      ]).toEqual([text, values.length])
      expect([text, await stored()]).toEqual([text, values])
      await pool.query('truncate one')
    }
  })

  it('options that change how the server reads rows (HEADER, NULL, DEFAULT, quoted or legacy) refuse array rows with CONFIGURATION before anything is sent', async () => {
    // ("header" true) stored 3 of 4 rows; ("null" 'x') stored NULL as 'N' and 'x' as NULL; (default 'x') stores the
    // column default for 'x' on PostgreSQL 16+ (and is unknown to 15: refused all the same)
    for (const text of [
      'copy one from stdin with ("header" true)',
      'copy one from stdin with (format csv, "header" true)',
      'copy one from stdin with (header match)',
      'copy one from stdin with ("null" \'x\')',
      "copy one from stdin with null as 'x'",
      "copy one from stdin with (default 'x')",
      "copy one from stdin with (format 'CSV')",
      'copy one from stdin with (on_error ignore)',
      'copy one from stdin with (format csv, force_null *)',
    ]) {
      const error = await rejection(
        copyFrom(
          pool,
          text,
          values.map((v) => [v]),
        ),
      )
      expect([text, error.code, error.backend]).toEqual([text, 'CONFIGURATION', 'postgres'])
      expect(error.message).toContain('Nothing was written')
    }
    expect(await stored()).toEqual([])
    // strings are sent as they are, for the server to read with the statement's options
    expect(await copyFrom(pool, 'copy one from stdin with ("null" \'x\')', ['x\nkept\n'])).toBe(2)
    expect(await stored()).toEqual([null, 'kept'])
    expect(pool.stats().used).toBe(0)
  })

  it('a WHERE clause naming NULL, HEADER or QUOTE is a condition, not an option: array rows are accepted and filtered', async () => {
    // it was CONFIGURATION (the null of IS NOT NULL taken for the NULL option)
    expect(
      await copyFrom(pool, 'copy items (id, label) from stdin where label is not null', [
        [1, 'x'],
        [2, null],
      ]),
    ).toBe(1)
    expect(
      await copyFrom(pool, "copy one from stdin with (format csv) where t is not null and t <> 'header'", [['header'], ['quote'], [null]]),
    ).toBe(1)
    expect(await stored()).toEqual(['quote'])
    expect(await count()).toBe(1)
  })
})

describe('COPY FROM STDIN / TO STDOUT through query(), stream() and the other statement methods', () => {
  // only copyFrom() / copyTo() speak the COPY protocol: query() dropped COPY TO STDOUT's rows (rows [], no error),
  // failed COPY FROM STDIN with QUERY_CANCELLED, and stream()'s cursor crashed the process (TypeError in pg's socket handler)
  const texts: [string, string][] = [
    ['copy items to stdout', 'copyTo'],
    ['COPY (select 1) TO STDOUT WITH (FORMAT csv);', 'copyTo'],
    ['copy items (id) from stdin', 'copyFrom'],
    ['copy items from stdin where id > 1', 'copyFrom'],
    ['select 1; copy items to stdout', 'copyTo'],
  ]

  it('is CONFIGURATION naming copyFrom/copyTo, before anything is sent, on a pool, a connection and a transaction', async () => {
    await pool.query('insert into items (id) values (1), (2)')
    const drain = async (rows: AsyncIterable<unknown>): Promise<DatabaseError> => {
      try {
        for await (const row of rows) void row
      } catch (err) {
        return err as DatabaseError
      }
      throw new Error('the stream ended without an error')
    }
    for (const [text, use] of texts) {
      const errors: DatabaseError[] = [await rejection(pool.query(text)), await drain(pool.stream(text))]
      await pool.withConnection(async (conn) => {
        errors.push(await rejection(conn.query(text)), await drain(conn.stream(text)))
        // the connection was left as it was: nothing was sent
        expect((await conn.query('select 1 as n')).rows).toEqual([{ n: 1 }])
      })
      await pool.transaction(async (tx) => {
        errors.push(await rejection(tx.query(text)), await drain(tx.stream(text)))
        expect((await tx.query('select count(*)::int as n from items')).rows).toEqual([{ n: 2 }])
      })
      for (const error of errors) {
        expect([text, error.code, error.detail]).toEqual([text, 'CONFIGURATION', { use }])
        expect(error.message).toContain(`${use}()`)
      }
    }
    expect(pool.stats().used).toBe(0)
  })

  it('a COPY to or from a server-side program or file still runs through query()', async () => {
    await pool.query('insert into items (id) values (1), (2)')
    expect((await pool.query("copy items to program 'cat > /dev/null'")).rowCount).toBe(2)
    expect((await pool.query("copy (select 'to stdout') to program 'cat > /dev/null'")).rowCount).toBe(1)
  })
})

describe('the COPY statement is one statement of the right kind', () => {
  // pg-copy-streams sends the text as a simple Query, which runs every statement in it
  it('a second statement after the COPY is refused before anything is sent (it used to run: the rows were loaded, then the table dropped)', async () => {
    await pool.query('create table victim (id int)')
    for (const text of [
      'copy items (id) from stdin; drop table victim',
      'copy items (id) from stdin with (format csv); drop table victim;',
      "copy items (id) from stdin with (delimiter ';'); drop table victim",
    ]) {
      const error = await rejection(copyFrom(pool, text, ['1\n']))
      expect(error.code).toBe('CONFIGURATION')
      expect(error.message).toContain('one COPY ... FROM STDIN statement')
    }
    expect(() => copyTo(pool, 'copy (select 1) to stdout; drop table victim')).toThrow(expect.objectContaining({ code: 'CONFIGURATION' }))
    await sleep(50)
    expect((await pool.query('select count(*)::int as n from victim')).rows).toEqual([{ n: 0 }])
    expect(await count()).toBe(0)
    await pool.query('drop table victim')
  })

  it('STDIN or STDOUT only in a comment or a literal does not make a COPY from a file or a program acceptable', async () => {
    for (const text of [
      "copy items (id) from '/etc/passwd' -- from stdin",
      "copy items (id) from '/etc/passwd' /* from stdin */",
      "copy items (id) from program 'true' with (format csv, quote '\"') -- from stdin",
      "copy items (id) from 'stdin'",
      "copy items (id) from stdin with (format csv, quote ''''); drop table items --",
    ])
      expect((await rejection(copyFrom(pool, text, []))).code).toBe('CONFIGURATION')
    for (const text of [
      "copy (select 1) to '/tmp/x' -- to stdout",
      "copy (select 'to stdout') to program 'true'",
      "copy (select $$; to stdout$$) to '/tmp/x'",
    ])
      expect(() => copyTo(pool, text)).toThrow(expect.objectContaining({ code: 'CONFIGURATION' }))
  })

  it('semicolons, quotes and comments inside one COPY statement are still accepted', async () => {
    expect(await copyFrom(pool, "copy items (id, label) from stdin with (format csv, delimiter ';'); -- done", ['1;"a;b"\n'])).toBe(1)
    expect(await copyFrom(pool, 'copy items (id, "label") /* ; */ from stdin with (format \'csv\');', [[2, 'x;y']])).toBe(1)
    expect(
      await readAll(copyTo(pool, "copy (select label from items where label <> $$;$$ and label <> E'\\';' order by id) to stdout;")),
    ).toBe('a;b\nx;y\n')
  })
})

describe('copyTo', () => {
  it('returns the data as a Readable (CSV here), releasing the lease at the end', async () => {
    await pool.query("insert into items (id, label) values (1, 'one'), (2, 'two, with comma')")
    const csv = await readAll(copyTo(pool, 'copy (select id, label from items order by id) to stdout with (format csv)'))
    expect(csv).toBe('1,one\n2,"two, with comma"\n')
    await sleep(10)
    expect(pool.stats().used).toBe(0)
  })

  it('a consumer destroying the Readable early releases the lease (the connection, mid-COPY, is closed, not reused)', async () => {
    const watch = watchProcess()
    const out = copyTo(pool, 'copy (select i, repeat($$x$$, 100) from generate_series(1, 1000000) as s(i)) to stdout')
    await new Promise<void>((resolve) => out.once('data', () => resolve()))
    out.destroy()
    for (let i = 0; i < 100 && pool.stats().used > 0; i++) await sleep(10)
    expect(pool.stats().used).toBe(0)
    expect((await pool.query('select 2 as two')).rows).toEqual([{ two: 2 }])
    expect(await readAll(copyTo(pool, 'copy (select 7) to stdout'))).toBe('7\n')
    watch.stop()
    expect(watch.failures).toEqual([])
  })

  it('a statement failing mid-COPY destroys the Readable with the mapped error; the lease is released and the pool usable', async () => {
    const out = copyTo(pool, 'copy (select 1 / (i - 50000) from generate_series(1, 100000) as s(i)) to stdout')
    let received = 0
    const error = await rejection(
      (async () => {
        for await (const chunk of out) received += (chunk as Buffer).length
      })(),
    )
    expect(error.sqlState).toBe('22012')
    expect(received).toBeGreaterThan(0)
    // the release (a ROLLBACK-free reset after the error) settles after the Readable's error: poll, a
    // loaded machine took more than a fixed 10 ms
    for (let i = 0; i < 200 && pool.stats().used > 0; i++) await sleep(10)
    expect(pool.stats().used).toBe(0)
    expect((await pool.query('select 3 as three')).rows).toEqual([{ three: 3 }])
  })

  it('refuses what is not COPY ... TO STDOUT with CONFIGURATION, at once', () => {
    expect(() => copyTo(pool, 'copy items to stdin')).toThrow(DatabaseError)
  })
})

describe('on a SQLite pool', () => {
  it('copyFrom, copyTo, listen and notify are CONFIGURATION errors saying they are PostgreSQL features', async () => {
    const file = await createTempSqlite()
    const sqlite = await PoolFactory.create(file.url, { min: 0, name: 'sqlite-features' })
    try {
      for (const error of [
        await rejection(copyFrom(sqlite, 'copy t from stdin', [])),
        await rejection(listen(sqlite, 'jobs', () => undefined)),
        await rejection(notify(sqlite, 'jobs', 'x')),
      ]) {
        expect(error.code).toBe('CONFIGURATION')
        expect(error.message).toContain('PostgreSQL feature')
        expect(error.message).toContain('sqlite')
      }
      let thrown: unknown
      try {
        copyTo(sqlite, 'copy t to stdout')
      } catch (err) {
        thrown = err
      }
      expect(DatabaseError.is(thrown, 'CONFIGURATION')).toBe(true)
      expect((await sqlite.query(sql`select ${1} as one`)).rows).toEqual([{ one: 1 }])
    } finally {
      await sqlite.close()
      await file.remove()
    }
  })
})
