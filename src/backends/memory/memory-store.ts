import {
  BehaviorSubject,
  Observable,
  asyncScheduler,
  concatMap,
  timer,
  type SchedulerLike,
  type Subscriber,
  type Subscription,
} from 'rxjs'
import { type Duration } from '../../core/duration.js'
import { argumentChecks, type ArgumentChecks, type CheckedWrite } from '../../internal/checks.js'
import { valuesEqual } from '../../core/equal.js'
import { ClosedError } from '../../core/errors.js'
import type { Change, KeyValue, StoreEvent } from '../../core/events.js'
import { revision, ZERO_REVISION, type Revision } from '../../core/revision.js'
import { createSnapshot, matchesAny, type Snapshot } from '../../core/snapshot.js'
import type {
  Capabilities,
  DeleteOptions,
  KvStore,
  PutOptions,
  StoreStatus,
  TxnCondition,
  TxnOp,
  TxnOptions,
  TxnResult,
} from '../../core/store.js'
import { CLOSED, READY, statusStream } from '../../internal/status.js'

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
   * when it is absent or empty). A key given twice keeps its later value.
   *
   * @default no data
   */
  readonly initial?: Iterable<readonly [string, V]> | Readonly<Record<string, V>>
}

/**
 * An in-memory {@link KvStore}: the embedded default and the base of the test kit. It has every
 * capability, counts one revision per write (a transaction or a prefix delete is one revision for
 * all its keys, as in etcd), and emits watch events synchronously within the write, so marble tests
 * are deterministic.
 *
 * Values are stored and returned by reference, never copied: treat a value as immutable once it is
 * written (do not mutate a `Uint8Array` after `put`, nor one returned by `get`, `list` or `watch`).
 */
export interface MemoryStore<V = Uint8Array> extends KvStore<V> {
  /** The store's current revision: that of its last write, `0n` before any. Works after close. */
  revision(): Revision
  /** Everything in the store as a frozen snapshot, key to value and mod revision. Works after close. */
  dump(): Snapshot<V>
}

const NAME = 'memory'

const CAPABILITIES: Capabilities = Object.freeze({
  write: true,
  txn: true,
  ttl: true,
  nativePrev: true,
  resumable: true,
  atomicPrefixDelete: true,
})

/** The longest delay a JS timer takes; longer TTLs are chained (Node fires longer ones at once). */
const MAX_TIMER_MS = 2_147_483_647

interface Entry<V> {
  readonly kv: KeyValue<V>
  readonly createRevision: Revision
  expiry: Subscription | undefined
}

interface Watcher<V> {
  readonly prefixes: readonly string[]
  readonly subscriber: Subscriber<StoreEvent<V>>
}

type Write<V> = CheckedWrite<V>
const check: ArgumentChecks = argumentChecks({ backend: NAME })
const ttlMillis = (what: string, ttl: Duration) => check.ttlMs(what, ttl)

/**
 * Creates an in-memory key-value store. Every operation is a cold Observable that runs
 * synchronously when subscribed; `watch` emits a snapshot on subscribe, then one `changes` event
 * per write under its prefixes, carrying the previous values.
 *
 * ```
 * watch(['a/']):           S----c--------c----
 * put('a/1', v):           -----(u|)
 * put('b/1', v):           ---------(u|)        not under 'a/': no event
 * txn([put a/2, del a/1]): --------------(r|)   one revision, one event
 * ```
 *
 * @example
 * ```ts
 * import { createMemoryStore } from 'rx-datasync'
 * const store = createMemoryStore<string>({ initial: { 'a/x': '1' } })
 * store.watch(['a/']).subscribe((event) => console.log(event.type, event.revision))
 * // snapshot 1n
 * store.put('a/y', '2').subscribe()
 * // changes 2n
 * ```
 */
export function createMemoryStore<V = Uint8Array>(
  options: MemoryStoreOptions<V> = {},
): MemoryStore<V> {
  const scheduler = options.scheduler ?? asyncScheduler
  const entries = new Map<string, Entry<V>>()
  const watchers = new Set<Watcher<V>>()
  // Events wait here while another is being delivered: a watcher that writes from its handler
  // gets its own event after the current one has reached every watcher, so each watcher sees
  // events in revision order.
  const queue: { readonly watcher: Watcher<V>; readonly event: StoreEvent<V> }[] = []
  let draining = false
  let current: Revision = ZERO_REVISION
  let closed = false
  const status = new BehaviorSubject<StoreStatus>(READY)

  const status$ = statusStream(status, () => closed)

  function assertOpen(): void {
    if (closed) throw new ClosedError(`the ${NAME} store`)
  }

  function drain(): void {
    if (draining) return
    draining = true
    try {
      for (let item = queue.shift(); item !== undefined; item = queue.shift()) {
        if (watchers.has(item.watcher)) item.watcher.subscriber.next(item.event)
      }
    } finally {
      draining = false
    }
  }

  function publish(at: Revision, changes: readonly Change<V>[]): void {
    // Only enqueues (calls no handler), so the set of watchers is the one at commit time.
    for (const watcher of watchers) {
      const mine = changes.filter((change) => matchesAny(change.key, watcher.prefixes))
      if (mine.length > 0) {
        queue.push({ watcher, event: { type: 'changes', revision: at, changes: mine } })
      }
    }
    drain()
  }

  function keysUnder(prefix: string): string[] {
    const keys: string[] = []
    for (const key of entries.keys()) if (key.startsWith(prefix)) keys.push(key)
    return keys.sort(compareKeys)
  }

  function itemsUnder(prefixes: readonly string[]): KeyValue<V>[] {
    const items: KeyValue<V>[] = []
    for (const [key, entry] of entries) if (matchesAny(key, prefixes)) items.push(entry.kv)
    return items.sort(byKey)
  }

  function expire(key: string, entry: Entry<V>): void {
    if (closed || entries.get(key) !== entry) return
    commit([{ op: 'delete', key, prefix: false }])
  }

  /** Applies writes as one revision; no revision and no event when nothing changed. */
  function commit(writes: readonly Write<V>[]): { revision: Revision; changed: number } {
    const next = revision(current + 1n)
    const changes: Change<V>[] = []
    const expiries: [string, Entry<V>, number][] = []
    for (const write of writes) {
      if (write.op === 'put') {
        const { key, value } = write
        const old = entries.get(key)
        old?.expiry?.unsubscribe()
        const entry: Entry<V> = {
          kv: Object.freeze({ key, value, revision: next }),
          createRevision: old?.createRevision ?? next,
          expiry: undefined,
        }
        entries.set(key, entry)
        changes.push(
          old === undefined
            ? { op: 'put', key, value, revision: next }
            : { op: 'put', key, value, prev: old.kv.value, revision: next },
        )
        if (write.ttl !== undefined) expiries.push([key, entry, write.ttl])
      } else {
        for (const key of write.prefix ? keysUnder(write.key) : [write.key]) {
          const old = entries.get(key)
          if (old === undefined) continue
          old.expiry?.unsubscribe()
          entries.delete(key)
          changes.push({ op: 'delete', key, prev: old.kv.value, revision: next })
        }
      }
    }
    if (changes.length === 0) return { revision: current, changed: 0 }
    current = next
    // Scheduled once the write is committed, so even a synchronous scheduler expires the right entry.
    for (const [key, entry, ms] of expiries) {
      entry.expiry = expiryTimer(ms, scheduler).subscribe(() => {
        expire(key, entry)
      })
    }
    publish(next, changes)
    return { revision: next, changed: changes.length }
  }

  function conditionHolds(condition: TxnCondition<V>): boolean {
    const entry = entries.get(condition.key)
    if ('exists' in condition) return (entry !== undefined) === condition.exists
    // As in etcd, a missing key's mod revision is 0.
    if ('revision' in condition) return (entry?.kv.revision ?? ZERO_REVISION) === condition.revision
    return entry !== undefined && valuesEqual(entry.kv.value, condition.value)
  }

  if (options.initial !== undefined) {
    const seed = new Map<string, V>()
    const pairs = isIterable(options.initial) ? options.initial : Object.entries(options.initial)
    for (const [key, value] of pairs) {
      check.key('initial', key)
      check.value('initial', key, value)
      seed.set(key, value)
    }
    commit([...seed].map(([key, value]) => ({ op: 'put' as const, key, value })))
  }

  return {
    name: NAME,
    capabilities: CAPABILITIES,
    status$,

    watch(prefixes: readonly string[]): Observable<StoreEvent<V>> {
      return new Observable<StoreEvent<V>>((subscriber) => {
        try {
          assertOpen()
          check.prefixes(prefixes)
        } catch (error) {
          subscriber.error(error)
          return undefined
        }
        const watcher: Watcher<V> = { prefixes: [...prefixes], subscriber }
        watchers.add(watcher)
        // Through the queue: a watch started from another watcher's handler gets its snapshot
        // right after that handler returns, before any later event.
        queue.push({
          watcher,
          event: {
            type: 'snapshot',
            revision: current,
            items: itemsUnder(watcher.prefixes),
            cause: 'startup',
          },
        })
        drain()
        return () => {
          watchers.delete(watcher)
        }
      })
    },

    get(key: string): Observable<KeyValue<V> | undefined> {
      return operation(() => {
        assertOpen()
        check.key('get', key)
        return entries.get(key)?.kv
      })
    },

    list(prefix: string): Observable<readonly KeyValue<V>[]> {
      return operation(() => {
        assertOpen()
        check.prefix('list', prefix)
        return itemsUnder([prefix])
      })
    },

    listKeys(prefix: string): Observable<readonly string[]> {
      return operation(() => {
        assertOpen()
        check.prefix('listKeys', prefix)
        return keysUnder(prefix)
      })
    },

    put(key: string, value: V, putOptions?: PutOptions): Observable<void> {
      return operation(() => {
        assertOpen()
        check.key('put', key)
        check.value('put', key, value)
        const ttl = putOptions?.ttl
        commit([
          ttl === undefined
            ? { op: 'put', key, value }
            : { op: 'put', key, value, ttl: ttlMillis('put', ttl) },
        ])
        return undefined
      })
    },

    delete(key: string, deleteOptions?: DeleteOptions): Observable<{ readonly deleted: number }> {
      return operation(() => {
        assertOpen()
        const prefix = deleteOptions?.prefix === true
        if (prefix) check.prefix('delete', key)
        else check.key('delete', key)
        return { deleted: commit([{ op: 'delete', key, prefix }]).changed }
      })
    },

    txn(ops: readonly TxnOp<V>[], txnOptions?: TxnOptions<V>): Observable<TxnResult> {
      return operation(() => {
        assertOpen()
        const writes = check.writes(ops, ttlMillis)
        const conditions = txnOptions?.conditions ?? []
        check.conditions(conditions)
        if (!conditions.every(conditionHolds)) return { succeeded: false, revision: current }
        return { succeeded: true, revision: commit(writes).revision }
      })
    },

    close(): Promise<void> {
      if (!closed) {
        closed = true
        for (const entry of entries.values()) {
          entry.expiry?.unsubscribe()
          entry.expiry = undefined
        }
        const active = [...watchers]
        watchers.clear()
        queue.length = 0
        for (const watcher of active) watcher.subscriber.complete()
        status.next(CLOSED)
        status.complete()
      }
      return Promise.resolve()
    },

    revision(): Revision {
      return current
    },

    dump(): Snapshot<V> {
      return createSnapshot(itemsUnder(['']))
    },
  }
}

/** A cold Observable that runs `run` on subscribe and emits its result, or its error. */
function operation<T>(run: () => T): Observable<T> {
  return new Observable<T>((subscriber) => {
    let result: T
    try {
      result = run()
    } catch (error) {
      subscriber.error(error)
      return
    }
    subscriber.next(result)
    subscriber.complete()
  })
}

function expiryTimer(ms: number, scheduler: SchedulerLike): Observable<unknown> {
  return ms <= MAX_TIMER_MS
    ? timer(ms, scheduler)
    : timer(MAX_TIMER_MS, scheduler).pipe(
        concatMap(() => expiryTimer(ms - MAX_TIMER_MS, scheduler)),
      )
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function byKey(a: { readonly key: string }, b: { readonly key: string }): number {
  return compareKeys(a.key, b.key)
}

function isIterable<T>(value: object): value is Iterable<T> {
  return typeof (value as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function'
}
