/**
 * Statements that put session settings back to their defaults, undoing what the pool set up on the
 * connection with plain SETs: the `sessionInit` statements that could not be given as startup
 * parameters (see startupParameterOf: `SET ROLE`, a `set_config()` call, several statements...), a
 * startup parameter the server did not take as its default, and behind PgBouncer the timeouts sent
 * with SET after connecting (see `sessionSettingsThroughPgBouncer`) and every `sessionInit` statement
 * (PgBouncer refuses other startup parameters). A reset drops a SET (`SET search_path TO ledger` is
 * gone, the next borrower's `insert into items` writes to `public.items`); a startup parameter is the
 * session's default, which every reset returns to, so no text needs reading for it.
 *
 * Matched anywhere in the text once comments are removed (also inside a `DO` block or a string
 * literal), case-insensitively:
 * - `RESET <name>`, `RESET ALL`, `RESET ROLE`, `RESET SESSION AUTHORIZATION`;
 * - `DISCARD ALL` (which runs `RESET ALL` and `SET SESSION AUTHORIZATION DEFAULT`);
 * - `SET [SESSION] <name> TO DEFAULT` / `= DEFAULT`, `SET [SESSION] TIME ZONE DEFAULT | LOCAL`,
 *   `SET [SESSION] NAMES DEFAULT`, `SET [SESSION] ROLE NONE`;
 * - `SET [SESSION] SESSION AUTHORIZATION` to anything (it drops a `SET ROLE`);
 * - any `set_config(` call (`set_config('search_path', NULL, false)` resets; a value it sets from a
 *   parameter or an expression cannot be read).
 *
 * What it cannot see: a function's body (`select reset_all_settings()` whose PL/pgSQL runs `RESET` or
 * `EXECUTE 'RE' || 'SET ...'`), a procedure, a trigger, a statement run through `conn.native` (the
 * whole setup is run again on release after that, see `nativeLent`). Only sessionInit statements
 * given as startup parameters are safe from those.
 *
 * A `SET` to a value (`SET search_path TO public`, `SET ROLE x`) is the application's own choice and
 * stays for the next borrower with `sessionReset: 'none'`, as any SET does. The match is
 * conservative: a word `reset` in a literal or a column name (`update t set reset = true`) matches
 * too, which costs only a run of the setup statements on release.
 */
const RESETS_SESSION =
  /\breset\b|\bdiscard\s+all\b|\bset_config\s*\(|\bset\s+(?:session\s+)?(?:role\s+none\b|session\s+authorization\b|time\s+zone\s+(?:default|local)\b|names\s+default\b|[\w."]+\s*(?:=|\bto\b)\s*default\b)/i

/** Comments (`/* ... *\/`, not nested, and `-- ...`), replaced by a space before matching. */
const COMMENT = /\/\*[\s\S]*?\*\/|--[^\n]*/g

/**
 * Whether `text` may put session settings back to their defaults (see {@link RESETS_SESSION}): the
 * connection's setup statements are then run again when it is released, before anyone else uses it.
 */
export function resetsSession(text: string): boolean {
  if (RESETS_SESSION.test(text)) return true
  return text.includes('/*') || text.includes('--') ? RESETS_SESSION.test(text.replace(COMMENT, ' ')) : false
}
