export {
  createHealth,
  type CheckOptions,
  type CheckResult,
  type ComponentHealth,
  type ComponentKind,
  type ComponentOptions,
  type DatasyncLike,
  type Health,
  type HealthCheck,
  type HealthOptions,
  type HealthReport,
  type HealthState,
  type StoreLike,
} from './health.js'
export {
  createMetrics,
  type AckFailureCount,
  type AckLatency,
  type DatasyncMetrics,
  type DeliveredCount,
  type ErrorCount,
  type GapCount,
  type KeyFailureCount,
  type LagGauge,
  type MetricsOptions,
  type MetricsSnapshot,
  type PrometheusRegistry,
  type RoundCount,
  type SnapshotSaves,
  type TrackedDatasync,
} from './metrics.js'
export { serveHealth, type HealthServer, type HealthServerOptions } from './server.js'
export {
  createHealthHandler,
  LIVENESS_PATHS,
  READINESS_PATHS,
  type HealthHandler,
  type HealthHandlerOptions,
} from './handler.js'
export { onShutdown, type Drainable, type ShutdownOptions } from './shutdown.js'
