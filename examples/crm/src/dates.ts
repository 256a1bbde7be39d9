import { InvalidInputError } from './errors'
import { shownValue } from '@dbpool/example-kit'

/** The earliest instant a date input may be: 0000-01-01T00:00:00.000Z. */
export const MIN_DATE = new Date('0000-01-01T00:00:00.000Z')
/** The latest instant a date input may be: 9999-12-31T23:59:59.999Z. */
export const MAX_DATE = new Date('9999-12-31T23:59:59.999Z')

/**
 * INVALID_INPUT naming `what` unless `value` is a valid Date within years 0000 to 9999 (UTC,
 * {@link MIN_DATE} to {@link MAX_DATE}). SQLite stores a timestamp as its ISO text and compares it as
 * text: beyond that range `toISOString()` writes a signed 6-digit year (`+010000-01-01...`,
 * `-000001-...`) that sorts before `2024-...`, so ordering by a timestamp (deals and contacts by
 * `created_at`) would differ from Postgres. Refused on both backends, so they agree.
 */
export function checkDate(value: unknown, what: string): Date {
  // the tag, not instanceof: a Date from another realm (vm, worker) is a Date too
  if (Object.prototype.toString.call(value) !== '[object Date]' || Number.isNaN((value as Date).getTime()))
    throw new InvalidInputError(`${what} ${shownValue(value)}: must be a valid Date`, { option: what })
  const time = (value as Date).getTime()
  if (time < MIN_DATE.getTime() || time > MAX_DATE.getTime())
    throw new InvalidInputError(`${what} ${(value as Date).toISOString()}: must be within years 0000 to 9999 (UTC)`, {
      option: what,
      value: (value as Date).toISOString(),
    })
  return value as Date
}

/**
 * `clock`, each reading checked by {@link checkDate} (INVALID_INPUT naming `clock` for a value that is
 * not a Date within years 0000 to 9999); the default is `() => new Date()`.
 */
export function checkedClock(clock: (() => Date) | undefined): () => Date {
  if (clock === undefined) return () => new Date()
  if (typeof clock !== 'function') throw new InvalidInputError('clock must be a function returning a Date', { option: 'clock' })
  return () => checkDate(clock(), 'clock')
}
