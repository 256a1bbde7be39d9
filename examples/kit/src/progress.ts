/** Where progress goes: a stream, and whether it is a terminal. */
export interface ProgressSink {
  write(text: string): unknown
  readonly isTTY?: boolean
}

/** Options of a {@link Progress}. */
export interface ProgressOptions {
  /** Default is `process.stdout`. */
  readonly sink?: ProgressSink
  /** How often a line is drawn: default `100` ms on a terminal, `1000` ms otherwise. */
  readonly intervalMs?: number
}

/**
 * Shows how far a long step is: on a terminal one line redrawn in place, otherwise a plain line
 * every second (readable in CI logs and pipes). Call {@link tick} as work completes: on SQLite a
 * burst of queued statements can run as one long chain of microtasks that never lets a timer fire,
 * so drawing is driven by the work itself; the timer (unref'd, cleared by {@link stop}) covers the
 * quiet stretches while the work waits on the network.
 */
export class Progress {
  readonly #label: string
  readonly #total: number
  readonly #status: () => { done: number; detail: string }
  readonly #sink: ProgressSink
  readonly #tty: boolean
  readonly #intervalMs: number
  readonly #started = performance.now()
  #timer: NodeJS.Timeout | undefined
  #lastDraw = 0

  constructor(label: string, total: number, status: () => { done: number; detail: string }, options: ProgressOptions = {}) {
    this.#label = label
    this.#total = total
    this.#status = status
    this.#sink = options.sink ?? process.stdout
    this.#tty = this.#sink.isTTY === true
    this.#intervalMs = options.intervalMs ?? (this.#tty ? 100 : 1_000)
  }

  /** Starts drawing. */
  start(): this {
    this.#lastDraw = performance.now()
    this.#timer = setInterval(() => this.tick(), this.#intervalMs)
    this.#timer.unref()
    return this
  }

  /** Draws now if the last line is older than the interval. Cheap: call it on every completion. */
  tick(): void {
    if (this.#timer !== undefined && performance.now() - this.#lastDraw >= this.#intervalMs) this.#draw(false)
  }

  /** Stops drawing and writes the final line. Idempotent. */
  stop(): void {
    if (this.#timer === undefined) return
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#draw(true)
  }

  #draw(final: boolean): void {
    this.#lastDraw = performance.now()
    const { done, detail } = this.#status()
    const seconds = (performance.now() - this.#started) / 1000
    const pct = this.#total === 0 ? 100 : Math.floor((done / this.#total) * 100)
    const rate = seconds > 0 ? Math.round(done / seconds) : 0
    const text = `${this.#label} ${this.#tty ? bar(pct) + ' ' : ''}${done}/${this.#total} (${pct}%) ${rate}/s ${seconds.toFixed(1)}s ${detail}`
    if (this.#tty) this.#sink.write(`\r\x1b[2K${text}${final ? '\n' : ''}`)
    else this.#sink.write(`${text}\n`)
  }
}

function bar(pct: number): string {
  const width = 20
  const filled = Math.round((pct / 100) * width)
  return `[${'#'.repeat(filled)}${'.'.repeat(width - filled)}]`
}

/**
 * Makes a closed stdout (`npm run demo | head`, quitting `less`) harmless: the rest of the output is
 * dropped and the program runs on to its end (closing its pool) with its own exit code. Without an
 * 'error' listener the next write's EPIPE was an unhandled 'error' event: a crash mid-run, the pool
 * left open. Another write error is reported once on stderr.
 */
export function dropOutputOnClosedPipe(stream: NodeJS.WriteStream = process.stdout): void {
  let reported = false
  stream.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code === 'EPIPE' || reported) return
    reported = true
    process.stderr.write(`output failed: ${err.message}\n`)
  })
}
