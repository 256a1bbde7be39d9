import { createWriteStream } from 'node:fs'
import { randomBytes } from 'node:crypto'
import { mkdir, rename, rm, stat } from 'node:fs/promises'
import { dirname } from 'node:path'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { sql } from '@dbpool/core'
import type { Db } from './db'
import { refuseDatabaseFile } from './export-target'
import { toBigInteger, toDate, toInteger } from './values'

/** What {@link exportJournalCsv} wrote. */
export interface JournalExport {
  readonly path: string
  /** Journal lines written (the header not counted). */
  readonly lines: number
  readonly bytes: number
  readonly durationMs: number
}

/** Columns of the CSV, in order. */
export const JOURNAL_CSV_HEADER = 'entry_id,line_no,posted_at,account_id,amount,currency,description,journal_seq,account_seq,balance_after'

/**
 * Writes every journal line to `path` as CSV (RFC 4180: fields with a comma, quote or line break are
 * quoted), in posting order: by `journal_seq` (an order of entries that follows every account's
 * postings; entries sharing no account may tie and are then by entry id), an entry's lines by
 * `line_no`; never by `posted_at`, the business date a caller may set. Each line carries its
 * account's posting number (`account_seq`) and the balance right after that posting (`balance_after`,
 * the same on every line of the entry on that account). Through `db.stream()`: one lease (or the transaction's connection), rows
 * read in batches of 500 only as fast as the file takes them, so memory stays flat however long the
 * journal. Written to a temporary file next to it (`<path>.<random hex>.tmp`) and renamed, so a
 * failed export never leaves a partial file under `path`; on failure (the pool closed or a connection
 * lost mid-export, `path` naming a directory) the temporary file is removed and the error rethrown.
 * Throws CONFIGURATION naming `exportJournalCsv.path`, before anything is written, when `path` is a
 * file of the SQLite database `db` runs on (the database, an attached one, or the `-wal`, `-shm` or
 * `-journal` beside one; the same path or the same device and inode, see `refuseDatabaseFile`): the
 * rename would have replaced the live database with the CSV.
 */
export async function exportJournalCsv(db: Db, path: string): Promise<JournalExport> {
  const started = performance.now()
  await refuseDatabaseFile('exportJournalCsv.path', db, path)
  await mkdir(dirname(path), { recursive: true })
  const rows = db.stream<{
    entry_id: string
    line_no: unknown
    posted_at: unknown
    account_id: string
    amount: unknown
    currency: string
    description: string
    journal_seq: unknown
    account_seq: unknown
    balance_after: unknown
  }>(
    sql`
      select l.entry_id, l.line_no, e.posted_at, l.account_id, l.amount, e.currency, e.description,
             l.journal_seq, l.account_seq, l.balance_after
      from journal_lines l join journal_entries e on e.id = l.entry_id
      order by l.journal_seq, l.entry_id, l.line_no`,
    undefined,
    { batchSize: 500 },
  )
  let lines = 0
  async function* csv(): AsyncGenerator<string> {
    yield `${JOURNAL_CSV_HEADER}\n`
    for await (const row of rows) {
      lines++
      yield `${[
        row.entry_id,
        toInteger(row.line_no, 'line_no'),
        toDate(row.posted_at).toISOString(),
        row.account_id,
        toInteger(row.amount, 'amount'),
        row.currency,
        row.description,
        toInteger(row.journal_seq, 'journal_seq'),
        toInteger(row.account_seq, 'account_seq'),
        toBigInteger(row.balance_after, 'balance_after'),
      ]
        .map((v) => csvField(String(v)))
        .join(',')}\n`
    }
  }
  // a name of its own: two exports to one path never write into the same temporary file
  const partial = `${path}.${randomBytes(6).toString('hex')}.tmp`
  try {
    await pipeline(Readable.from(csv()), createWriteStream(partial))
    await rename(partial, path)
  } catch (err) {
    // the stream failed (pool closed, connection lost) or `path` cannot take the file (a directory):
    // the partial file goes too, and the export's own error is what the caller sees
    await rm(partial, { force: true }).catch(() => undefined)
    throw err
  }
  const { size } = await stat(path)
  return { path, lines, bytes: size, durationMs: Math.round(performance.now() - started) }
}

function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value
}
