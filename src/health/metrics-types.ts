/** The types of `createMetrics` (metrics.ts): what it counts and how it is asked. */
import type { Observable, SchedulerLike, Subscription } from 'rxjs'
import type { DatasyncError } from '../core/errors.js'
import type { SnapshotCause } from '../core/events.js'
import type { KvStore } from '../core/store.js'
import type { EventReason, SyncActivity, SyncState, SyncStatus } from '../sync/types.js'
import type { StoreMetrics } from './store-metrics.js'

/** Events delivered to one consumer, by kind and reason. */
export interface DeliveredCount {
  readonly datasync: string
  readonly consumer: string
  readonly kind: 'resync' | 'change'
  readonly reason: EventReason
  /** Events delivered. */
  readonly events: number
  /** Keys they carried (resync items, or changes). */
  readonly keys: number
}

/** Rounds (resync or gap recovery) started, by reason and the snapshot's cause. */
export interface RoundCount {
  readonly datasync: string
  readonly reason: EventReason
  readonly cause: SnapshotCause
  readonly count: number
}

/** Gaps detected: rounds after a reconnect or a gap, by the snapshot's cause. */
export interface GapCount {
  readonly datasync: string
  readonly cause: SnapshotCause
  readonly count: number
}

/** A consumer's lag now: keys with changes waiting behind its unacknowledged events. */
export interface LagGauge {
  readonly datasync: string
  readonly consumer: string
  readonly lag: number
}

/** The distribution of a consumer's acknowledgement latency. */
export interface AckLatency {
  readonly datasync: string
  readonly consumer: string
  readonly kind: 'resync' | 'change'
  /** Acknowledgements (failed ones included: a timeout counts at its timeout). */
  readonly count: number
  /** Their latencies added up, in seconds. */
  readonly sumSeconds: number
  /** Cumulative counts: how many took at most `le` seconds (the last bucket is `Infinity`). */
  readonly buckets: readonly { readonly le: number; readonly count: number }[]
}

/** Acknowledgements that failed (timeout, `done(error)`), by the error's code. */
export interface AckFailureCount {
  readonly datasync: string
  readonly consumer: string
  readonly kind: 'resync' | 'change'
  readonly code: string
  readonly count: number
}

/** Errors reported on an orchestrator's `errors$`, by code. */
export interface ErrorCount {
  readonly datasync: string
  readonly code: string
  readonly count: number
}

/** Keys a consumer named as failed (`done(failedKeys(...))`): each is retried with backoff. */
export interface KeyFailureCount {
  readonly datasync: string
  readonly consumer: string
  readonly count: number
}

/** The snapshots an orchestrator saved (`persist`), and the last one's size. */
export interface SnapshotSaves {
  readonly datasync: string
  /** Snapshots saved. */
  readonly saves: number
  /** The time they took, added up, in seconds. */
  readonly seconds: number
  /** The last one's keys, bytes and revision. */
  readonly keys: number
  readonly bytes: number
  readonly revision: bigint
}

/** Everything a {@link DatasyncMetrics} counted, at one moment. */
export interface MetricsSnapshot {
  readonly delivered: readonly DeliveredCount[]
  readonly rounds: readonly RoundCount[]
  readonly gaps: readonly GapCount[]
  readonly lag: readonly LagGauge[]
  readonly ackLatency: readonly AckLatency[]
  readonly ackFailures: readonly AckFailureCount[]
  readonly errors: readonly ErrorCount[]
  /** Keys named as failed, per consumer (the keys waiting for their retry count in `lag`). */
  readonly keyFailures: readonly KeyFailureCount[]
  /** Snapshots saved, per orchestrator that persists. */
  readonly snapshotSaves: readonly SnapshotSaves[]
  /** Each tracked orchestrator's current state. */
  readonly states: readonly { readonly datasync: string; readonly state: SyncState }[]
  /** Each instrumented store's counts (see {@link DatasyncMetrics.instrument}). */
  readonly stores: readonly StoreMetrics[]
}

/** The part of prom-client's `Registry` this library uses; cast it to merge registries. */
export interface PrometheusRegistry {
  metrics(): Promise<string>
  readonly contentType: string
}

/** Options of {@link createMetrics}. */
export interface MetricsOptions {
  /** The prefix of every Prometheus metric name. @default 'rx_datasync_' */
  readonly prefix?: string
  /** The upper bounds of the ack latency histogram's buckets, in seconds. @default 0.001 to 60 */
  readonly ackLatencyBuckets?: readonly number[]
  /**
   * Keep Prometheus metrics (through prom-client, loaded on creation when installed). False
   * keeps only the Observable and `snapshot()`.
   *
   * @default true
   */
  readonly prometheus?: boolean
  /** Where store snapshot durations are timed. @default asyncScheduler */
  readonly scheduler?: SchedulerLike
}

/** The orchestrator streams metrics are built on: every `Datasync`. */
export interface TrackedDatasync {
  readonly activity$: Observable<SyncActivity>
  readonly errors$: Observable<DatasyncError>
  readonly status$: Observable<SyncStatus>
}

/** Counts what orchestrators do, as an Observable and as Prometheus text. */
export interface DatasyncMetrics {
  /**
   * Counts an orchestrator's activity under `name` (the `datasync` label) from now on: subscribe
   * before `start()`, since activity is not replayed. Unsubscribe the result to stop counting.
   *
   * @throws TypeError when the name is empty or already tracked.
   */
  track(name: string, datasync: TrackedDatasync): Subscription
  /**
   * Measures a store under `name` (the `store` label): reconnects (from its `status$`), watch
   * restarts, each snapshot's duration, keys and bytes, and the current revision. Returns the
   * same store with `watch` measured: give that one to `createDatasync`.
   *
   * @throws TypeError when the name is empty or already instrumented.
   */
  instrument<S extends KvStore<unknown>>(name: string, store: S): S
  /** The current counts, then again after every change (hot changes, so throttle with `auditTime`). */
  readonly metrics$: Observable<MetricsSnapshot>
  /** The current counts. */
  snapshot(): MetricsSnapshot
  /**
   * The Prometheus text exposition of this instance's own registry (never prom-client's global
   * one).
   *
   * @throws Error (as a rejection) when prom-client is not installed or `prometheus` is false.
   */
  prometheus(): Promise<string>
  /** The Content-Type of {@link DatasyncMetrics.prometheus}'s text. */
  readonly contentType: string
  /** This instance's prom-client registry, when there is one. */
  readonly registry: PrometheusRegistry | undefined
}
