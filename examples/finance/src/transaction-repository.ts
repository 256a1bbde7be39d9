import { randomUUID } from 'node:crypto'
import { sql, type SqlFragment } from '@dbpool/core'
import { checkCurrency, IN_LIST_CHUNK } from './account-repository'
import { atomically, type Db } from './db'
import {
  AccountNotFoundError,
  BalanceOutOfRangeError,
  BalanceReadOutOfRangeError,
  CurrencyMismatchError,
  FinanceError,
  IdempotencyConflictError,
  InsufficientFundsError,
  InvalidEntryError,
} from './errors'
import { ExactTotal, sumExact, toDate, toInteger, toNullableInteger } from './values'
import { checkDate, checkedClock } from './dates'
import { checkObject } from './checks'
import { shownValue } from '@dbpool/example-kit'

/** One line of a journal entry: a signed amount on one account (negative debits the balance). */
export interface JournalLine {
  readonly accountId: string
  /** Integer minor units, never 0. */
  readonly amount: number
}

/** A posted journal entry with its lines. */
export interface JournalEntry {
  readonly id: string
  readonly idempotencyKey: string | null
  readonly requestHash: string | null
  readonly currency: string
  readonly description: string
  readonly postedAt: Date
  readonly lines: readonly JournalLine[]
}

/** What {@link TransactionRepository.post} needs. */
export interface NewJournalEntry {
  readonly description: string
  readonly currency: string
  /**
   * Two or more lines summing to zero (summed exactly, never in floats); each account's net change
   * over the entry's lines must be within ±(2^53 - 1) minor units.
   */
  readonly lines: readonly JournalLine[]
  /** Posting the same key again returns the first entry instead of posting twice. */
  readonly idempotencyKey?: string
  /** Identifies the request a key belongs to; a key reused with another hash is IDEMPOTENCY_CONFLICT. */
  readonly requestHash?: string
  /**
   * The entry's business date: what statements show and what date ranges (`statement`, `balanceAt`,
   * `entriesForAccount`) select by, never the order postings are listed in (each account's posting
   * sequence is). Default is the repository's clock, read before the posting waits for its accounts,
   * so concurrent postings can be applied in the other order; a caller may set any date, earlier
   * postings' included. A valid Date within years 0000 to 9999 (UTC), INVALID_ENTRY otherwise: SQLite
   * compares timestamps as ISO text, which sorts a 6-digit year wrongly (`checkDate`).
   */
  readonly postedAt?: Date
}

/** What {@link TransactionRepository.post} returns. */
export interface PostResult {
  readonly entry: JournalEntry
  /** True when the idempotency key was already posted and `entry` is that first posting. */
  readonly replayed: boolean
}

/**
 * A date range: `from` inclusive, `to` exclusive; either may be open. Each a valid Date within years
 * 0000 to 9999 (UTC), INVALID_ENTRY otherwise (`checkDate`).
 */
export interface DateRange {
  readonly from?: Date
  readonly to?: Date
}

/** One line of an account statement: one posting to the account. */
export interface StatementLine {
  /**
   * The posting's number on the account: 1 for its first posting, then 2, 3, ... in the order they
   * were applied to its balance (`journal_lines.account_seq`). Lines are in this order.
   */
  readonly sequence: number
  readonly entryId: string
  /** The entry's business date: shown, not the order (a caller may set it, see {@link NewJournalEntry.postedAt}). */
  readonly postedAt: Date
  readonly description: string
  /** The net change of the account's lines in the entry, minor units (0 when they cancel out). */
  readonly amount: number
  /** The account's balance right after this posting, as the posting recorded it. */
  readonly balance: number
}

/** An account's movements over a date range. */
export interface AccountStatement {
  readonly accountId: string
  readonly from: Date | null
  readonly to: Date | null
  /** The balance as of `from`: the sum of the account's lines dated (`postedAt`) before it; 0 without `from`. */
  readonly openingBalance: number
  /** `openingBalance` plus the amounts of `lines`: the balance as of `to` (the account's balance without `to`). */
  readonly closingBalance: number
  /**
   * Sum of the negative lines (negative), exact, in minor units. A `bigint`: each balance stays within
   * ±(2^53 - 1) but the money that went through an account can add up past it (print it with
   * `formatMinorUnits()`).
   */
  readonly debits: bigint
  /** Sum of the positive lines, exact, in minor units (a `bigint`, like {@link AccountStatement.debits}). */
  readonly credits: bigint
  readonly lines: readonly StatementLine[]
}

interface EntryRow {
  id: string
  idempotency_key: string | null
  request_hash: string | null
  currency: string
  description: string
  posted_at: unknown
}

/**
 * The double-entry journal. {@link post} is the only place balances change: it checks that the lines
 * balance, applies them to the accounts (refusing to take any below its limit), and records the
 * entry and its lines, atomically. Serializable isolation and retries belong to the caller (see
 * {@link TransferService}).
 */
export class TransactionRepository {
  readonly #db: Db
  readonly #clock: () => Date

  /**
   * `clock`: where timestamps come from, default `() => new Date()`; a reading that is not a Date
   * within years 0000 to 9999 (UTC) is INVALID_ENTRY naming `clock` (`checkDate`).
   */
  constructor(db: Db, options: { readonly clock?: () => Date } = {}) {
    this.#db = db
    this.#clock = checkedClock(options.clock)
  }

  /**
   * Posts an entry, or, when its idempotency key was posted before, returns that first entry
   * (`replayed: true`) without touching any balance. Throws INVALID_ENTRY, ACCOUNT_NOT_FOUND,
   * CURRENCY_MISMATCH, INSUFFICIENT_FUNDS, BALANCE_OUT_OF_RANGE (a balance would leave ±(2^53 - 1))
   * or IDEMPOTENCY_CONFLICT; nothing is written then. A missing account of the entry is
   * ACCOUNT_NOT_FOUND for it, also when another account's balance refuses its posting.
   */
  async post(input: NewJournalEntry): Promise<PostResult> {
    const { entry, net } = this.#validate(input)
    return this.#db.transaction(async (tx) => {
      // claiming the key first: a concurrent duplicate waits on the unique index, not on a read
      const claimed = await tx.query(sql`
        insert into journal_entries (id, idempotency_key, request_hash, currency, description, posted_at)
        values (${entry.id}, ${entry.idempotencyKey}, ${entry.requestHash}, ${entry.currency}, ${entry.description}, ${entry.postedAt})
        on conflict (idempotency_key) do nothing`)
      if (claimed.rowCount === 0) return { entry: await this.#replay(tx, entry), replayed: true }
      // each account's posting number and balance after it, from the update that changes the balance
      // (under its row lock: the order the postings really happened in on that account)
      const applied = new Map<string, Applied>()
      let journalSeq = 0
      for (const [accountId, delta] of net) {
        let posting: Applied
        try {
          posting = await this.#apply(tx, accountId, delta, entry.currency)
        } catch (err) {
          // a refusal (balance, funds, currency) names a missing account of the entry first: the
          // entry cannot be posted whatever the balances (checked on this path only, never before a posting)
          if (FinanceError.is(err) && !FinanceError.is(err, 'ACCOUNT_NOT_FOUND')) await refuseMissingAccount(tx, net)
          throw err
        }
        applied.set(accountId, posting)
        journalSeq = Math.max(journalSeq, posting.journalSeq)
      }
      // the entry's place in the journal, taken once every account is locked: after the last entry
      // of each of them (a Lamport clock, no journal-wide counter that every posting would queue on)
      journalSeq += 1
      const ids = [...applied.keys()]
      for (let i = 0; i < ids.length; i += IN_LIST_CHUNK)
        await tx.query(sql`update accounts set journal_seq = ${journalSeq} where id in (${sql.join(ids.slice(i, i + IN_LIST_CHUNK))})`)
      const values = entry.lines.map((line, i) => {
        const posting = applied.get(line.accountId) as Applied
        return sql`(${entry.id}, ${i + 1}, ${line.accountId}, ${line.amount}, ${posting.sequence}, ${posting.balance}, ${journalSeq})`
      })
      // one statement up to LINES_PER_INSERT lines (7 parameters each): a longer entry is inserted in
      // chunks, the same on SQLite (32,766 parameters a statement) and Postgres (65,535)
      for (let i = 0; i < values.length; i += LINES_PER_INSERT)
        await tx.query(
          sql`insert into journal_lines (entry_id, line_no, account_id, amount, account_seq, balance_after, journal_seq)
              values ${sql.join(values.slice(i, i + LINES_PER_INSERT))}`,
        )
      return { entry, replayed: false }
    })
  }

  /** The entry with this id, with its lines. */
  async findById(id: string): Promise<JournalEntry | undefined> {
    const { rows } = await this.#db.query<EntryRow>(sql`select ${entryColumns} from journal_entries where id = ${id}`)
    return rows[0] && withLines(this.#db, rows[0])
  }

  /** The entry posted with this idempotency key, with its lines. */
  async findByIdempotencyKey(key: string): Promise<JournalEntry | undefined> {
    return findByKey(this.#db, key)
  }

  /**
   * Entries (with lines) touching `accountId` whose `postedAt` is within `range`, in the order they were
   * posted to the account (its posting sequence, not `postedAt`); INVALID_ENTRY for a bad range.
   */
  async entriesForAccount(accountId: string, range: DateRange = {}): Promise<JournalEntry[]> {
    checkRange(range)
    const { rows } = await this.#db.query<EntryRow>(sql`
      select ${entryColumns} from journal_entries
      join (select entry_id, min(account_seq) as account_seq from journal_lines where account_id = ${accountId} group by entry_id) p
        on p.entry_id = id
      where 1 = 1 ${rangeFilter(range)}
      order by p.account_seq`)
    // one after another: on a transaction every read goes to one connection, and pg's client warns
    // (pg@9 will refuse) when a query is sent while another is still running on it
    const entries: JournalEntry[] = []
    for (const row of rows) entries.push(await withLines(this.#db, row))
    return entries
  }

  /**
   * The balance of `accountId` from its lines posted before `at` (every line when `at` is omitted);
   * INVALID_ENTRY when `at` is not a valid Date; BALANCE_OUT_OF_RANGE ({@link BalanceReadOutOfRangeError})
   * when that past balance is beyond ±(2^53 - 1) (possible with backdated entries).
   */
  async balanceAt(accountId: string, at?: Date): Promise<number> {
    if (at !== undefined) checkDate(at, 'at')
    const before = at === undefined ? sql.empty : sql`and e.posted_at < ${at}`
    const { rows } = await this.#db.query<{ total: unknown }>(sql`
      select coalesce(sum(l.amount), 0) as total
      from journal_lines l join journal_entries e on e.id = l.entry_id
      where l.account_id = ${accountId} ${before}`)
    return balanceValue(rows[0]?.total, accountId)
  }

  /**
   * The statement of `accountId` over `range`: one line per posting to the account whose `postedAt`
   * is within `range`, in the order the postings were applied to it (the account's posting sequence,
   * never `postedAt` or the entry id), each with the balance the account had right after it; totals
   * (debits and credits as exact `bigint`s); the opening and closing balances as of `from` and `to`.
   * Read in one snapshot when the repository runs on a pool (a read-only repeatable-read transaction);
   * on a transaction, in a savepoint of it under the caller's isolation (one snapshot when that is
   * repeatable read or serializable, or on SQLite). ACCOUNT_NOT_FOUND for an unknown account;
   * BALANCE_OUT_OF_RANGE ({@link BalanceReadOutOfRangeError}) when the opening or closing balance (sums
   * by `postedAt`) is beyond ±(2^53 - 1), which a backdated entry can cause, never a RangeError.
   *
   * A line's `balance` is the balance recorded by its posting (`journal_lines.balance_after`), not a
   * sum: always a balance the account really had. `closingBalance` is `openingBalance` plus the
   * lines' amounts; the two agree with the lines' balances (the first line's balance is opening +
   * its amount, the last one's is closing) unless a posting dated outside `range` was applied between
   * the first and last line (a backdated or postdated `postedAt`). Without a range they always agree,
   * and the last line's balance is the account's balance.
   */
  async statement(accountId: string, range: DateRange = {}): Promise<AccountStatement> {
    checkRange(range)
    return atomically(
      this.#db,
      async (tx) => {
        const exists = await tx.query(sql`select id from accounts where id = ${accountId}`)
        if (exists.rowCount === 0) throw new AccountNotFoundError(accountId)
        const opening = range.from === undefined ? 0 : await new TransactionRepository(tx).balanceAt(accountId, range.from)
        // read through a stream: a statement over a busy account's year is built line by line, never
        // held twice (rows, then lines). One row per posting: an entry's lines on the account are
        // applied as one net change, and only the balance after it is one the account had.
        const rows = tx.stream<{
          account_seq: unknown
          entry_id: string
          posted_at: unknown
          description: string
          amount: unknown
          balance_after: unknown
        }>(sql`
          select l.account_seq, l.entry_id, e.posted_at, e.description, sum(l.amount) as amount, l.balance_after
          from journal_lines l join journal_entries e on e.id = l.entry_id
          where l.account_id = ${accountId} ${rangeFilter(range, 'e.')}
          group by l.account_seq, l.entry_id, e.posted_at, e.description, l.balance_after
          order by l.account_seq`)
        // money in and out are not bounded like a balance: exact totals that turn bigint past 2^53
        const total = new ExactTotal()
        const debits = new ExactTotal()
        const credits = new ExactTotal()
        const lines: StatementLine[] = []
        for await (const row of rows) {
          const amount = toInteger(row.amount, 'amount')
          total.add(amount)
          if (amount < 0) debits.add(amount)
          else if (amount > 0) credits.add(amount)
          lines.push({
            sequence: toInteger(row.account_seq, 'account_seq'),
            entryId: row.entry_id,
            postedAt: toDate(row.posted_at),
            description: row.description,
            amount,
            balance: balanceValue(row.balance_after, accountId, row.entry_id),
          })
        }
        const closing = BigInt(opening) + total.value
        // a sum by posted_at: a backdated entry can put it out of range (the recorded balances never are)
        if (closing > SAFE || closing < -SAFE) throw new BalanceReadOutOfRangeError(accountId, String(closing), null)
        return {
          accountId,
          from: range.from ?? null,
          to: range.to ?? null,
          openingBalance: opening,
          closingBalance: Number(closing),
          debits: debits.value,
          credits: credits.value,
          lines,
        }
      },
      { isolation: 'repeatable read', readOnly: true },
    )
  }

  /** Number of entries, and of lines. */
  async counts(): Promise<{ entries: number; lines: number }> {
    const { rows } = await this.#db.query<{ entries: unknown; lines: unknown }>(
      sql`select (select count(*) from journal_entries) as entries, (select count(*) from journal_lines) as lines`,
    )
    return { entries: toInteger(rows[0]?.entries), lines: toInteger(rows[0]?.lines) }
  }

  #validate(input: NewJournalEntry): { entry: JournalEntry; net: [string, number][] } {
    checkObject(input, 'input')
    const lines = input.lines
    if (!Array.isArray(lines) || lines.length < 2) throw new InvalidEntryError('an entry needs at least two lines')
    for (const [i, line] of lines.entries()) {
      checkObject(line, `line ${i + 1}`)
      if (typeof line.accountId !== 'string' || line.accountId === '')
        throw new InvalidEntryError(`line ${i + 1}: accountId must be a non-empty string`)
      if (!Number.isSafeInteger(line.amount) || line.amount === 0) {
        throw new InvalidEntryError(`line ${i + 1}: amount ${shownValue(line.amount)} must be a non-zero integer (minor units)`, {
          line: i + 1,
        })
      }
    }
    const sum = sumExact(lines.map((l) => l.amount))
    if (sum !== 0n) throw new InvalidEntryError(`the lines sum to ${sum}, not 0: a journal entry must balance`, { sum: String(sum) })
    if (typeof input.description !== 'string') throw new InvalidEntryError('description must be a string')
    if (input.requestHash !== undefined && typeof input.requestHash !== 'string')
      throw new InvalidEntryError('requestHash must be a string', { option: 'requestHash' })
    if (input.postedAt !== undefined) checkDate(input.postedAt, 'postedAt')
    const key = input.idempotencyKey
    if (key !== undefined && (typeof key !== 'string' || key.length === 0 || key.length > 200)) {
      throw new InvalidEntryError(`idempotencyKey ${JSON.stringify(key)}: must be a string of 1 to 200 characters`)
    }
    const entry: JournalEntry = {
      id: randomUUID(),
      idempotencyKey: key ?? null,
      requestHash: input.requestHash ?? null,
      currency: checkCurrency(input.currency),
      description: input.description,
      postedAt: input.postedAt ?? this.#clock(),
      lines: lines.map((l) => ({ accountId: l.accountId, amount: l.amount })),
    }
    return { entry, net: netByAccount(entry.lines) }
  }

  async #replay(db: Db, entry: JournalEntry): Promise<JournalEntry> {
    const key = entry.idempotencyKey as string
    const first = await findByKey(db, key)
    // unreachable under serializable isolation: the conflicting row is visible once the insert gave way
    if (!first) throw new Error(`idempotency key ${key} conflicted but no entry holds it`)
    if (first.requestHash !== entry.requestHash) throw new IdempotencyConflictError(key, first.id)
    return first
  }

  /**
   * Adds `delta` to a balance unless that takes it below its limit or outside ±(2^53 - 1) (the range
   * a balance reads back exactly as a number; it also keeps SQLite's `balance + delta` from overflowing
   * int64 into a rounded REAL), and numbers the posting (`posting_seq + 1`) in the same statement,
   * under the row lock that orders postings on the account; returns that number, the new balance and
   * the account's last `journal_seq`. Explains a refusal. A `delta` of 0 (lines that net to zero on
   * the account) is a posting too: it is numbered, and the account's currency checked.
   *
   * The explanation is a second statement: under read committed (a post on a pool, Postgres) it can
   * see a change committed after the refused update (a credit landing in between), by which the
   * update would now pass. The update is then tried again (at most {@link APPLY_ATTEMPTS} times), so a
   * refusal always names a balance that really refuses it; under repeatable read or serializable, and
   * on SQLite (one writer), both statements see the same state and it never loops.
   */
  async #apply(db: Db, accountId: string, delta: number, currency: string): Promise<Applied> {
    const limit =
      delta < 0
        ? sql`and balance + ${delta} >= ${MIN_BALANCE} and (min_balance is null or balance + ${delta} >= min_balance)`
        : sql`and balance + ${delta} <= ${MAX_BALANCE}`
    for (let attempt = 1; ; attempt++) {
      const { rows: updated } = await db.query<{ posting_seq: unknown; balance: unknown; journal_seq: unknown }>(sql`
        update accounts set balance = balance + ${delta}, posting_seq = posting_seq + 1
        where id = ${accountId} and currency = ${currency} ${limit}
        returning posting_seq, balance, journal_seq`)
      const done = updated[0]
      if (done)
        return {
          sequence: toInteger(done.posting_seq, 'posting_seq'),
          balance: toInteger(done.balance, 'balance'),
          journalSeq: toInteger(done.journal_seq, 'journal_seq'),
        }
      const { rows } = await db.query<{ currency: string; balance: unknown; min_balance: unknown }>(
        sql`select currency, balance, min_balance from accounts where id = ${accountId}`,
      )
      const row = rows[0]
      if (!row) throw new AccountNotFoundError(accountId)
      if (row.currency !== currency) throw new CurrencyMismatchError(accountId, row.currency, currency)
      const balance = toInteger(row.balance, 'balance')
      const minBalance = toNullableInteger(row.min_balance, 'min_balance')
      const next = BigInt(balance) + BigInt(delta)
      if (next > SAFE || next < -SAFE) throw new BalanceOutOfRangeError(accountId, balance, delta)
      const refused = delta < 0 && minBalance !== null && next < BigInt(minBalance)
      if (refused || attempt >= APPLY_ATTEMPTS) throw new InsufficientFundsError(accountId, balance, minBalance ?? 0, delta)
    }
  }
}

/**
 * Throws ACCOUNT_NOT_FOUND for the first account of `net` (in posting order) that does not exist:
 * asked when another account of the entry refused its posting, so that a transfer from a missing
 * account to one at its maximum balance says the account is missing, not that the other one is full.
 */
async function refuseMissingAccount(db: Db, net: readonly (readonly [string, number])[]): Promise<void> {
  const ids = net.map(([id]) => id)
  const found = new Set<string>()
  for (let i = 0; i < ids.length; i += IN_LIST_CHUNK) {
    const { rows } = await db.query<{ id: string }>(sql`select id from accounts where id in (${sql.join(ids.slice(i, i + IN_LIST_CHUNK))})`)
    for (const row of rows) found.add(row.id)
  }
  const missing = ids.find((id) => !found.has(id))
  if (missing !== undefined) throw new AccountNotFoundError(missing)
}

/** What one account's posting was given by the update that applied it. */
interface Applied {
  /** The account's posting number (`accounts.posting_seq` after the update). */
  readonly sequence: number
  /** The balance right after the posting. */
  readonly balance: number
  /** The account's `journal_seq` before this entry (its last entry's place in the journal). */
  readonly journalSeq: number
}

/** Updates {@link TransactionRepository} tries on one account when the explaining read says it would now pass. */
const APPLY_ATTEMPTS = 5

/** The range of a balance: exact as a JS number. Literals, so the hot update binds no extra parameter. */
const MAX_BALANCE = sql.raw(String(Number.MAX_SAFE_INTEGER))
const MIN_BALANCE = sql.raw(String(-Number.MAX_SAFE_INTEGER))
const SAFE = BigInt(Number.MAX_SAFE_INTEGER)

const entryColumns = sql`id, idempotency_key, request_hash, currency, description, posted_at`

async function findByKey(db: Db, key: string): Promise<JournalEntry | undefined> {
  const { rows } = await db.query<EntryRow>(sql`select ${entryColumns} from journal_entries where idempotency_key = ${key}`)
  return rows[0] && withLines(db, rows[0])
}

async function withLines(db: Db, row: EntryRow): Promise<JournalEntry> {
  const { rows } = await db.query<{ account_id: string; amount: unknown }>(
    sql`select account_id, amount from journal_lines where entry_id = ${row.id} order by line_no`,
  )
  return {
    id: row.id,
    idempotencyKey: row.idempotency_key,
    requestHash: row.request_hash,
    currency: row.currency,
    description: row.description,
    postedAt: toDate(row.posted_at),
    lines: rows.map((l) => ({ accountId: l.account_id, amount: toInteger(l.amount, 'amount') })),
  }
}

/**
 * Net change per account (0 included: the account still gets a posting number), summed exactly, in
 * id order (a fixed lock order: two postings never deadlock on Postgres). INVALID_ENTRY when an account's net change is not a safe integer.
 */
function netByAccount(lines: readonly JournalLine[]): [string, number][] {
  const amounts = new Map<string, number[]>()
  for (const line of lines) {
    const list = amounts.get(line.accountId)
    if (list) list.push(line.amount)
    else amounts.set(line.accountId, [line.amount])
  }
  const net: [string, number][] = []
  for (const [accountId, list] of amounts) {
    const delta = sumExact(list)
    if (delta > SAFE || delta < -SAFE) {
      throw new InvalidEntryError(
        `account ${accountId}: the net change ${delta} of its lines is outside ±${Number.MAX_SAFE_INTEGER} minor units`,
        { accountId, net: String(delta) },
      )
    }
    net.push([accountId, Number(delta)])
  }
  return net.sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
}

function rangeFilter(range: DateRange, prefix: '' | 'e.' = ''): SqlFragment {
  const column = sql.raw(`${prefix}posted_at`)
  const from = range.from === undefined ? sql.empty : sql`and ${column} >= ${range.from}`
  const to = range.to === undefined ? sql.empty : sql`and ${column} < ${range.to}`
  return sql`${from} ${to}`
}

/** Journal lines per `insert` statement (4 parameters each). */
const LINES_PER_INSERT = 1_000

function checkRange(range: DateRange): void {
  if (typeof range !== 'object' || range === null)
    throw new InvalidEntryError('range must be an object { from?, to? }', { option: 'range' })
  for (const key of ['from', 'to'] as const) if (range[key] !== undefined) checkDate(range[key], `range.${key}`)
  if (range.from && range.to && range.from > range.to) throw new InvalidEntryError('range.from must not be after range.to')
}

/**
 * A balance summed in SQL (exact on both backends) or recorded by a posting (`entryId`), as a number;
 * BALANCE_OUT_OF_RANGE instead of a RangeError. A recorded balance is out of range only on a line
 * numbered by migration 0003 from the order statements used before it (posted_at, entry id).
 */
function balanceValue(total: unknown, accountId: string, entryId: string | null = null): number {
  const n = typeof total === 'number' ? total : Number(total)
  if (Number.isSafeInteger(n)) return n
  if (typeof total === 'bigint' || (typeof total === 'string' && /^-?\d+$/.test(total)))
    throw new BalanceReadOutOfRangeError(accountId, String(total), entryId)
  return toInteger(total, 'balance')
}
