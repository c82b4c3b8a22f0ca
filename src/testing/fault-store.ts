import {
  BehaviorSubject,
  Observable,
  Subscription,
  asyncScheduler,
  concatMap,
  defer,
  filter,
  map,
  of,
  throwError,
  timer,
  type Subscriber,
} from 'rxjs'
import {
  createMemoryStore,
  type MemoryStore,
  type MemoryStoreOptions,
} from '../backends/memory/index.js'
import { toMillis, type Duration } from '../core/duration.js'
import { ClosedError, UnavailableError, type DatasyncError } from '../core/errors.js'
import type { SnapshotCause, StoreEvent } from '../core/events.js'
import type { KvStore, StoreStatus } from '../core/store.js'

/** Options of {@link createFaultStore}. */
export interface FaultStoreOptions<V = Uint8Array> extends MemoryStoreOptions<V> {
  /**
   * The store to wrap. When absent, a memory store is created from these options (`initial`,
   * `scheduler`) and closed with the fault store; a store given here is left open by `close()`,
   * and `initial` must then be absent.
   *
   * @default a new memory store
   */
  readonly store?: MemoryStore<V>
}

/**
 * A {@link KvStore} over a memory store that injects faults on demand, for tests of code that
 * must survive a real backend: each fault method can be called at any time.
 */
export interface FaultStore<V = Uint8Array> extends KvStore<V> {
  /** The wrapped store: write to it directly to make changes that bypass the faults. */
  readonly inner: MemoryStore<V>
  /** How many watches of this store are subscribed now. */
  readonly watchSubscriptions: number
  /** How many watches of this store were ever subscribed. */
  readonly totalWatchSubscriptions: number
  /**
   * Every active watch relists: it emits a fresh snapshot at the current revision with `cause`,
   * as a backend does after its watch stream broke. Events not yet delivered (delayed ones) are
   * lost. Does nothing while disconnected.
   *
   * @param cause - the snapshot's cause. @default 'watch-error'
   */
  breakWatch(cause?: SnapshotCause): void
  /**
   * Simulates a dead connection: watches stop delivering (events are lost, not buffered), every
   * operation fails with `error` (retryable), and `status$` says `degraded`. Does nothing while
   * already disconnected.
   *
   * @param error - the error of the outage. @default an UnavailableError
   */
  disconnect(error?: DatasyncError): void
  /**
   * Ends an outage: `status$` says `ready`, and every active watch emits a fresh snapshot with
   * `cause` (a watch that never had one gets `startup`), so the gap heals by relist. Does nothing
   * while connected.
   *
   * @param cause - the snapshot's cause. @default 'reconnect'
   */
  reconnect(cause?: SnapshotCause): void
  /**
   * From now until called with 0, every watch event is delivered `delay` later on the scheduler,
   * in order (an event never overtakes an earlier one).
   */
  delayEvents(delay: Duration): void
  /**
   * The next `count` writes (put, delete, txn; counted when subscribed) fail with `error` without
   * reaching the inner store. `Infinity` fails every write until `failWrites(0)`.
   *
   * @param error - the error to fail with. @default a new retryable UnavailableError each time
   */
  failWrites(count: number, error?: Error): void
  /**
   * The next `count` change events are silently dropped, counted across all watches in delivery
   * order: a genuine lost event that only a later snapshot (`breakWatch`, `reconnect`) heals.
   */
  dropNextEvents(count: number): void
}

interface FaultWatch<V> {
  readonly prefixes: readonly string[]
  readonly subscriber: Subscriber<StoreEvent<V>>
  /** The subscription to the inner watch; absent while disconnected. */
  connection: Subscription | undefined
  /** Bumped on every (dis)connection, so a stale inner watch can never deliver. */
  generation: number
  /** Whether a snapshot reached the subscriber (the next one then carries a gap cause). */
  delivered: boolean
}

/**
 * Creates a store that passes every operation to a memory store and lets a test inject faults:
 * broken watches, outages, slow events, failing writes, lost events.
 *
 * ```
 * watch(['a/']):      S---c---x(disconnect)------S(reconnect)---c---
 * inner writes:       ----w-------w-----w--------------------w------
 * ```
 *
 * @example
 * ```ts
 * import { createFaultStore } from 'rx-datasync/testing'
 * const store = createFaultStore<string>()
 * store.watch(['a/']).subscribe((event) => console.log(event.type))   // snapshot
 * store.disconnect()
 * store.inner.put('a/x', 'missed').subscribe()                          // not delivered
 * store.reconnect()                                                     // snapshot (cause 'reconnect')
 * ```
 */
export function createFaultStore<V = Uint8Array>(
  options: FaultStoreOptions<V> = {},
): FaultStore<V> {
  const { store: given, ...memoryOptions } = options
  if (given !== undefined && options.initial !== undefined) {
    throw new TypeError(
      'createFaultStore: expected either store or initial, got both; seed the given store instead',
    )
  }
  const inner = given ?? createMemoryStore<V>(memoryOptions)
  const scheduler = options.scheduler ?? asyncScheduler
  const name = `fault(${inner.name})`
  const watches = new Set<FaultWatch<V>>()
  const status = new BehaviorSubject<StoreStatus>({ state: 'ready' })
  let total = 0
  let closed = false
  let closing: Promise<void> | undefined
  let outage: DatasyncError | undefined
  let delayMs = 0
  let writeFailures = 0
  let writeError: Error | undefined
  let drops = 0

  const status$ = new Observable<StoreStatus>((subscriber) => {
    if (closed) {
      subscriber.next({ state: 'closed' })
      subscriber.complete()
      return undefined
    }
    return status.subscribe(subscriber)
  })

  function takeDrop(): boolean {
    if (drops <= 0) return false
    drops -= 1
    return true
  }

  function disconnectWatch(watch: FaultWatch<V>): void {
    watch.generation += 1
    watch.connection?.unsubscribe()
    watch.connection = undefined
  }

  function connect(watch: FaultWatch<V>, cause: SnapshotCause): void {
    disconnectWatch(watch)
    const generation = watch.generation
    const connection = new Subscription()
    watch.connection = connection
    const relistCause: SnapshotCause = watch.delivered ? cause : 'startup'
    let first = true
    // Added to a container made beforehand: the inner snapshot arrives during subscribe, and a
    // handler may reconnect (or unsubscribe) this watch before subscribe returns.
    connection.add(
      inner
        .watch(watch.prefixes)
        .pipe(
          map((event): StoreEvent<V> => {
            const relabel = first && event.type === 'snapshot'
            first = false
            return relabel ? { ...event, cause: relistCause } : event
          }),
          filter((event) => event.type === 'snapshot' || !takeDrop()),
          map((event) => ({ event, due: scheduler.now() + delayMs })),
          // concatMap keeps order: an event waits for the earlier ones, then for its own due time.
          concatMap(({ event, due }) => {
            const wait = due - scheduler.now()
            return wait > 0 ? timer(wait, scheduler).pipe(map(() => event)) : of(event)
          }),
        )
        .subscribe({
          next: (event) => {
            if (watch.generation !== generation) return
            if (event.type === 'snapshot') watch.delivered = true
            watch.subscriber.next(event)
          },
          error: (error: unknown) => {
            if (watch.generation === generation) watch.subscriber.error(error)
          },
          complete: () => {
            if (watch.generation === generation) watch.subscriber.complete()
          },
        }),
    )
  }

  function relistAll(cause: SnapshotCause): void {
    for (const watch of [...watches]) if (watches.has(watch)) connect(watch, cause)
  }

  function guarded<T>(write: boolean, run: () => Observable<T>): Observable<T> {
    return defer(() => {
      if (closed) return throwError(() => new ClosedError(`the ${name} store`))
      if (outage !== undefined) {
        const error = outage
        return throwError(() => error)
      }
      if (write && writeFailures > 0) {
        writeFailures -= 1
        const error =
          writeError ?? new UnavailableError(name, 'write failed: fault injected by failWrites()')
        return throwError(() => error)
      }
      return run()
    })
  }

  function assertCount(what: string, count: number): void {
    if (
      typeof count !== 'number' ||
      !(Number.isSafeInteger(count) || count === Infinity) ||
      count < 0
    ) {
      throw new TypeError(
        `${name} ${what}: expected a non-negative integer or Infinity, got ${String(count)}`,
      )
    }
  }

  return {
    name,
    inner,
    // A reconnect here always relists (a fresh snapshot), as a non-resuming backend does.
    capabilities: { ...inner.capabilities, resumable: false },
    status$,

    get watchSubscriptions(): number {
      return watches.size
    },

    get totalWatchSubscriptions(): number {
      return total
    },

    watch(prefixes) {
      return new Observable<StoreEvent<V>>((subscriber) => {
        if (closed) {
          subscriber.error(new ClosedError(`the ${name} store`))
          return undefined
        }
        const watch: FaultWatch<V> = {
          // A copy, for relists; a non-array is left for the inner store to refuse.
          prefixes: Array.isArray(prefixes) ? Array.from(prefixes as readonly string[]) : prefixes,
          subscriber,
          connection: undefined,
          generation: 0,
          delivered: false,
        }
        watches.add(watch)
        total += 1
        // While disconnected the watch waits for reconnect() to get its first snapshot.
        if (outage === undefined) connect(watch, 'startup')
        return () => {
          watches.delete(watch)
          disconnectWatch(watch)
        }
      })
    },

    get: (key) => guarded(false, () => inner.get(key)),
    list: (prefix) => guarded(false, () => inner.list(prefix)),
    listKeys: (prefix) => guarded(false, () => inner.listKeys(prefix)),
    put: (key, value, putOptions) => guarded(true, () => inner.put(key, value, putOptions)),
    delete: (key, deleteOptions) => guarded(true, () => inner.delete(key, deleteOptions)),
    txn: (ops, txnOptions) => guarded(true, () => inner.txn(ops, txnOptions)),

    breakWatch(cause = 'watch-error') {
      if (closed || outage !== undefined) return
      relistAll(cause)
    },

    disconnect(error) {
      if (closed || outage !== undefined) return
      outage =
        error ?? new UnavailableError(name, 'connection lost: fault injected by disconnect()')
      for (const watch of watches) disconnectWatch(watch)
      status.next({ state: 'degraded', error: outage })
    },

    reconnect(cause = 'reconnect') {
      if (closed || outage === undefined) return
      outage = undefined
      status.next({ state: 'ready' })
      relistAll(cause)
    },

    delayEvents(delay) {
      delayMs = toMillis(delay, `${name} delayEvents`)
    },

    failWrites(count, error) {
      assertCount('failWrites', count)
      writeFailures = count
      writeError = error
    },

    dropNextEvents(count) {
      assertCount('dropNextEvents', count)
      drops = count
    },

    close() {
      if (closing === undefined) {
        closed = true
        const active = [...watches]
        watches.clear()
        for (const watch of active) disconnectWatch(watch)
        for (const watch of active) watch.subscriber.complete()
        status.next({ state: 'closed' })
        status.complete()
        closing = given === undefined ? inner.close() : Promise.resolve()
      }
      return closing
    },
  }
}
