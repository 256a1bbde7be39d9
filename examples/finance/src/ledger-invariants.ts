import { sql, type SqlFragment } from '@dbpool/core'
import { atomically, type Db } from './db'
import { toInteger } from './values'

/** The result of one invariant. */
export interface InvariantCheck {
  readonly name: string
  readonly ok: boolean
  /** What was measured, e.g. `sum of all lines = 0`. */
  readonly detail: string
}

/** Every invariant, and whether all hold. */
export interface InvariantReport {
  readonly ok: boolean
  readonly checks: readonly InvariantCheck[]
}

/**
 * Checks the ledger's invariants in one read-only snapshot (on a pool: a read-only repeatable-read
 * transaction; on a transaction: a savepoint of it, one snapshot when the caller's isolation is
 * repeatable read or serializable, or on SQLite):
 * - the journal balances: the sum of all lines is zero, and so is each entry's;
 * - every account's stored balance equals the sum of its lines;
 * - no account is below its limit;
 * - postings are numbered in order: each account's postings are 1, 2, 3, ... with no gap, one entry
 *   each, the last one the account's `posting_seq`; each entry has one `journal_seq`, increasing along
 *   every account's postings, the last one the account's `journal_seq`;
 * - recorded balances chain: each posting's `balance_after` is the previous posting's (0 before the
 *   first) plus the posting's net amount, the same on every line of it.
 */
export function checkLedgerInvariants(db: Db): Promise<InvariantReport> {
  return atomically(
    db,
    async (tx) => {
      const scalar = async (query: SqlFragment): Promise<number> => {
        const { rows } = await tx.query<{ n: unknown }>(query)
        return toInteger(rows[0]?.n)
      }
      const total = await scalar(sql`select coalesce(sum(amount), 0) as n from journal_lines`)
      const unbalanced = await scalar(
        sql`select count(*) as n from (select entry_id from journal_lines group by entry_id having sum(amount) <> 0) unbalanced`,
      )
      const mismatched = await scalar(sql`
        select count(*) as n from accounts a
        left join (select account_id, sum(amount) as total from journal_lines group by account_id) j on j.account_id = a.id
        where a.balance <> coalesce(j.total, 0)`)
      const below = await scalar(sql`select count(*) as n from accounts where min_balance is not null and balance < min_balance`)
      // one row per posting (an account's lines in one entry), with its place among the account's postings
      const postings = sql`
        select p.*,
               row_number() over (partition by account_id order by account_seq) as position,
               coalesce(lag(balance_after) over (partition by account_id order by account_seq), 0) as previous_balance,
               lag(journal_seq) over (partition by account_id order by account_seq) as previous_journal_seq
        from (select account_id, account_seq, count(distinct entry_id) as entries, sum(amount) as net,
                     min(balance_after) as balance_after, max(balance_after) as balance_high,
                     min(journal_seq) as journal_seq, max(journal_seq) as journal_high
              from journal_lines group by account_id, account_seq) p`
      const misnumbered =
        (await scalar(sql`
          select count(*) as n from (${postings}) c
          where account_seq <> position or entries <> 1 or journal_seq <> journal_high or journal_seq <= previous_journal_seq`)) +
        (await scalar(sql`
          select count(*) as n from (select entry_id from journal_lines group by entry_id having min(journal_seq) <> max(journal_seq)) e`)) +
        (await scalar(sql`
          select count(*) as n from accounts a
          left join (select account_id, max(account_seq) as account_seq, max(journal_seq) as journal_seq from journal_lines group by account_id) j
            on j.account_id = a.id
          where a.posting_seq <> coalesce(j.account_seq, 0) or a.journal_seq <> coalesce(j.journal_seq, 0)`))
      const unchained = await scalar(sql`
        select count(*) as n from (${postings}) c where balance_after <> balance_high or balance_after <> previous_balance + net`)
      const checks: InvariantCheck[] = [
        { name: 'journal balances', ok: total === 0, detail: `sum of all lines = ${total}` },
        { name: 'every entry balances', ok: unbalanced === 0, detail: `${unbalanced} entries whose lines do not sum to 0` },
        {
          name: 'balances match the journal',
          ok: mismatched === 0,
          detail: `${mismatched} accounts whose balance differs from the sum of their lines`,
        },
        { name: 'no account below its limit', ok: below === 0, detail: `${below} accounts below min_balance` },
        {
          name: 'postings numbered in order',
          ok: misnumbered === 0,
          detail: `${misnumbered} postings, entries or accounts whose posting or journal sequence is out of order`,
        },
        {
          name: 'recorded balances chain',
          ok: unchained === 0,
          detail: `${unchained} postings whose balance_after is not the previous one plus their amount`,
        },
      ]
      return { ok: checks.every((c) => c.ok), checks }
    },
    { isolation: 'repeatable read', readOnly: true },
  )
}
