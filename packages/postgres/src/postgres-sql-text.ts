import { lineCommentEnd } from '@dbpool/core/internal'
/**
 * The text with comments and string literals replaced by spaces (a literal by `''`); `undefined` when it holds what is
 * not skipped safely here (dollar quoting, `E'...'` escapes, an unterminated literal or comment).
 * Quoted identifiers are kept (a quoted name before `(` is then not a known call).
 */
export function skipCommentsAndLiterals(text: string): string | undefined {
  let out = ''
  let i = 0
  const n = text.length
  while (i < n) {
    const c = text[i] as string
    const next = text[i + 1]
    if (c === '-' && next === '-') {
      const end = lineCommentEnd(text, i, 'postgres')
      i = end
      out += ' '
    } else if (c === '/' && next === '*') {
      let depth = 1
      i += 2
      while (i < n && depth > 0) {
        const pair = text.slice(i, i + 2)
        if (pair === '/*') depth++
        else if (pair === '*/') depth--
        i += pair === '/*' || pair === '*/' ? 2 : 1
      }
      if (depth > 0) return undefined
      out += ' '
    } else if (c === "'") {
      if (/[eE]$/.test(out) && !/[a-zA-Z0-9_$][eE]$/.test(out)) return undefined
      i++
      for (;;) {
        if (i >= n) return undefined
        if (text[i] === "'") {
          if (text[i + 1] === "'") i += 2
          else break
        } else i++
      }
      i++
      out += " '' "
    } else if (c === '"') {
      const end = text.indexOf('"', i + 1)
      if (end < 0) return undefined
      out += text.slice(i, end + 1)
      i = end + 1
    } else if (c === '$' && next !== undefined && !/[0-9]/.test(next) && !/[a-zA-Z0-9_]$/.test(out)) {
      // $tag$ ... $tag$ (a $1 parameter, or a $ inside a name, is not one)
      return undefined
    } else {
      out += c
      i++
    }
  }
  return out
}
