import { asyncScheduler, type SchedulerLike } from 'rxjs'
import { argumentChecks, type ArgumentChecks } from '../../internal/checks.js'

/** The backend's name in messages. */
export const NAME = 'memory'

/** The memory store's argument checks: its messages name the memory store. */
export const check: ArgumentChecks = argumentChecks({ backend: NAME })

/** Options of {@link createMemoryStore}. */
export interface MemoryStoreOptions<V = Uint8Array> {
  /**
   * Where TTL expiries are scheduled. Pass a `TestScheduler` or `VirtualTimeScheduler` to
   * virtualize time in tests.
   *
   * @default asyncScheduler
   */
  readonly scheduler?: SchedulerLike
  /**
   * Data the store starts with, written as one write at revision 1 (the store stays at revision 0
   * when it is absent or empty). A key given twice keeps its later value. It is not kept as
   * history: a watch resuming after revision 0 starts with a snapshot.
   *
   * @default no data
   */
  readonly initial?: Iterable<readonly [string, V]> | Readonly<Record<string, V>>
  /**
   * How many of the latest revisions the store keeps as history, for watches that resume with
   * `after` (`watch(prefixes, { after })`): a watch resuming after a revision still held gets
   * only the changes after it; older, it starts with a snapshot. 0 keeps none.
   *
   * @default 1000
   */
  readonly history?: number
}

/** The options, checked and resolved. */
export interface Settings<V> {
  readonly scheduler: SchedulerLike
  /** The initial data, each key once with its later value; empty when there is none. */
  readonly initial: ReadonlyMap<string, V>
  /** How many revisions of history are kept. */
  readonly history: number
}

/**
 * Checks `options` and fills in the defaults.
 *
 * @throws TypeError naming the key when an initial key or value is not one the store takes.
 */
export function resolveOptions<V>(options: MemoryStoreOptions<V>): Settings<V> {
  const initial = new Map<string, V>()
  if (options.initial !== undefined) {
    const pairs = isIterable(options.initial) ? options.initial : Object.entries(options.initial)
    for (const [key, value] of pairs) {
      check.key('initial', key)
      check.value('initial', key, value)
      initial.set(key, value)
    }
  }
  const history = options.history ?? 1000
  if (!Number.isInteger(history) || history < 0) {
    throw new TypeError(
      `${NAME}: history: expected a whole number of revisions, at least 0, got ${String(history)}`,
    )
  }
  return { scheduler: options.scheduler ?? asyncScheduler, initial, history }
}

function isIterable<T>(value: object): value is Iterable<T> {
  return typeof (value as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function'
}
