/**
 * @internal What a wrong value is, without its content, for a CONFIGURATION error: a pool, URL or
 * config given where an instance belongs may hold a password (`connectionString`, a URL's userinfo),
 * which the error must never show (review r5 item 4).
 */
export function valueKind(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'string') return value.includes('://') ? 'a URL string' : 'a string'
  if (typeof value !== 'object') return typeof value === 'undefined' ? 'undefined' : `a ${typeof value}`
  const name = (value as { constructor?: { name?: unknown } }).constructor?.name
  return typeof name === 'string' && name !== '' && name !== 'Object' ? `a ${name} instance` : 'a plain object'
}
