/**
 * A bad input value as an error message shows it: a string as JSON (`"5"`, so the string `'5'` is
 * not mistaken for the number 5, and an empty or blank string is seen), a number as written (`1.5`,
 * `NaN`, `Infinity`), a bigint with its `n` (`5n`), `undefined`, `null`, a Date as its ISO text, any
 * other object as JSON when it can be written so (a class instance by its name otherwise). Never
 * throws; at most 80 characters of the JSON of a longer value, then `...`.
 */
export function shownValue(value: unknown): string {
  switch (typeof value) {
    case 'string':
      return clip(JSON.stringify(value))
    case 'bigint':
      return `${value}n`
    case 'number':
    case 'boolean':
    case 'undefined':
      return String(value)
    case 'symbol':
      return value.toString()
    case 'function':
      return `a function ${value.name === '' ? '' : value.name}`.trimEnd()
    default:
      break
  }
  if (value === null) return 'null'
  // the tag, not instanceof: a Date of another realm (vm, worker) too
  if (Object.prototype.toString.call(value) === '[object Date]') {
    const time = Date.prototype.getTime.call(value)
    return Number.isNaN(time) ? 'Invalid Date' : new Date(time).toISOString()
  }
  try {
    const json = JSON.stringify(value, (_key, v: unknown) => (typeof v === 'bigint' ? `${v}n` : v))
    if (json !== undefined) return clip(json)
  } catch {
    // a cycle, a getter that throws
  }
  return `a ${(value as object).constructor?.name ?? 'object'}`
}

function clip(text: string): string {
  return text.length > 80 ? `${text.slice(0, 80)}...` : text
}
