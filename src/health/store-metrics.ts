import { defer, tap, type Observable, type SchedulerLike } from 'rxjs'
import type * as PromClient from 'prom-client'
import type { StoreEvent } from '../core/events.js'
import type { KvStore, StoreStatus, WatchOptions } from '../core/store.js'

/** What {@link DatasyncMetrics.instrument} counted of one store. */
export interface StoreMetrics {
  /** The name it was instrumented under (the `store` label). */
  readonly store: string
  /** The backend: the store's `name` (`etcd`, `redis`, ...). */
  readonly backend: string
  /** Times the store came back to `ready` after being connecting or degraded, once it had been ready. */
  readonly reconnects: number
  /** Watches started again after the first (the orchestrator re-watching after a failure). */
  readonly watchRestarts: number
  /** Snapshots received (startup and after every gap). */
  readonly snapshots: number
  /**
   * The last timed snapshot: seconds from the watch's (re)start, or from the store leaving
   * `ready`, to the snapshot.
   */
  readonly lastSnapshotSeconds: number | undefined
  /** The last snapshot's keys. */
  readonly lastSnapshotKeys: number | undefined
  /** The last snapshot's value bytes (values that are byte arrays or strings). */
  readonly lastSnapshotBytes: number | undefined
  /** The revision of the last event a watch received. */
  readonly revision: bigint | undefined
}

/** The prom-client series of the stores, registered in the metrics' own registry. */
export function makeStorePromMetrics(
  client: typeof PromClient,
  registry: PromClient.Registry,
  prefix: string,
) {
  const registers = [registry]
  const labelNames = ['store'] as const
  return {
    info: new client.Gauge({
      name: `${prefix}store_info`,
      help: 'An instrumented store: always 1, with its backend.',
      labelNames: ['store', 'backend'] as const,
      registers,
    }),
    reconnects: new client.Counter({
      name: `${prefix}store_reconnects_total`,
      help: 'Times the store came back to ready after being connecting or degraded.',
      labelNames,
      registers,
    }),
    watchRestarts: new client.Counter({
      name: `${prefix}store_watch_restarts_total`,
      help: 'Watches of the store started again after the first.',
      labelNames,
      registers,
    }),
    snapshotSeconds: new client.Histogram({
      name: `${prefix}store_snapshot_duration_seconds`,
      help: 'Time from a watch’s start (or the gap that ended the last snapshot’s changes) to its snapshot.',
      labelNames,
      buckets: [0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
      registers,
    }),
    snapshotKeys: new client.Gauge({
      name: `${prefix}store_snapshot_keys`,
      help: 'Keys in the last snapshot of the store.',
      labelNames,
      registers,
    }),
    snapshotBytes: new client.Gauge({
      name: `${prefix}store_snapshot_bytes`,
      help: 'Value bytes in the last snapshot of the store.',
      labelNames,
      registers,
    }),
    revision: new client.Gauge({
      name: `${prefix}store_revision`,
      help: 'The revision of the last event a watch of the store received.',
      labelNames,
      registers,
    }),
  }
}

type StorePromMetrics = ReturnType<typeof makeStorePromMetrics>

interface Counts {
  reconnects: number
  watchRestarts: number
  snapshots: number
  lastSnapshotSeconds: number | undefined
  lastSnapshotKeys: number | undefined
  lastSnapshotBytes: number | undefined
  revision: bigint | undefined
}

/**
 * Follows one store: its `status$` for reconnects, and every watch made through the returned
 * store for restarts, snapshots and the revision. The returned store is the same store with
 * `watch` measured (every other member, backend-specific ones included, is the store's own).
 */
export function instrumentStore<S extends KvStore<unknown>>(
  name: string,
  store: S,
  scheduler: SchedulerLike,
  prom: StorePromMetrics | undefined,
  changed: () => void,
): { readonly store: S; readonly read: () => StoreMetrics; readonly stop: () => void } {
  const labels = { store: name }
  const counts: Counts = {
    reconnects: 0,
    watchRestarts: 0,
    snapshots: 0,
    lastSnapshotSeconds: undefined,
    lastSnapshotKeys: undefined,
    lastSnapshotBytes: undefined,
    revision: undefined,
  }
  prom?.info.set({ store: name, backend: store.name }, 1)
  prom?.reconnects.inc(labels, 0)
  prom?.watchRestarts.inc(labels, 0)

  let wasReady = false
  let lost = false
  /** When the store last left 'ready'. */
  let lostAt: number | undefined
  const status = store.status$.subscribe((value: StoreStatus) => {
    if (value.state === 'ready') {
      if (wasReady && lost) {
        counts.reconnects++
        prom?.reconnects.inc(labels)
        changed()
      }
      wasReady = true
      lost = false
    } else if (value.state !== 'closed') {
      if (!lost) lostAt = scheduler.now()
      lost = true
    }
  })

  let watches = 0
  const measure = (events: Observable<StoreEvent<unknown>>) =>
    defer(() => {
      if (watches++ > 0) {
        counts.watchRestarts++
        prom?.watchRestarts.inc(labels)
        changed()
      }
      const startedAt = scheduler.now()
      let lastEventAt: number | undefined
      return events.pipe(
        tap((event) => {
          const now = scheduler.now()
          if (event.type === 'snapshot') {
            // Timed from the watch's start, or from the store leaving 'ready' when that came
            // after the last event (a reconnect's relist); a snapshot whose start is not known
            // (a compaction noticed mid-watch) counts its size only.
            const from =
              lastEventAt === undefined
                ? startedAt
                : lostAt !== undefined && lostAt >= lastEventAt
                  ? lostAt
                  : undefined
            const bytes = event.items.reduce((sum, item) => sum + sizeOf(item.value), 0)
            counts.snapshots++
            counts.lastSnapshotKeys = event.items.length
            counts.lastSnapshotBytes = bytes
            prom?.snapshotKeys.set(labels, event.items.length)
            prom?.snapshotBytes.set(labels, bytes)
            if (from !== undefined) {
              const seconds = (now - from) / 1000
              counts.lastSnapshotSeconds = seconds
              prom?.snapshotSeconds.observe(labels, seconds)
            }
          }
          lastEventAt = now
          counts.revision = BigInt(event.revision)
          prom?.revision.set(labels, Number(event.revision))
          changed()
        }),
      )
    })

  const instrumented = new Proxy(store, {
    get(target, property) {
      if (property === 'watch') {
        return (prefixes: readonly string[], options?: WatchOptions) =>
          measure(target.watch(prefixes, options))
      }
      const value: unknown = Reflect.get(target, property, target)
      return typeof value === 'function'
        ? (value as (...a: unknown[]) => unknown).bind(target)
        : value
    },
  })

  return {
    store: instrumented,
    read: () => ({ store: name, backend: store.name, ...counts }),
    stop: () => {
      status.unsubscribe()
    },
  }
}

function sizeOf(value: unknown): number {
  if (value instanceof Uint8Array) return value.byteLength
  if (typeof value === 'string') return value.length
  return 0
}
