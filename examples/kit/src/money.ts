/**
 * Integer minor units as text with two decimals: `123456` and `'EUR'` → `1,234.56 EUR`. Split in
 * `bigint` arithmetic, so it is exact for any integer (a float `minor / 100` rounds beyond 2^53 and
 * `toLocaleString` would print its binary tail). Throws a RangeError for a non-integer number.
 */
export function formatMinorUnits(minor: number | bigint, currency: string): string {
  const value = BigInt(minor)
  const abs = value < 0n ? -value : value
  return `${value < 0n ? '-' : ''}${(abs / 100n).toLocaleString('en-US')}.${String(abs % 100n).padStart(2, '0')} ${currency}`
}
