import { toDate } from '@dbpool/example-kit'

/**
 * The strict readers of values read back from either backend (`toInteger`, `toBigInteger`, `toDate`,
 * ValueReadError): shared with the other example, see `@dbpool/example-kit` (`db-values.ts`).
 */
export { toBigInteger, toDate, toInteger, ValueReadError } from '@dbpool/example-kit'

/** {@link toDate}, keeping `null`. */
export function toNullableDate(value: unknown): Date | null {
  return value === null || value === undefined ? null : toDate(value)
}
