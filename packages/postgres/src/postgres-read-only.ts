import { skipCommentsAndLiterals } from './postgres-sql-text'

/**
 * Whether a Postgres statement text is known not to write, for `readRouting: 'auto'` (which sends such
 * lone statements to a replica) and `readYourWrites` (which records the primary's write position after
 * the others). Conservative: `false` whenever it cannot be sure from the text alone.
 *
 * Known read-only: one statement (a trailing `;` allowed) starting with `SELECT`, `WITH`, `VALUES` or
 * `TABLE`, with no data-modifying word anywhere (`INSERT`, `UPDATE`, `DELETE`, `MERGE`, `INTO` as in
 * `SELECT ... INTO`, a locking clause `FOR UPDATE` / `FOR SHARE` ...), and whose function calls are all
 * built-ins without side effects from a fixed list (aggregates, string, date, math and JSON
 * functions). Any other call (`nextval()`, `pg_advisory_lock()`, `set_config()`, a user-defined
 * function, which may write, a quoted or schema-qualified name), a dollar-quoted string or an
 * `E'...'` string makes it not known read-only. Comments and string literals are skipped. Names follow
 * Postgres's rule (letters, every non-ASCII character among them, digits, `_`, `$`): `åcount(` calls
 * `åcount`, not the built-in `count`, and a name holding a non-ASCII character is never a built-in.
 */
export function isReadOnlyStatement(text: string): boolean {
  const stripped = skipCommentsAndLiterals(text)
  if (stripped === undefined) return false
  const body = stripped.trim().replace(/;\s*$/, '')
  if (body.includes(';')) return false
  if (!LEADING.test(body)) return false
  if (WRITE_WORDS.test(body) || LOCKING.test(body)) return false
  for (const match of body.matchAll(CALL)) {
    // Postgres folds only ASCII letters of a name (JavaScript folds the Kelvin sign K to k): a name with
    // any other letter is not a built-in's
    const name = (match[1] as string).toLowerCase()
    if (match[0].includes('.') || NON_ASCII.test(match[1] as string) || !(SAFE_CALLS.has(name) || KEYWORDS.has(name))) return false
  }
  return true
}

/**
 * Postgres's identifier characters (scan.l: `ident_start` `[A-Za-z\200-\377_]`, `ident_cont` adds digits and
 * `$`): every non-ASCII character is a letter of a name (`åcount` is one name, not `å` then `count`).
 */
const NAME_START = 'a-z_\\u0080-\\uffff'
const NAME_CONT = 'a-z0-9_$\\u0080-\\uffff'
/** A name of Postgres's rule, not in the middle of a longer one. */
const NAME = `(?<![${NAME_CONT}])[${NAME_START}][${NAME_CONT}]*`
const LEADING = new RegExp(`^(select|with|values|table)(?![${NAME_CONT}])`, 'i')
/**
 * A data-modifying word, as a word of its own: not inside a longer name (`insert_at`, `åinsert`); a
 * digit before it still counts (`1insert` is a number then a word on servers before 15).
 */
const WRITE_WORDS = new RegExp(
  `(?<![a-z_$\\u0080-\\uffff])(insert|update|delete|merge|into|copy|call|do|create|alter|drop|truncate|grant|revoke|refresh|notify|listen|lock|set|reset|execute|prepare|vacuum|analyze|cluster|reindex|comment|security|import)(?![${NAME_CONT}])`,
  'i',
)
const NON_ASCII = /[\u0080-\uffff]/
const LOCKING = /\bfor\s+(update|share|no\s+key\s+update|key\s+share)\b/i
/**
 * A name followed by `(`: a call, a keyword with a parenthesis (`IN (`, `EXISTS (`), or a type modifier.
 * A name is tried only where it starts (not after a name character, non-ASCII letters included: in
 * `åcount(` the name is `åcount`, not the built-in `count`): tried at every character of a long name,
 * each attempt read the rest of it (quadratic).
 */
const CALL = new RegExp(`(?:${NAME}\\s*\\.\\s*)?(${NAME}|"[^"]*")\\s*\\(`, 'gi')

/** Keywords that may stand before a parenthesis. */
const KEYWORDS = new Set(
  (
    'select from where and or not in exists any all some as on using join lateral over filter within group by ' +
    'having order partition window rows range groups between like ilike similar is distinct case when then else end ' +
    'array row values with recursive materialized union intersect except limit offset fetch only cast collate at ' +
    'time zone interval nulls first last asc desc ordinality tablesample repeatable'
  ).split(' '),
)

/** Built-in functions (and type names used as casts) that neither write nor change session state. */
const SAFE_CALLS = new Set(
  // aggregates and window functions
  (
    'count sum avg min max bool_and bool_or every array_agg string_agg json_agg jsonb_agg json_object_agg ' +
    'jsonb_object_agg stddev stddev_pop stddev_samp variance var_pop var_samp percentile_cont percentile_disc mode ' +
    'row_number rank dense_rank percent_rank cume_dist ntile lag lead first_value last_value nth_value ' +
    // conditionals
    'coalesce nullif greatest least ' +
    // strings
    'lower upper length char_length character_length octet_length substring substr trim btrim ltrim rtrim replace ' +
    'concat concat_ws left right lpad rpad position strpos split_part regexp_replace regexp_match regexp_matches ' +
    'regexp_split_to_array starts_with format initcap reverse repeat translate md5 encode decode quote_ident ' +
    'quote_literal to_hex ascii chr ' +
    // dates and times
    'now clock_timestamp statement_timestamp transaction_timestamp to_char to_date to_timestamp to_number ' +
    'date_trunc date_part extract age make_date make_time make_timestamp make_timestamptz make_interval date_bin ' +
    // numbers
    'abs round floor ceil ceiling trunc mod power pow sqrt cbrt sign exp ln log log10 div width_bucket random ' +
    // arrays, sets, JSON
    'generate_series unnest array_length array_lower array_upper cardinality array_position array_positions ' +
    'array_to_string string_to_array array_remove array_append array_prepend array_cat ' +
    'json_build_object jsonb_build_object json_build_array jsonb_build_array to_json to_jsonb row_to_json ' +
    'array_to_json json_extract_path jsonb_extract_path json_extract_path_text jsonb_extract_path_text ' +
    'json_array_elements jsonb_array_elements json_array_elements_text jsonb_array_elements_text json_each ' +
    'jsonb_each json_each_text jsonb_each_text json_object_keys jsonb_object_keys json_typeof jsonb_typeof ' +
    'jsonb_set jsonb_insert jsonb_strip_nulls jsonb_pretty json_array_length jsonb_array_length jsonb_path_query ' +
    'jsonb_path_exists jsonb_path_query_array jsonb_path_query_first gen_random_uuid ' +
    // type names as casts or modifiers
    'numeric decimal int int2 int4 int8 integer smallint bigint real float float4 float8 text varchar char ' +
    'character bpchar timestamp timestamptz date time timetz bool boolean uuid json jsonb bytea ' +
    // information
    'current_setting version current_database current_schema pg_is_in_recovery pg_last_wal_replay_lsn ' +
    'pg_last_wal_receive_lsn pg_last_xact_replay_timestamp pg_backend_pid pg_sleep'
  ).split(' '),
)
