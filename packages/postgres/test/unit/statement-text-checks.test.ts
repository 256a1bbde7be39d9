import { clientCopy, copyVerdictKept, MAX_COPY_VERDICTS, refuseClientCopy } from '../../src/postgres-copy-syntax'
import { queryDdlOfText, statementTraits, traitsRemembered } from '../../src/postgres-statement-traits'

// Hot-path costs of the per-statement text checks. refuseClientCopy runs for every statement: any text
// holding the substring 'copy' (a table `copies`, a column copy_count) was tokenized at every run and
// the answer dropped. handleCommandComplete read the traits of every unnamed statement answered
// 'SELECT n', and the map of 512 texts was cleared all at once when full.
describe('refuseClientCopy: a word pre-check, the answer kept per text', () => {
  it("'copies', 'copy_count' are no COPY: answered without reading the text (nothing kept)", () => {
    for (const text of ['select copy_count from copies', 'select * from t_copy', 'select "x"copyx']) {
      expect(clientCopy(text)).toBeUndefined()
      expect(copyVerdictKept(text)).toBe(false)
    }
  })

  it('a text with the word copy is read once; its answer (COPY or not) is kept and the same', () => {
    const texts = ["copy t to '/tmp/x'", 'select 1; COPY t TO STDOUT', '/* c */copy t from stdin', "select 'copy' as copy"]
    const first = texts.map((t) => clientCopy(t))
    expect(first).toEqual([undefined, 'to', 'from', undefined])
    for (const t of texts) expect(copyVerdictKept(t)).toBe(true)
    expect(texts.map((t) => clientCopy(t))).toEqual(first)
    expect(() => refuseClientCopy('select 1; COPY t TO STDOUT')).toThrow(/copyTo/)
    expect(() => refuseClientCopy('select 1; COPY t TO STDOUT')).toThrow(/copyTo/)
  })

  it('bounded: the least recently used text is forgotten first', () => {
    const hot = 'copy hot to stdout'
    clientCopy(hot)
    for (let i = 0; i < MAX_COPY_VERDICTS; i++) {
      clientCopy(`copy t${i} to '/tmp/x'`)
      clientCopy(hot)
    }
    expect(copyVerdictKept(hot)).toBe(true)
    expect(copyVerdictKept("copy t0 to '/tmp/x'")).toBe(false)
    expect(clientCopy(hot)).toBe('to')
  })
})

describe('the traits of a SELECT-tagged unnamed statement: a word pre-check, least recently used forgotten', () => {
  it('a text without the word create or into is answered without reading or remembering it', () => {
    for (const text of ['select * from t where id = 1', 'select created_at, intotal from t', 'explain select 1']) {
      expect(queryDdlOfText(text)).toBeUndefined()
      expect(traitsRemembered(text)).toBe(false)
    }
  })

  it('never skips a real CREATE TABLE ... AS, SELECT ... INTO (any case, after a comment or EXPLAIN)', () => {
    expect(queryDdlOfText('/* x */CREATE TABLE n AS SELECT 1')).toBe('everywhere')
    expect(queryDdlOfText('select 1 INTO n')).toBe('everywhere')
    expect(queryDdlOfText('explain analyze create materialized view v as select 1')).toBe('everywhere')
    expect(queryDdlOfText('select 1 into temp n')).toBe('here')
    expect(queryDdlOfText("select 'x' as into_x from t")).toBeUndefined()
  })

  it('a full map drops the least recently used text, not every text', () => {
    const hot = "select 'now'::date"
    statementTraits(hot)
    for (let i = 0; i < 600; i++) {
      statementTraits(`select ${i} into t${i}`)
      statementTraits(hot)
    }
    expect(traitsRemembered(hot)).toBe(true)
    expect(traitsRemembered('select 0 into t0')).toBe(false)
    expect(traitsRemembered('select 599 into t599')).toBe(true)
    // cleared all at once when full before: only the texts after the clear were left
    expect(traitsRemembered('select 300 into t300')).toBe(true)
  })
})
