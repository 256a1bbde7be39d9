import type { OutputStream } from './output'
import { isErrorLike } from '@dbpool/core/internal'

/**
 * Error codes of a write whose reader went away: `EPIPE` (the read end of a pipe closed, as with
 * `dbpool ... | head -1`), `ECONNRESET` (a socket), `ERR_STREAM_DESTROYED` (the stream was closed).
 */
const READER_GONE: ReadonlySet<string> = new Set(['EPIPE', 'ECONNRESET', 'ERR_STREAM_DESTROYED'])

/** What {@link GuardedStream} needs of `process.stdout` / `process.stderr`. */
export interface GuardableStream extends OutputStream {
  write(text: string, callback?: (err?: Error | null) => void): boolean
  on(event: 'error', listener: (err: Error) => void): unknown
  readonly destroyed?: boolean
}

/**
 * `process.stdout` or `process.stderr` made safe to write to whatever happens to its reader.
 *
 * Node ignores SIGPIPE, so a write after the reader closed fails with `EPIPE`, emitted as an
 * `'error'` event that nobody handles: the process dies with a stack trace in the middle of the
 * command (a migration half done, pools never closed). The guard handles that event: once a write
 * has failed, later writes are dropped and the command runs to its end, closing its pools and
 * returning its own exit code. A closed reader ({@link readerGone}) is not the command's failure;
 * any other write error (`ENOSPC` on a full disk, `EIO`) is kept in {@link failure} for the caller
 * to report, since output was lost.
 */
export class GuardedStream implements OutputStream {
  readonly #stream: GuardableStream
  #readerGone = false
  #failure: Error | undefined

  constructor(stream: GuardableStream) {
    this.#stream = stream
    stream.on('error', (err) => this.#stop(err))
  }

  /** Whether the underlying stream is a terminal. */
  get isTTY(): boolean | undefined {
    return this.#stream.isTTY
  }

  /** The terminal width, when it is one. */
  get columns(): number | undefined {
    return this.#stream.columns
  }

  /** The reader went away (`EPIPE`, ...): everything written since was dropped. */
  get readerGone(): boolean {
    return this.#readerGone
  }

  /** A write error other than a closed reader (`ENOSPC`, `EIO`, ...): output was lost. */
  get failure(): Error | undefined {
    return this.#failure
  }

  /** Writes `text`, or drops it once a write has failed. Never throws. */
  write(text: string): boolean {
    if (this.#readerGone || this.#failure !== undefined || this.#stream.destroyed === true) return false
    try {
      return this.#stream.write(text)
    } catch (err) {
      this.#stop(isErrorLike(err) ? err : new Error(String(err)))
      return false
    }
  }

  /**
   * Resolves once everything written so far has been handed to the operating system (the kernel
   * pipe or file), or once the stream has failed or its reader went away (nothing more can be
   * delivered). Node writes to a pipe asynchronously: what the pipe buffer (64 KiB on Linux) did not
   * take yet is still queued in the process, and `process.exit()` drops it. Never rejects; it waits
   * as long as the reader takes (a reader that never reads keeps it waiting, as a blocking write would).
   */
  flush(): Promise<void> {
    if (this.#readerGone || this.#failure !== undefined || this.#stream.destroyed === true) return Promise.resolve()
    return new Promise<void>((resolve) => {
      try {
        // an empty write's callback runs after every earlier write has completed (Writable keeps order)
        this.#stream.write('', (err) => {
          if (err) this.#stop(err)
          resolve()
        })
      } catch (err) {
        this.#stop(isErrorLike(err) ? err : new Error(String(err)))
        resolve()
      }
    })
  }

  #stop(err: Error): void {
    if (this.#readerGone || this.#failure !== undefined) return
    const code = (err as NodeJS.ErrnoException).code
    if (code !== undefined && READER_GONE.has(code)) this.#readerGone = true
    else this.#failure = err
  }
}
