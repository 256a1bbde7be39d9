import { REDACTED, redactSecrets } from '@dbpool/core'

/** What `execFile` rejects with (Node's `ExecFileException` plus the captured output). */
interface ExecFailure extends Error {
  readonly code?: unknown
  readonly signal?: unknown
  readonly killed?: boolean
  readonly stderr?: string
  readonly stdout?: string
}

/**
 * @internal The error for a PostgreSQL tool (`initdb`, `pg_ctl`, `pg_basebackup`) that failed, with
 * every secret hidden: the `secrets` given, URL passwords and any `password=...` of a conninfo. Its
 * text is the tool's stderr, else its stdout, else Node's own message (`Command failed: <the whole
 * command line>`, all a tool killed at its timeout leaves), each redacted; `cause` is a redacted
 * copy of the `execFile` error (`code`, `signal`, `killed`, output), never the original, whose
 * message and `cmd` hold the command line.
 */
export function toolError(tool: string, args: readonly string[], err: unknown, secrets: readonly string[]): Error {
  const clean = (text: string): string => redactSecrets(text, secrets).replace(/password=\S+/gi, `password=${REDACTED}`)
  // duck-typed: an error from another realm (a jest sandbox) is no `instanceof Error` here
  const e = (
    typeof err === 'object' && err !== null && typeof (err as Error).message === 'string' ? err : new Error(String(err))
  ) as ExecFailure
  const stderr = clean(e.stderr ?? '')
  const stdout = clean(e.stdout ?? '')
  const cause = Object.assign(new Error(clean(e.message)), { code: e.code, signal: e.signal, killed: e.killed, stderr, stdout })
  const killed = e.killed ? ` (killed by ${String(e.signal)})` : ''
  return new Error(`${tool} ${args.map(clean).join(' ')} failed${killed}: ${stderr || stdout || cause.message}`, { cause })
}
