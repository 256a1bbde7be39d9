import { DatabaseError } from '@dbpool/core'
import { clientCopy, copyFromRowFormat, readCopyStatement, refuseClientCopy } from '../../src/postgres-copy-syntax'

// copyFrom's array rows are encoded for the format the server will read: the options are read by
// PostgreSQL's COPY grammar (quoted names, dollar quotes, legacy forms), a WHERE clause is not options,
// and anything not known for sure refuses array rows (it used to match words: rows skipped, values changed)
describe('copyFromRowFormat: how array rows are encoded', () => {
  it.each<[string, 'text' | 'csv']>([
    ['copy t from stdin', 'text'],
    ['COPY t (a, b) FROM STDIN;', 'text'],
    ['copy public."my t" (a, "b c") from stdin', 'text'],
    ['copy t from stdin with (format csv)', 'csv'],
    ['copy t from stdin (format csv)', 'csv'],
    ['copy t from stdin with (FORMAT CSV)', 'csv'],
    ["copy t from stdin with (format 'csv')", 'csv'],
    ['copy t from stdin with (format $$csv$$)', 'csv'],
    ['copy t from stdin with (format $x$csv$x$)', 'csv'],
    ['copy t from stdin with (format "csv")', 'csv'],
    ['copy t from stdin with ("format" csv)', 'csv'],
    ['copy t from stdin with (format text)', 'text'],
    ['copy t from stdin with (format csv, header false)', 'csv'],
    ['copy t from stdin with (format csv, "header" off)', 'csv'],
    ["copy t from stdin with (format csv, header 'FALSE')", 'csv'],
    ['copy t from stdin with (format csv, header 0)', 'csv'],
    ['copy t from stdin with (freeze, format csv)', 'csv'],
    ['copy t from stdin with (freeze true)', 'text'],
    ["copy t from stdin with (on_error 'stop', log_verbosity verbose)", 'text'],
    ['copy t from stdin csv', 'csv'],
    ['copy t from stdin with csv freeze', 'csv'],
    ['copy t from stdin /* with (format csv) */', 'text'],
    // a WHERE clause is a condition, never options
    ["copy t from stdin where t is distinct from 'csv'", 'text'],
    ['copy t from stdin where b is not null', 'text'],
    ['copy t from stdin with (format csv) where header is null and quote <> delimiter', 'csv'],
    ['copy t from stdin csv where "null" is not null', 'csv'],
  ])('%s: %s', (text, format) => {
    expect(copyFromRowFormat(text)).toEqual({ format })
  })

  it.each([
    // header: the server skips the first line
    'copy t from stdin with (format csv, header true)',
    'copy t from stdin with (format csv, "header" true)',
    'copy t from stdin with ("header" true)',
    'copy t from stdin with (header)',
    'copy t from stdin with (header match)',
    "copy t from stdin with (header 'on')",
    'copy t from stdin with (header 1)',
    'copy t from stdin csv header',
    'copy t from stdin with csv header',
    // other formats and the options that change how values are read
    'copy t from stdin with (format binary)',
    "copy t from stdin with (format 'CSV')",
    'copy t from stdin with (format "CSV")',
    "copy t from stdin with (format E'csv')",
    'copy binary t from stdin',
    'copy t from stdin binary',
    "copy t from stdin with (null 'x')",
    'copy t from stdin with ("null" \'x\')',
    "copy t from stdin with null as 'x'",
    "copy t from stdin with (default 'x')",
    "copy t from stdin with (delimiter '|')",
    "copy t from stdin using delimiters '|'",
    "copy t from stdin delimiters '|'",
    "copy t from stdin with (format csv, quote '''')",
    "copy t from stdin csv quote as ''''",
    "copy t from stdin with (format csv, escape '\\')",
    'copy t from stdin with (format csv, force_not_null (a))',
    'copy t from stdin with (format csv, force_null *)',
    'copy t from stdin csv force not null a, b',
    "copy t from stdin with (encoding 'latin1')",
    'copy t from stdin with (on_error ignore)',
    'copy t from stdin with (reject_limit 5)',
    'copy t from stdin with (some_future_option)',
    'copy t from stdin with ("HEADER" false)',
    // not readable: refused rather than guessed
    'copy t from stdin with (format csv',
    "copy t from stdin with (format 'cs'\n'v')",
    'copy t from stdin garbage',
    'copy t to stdout',
    "copy t from '/tmp/x'",
  ])('%s: array rows refused', (text) => {
    expect(copyFromRowFormat(text)).toEqual({ format: 'raw', reason: expect.any(String) })
  })

  it('names the option that refused array rows', () => {
    expect(copyFromRowFormat('copy t from stdin with ("null" \'x\')')).toEqual({ format: 'raw', reason: 'the option null "x"' })
    expect(copyFromRowFormat('copy t from stdin csv header')).toEqual({ format: 'raw', reason: 'the option header' })
  })
})

describe('readCopyStatement', () => {
  it('reads the options of either form as the server names them', () => {
    expect(readCopyStatement('copy t from stdin with ("header" true, FORMAT $$csv$$, force_quote *, x (a, b), n -1)')).toEqual({
      direction: 'from',
      client: true,
      options: [
        { name: 'header', value: 'true', numeric: false },
        { name: 'format', value: 'csv', numeric: false },
        { name: 'force_quote', value: '*', numeric: false },
        { name: 'x', value: undefined, numeric: false },
        { name: 'n', value: '-1', numeric: true },
      ],
    })
    expect(readCopyStatement("copy t from stdin using delimiters '|' with csv header null as '' freeze")?.options).toEqual([
      { name: 'delimiter', value: '|', numeric: false },
      { name: 'format', value: 'csv', numeric: false },
      { name: 'header', value: null, numeric: false },
      { name: 'null', value: '', numeric: false },
      { name: 'freeze', value: null, numeric: false },
    ])
    expect(readCopyStatement("copy (select ';') to program 'gzip > /tmp/x'")).toEqual({ direction: 'to', client: false, options: [] })
  })
})

describe('clientCopy: statements that need the COPY protocol', () => {
  it.each<[string, 'from' | 'to' | 'unknown']>([
    ['copy t to stdout', 'to'],
    ['COPY t TO STDOUT WITH (FORMAT csv)', 'to'],
    ['copy (select 1) to stdout', 'to'],
    ['/* hello */ copy t (a) to stdout;', 'to'],
    ['copy t from stdin', 'from'],
    ['copy t from stdin where a > 1', 'from'],
    ['copy t from stdout', 'from'],
    ['copy t to stdin', 'to'],
    ['select 1; copy t to stdout', 'to'],
    ['copy t from stdin; select 1', 'from'],
    ['copy t to stdout with (format csv', 'unknown'],
    ["copy t to stdout where 'x", 'unknown'],
  ])('%s: %s', (text, direction) => {
    expect(clientCopy(text)).toBe(direction)
  })

  it.each([
    'select 1',
    "select 'copy t to stdout'",
    'select 1 -- copy t to stdout',
    "copy t to '/tmp/t.csv'",
    "copy t from '/tmp/t.csv' with (format csv)",
    "copy (select 'stdout') to program 'cat > /dev/null'",
    "copy stdin to '/tmp/x'",
    'select copy from copies',
    'create table copy_log (stdin text)',
  ])('%s: none', (text) => {
    expect(clientCopy(text)).toBeUndefined()
  })

  it('refuseClientCopy: CONFIGURATION naming the function to use', () => {
    let error: unknown
    try {
      refuseClientCopy('copy t to stdout')
    } catch (err) {
      error = err
    }
    expect(DatabaseError.is(error, 'CONFIGURATION')).toBe(true)
    expect((error as DatabaseError).message).toContain('copyTo()')
    expect((error as DatabaseError).detail).toEqual({ use: 'copyTo' })
    expect(() => refuseClientCopy("copy t from '/tmp/x'")).not.toThrow()
  })
})
