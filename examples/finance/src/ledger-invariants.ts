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
 * - no account is below its limit.
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
      const checks: InvariantCheck[] = [
        { name: 'journal balances', ok: total === 0, detail: `sum of all lines = ${total}` },
        { name: 'every entry balances', ok: unbalanced === 0, detail: `${unbalanced} entries whose lines do not sum to 0` },
        {
          name: 'balances match the journal',
          ok: mismatched === 0,
          detail: `${mismatched} accounts whose balance differs from the sum of their lines`,
        },
        { name: 'no account below its limit', ok: below === 0, detail: `${below} accounts below min_balance` },
      ]
      return { ok: checks.every((c) => c.ok), checks }
    },
    { isolation: 'repeatable read', readOnly: true },
  )
}
