import type { PoolStatsSnapshot } from '../errors/database-error'

/** Overall health: `degraded` still serves (saturated or slow), `unhealthy` does not. */
export type HealthStatus = 'healthy' | 'degraded' | 'unhealthy'

/** The outcome of one check inside a report. */
export interface HealthCheckDetail {
  /** e.g. `connect`, `ping`, `saturation`, `integrity`. */
  readonly name: string
  readonly status: HealthStatus
  /** How long the check took, when it ran. */
  readonly latencyMs?: number
  /** A one-line, secret-free explanation. */
  readonly message?: string
  /** Extra numbers or strings (WAL size, page counts, error code). */
  readonly data?: Readonly<Record<string, unknown>>
}

/** What {@link HealthChecker.check} returns. It is never thrown. */
export interface HealthReport {
  readonly pool: string
  readonly backend: string
  readonly target: string
  readonly status: HealthStatus
  readonly checkedAt: string
  readonly latencyMs: number
  readonly stats: PoolStatsSnapshot
  readonly checks: readonly HealthCheckDetail[]
}
