#!/usr/bin/env node
import { run } from './cli'
import { GuardedStream } from './guarded-stream'
import { EXIT_CODES } from './output'
import { argvSecrets, argvShownNames, envSecrets, envShownNames, scrubSecrets } from './secrets'
import { isErrorLike } from '@dbpool/core/internal'

// A reader that goes away (`dbpool ... | head -1`) must not kill the command halfway: the guards
// drop what cannot be written and the command ends normally, with its own exit code.
const stdout = new GuardedStream(process.stdout)
const stderr = new GuardedStream(process.stderr)

run(process.argv.slice(2), { stdout, stderr, env: process.env, cwd: process.cwd() }).then(
  (code) => finish(code),
  (err: unknown) => {
    // run() never rejects; this is a last resort that still prints one line
    const secrets = [...argvSecrets(process.argv.slice(2)), ...envSecrets(process.env)]
    const shown = [...argvShownNames(process.argv.slice(2)), ...envShownNames(process.env)]
    stderr.write(`${scrubSecrets(`dbpool: error: ${isErrorLike(err) ? err.message : String(err)}`, secrets, shown)}\n`)
    finish(EXIT_CODES.error)
  },
)

/** How long the process may linger (ms) after its command ended and its output was flushed, before it exits anyway. */
const EXIT_GRACE_MS = 200

/**
 * Sets the exit code, then waits until stdout and stderr have handed everything written to the
 * operating system ({@link GuardedStream.flush}: Node writes to a pipe asynchronously, and
 * `process.exit()` would drop what a slow reader has not taken yet, cutting a `--json` document
 * short under exit 0). Output lost to a write error other than a closed reader (a full disk) is then
 * reported, and turns a success into exit 1. The command has ended (its pools closed): a handle left
 * behind, such as a connection attempt to a server that never answers (pg's connect timeout), must
 * not keep the process alive, so once the output is flushed it exits {@link EXIT_GRACE_MS} later
 * anyway (an unref'd timer: a process that empties sooner ends sooner).
 */
function finish(code: number): void {
  process.exitCode = code
  let checked = false
  const checkLostOutput = (): void => {
    if (checked) return
    checked = true
    const lost = Object.entries({ stdout, stderr }).find(([, stream]) => stream.failure !== undefined)
    if (lost === undefined) return
    const [name, stream] = lost
    stderr.write(
      `dbpool: error: could not write to ${name}: ${stream.failure?.message ?? ''} (check where ${name} goes: the file, free disk space)\n`,
    )
    if (code === EXIT_CODES.ok) process.exitCode = EXIT_CODES.error
  }
  process.once('beforeExit', checkLostOutput)
  const flushed = (): Promise<unknown> => Promise.all([stdout.flush(), stderr.flush()])
  void flushed()
    .then(() => {
      checkLostOutput()
      return flushed()
    })
    .then(() => {
      setTimeout(() => process.exit(), EXIT_GRACE_MS).unref()
    })
}
