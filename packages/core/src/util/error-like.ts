/**
 * @internal An Error of this realm or of another one: `instanceof Error` is false for an error made in
 * another realm (a `vm` context, a jest test file whose native module, such as better-sqlite3's, was
 * first loaded by another file: its SqliteError's prototype chain ends at that realm's Error). An
 * object with a string `name` and `message` is read as one, so such an error is not shown as
 * `String(err)`, past the hiding of literals and parameters meant for error messages.
 */
export function isErrorLike(value: unknown): value is Error {
  if (value instanceof Error) return true
  if (typeof value !== 'object' || value === null) return false
  const { name, message } = value as { name?: unknown; message?: unknown }
  return typeof name === 'string' && typeof message === 'string'
}
