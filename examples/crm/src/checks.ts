import { InvalidInputError } from './errors'

/**
 * INVALID_INPUT naming `what` unless `value` is a non-null object (an argument such as `input`, `changes`
 * or an options bag): reading a field of `null` or of a number would be a TypeError.
 * `undefined` is allowed when `optional` (an options argument left out).
 */
export function checkObject(value: unknown, what: string, optional = false): void {
  if (optional && value === undefined) return
  if (typeof value !== 'object' || value === null)
    throw new InvalidInputError(`${what} ${value === null ? 'null' : typeof value}: must be an object`, { option: what })
}
