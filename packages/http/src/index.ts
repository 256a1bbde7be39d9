/**
 * `@dbpool/http`: health, readiness and Prometheus metrics over HTTP for dbpool pools.
 *
 * This package holds what an application opts into: the OpenTelemetry SDK (`@opentelemetry/sdk-metrics`)
 * and the Prometheus exporter. `@dbpool/core` records its metrics through `@opentelemetry/api` only.
 *
 * @packageDocumentation
 */
export { createHealthHandler } from './health-handler'
export type { HealthHandlerOptions, HealthRequestListener, LivenessBody, PoolReadiness, ReadinessBody } from './health-handler'
export { MIN_TOKEN_LENGTH, TOKEN_RULE, isValidToken } from './detail-access'
export { MetricsRegistry, createMetricsRegistry } from './metrics-registry'
export type { MetricsRegistryOptions, ObservedPool } from './metrics-registry'
