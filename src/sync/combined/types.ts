import type { Observable, SchedulerLike } from 'rxjs'
import type { Duration } from '../../core/duration.js'
import type { KvStore, StoreStatus } from '../../core/store.js'

/** A source of a combined store with the name it goes by in messages, health and `sources$`. */
export interface NamedSource<V = Uint8Array> {
  /** The source's name: unique within the combined store. */
  readonly name: string
  readonly store: KvStore<V>
}

/**
 * A source of a combined store: a store (named by its own `name`, numbered when two sources
 * share it: `memory`, `memory#2`), or a store with the name to give it.
 */
export type SourceInput<V = Uint8Array> = KvStore<V> | NamedSource<V>

/** One source of a combined store, as it reports it. */
export interface CombinedSource<V = Uint8Array> {
  readonly name: string
  readonly store: KvStore<V>
  /**
   * The source's status as the combined store counts it: the store's own status, except that it
   * is `degraded` while a watch of the combined store waits past `startTimeout` for the source's
   * first snapshot. Replays the current state; completes after `closed`.
   */
  readonly status$: Observable<StoreStatus>
}

/**
 * A {@link KvStore} made of several stores (see `createRoutedStore` and `createLayeredStore`):
 * everything that works on one store works on it, and each source's health is visible.
 */
export interface CombinedStore<V = Uint8Array> extends KvStore<V> {
  /** The sources, in the order given (for a layered store: lowest precedence first). */
  readonly sources: readonly CombinedSource<V>[]
  /** Every source's status by name, again whenever one changes. */
  readonly sources$: Observable<Readonly<Record<string, StoreStatus>>>
}

/** Options shared by both kinds of combined store. */
export interface CombinedStoreOptions {
  /**
   * The combined store's name in messages (`the routed store does not support …`).
   * @default 'routed' or 'layered'
   */
  readonly name?: string
  /**
   * How long a watch waits for every source's first snapshot. Past it, the first snapshot is
   * made of the sources that answered, the store is `degraded` (naming the late sources), and a
   * late source's keys arrive as changes when it answers. `Infinity` waits for every source.
   * @default '10s'
   */
  readonly startTimeout?: Duration
  /** Where the start timeout runs (a `TestScheduler` in marble tests). @default asyncScheduler */
  readonly scheduler?: SchedulerLike
}

/** Options of `createRoutedStore`. */
export type RoutedStoreOptions = CombinedStoreOptions

/** Options of `createLayeredStore`. */
export interface LayeredStoreOptions extends CombinedStoreOptions {
  /**
   * The name of the layer that takes writes (puts, deletes, transactions).
   * @default the highest layer (the last one given)
   */
  readonly writeTo?: string
}
