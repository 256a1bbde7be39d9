import { isSqlJson } from '../sql/parameters'

/** How deep {@link parameterTexts} reads nested arrays and objects (Postgres arrays have at most 6 dimensions). */
const MAX_DEPTH = 8

/**
 * @internal Every text in which a database may repeat a bound parameter in an error message, for
 * hiding them there (span statuses, log lines): a string as is; a number or bigint as its decimal text
 * (and a double's exact integer beyond 2^53); a Date as its ISO-8601 UTC text (the form both
 * backends send); bytes as hex (`\x...` and bare); an array as the Postgres array literal the
 * backend sends (`{"a","b"}`) and JSON, and each element by these rules; a plain object or
 * `sql.json` value as JSON text and each string, number or nested value inside it. Booleans, null and
 * undefined give nothing (no value to hide). Values that cannot be serialised are skipped (the pool
 * refuses them before the database sees them).
 */
export function parameterTexts(params: readonly unknown[]): string[] {
  const out = new Set<string>()
  for (const value of params) collect(value, out, 0)
  out.delete('')
  return [...out]
}

function collect(value: unknown, out: Set<string>, depth: number): void {
  switch (typeof value) {
    case 'string':
      out.add(value)
      return
    case 'number':
      if (!Number.isFinite(value)) return
      out.add(String(value))
      if (Number.isInteger(value) && !Number.isSafeInteger(value)) out.add(BigInt(value).toString())
      return
    case 'bigint':
      out.add(value.toString())
      return
    case 'object':
      break
    default:
      return
  }
  if (value === null || depth > MAX_DEPTH) return
  if (value instanceof Date) {
    if (!Number.isNaN(value.getTime())) out.add(value.toISOString())
    return
  }
  if (value instanceof Uint8Array) {
    const hex = Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('hex')
    out.add(hex)
    out.add(`\\x${hex}`)
    return
  }
  const inner = isSqlJson(value) ? value.value : value
  const json = jsonText(inner)
  if (json !== undefined) out.add(json)
  if (Array.isArray(inner)) {
    const literal = arrayLiteral(inner, depth)
    if (literal !== undefined) out.add(literal)
    for (const element of inner as unknown[]) collect(element, out, depth + 1)
  } else if (typeof inner === 'object' && inner !== null) {
    for (const element of Object.values(inner)) collect(element, out, depth + 1)
  } else collect(inner, out, depth + 1)
}

function jsonText(value: unknown): string | undefined {
  try {
    return JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? v.toString() : v))
  } catch {
    return undefined
  }
}

/** The Postgres array literal of `values` (`{"a",NULL,{"b"}}`), each element quoted as pg's serialiser does. */
function arrayLiteral(values: readonly unknown[], depth: number): string | undefined {
  if (depth > MAX_DEPTH) return undefined
  const parts: string[] = []
  for (const v of values) {
    if (v === null || v === undefined) parts.push('NULL')
    else if (Array.isArray(v)) {
      const nested = arrayLiteral(v, depth + 1)
      if (nested === undefined) return undefined
      parts.push(nested)
    } else {
      let text: string | undefined
      if (typeof v === 'string') text = v
      else if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') text = String(v)
      else if (v instanceof Date) text = Number.isNaN(v.getTime()) ? undefined : v.toISOString()
      else if (v instanceof Uint8Array) text = `\\x${Buffer.from(v.buffer, v.byteOffset, v.byteLength).toString('hex')}`
      else text = jsonText(isSqlJson(v) ? v.value : v)
      if (text === undefined) return undefined
      parts.push(`"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`)
    }
  }
  return `{${parts.join(',')}}`
}
