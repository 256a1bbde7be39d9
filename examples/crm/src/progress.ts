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
 * every second (readable in CI logs and pipes). Its timer is unref'd and cleared by {@link stop}.
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
    this.#timer = setInterval(() => this.#draw(false), this.#intervalMs)
    this.#timer.unref()
    return this
  }

  /** Stops drawing and writes the final line. Idempotent. */
  stop(): void {
    if (this.#timer === undefined) return
    clearInterval(this.#timer)
    this.#timer = undefined
    this.#draw(true)
  }

  #draw(final: boolean): void {
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
