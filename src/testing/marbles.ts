import { BehaviorSubject, Observable, defer, throwError, timer, type SchedulerLike } from 'rxjs'
import { CapabilityError } from '../core/errors.js'
import type {
  Change,
  ChangesEvent,
  SnapshotCause,
  SnapshotEvent,
  StoreEvent,
} from '../core/events.js'
import { revision } from '../core/revision.js'
import type { Capabilities, KvStore, StoreStatus, WatchOptions } from '../core/store.js'
import type { ConsumerEvent } from '../sync/types.js'

/**
 * A read-only store whose watch is the Observable you give it (or makes it from the prefixes and
 * watch options): the tool for marble specs of code built on the orchestrator. Every write fails
 * with a `CapabilityError`.
 *
 * @example
 * ```ts
 * import { TestScheduler } from 'rxjs/testing'
 * import { scriptedStore, snapshotOf } from 'rx-datasync/testing'
 * new TestScheduler(assertDeepEqual).run(({ cold }) => {
 *   const store = scriptedStore(cold('s', { s: snapshotOf(1, { 'a/1': 'x' }) }))
 * })
 * ```
 */
export function scriptedStore<V>(
  watch:
    | Observable<StoreEvent<V>>
    | ((prefixes: readonly string[], options: WatchOptions) => Observable<StoreEvent<V>>),
  options: {
    readonly status$?: Observable<StoreStatus>
    /** Overrides of the capabilities (all false by default). */
    readonly capabilities?: Partial<Capabilities>
  } = {},
): KvStore<V> {
  const refuse = (what: string) =>
    defer(() => throwError(() => new CapabilityError('scripted', what)))
  const status$ = options.status$ ?? new BehaviorSubject<StoreStatus>({ state: 'ready' })
  return {
    name: 'scripted',
    capabilities: {
      write: false,
      txn: false,
      ttl: false,
      nativePrev: false,
      resumable: false,
      atomicPrefixDelete: false,
      ...options.capabilities,
    },
    watch: (prefixes, watchOptions = {}) =>
      typeof watch === 'function' ? watch(prefixes, watchOptions) : watch,
    get: () => refuse('get'),
    list: () => refuse('list'),
    listKeys: () => refuse('listKeys'),
    put: () => refuse('put'),
    delete: () => refuse('delete'),
    txn: () => refuse('txn'),
    status$,
    close: () => Promise.resolve(),
  }
}

/** A snapshot event at `rev` holding `items` (key to value), sorted by key. */
export function snapshotOf<V>(
  rev: number | bigint,
  items: Readonly<Record<string, V>>,
  cause: SnapshotCause = 'startup',
): SnapshotEvent<V> {
  const r = revision(rev)
  return {
    type: 'snapshot',
    revision: r,
    cause,
    items: Object.keys(items)
      .sort()
      .map((key) => ({ key, value: items[key] as V, revision: r })),
  }
}

/** A change batch at `rev`: a value puts the key, `null` deletes it. */
export function changesOf<V>(
  rev: number | bigint,
  writes: Readonly<Record<string, V | null>>,
): ChangesEvent<V> {
  const r = revision(rev)
  return {
    type: 'changes',
    revision: r,
    changes: Object.entries(writes).map(([key, value]): Change<V> =>
      value === null ? { op: 'delete', key, revision: r } : { op: 'put', key, value, revision: r },
    ),
  }
}

/**
 * A compact, readable label of a consumer event, for marble value maps:
 * `R(startup) a=1 b=2` for a resync, `C(live) a:1>2 b:2>x` for changes (`x` is absent).
 */
export function describeEvent(event: ConsumerEvent<unknown>): string {
  const show = (value: unknown) =>
    value === undefined ? 'x' : typeof value === 'string' ? value : JSON.stringify(value)
  if (event.kind === 'resync') {
    return [
      `R(${event.reason})`,
      ...event.items.map((item) => `${item.key}=${show(item.value)}`),
    ].join(' ')
  }
  return [
    `C(${event.reason})`,
    ...event.changes.map((c) => `${c.key}:${show(c.prev)}>${c.op === 'put' ? show(c.value) : 'x'}`),
  ].join(' ')
}

/**
 * Acknowledges every event of `events$` after `frames` (virtual time under a TestScheduler);
 * returns the subscription. `frames` may be a function of the event, and `error` makes `done`
 * report a failure for the events it returns true for.
 */
export function ackAfter<T>(
  events$: Observable<ConsumerEvent<T>>,
  frames: number | ((event: ConsumerEvent<T>) => number | undefined),
  scheduler?: SchedulerLike,
  fail?: (event: ConsumerEvent<T>) => unknown,
): import('rxjs').Subscription {
  return events$.subscribe((event) => {
    const delay = typeof frames === 'function' ? frames(event) : frames
    if (delay === undefined) return // never acknowledged
    const settle = () => {
      const error = fail?.(event)
      if (error === undefined) event.done()
      else event.done(error)
    }
    if (delay === 0) settle()
    else timer(delay, scheduler).subscribe(settle)
  })
}
