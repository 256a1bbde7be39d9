import { lineCommentEnd } from '@dbpool/core/internal'
/**
 * The text with comments and string literals replaced by spaces (a literal by `''`); `undefined` when it holds what is
 * not skipped safely here (dollar quoting, `E'...'` escapes, an unterminated literal or comment).
 * Quoted identifiers are kept (a quoted name before `(` is then not a known call).
 */
export function skipCommentsAndLiterals(text: string): string | undefined {
  let out = ''
  // the last two characters of out, kept apart: testing out itself (a string built by +=) flattened
  // and scanned all of it at every quote and $ (quadratic in a text of many literals)
  let last = ''
  let beforeLast = ''
  const emit = (piece: string): void => {
    out += piece
    beforeLast = piece.length >= 2 ? piece[piece.length - 2]! : last
    last = piece[piece.length - 1]!
  }
  let i = 0
  const n = text.length
  while (i < n) {
    const c = text[i] as string
    const next = text[i + 1]
    if (c === '-' && next === '-') {
      const end = lineCommentEnd(text, i, 'postgres')
      i = end
      emit(' ')
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
      emit(' ')
    } else if (c === "'") {
      if ((last === 'e' || last === 'E') && !NAME_CHAR.test(beforeLast)) return undefined
      i++
      for (;;) {
        if (i >= n) return undefined
        if (text[i] === "'") {
          if (text[i + 1] === "'") i += 2
          else break
        } else i++
      }
      i++
      emit(" '' ")
    } else if (c === '"') {
      const end = text.indexOf('"', i + 1)
      if (end < 0) return undefined
      emit(text.slice(i, end + 1))
      i = end + 1
    } else if (c === '$' && next !== undefined && !/[0-9]/.test(next) && !NAME_CHAR.test(last)) {
      // $tag$ ... $tag$ (a $1 parameter, or a $ inside a name, is not one)
      return undefined
    } else {
      emit(c)
      i++
    }
  }
  return out
}

/**
 * A character that continues a name (Postgres's `ident_cont`: every non-ASCII character is a letter):
 * `xe'...'` and `åe'...'` are a name then a literal, not an `E'...'` string; `å$a$` is a name.
 */
const NAME_CHAR = /[a-zA-Z0-9_$\u0080-\uffff]/
