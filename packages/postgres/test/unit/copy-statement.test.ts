import { DatabaseError } from '@dbpool/core'
import { checkCopyStatement, copyQuery, copyToMayWrite } from '../../src/postgres-copy-statement'

describe('copyQuery: the query of COPY (query) TO STDOUT', () => {
  it.each<[string, string | null | undefined]>([
    ['copy t to stdout', null],
    ['COPY t (a, b) TO STDOUT', null],
    ['copy "my (table)" (a, "b)") to stdout', null],
    ['copy public.t (a) to stdout with (format csv)', null],
    ['/* (select 1) */ copy t to stdout', null],
    ['copy (select 1) to stdout', 'select 1'],
    ['copy(select 1)to stdout', 'select 1'],
    ['COPY ( ( select 1 ) ) TO STDOUT', ' select 1 '],
    ['copy (((select 1))) to stdout', 'select 1'],
    ['copy ((select 1) union (select 2)) to stdout', '(select 1) union (select 2)'],
    ['copy /* c ( */ (select 1) to stdout', 'select 1'],
    ["copy (select ')' as a) to stdout with (format csv)", "select ')' as a"],
    ["copy (select E'\\')' as a) to stdout", "select E'\\')' as a"],
    ['copy (select $$)$$ as a) to stdout', 'select $$)$$ as a'],
    ['copy (select $q$ ( $q$ as a) to stdout', 'select $q$ ( $q$ as a'],
    ['copy (select 1 as ")") to stdout', 'select 1 as ")"'],
    ['copy (select 1 -- )\n) to stdout', 'select 1 -- )\n'],
    ['copy (select f(x) from t where (a) in (1, 2)) to stdout', 'select f(x) from t where (a) in (1, 2)'],
    ['copy (insert into t values (1) returning *) to stdout', 'insert into t values (1) returning *'],
    // non-ASCII letters are name characters: åe'...' is a name then a plain literal, å$q$ a name, $å$ a tag
    ["copy (select åe'\\' as a) to stdout", "select åe'\\' as a"],
    ['copy (select å$q$ as a) to stdout', 'select å$q$ as a'],
    ['copy (select $å$ ) $å$ as a) to stdout', 'select $å$ ) $å$ as a'],
    ['copy (select 1 to stdout', undefined],
    ["copy (select ')) to stdout", undefined],
    ['copy (select 1) /* to stdout', undefined],
    ['select 1', undefined],
  ])('%s', (text, query) => {
    expect(copyQuery(text)).toBe(query)
  })
})

describe('copyToMayWrite', () => {
  it.each([
    'copy (insert into t values (1) returning *) to stdout',
    'copy (update t set a = 1 returning *) to stdout',
    'copy (delete from t returning id) to stdout with (format csv)',
    'copy (with d as (delete from t returning *) select * from d) to stdout',
    "copy (select nextval('s')) to stdout",
    'copy (select my_function(1)) to stdout',
    'copy ((select 1) union (select my_function(2))) to stdout',
    'copy ( ( insert into t values (1) returning * ) ) to stdout',
    'copy (select 1 to stdout',
  ])('%s may write', (text) => {
    expect(copyToMayWrite(text)).toBe(true)
  })

  it.each([
    'copy t to stdout',
    'copy t (a, b) to stdout',
    'copy "Insert" ("delete") to stdout',
    'copy (select * from t order by id) to stdout with (format csv)',
    "copy (select 'insert into t' as a) to stdout",
    'copy (select 1 /* delete */) to stdout',
    'copy ((select 1)) to stdout',
    "copy (select n, repeat('x', 200) from generate_series(1, 10) n) to stdout",
    'copy (values (1), (2)) to stdout',
  ])('%s is known not to write', (text) => {
    expect(copyToMayWrite(text)).toBe(false)
  })
})

describe('checkCopyStatement', () => {
  it.each([
    ['copy t from stdin', 'from stdin', 'copy t from stdin'],
    ["copy t from stdin with (format 'csv', null '')", 'from stdin', "copy t from stdin with (format 'csv', null '')"],
    ['copy "a;b" from stdin;', 'from stdin', 'copy "_" from stdin'],
    ["copy (select E'\\';') to stdout", 'to stdout', "copy (select E'') to stdout"],
    ['copy (select $x$;$x$) to stdout -- ;', 'to stdout', 'copy (select  ) to stdout'],
  ] as const)('%s gives its words', (text, direction, words) => {
    expect(checkCopyStatement(text, direction, 'copyTo')).toBe(words)
  })

  it.each([
    ['copy t from stdin; drop table t', 'from stdin'],
    ["copy t from '/tmp/x' -- stdin", 'from stdin'],
    ["copy t to '/tmp/x' /* to stdout */", 'to stdout'],
    ["copy (select 'x) to stdout", 'to stdout'],
  ] as const)('%s is refused', (text, direction) => {
    expect(() => checkCopyStatement(text, direction, 'copyTo')).toThrow(DatabaseError)
  })
})
