/**
 * A number for people: rounded to at most 2 decimals, trailing zeros dropped (`2.669173999999998`
 * → `'2.67'`, `0.004` → `'0'`, `1234.5678` → `'1234.57'`, `5` → `'5'`, `2.5` → `'2.5'`), as
 * `Math.round(value * 100) / 100`; `-0` prints as `'0'`; `NaN` and `±Infinity` print as themselves;
 * beyond 1e15 (where doubles have no 2 decimals left) the value is rounded to an integer.
 * Human output uses it for every measured time, rate and percentile; `--json` output keeps the
 * values unrounded.
 */
export function formatNumber(value: number): string {
  if (!Number.isFinite(value)) return String(value)
  if (Math.abs(value) >= 1e15) return String(Math.round(value))
  // dividing the rounded integer by 100 gives the double nearest to the 2-decimal value, and
  // String() prints the shortest text that reads back as that double: never more than 2 decimals
  const rounded = Math.round(value * 100) / 100
  return rounded === 0 ? '0' : String(rounded)
}

/** A duration in milliseconds for people: `formatNumber(ms)` and the unit (`'2.67 ms'`). */
export function formatMs(ms: number): string {
  return `${formatNumber(ms)} ms`
}
