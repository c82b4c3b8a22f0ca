import {
  BehaviorSubject,
  catchError,
  filter,
  interval,
  map,
  of,
  race,
  Subscription,
  switchMap,
  take,
  timer,
} from 'rxjs'
import { ClosedError, describe } from '../../core/errors.js'
import type {
  Change,
  ChangesEvent,
  KeyValue,
  SnapshotCause,
  StoreEvent,
} from '../../core/events.js'
import { byKey } from '../../core/order.js'
import { ZERO_REVISION, type Revision } from '../../core/revision.js'
import type { KvStore } from '../../core/store.js'
import { wireError, type WireError, type WireStatus } from '../wire.js'
import type { Counters } from './metrics.js'
import type { ServerSettings } from './options.js'
import type { Session } from './session.js'

/**
 * The fan-out behind every watch client (Calico Typha's idea): one upstream `store.watch` over
 * the served prefixes, whatever the number of clients. The hub keeps the current view (so every
 * change carries `prev`, whatever the store) and a log of the last `historySize` change
 * batches. A client that comes back with `Last-Event-ID: R` gets the batches after R from the
 * log when R is in it (a resume), else a fresh snapshot (a relist): cause `compacted` when R is
 * older than the log, `index-reset` when R is ahead of the store (another history, e.g. a
 * memory store that was recreated).
 *
 * Every event goes to every session synchronously, in order; a session never makes the hub
 * wait (it buffers, and is cut past its limit).
 */
export class Hub {
  readonly sessions = new Set<Session>()
  readonly #view = new Map<string, KeyValue<Uint8Array>>()
  #revision: Revision = ZERO_REVISION
  #log: ChangesEvent<Uint8Array>[] = []
  /** Clients whose Last-Event-ID is at or after it resume from the log. */
  #logStart: Revision = ZERO_REVISION
  #ready = false
  #failed: WireError | undefined
  #status: WireStatus = { state: 'ready' }
  #waiting: [Session, Revision | undefined][] = []
  /** Sessions waiting for a snapshot, and whether a barrier is running for earlier ones. */
  #toSnapshot: [Session, SnapshotCause][] = []
  #barrierRunning = false
  readonly #revisions = new BehaviorSubject<Revision>(ZERO_REVISION)
  readonly #subscription = new Subscription()

  constructor(
    readonly store: KvStore,
    readonly settings: ServerSettings,
    readonly counters: Counters,
  ) {}

  /** Whether the upstream watch has delivered its snapshot (and not failed). */
  get ready(): boolean {
    return this.#ready && this.#failed === undefined
  }

  /** The revision of the view. */
  get revision(): Revision {
    return this.#revision
  }

  /** Why the upstream watch ended for good, if it did. */
  get failed(): WireError | undefined {
    return this.#failed
  }

  /** Starts the upstream watch, the status relay and the heartbeat. */
  start(): void {
    this.#subscription.add(
      this.store.watch(this.settings.prefixes).subscribe({
        next: (event) => {
          this.#onEvent(event)
        },
        error: (error: unknown) => {
          this.#fail(wireError(error))
        },
        complete: () => {
          this.#fail(wireError(new ClosedError(`the served ${this.store.name} store`)))
        },
      }),
    )
    this.#subscription.add(
      this.store.status$.subscribe((status) => {
        if (status.state === 'closed') return
        const next: WireStatus =
          status.state === 'ready'
            ? { state: 'ready' }
            : {
                state: 'degraded',
                error: status.error
                  ? wireError(status.error)
                  : {
                      code: 'unavailable',
                      message: `the ${this.store.name} store is ${status.state}`,
                    },
              }
        if (next.state === 'ready' && this.#status.state === 'ready') return
        this.#status = next
        for (const session of this.sessions) session.status(next)
      }),
    )
    this.#subscription.add(
      interval(this.settings.heartbeatMs, this.settings.scheduler).subscribe(() => {
        if (!this.ready) return
        const shared = {}
        for (const session of this.sessions) session.heartbeat(this.#revision, shared)
      }),
    )
  }

  /**
   * Starts a client's stream: a resume from the log after `after`, or a snapshot. Waits for
   * the upstream snapshot when there is none yet.
   */
  attach(session: Session, after: Revision | undefined): void {
    if (this.#failed !== undefined) {
      session.fail(this.#failed)
      return
    }
    this.sessions.add(session)
    if (!this.#ready) {
      this.#waiting.push([session, after])
      return
    }
    if (after === undefined) {
      this.#snapshotAfterBarrier(session, 'startup')
    } else if (after > this.#revision || after < this.#logStart) {
      this.counters.relists++
      this.#snapshotAfterBarrier(session, after > this.#revision ? 'index-reset' : 'compacted')
    } else {
      this.counters.resumes++
      session.resume(after)
      if (this.#status.state !== 'ready') session.status(this.#status)
      for (const batch of this.#batchesAfter(after)) session.changes(batch.revision, batch.changes)
      session.progress(this.#revision)
    }
  }

  /**
   * Sends `session` a snapshot once the view holds every write completed before now: the
   * store's current revision (an empty transaction reads it) has come through the upstream
   * watch, or `syncWait` passed. Sessions arriving while a barrier runs share the next one.
   */
  #snapshotAfterBarrier(session: Session, cause: SnapshotCause): void {
    this.#toSnapshot.push([session, cause])
    if (this.#barrierRunning) return
    this.#barrierRunning = true
    const batch = this.#toSnapshot
    this.#toSnapshot = []
    const current = this.store.capabilities.txn
      ? this.store.txn([]).pipe(
          map((result) => result.revision),
          catchError(() => of(this.#revision)),
        )
      : of(this.#revision)
    const caughtUp = current.pipe(
      switchMap((target) =>
        race(
          this.#revisions.pipe(filter((at) => at >= target)),
          timer(this.settings.syncWaitMs, this.settings.scheduler),
        ),
      ),
      take(1),
    )
    this.#subscription.add(
      caughtUp.subscribe(() => {
        this.#barrierRunning = false
        for (const [waiting, why] of batch) {
          if (waiting.ended) continue
          waiting.snapshot(this.#revision, this.#items(waiting), why)
          if (this.#status.state !== 'ready') waiting.status(this.#status)
        }
        const next = this.#toSnapshot.shift()
        if (next !== undefined) this.#snapshotAfterBarrier(...next)
      }),
    )
  }

  /** Forgets a session whose stream ended. */
  detach(session: Session): void {
    this.sessions.delete(session)
    this.#waiting = this.#waiting.filter(([waiting]) => waiting !== session)
  }

  /** Stops the upstream watch and ends every stream. */
  stop(): void {
    this.#subscription.unsubscribe()
    for (const session of [...this.sessions]) session.close()
  }

  #items(session: Session): KeyValue<Uint8Array>[] {
    const items: KeyValue<Uint8Array>[] = []
    for (const item of this.#view.values()) if (session.sees(item.key)) items.push(item)
    return items.sort(byKey)
  }

  /** The logged batches with a revision greater than `after` (the log is in revision order). */
  #batchesAfter(after: Revision): ChangesEvent<Uint8Array>[] {
    let low = 0
    let high = this.#log.length
    while (low < high) {
      const middle = (low + high) >>> 1
      if ((this.#log[middle]?.revision ?? after) <= after) low = middle + 1
      else high = middle
    }
    return this.#log.slice(low)
  }

  #onEvent(event: StoreEvent<Uint8Array>): void {
    if (event.type === 'snapshot') {
      this.#view.clear()
      for (const item of event.items) this.#view.set(item.key, item)
      this.#revision = event.revision
      this.#log = []
      this.#logStart = event.revision
      this.#revisions.next(event.revision)
      if (!this.#ready) {
        this.#ready = true
        const waiting = this.#waiting
        this.#waiting = []
        for (const [session, after] of waiting) {
          this.sessions.delete(session)
          if (!session.ended) this.attach(session, after)
        }
        return
      }
      // The upstream store relisted (it lost events): every client starts over from this view.
      for (const session of this.sessions) {
        if (!session.waiting) session.snapshot(event.revision, this.#items(session), event.cause)
      }
      return
    }
    const changes: Change<Uint8Array>[] = []
    for (const change of event.changes) {
      const prev = change.prev ?? this.#view.get(change.key)?.value
      if (change.op === 'put') {
        this.#view.set(change.key, {
          key: change.key,
          value: change.value,
          revision: change.revision,
        })
        changes.push(prev === undefined ? change : { ...change, prev })
      } else {
        this.#view.delete(change.key)
        changes.push(prev === undefined ? change : { ...change, prev })
      }
    }
    const batch: ChangesEvent<Uint8Array> = { type: 'changes', revision: event.revision, changes }
    this.#revision = event.revision
    this.#log.push(batch)
    if (this.#log.length > this.settings.historySize) {
      const dropped = this.#log.splice(0, this.#log.length - this.settings.historySize)
      this.#logStart = dropped.at(-1)?.revision ?? this.#logStart
    }
    const shared = {}
    for (const session of this.sessions) session.changes(batch.revision, changes, shared)
    this.#revisions.next(event.revision)
  }

  #fail(error: WireError): void {
    if (this.#failed !== undefined) return
    this.#failed = { ...error, message: `the upstream watch ended: ${describe(error.message)}` }
    for (const session of [...this.sessions]) session.fail(this.#failed)
    this.sessions.clear()
  }
}
