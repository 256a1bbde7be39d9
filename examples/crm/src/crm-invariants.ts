import { sql, type SqlFragment } from '@dbpool/core'
import { atomically, type Db } from './db'
import { canMove, isStage, type Stage } from './pipeline'
import { toInteger } from './values'

/** The result of one invariant. */
export interface InvariantCheck {
  readonly name: string
  readonly ok: boolean
  readonly detail: string
}

/** Every invariant, and whether all hold. */
export interface InvariantReport {
  readonly ok: boolean
  readonly checks: readonly InvariantCheck[]
}

/**
 * Checks the CRM's invariants in one read-only snapshot (on a pool: a read-only repeatable-read
 * transaction; on a transaction: a savepoint of it, one snapshot when the caller's isolation is
 * repeatable read or serializable, or on SQLite):
 * - no two active customers share an email;
 * - every deal's history is a chain: rows 1..version, the first creating a lead, each move starting
 *   where the previous ended and allowed by the pipeline, the last ending at the deal's stage;
 * - closed deals (won, lost) have a close date and open ones do not.
 */
export function checkCrmInvariants(db: Db): Promise<InvariantReport> {
  return atomically(
    db,
    async (tx) => {
      const scalar = async (query: SqlFragment): Promise<number> => toInteger((await tx.query<{ n: unknown }>(query)).rows[0]?.n)
      const duplicateEmails = await scalar(
        sql`select count(*) as n from (select email from customers where deleted_at is null group by email having count(*) > 1) dup`,
      )
      const versionMismatch = await scalar(sql`
        select count(*) as n from deals d
        left join (select deal_id, count(*) as moves, max(seq) as last from deal_stage_history group by deal_id) h on h.deal_id = d.id
        where coalesce(h.moves, 0) <> d.version or coalesce(h.last, 0) <> d.version`)
      const lastStageMismatch = await scalar(sql`
        select count(*) as n from deals d join deal_stage_history h on h.deal_id = d.id and h.seq = d.version
        where h.to_stage <> d.stage`)
      const brokenChain = await scalar(sql`
        select count(*) as n from deal_stage_history h
        left join deal_stage_history p on p.deal_id = h.deal_id and p.seq = h.seq - 1
        where (h.seq = 1 and (h.from_stage is not null or h.to_stage <> 'lead'))
           or (h.seq > 1 and (p.deal_id is null or h.from_stage is null or h.from_stage <> p.to_stage))`)
      const closedMismatch = await scalar(sql`
        select count(*) as n from deals
        where (stage in ('won', 'lost')) <> (closed_at is not null)`)
      const { rows } = await tx.query<{ from_stage: string; to_stage: string }>(
        sql`select distinct from_stage, to_stage from deal_stage_history where from_stage is not null`,
      )
      const forbidden = rows.filter(
        (r) => !isStage(r.from_stage) || !isStage(r.to_stage) || !canMove(r.from_stage as Stage, r.to_stage as Stage),
      )
      const checks: InvariantCheck[] = [
        {
          name: 'active emails are unique',
          ok: duplicateEmails === 0,
          detail: `${duplicateEmails} emails held by more than one active customer`,
        },
        {
          name: 'history rows match deal versions',
          ok: versionMismatch === 0,
          detail: `${versionMismatch} deals whose history is not rows 1..version`,
        },
        {
          name: 'history ends at the current stage',
          ok: lastStageMismatch === 0,
          detail: `${lastStageMismatch} deals whose last move does not end at their stage`,
        },
        {
          name: 'history is a chain from lead',
          ok: brokenChain === 0,
          detail: `${brokenChain} moves not starting where the previous ended`,
        },
        {
          name: 'every move is allowed',
          ok: forbidden.length === 0,
          detail: `${forbidden.length} kinds of forbidden move${forbidden.length ? `: ${forbidden.map((r) => `${r.from_stage}->${r.to_stage}`).join(', ')}` : ''}`,
        },
        {
          name: 'closed deals have a close date',
          ok: closedMismatch === 0,
          detail: `${closedMismatch} deals whose closed_at disagrees with their stage`,
        },
      ]
      return { ok: checks.every((c) => c.ok), checks }
    },
    { isolation: 'repeatable read', readOnly: true },
  )
}
