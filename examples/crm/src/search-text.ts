import { sql } from '@dbpool/core'
import type { Db } from './db'

/**
 * The folded form customer search compares: Unicode NFKC (compatibility forms become their plain
 * letters: `ﬁ` → `fi`, full-width `Ａ` → `A`), then `toLowerCase()` (Unicode's default, locale-independent
 * lower-casing: `É` → `é`, `Ö` → `ö`). Computed in JS, never by the database, so it is the same on
 * SQLite and PostgreSQL whatever their locale. It is not full case folding: `ß` stays `ß` (so
 * `STRASSE` does not find `Straße`), and accents are kept (`emile` does not find `Émile`).
 */
export function foldForSearch(text: string): string {
  return text.normalize('NFKC').toLowerCase()
}

/**
 * Fills `name_search` and `email_search` of customers written before migration 0004 (or by anything
 * other than `CustomerRepository`), 500 rows per statement batch, in one transaction. Idempotent;
 * `migrateCrm()` and `resetCrm()` run it after the migrations. Returns the number of rows filled.
 */
export async function backfillCustomerSearch(db: Db): Promise<number> {
  return db.transaction(async (tx) => {
    let filled = 0
    for (;;) {
      const { rows } = await tx.query<{ id: string; name: string; email: string }>(
        sql`select id, name, email from customers where name_search is null or email_search is null order by id limit 500`,
      )
      for (const row of rows) {
        await tx.query(
          sql`update customers set name_search = ${foldForSearch(row.name)}, email_search = ${foldForSearch(row.email)} where id = ${row.id}`,
        )
      }
      filled += rows.length
      if (rows.length < 500) return filled
    }
  })
}
