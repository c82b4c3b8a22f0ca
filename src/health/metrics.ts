import { Subject, Subscription, asyncScheduler, defer, map, startWith } from 'rxjs'
import type { SnapshotCause } from '../core/events.js'
import type { EventReason, SyncActivity, SyncState } from '../sync/types.js'
import type {
  DatasyncMetrics,
  MetricsOptions,
  MetricsSnapshot,
  SnapshotSaves,
} from './metrics-types.js'
import { loadPromClient, makePromMetrics, packageVersion } from './prometheus.js'
import { instrumentStore, makeStorePromMetrics, type StoreMetrics } from './store-metrics.js'

export type {
  AckFailureCount,
  AckLatency,
  DatasyncMetrics,
  DeliveredCount,
  ErrorCount,
  GapCount,
  KeyFailureCount,
  LagGauge,
  MetricsOptions,
  MetricsSnapshot,
  PrometheusRegistry,
  RoundCount,
  SnapshotSaves,
  TrackedDatasync,
} from './metrics-types.js'

const DEFAULT_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
const STATES: readonly SyncState[] = [
  'idle',
  'connecting',
  'resyncing',
  'restored',
  'in-sync',
  'degraded',
  'halted',
  'stopped',
]

/** Values by label set, in the order the label sets first appeared. */
class Series<L extends object, V> {
  private readonly entries = new Map<string, { labels: L; value: V }>()
  constructor(private readonly initial: () => V) {}

  update(labels: L, change: (value: V) => V): void {
    const id = JSON.stringify(Object.values(labels))
    const entry = this.entries.get(id)
    if (entry) entry.value = change(entry.value)
    else this.entries.set(id, { labels, value: change(this.initial()) })
  }

  list<R>(shape: (labels: L, value: V) => R): R[] {
    return [...this.entries.values()].map((entry) => shape(entry.labels, entry.value))
  }
}

interface Histogram {
  count: number
  sum: number
  readonly buckets: number[]
}

/**
 * Creates the metrics of one or more orchestrators: events delivered (by consumer, kind and
 * reason), rounds by reason and cause, gaps detected, consumer lag, ack latency, ack failures,
 * errors and state. Each instance has its own prom-client registry, so tests and several
 * instances never collide. prom-client is optional: without it, everything but `prometheus()`
 * works.
 *
 * Prometheus names follow its conventions (units in names, `_total` counters, an `_info`
 * gauge); the README's Metrics section lists each with its labels. Stores measured through
 * {@link DatasyncMetrics.instrument} add the `store_` series.
 *
 * ```
 * activity$:  round--delivered--acknowledged--lag(2)--lag(0)--
 * metrics$:   m------m----------m-------------m-------m-------
 * ```
 *
 * @example
 * ```ts
 * import { createDatasync, createMemoryStore } from 'rx-datasync'
 * import { createMetrics } from 'rx-datasync/health'
 * const sync = createDatasync(createMemoryStore())
 * const metrics = createMetrics()
 * metrics.track('main', sync)
 * sync.start()
 * console.log(await metrics.prometheus())
 * ```
 */
export function createMetrics(options: MetricsOptions = {}): DatasyncMetrics {
  const prefix = options.prefix ?? 'rx_datasync_'
  const bounds = [...(options.ackLatencyBuckets ?? DEFAULT_BUCKETS)].sort((a, b) => a - b)
  if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$|^$/.test(prefix)) {
    throw new TypeError(
      `createMetrics: prefix: expected letters, digits, '_' and ':', got ${JSON.stringify(prefix)}`,
    )
  }
  if (bounds.some((bound) => !Number.isFinite(bound) || bound <= 0)) {
    throw new TypeError(
      `createMetrics: ackLatencyBuckets: expected positive finite seconds, got ${JSON.stringify(options.ackLatencyBuckets)}`,
    )
  }

  const delivered = new Series<
    { datasync: string; consumer: string; kind: 'resync' | 'change'; reason: EventReason },
    { events: number; keys: number }
  >(() => ({ events: 0, keys: 0 }))
  const rounds = new Series<
    { datasync: string; reason: EventReason; cause: SnapshotCause },
    number
  >(() => 0)
  const gaps = new Series<{ datasync: string; cause: SnapshotCause }, number>(() => 0)
  const lag = new Series<{ datasync: string; consumer: string }, number>(() => 0)
  const latency = new Series<
    { datasync: string; consumer: string; kind: 'resync' | 'change' },
    Histogram
  >(() => ({ count: 0, sum: 0, buckets: bounds.map(() => 0) }))
  const ackFailures = new Series<
    { datasync: string; consumer: string; kind: 'resync' | 'change'; code: string },
    number
  >(() => 0)
  const errors = new Series<{ datasync: string; code: string }, number>(() => 0)
  const keyFailures = new Series<{ datasync: string; consumer: string }, number>(() => 0)
  const saves = new Series<{ datasync: string }, Omit<SnapshotSaves, 'datasync'>>(() => ({
    saves: 0,
    seconds: 0,
    keys: 0,
    bytes: 0,
    revision: 0n,
  }))
  const states = new Map<string, SyncState>()
  const changes = new Subject<void>()
  const tracked = new Set<string>()
  const stores = new Map<string, () => StoreMetrics>()
  const scheduler = options.scheduler ?? asyncScheduler

  const prom = options.prometheus === false ? undefined : loadPromClient()
  const promFailure =
    options.prometheus === false
      ? 'Prometheus metrics are off (createMetrics({ prometheus: false }))'
      : prom && !prom.ok
        ? prom.reason
        : undefined
  const registry = prom?.ok ? new prom.client.Registry() : undefined
  const gauges =
    prom?.ok && registry ? makePromMetrics(prom.client, registry, prefix, bounds) : undefined
  const storeGauges =
    prom?.ok && registry ? makeStorePromMetrics(prom.client, registry, prefix) : undefined
  gauges?.info.set({ version: packageVersion(), node_version: process.version }, 1)

  const inc = (value: number) => value + 1

  const record = (datasync: string, activity: SyncActivity): void => {
    switch (activity.type) {
      case 'round': {
        const { reason, cause } = activity
        rounds.update({ datasync, reason, cause }, inc)
        gauges?.rounds.inc({ datasync, reason, cause })
        if (reason === 'reconnect' || reason === 'gap') {
          gaps.update({ datasync, cause }, inc)
          gauges?.gaps.inc({ datasync, cause })
        }
        break
      }
      case 'delivered': {
        const { consumer, kind, reason, keys } = activity
        delivered.update({ datasync, consumer, kind, reason }, (value) => ({
          events: value.events + 1,
          keys: value.keys + keys,
        }))
        gauges?.events.inc({ datasync, consumer, kind, reason })
        gauges?.keys.inc({ datasync, consumer, kind, reason }, keys)
        break
      }
      case 'acknowledged': {
        const { consumer, kind } = activity
        const seconds = activity.latencyMs / 1000
        latency.update({ datasync, consumer, kind }, (histogram) => {
          histogram.count++
          histogram.sum += seconds
          bounds.forEach((bound, index) => {
            if (seconds <= bound) histogram.buckets[index] = (histogram.buckets[index] ?? 0) + 1
          })
          return histogram
        })
        gauges?.latency.observe({ datasync, consumer, kind }, seconds)
        if (activity.error) {
          const code = activity.error.code
          ackFailures.update({ datasync, consumer, kind, code }, inc)
          gauges?.ackFailures.inc({ datasync, consumer, kind, code })
        }
        break
      }
      case 'lag': {
        const { consumer } = activity
        lag.update({ datasync, consumer }, () => activity.lag)
        gauges?.lag.set({ datasync, consumer }, activity.lag)
        break
      }
      case 'key-failed': {
        const { consumer } = activity
        keyFailures.update({ datasync, consumer }, inc)
        gauges?.keyFailures.inc({ datasync, consumer })
        break
      }
      case 'persisted': {
        const { keys, bytes, revision } = activity
        const seconds = activity.ms / 1000
        saves.update({ datasync }, (value) => ({
          saves: value.saves + 1,
          seconds: value.seconds + seconds,
          keys,
          bytes,
          revision,
        }))
        gauges?.snapshotSaves.inc({ datasync })
        gauges?.snapshotSaveSeconds.inc({ datasync }, seconds)
        gauges?.snapshotBytes.set({ datasync }, bytes)
        gauges?.snapshotKeys.set({ datasync }, keys)
        break
      }
    }
    changes.next()
  }

  const snapshot = (): MetricsSnapshot => ({
    delivered: delivered.list((labels, value) => ({ ...labels, ...value })),
    rounds: rounds.list((labels, count) => ({ ...labels, count })),
    gaps: gaps.list((labels, count) => ({ ...labels, count })),
    lag: lag.list((labels, value) => ({ ...labels, lag: value })),
    ackLatency: latency.list((labels, histogram) => ({
      ...labels,
      count: histogram.count,
      sumSeconds: histogram.sum,
      buckets: [
        ...bounds.map((le, index) => ({ le, count: histogram.buckets[index] ?? 0 })),
        { le: Infinity, count: histogram.count },
      ],
    })),
    ackFailures: ackFailures.list((labels, count) => ({ ...labels, count })),
    errors: errors.list((labels, count) => ({ ...labels, count })),
    keyFailures: keyFailures.list((labels, count) => ({ ...labels, count })),
    snapshotSaves: saves.list((labels, value) => ({ ...labels, ...value })),
    states: [...states].map(([datasync, state]) => ({ datasync, state })),
    stores: [...stores.values()].map((read) => read()),
  })

  return {
    track(name, datasync) {
      if (typeof name !== 'string' || name === '') {
        throw new TypeError(`metrics.track: expected a non-empty name, got ${JSON.stringify(name)}`)
      }
      if (tracked.has(name)) {
        throw new TypeError(`metrics.track: an orchestrator named '${name}' is already tracked`)
      }
      tracked.add(name)
      const subscription = new Subscription(() => tracked.delete(name))
      subscription.add(
        datasync.activity$.subscribe((activity) => {
          record(name, activity)
        }),
      )
      subscription.add(
        datasync.errors$.subscribe((error) => {
          errors.update({ datasync: name, code: error.code }, inc)
          gauges?.errors.inc({ datasync: name, code: error.code })
          changes.next()
        }),
      )
      subscription.add(
        datasync.status$.subscribe((status) => {
          states.set(name, status.state)
          for (const state of STATES) {
            gauges?.state.set({ datasync: name, state }, state === status.state ? 1 : 0)
          }
          changes.next()
        }),
      )
      return subscription
    },
    instrument(name, store) {
      if (typeof name !== 'string' || name === '' || stores.has(name)) {
        throw new TypeError(
          `metrics.instrument: expected a new non-empty name, got ${JSON.stringify(name)}${stores.has(name) ? ' (already instrumented)' : ''}`,
        )
      }
      const measured = instrumentStore(name, store, scheduler, storeGauges, () => {
        changes.next()
      })
      stores.set(name, measured.read)
      return measured.store
    },
    metrics$: defer(() =>
      changes.pipe(
        startWith(undefined),
        map(() => snapshot()),
      ),
    ),
    snapshot,
    prometheus() {
      if (registry === undefined) return Promise.reject(new Error(promFailure))
      return registry.metrics()
    },
    contentType: registry?.contentType ?? 'text/plain; version=0.0.4; charset=utf-8',
    registry,
  }
}
