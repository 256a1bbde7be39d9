/** @internal What telemetry reads from a statement's text: its operation and the table it names first. */
export interface StatementHead {
  /** `db.operation.name`: the first keyword, as written (`select`, `INSERT`, `BEGIN`...). */
  readonly operation: string | undefined
  /** `db.collection.name`: the first table of a SELECT/DELETE (after FROM), INSERT (INTO), UPDATE or COPY, as written. */
  readonly collection: string | undefined
}

// leading blanks and comments, then the first word
const HEAD = /^(?:\s+|--[^\n]*(?:\n|$)|\/\*[\s\S]*?\*\/)*([A-Za-z]+)/
// an identifier, plain or double-quoted, optionally qualified (schema.table)
const IDENT = String.raw`(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*)(?:\s*\.\s*(?:"(?:[^"]|"")+"|[A-Za-z_][\w$]*))*`
const FROM = new RegExp(String.raw`\bfrom\s+(${IDENT})`, 'i')
const INTO = new RegExp(String.raw`^\s*(?:or\s+\w+\s+)?into\s+(${IDENT})`, 'i')
const COPY = new RegExp(String.raw`^\s*(${IDENT})`, 'i')
const UPDATE = new RegExp(String.raw`^\s*(?:or\s+\w+\s+)?(?:only\s+)?(${IDENT})`, 'i')
// FROM followed by one of these is not a table (`delete from ... using`, `select ... from (subquery)` never matches IDENT)
const NOT_TABLES: ReadonlySet<string> = new Set(['select', 'lateral', 'unnest', 'generate_series', 'json_each', 'jsonb_each'])

/**
 * @internal Reads the operation and first table from the head of a statement: a regular expression or
 * two, no SQL parser. A text it does not understand simply has no collection (a `WITH` query names its
 * CTE's tables after the operation `WITH`, so none is given for it).
 */
export function readStatementHead(text: string): StatementHead {
  const head = HEAD.exec(text)
  if (!head) return { operation: undefined, collection: undefined }
  const operation = head[1]!
  const rest = text.slice(head[0].length)
  let match: RegExpExecArray | null = null
  switch (operation.toLowerCase()) {
    case 'select':
    case 'delete':
      match = FROM.exec(rest)
      break
    case 'insert':
    case 'replace':
      match = INTO.exec(rest)
      break
    case 'update':
      match = UPDATE.exec(rest)
      break
    case 'copy':
      // `copy table [(columns)] from/to ...`; `copy (query) to ...` names no table
      match = COPY.exec(rest)
      break
  }
  const collection = match?.[1]
  return { operation, collection: collection && !NOT_TABLES.has(collection.toLowerCase()) ? collection : undefined }
}
