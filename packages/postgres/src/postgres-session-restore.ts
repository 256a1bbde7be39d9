/**
 * Statements that put session settings back to their defaults, undoing what the pool set up on the
 * connection: `sessionInit`, and behind PgBouncer the timeouts sent with SET after connecting (see
 * `sessionSettingsThroughPgBouncer`). Unlike a startup parameter (a session default, which `RESET`
 * returns to), those are plain SETs, so a reset drops them: `SET search_path TO ledger` is gone, and
 * the next borrower's `insert into items` writes to `public.items`.
 *
 * Matched anywhere in the text (also inside a `DO` block or a string literal), case-insensitively:
 * - `RESET <name>`, `RESET ALL`, `RESET ROLE`, `RESET SESSION AUTHORIZATION`;
 * - `DISCARD ALL` (which runs `RESET ALL` and `SET SESSION AUTHORIZATION DEFAULT`);
 * - `SET [SESSION] <name> TO DEFAULT` / `= DEFAULT`, `SET [SESSION] ROLE NONE`,
 *   `SET [SESSION] SESSION AUTHORIZATION DEFAULT`.
 *
 * A `SET` to a value (`SET search_path TO public`, `SET ROLE x`) is the application's own choice and
 * stays for the next borrower with `sessionReset: 'none'`, as any SET does. The match is
 * conservative: a word `reset` in a literal or a column name (`update t set reset = true`) matches
 * too, which costs only a run of the setup statements on release.
 */
const RESETS_SESSION =
  /\breset\b|\bdiscard\s+all\b|\bset\s+(?:session\s+)?(?:role\s+none\b|session\s+authorization\s+default\b|[\w."]+\s*(?:=|\bto\b)\s*default\b)/i

/**
 * Whether `text` may put session settings back to their defaults (see {@link RESETS_SESSION}): the
 * connection's setup statements are then run again when it is released, before anyone else uses it.
 */
export function resetsSession(text: string): boolean {
  return RESETS_SESSION.test(text)
}
