import type { Output, CliIo } from '../output'
import type { ResolvedConfig } from '../resolve-config'

/** What every command gets: the process, the scrubbing output, and the configuration (resolved on demand). */
export interface CommandContext {
  readonly io: CliIo
  readonly out: Output
  /** `--verbose`: stacks and causes on errors. */
  readonly verbose: boolean
  /** `--pool`: the pool to work on (default: all pools, or the primary for single-pool commands). */
  readonly poolName: string | undefined
  /** Resolves `--url` / `--config` / the environment; secrets found are scrubbed from output. */
  config(): Promise<ResolvedConfig>
}
