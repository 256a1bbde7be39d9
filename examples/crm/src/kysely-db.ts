import type { DatabasePool } from '@dbpool/core'
import { DbpoolDialect } from '@dbpool/kysely'
import { Kysely, type ColumnType } from 'kysely'
import type { Stage } from './pipeline'

/**
 * An integer column as the backends return it: a number on SQLite, `bigint` or text on Postgres
 * for `bigint` columns and aggregates (read it with `toInteger`); written as a number.
 */
type IntegerColumn = ColumnType<number | bigint | string, number, number>
/** A timestamp: a `Date` on Postgres, the ISO text written on SQLite (read it with `toDate`). */
type TimestampColumn = ColumnType<Date | string, Date, Date>

/** The tables the Kysely repository reads and writes (migrations/0001 and 0003). */
export interface CrmDatabase {
  customers: {
    id: string
    updated_at: TimestampColumn
    deleted_at: ColumnType<Date | string | null, Date | null, Date | null>
  }
  deals: {
    id: string
    customer_id: string
    title: string
    amount: IntegerColumn
    currency: string
    stage: Stage
    version: IntegerColumn
    created_at: TimestampColumn
    updated_at: TimestampColumn
    closed_at: ColumnType<Date | string | null, Date | null, Date | null>
  }
  deal_stage_history: {
    deal_id: string
    seq: IntegerColumn
    from_stage: Stage | null
    to_stage: Stage
    note: string | null
    changed_at: TimestampColumn
  }
}

/** What the Kysely repository runs on: a `Kysely` on the pool, or a Kysely `Transaction` of it. */
export type CrmKysely = Kysely<CrmDatabase>

/**
 * A Kysely on the same pool the `sql`-tag repositories use (`DbpoolDialect`): one pool, one set of
 * connections, limits and metrics for both styles. Closing stays with the pool's owner.
 */
export function crmKysely(pool: DatabasePool): CrmKysely {
  return new Kysely<CrmDatabase>({ dialect: new DbpoolDialect({ pool }) })
}
