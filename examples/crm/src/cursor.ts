import { InvalidCursorError } from './errors'

/** Encodes the sort key of the last row of a page as an opaque cursor. */
export function encodeCursor(key: readonly string[]): string {
  return Buffer.from(JSON.stringify(key), 'utf8').toString('base64url')
}

/** Decodes a cursor made by {@link encodeCursor} with `length` parts; INVALID_CURSOR otherwise. */
export function decodeCursor(cursor: string, length: number): string[] {
  let parsed: unknown
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'))
  } catch {
    throw new InvalidCursorError(cursor)
  }
  if (!Array.isArray(parsed) || parsed.length !== length || !parsed.every((p) => typeof p === 'string'))
    throw new InvalidCursorError(cursor)
  return parsed as string[]
}
