import { InvalidEntryError } from './errors'

/**
 * INVALID_ENTRY naming `what` unless `value` is a non-null object (an argument such as `input`, a
 * journal line or an options bag): reading a field of `null` or of a number would be a TypeError.
 * `undefined` is allowed when `optional` (an options argument left out).
 */
export function checkObject(value: unknown, what: string, optional = false): void {
  if (optional && value === undefined) return
  if (typeof value !== 'object' || value === null)
    throw new InvalidEntryError(`${what} ${value === null ? 'null' : typeof value}: must be an object`, { option: what })
}
