import {
  BehaviorSubject,
  EMPTY,
  Subject,
  Subscription,
  asyncScheduler,
  concat,
  concatWith,
  throwError,
  connect,
  defer,
  distinctUntilChanged,
  filter,
  finalize,
  ignoreElements,
  merge,
  Observable,
  share,
  skip,
  startWith,
  switchMap,
  tap,
} from 'rxjs'
import { identity, type Codec } from '../core/codec.js'
import { toMillis } from '../core/duration.js'
import { ClosedError, DatasyncError } from '../core/errors.js'
import type { ChangesEvent, SnapshotCause, SnapshotEvent, StoreEvent } from '../core/events.js'
import type { KvStore } from '../core/store.js'
import { ConsumerState } from './consumer-state.js'
import { awaitAck, type AckSettings } from './operators/await-ack.js'
import type {
  Consumer,
  ConsumerEvent,
  ConsumerOptions,
  DatasyncOptions,
  SyncActivity,
  EventReason,
  SyncStatus,
} from './types.js'

/** The orchestrator: consumers register, then `start()` (or subscribe to `run$`). */
export interface Datasync<R> {
  /**
   * Registers a consumer. Registration order is resync order. A consumer registered while the
   * orchestrator runs gets its own resync (reason `register`) from a fresh snapshot; the others
   * receive only what changed, if anything.
   *
   * @throws TypeError on a duplicate name, or prefixes that are not a non-empty list of strings.
   */
  register<T = R>(name: string, options: ConsumerOptions<T, R>): Consumer<T>
  /**
   * The orchestration itself, cold: subscribing connects to the store and runs rounds and
   * deltas; it emits every status change; unsubscribing stops it and cancels the store watch.
   * Subscribers share one run. Errors only when halted.
   */
  readonly run$: Observable<SyncStatus>
  /** Subscribes to `run$` (errors are kept in `status$` and `errors$`); returns the subscription. */
  start(): Subscription
  /** Starts a fresh full resync round for every consumer (reason `manual`). */
  resync(): void
  /** The current state, replayed to new subscribers. */
  readonly status$: Observable<SyncStatus>
  /** Every failure worth a log line: ack timeouts, `done(error)`, undecodable values, store faults. */
  readonly errors$: Observable<DatasyncError>
  /**
   * Each step as it happens (rounds, deliveries, acks with their latency, lag changes): the
   * source of metrics. Hot; nothing is replayed.
   */
  readonly activity$: Observable<SyncActivity>
  /** Stops the run (status `stopped`). Registered consumers and their views stay; start again later. */
  stop(): void
  /** Stops and completes every stream. The store itself is not closed (it may be shared). */
  close(): void
}

interface Round {
  readonly snapshot: SnapshotEvent<unknown>
  readonly reason: EventReason
}

function reasonOf(cause: SnapshotCause): EventReason {
  return cause === 'reconnect' ? 'reconnect' : 'gap'
}

/**
 * Creates an orchestrator over a store. Each store snapshot (start-up or after a gap) starts a
 * round: consumers get their part in registration order, each acknowledging before the next
 * starts; only then do changes flow, per consumer, coalesced while it is busy. A new snapshot
 * cancels the round in progress and starts over.
 *
 * ```
 * store:      S(a=1)----------c(a=2)------------
 * consumer A: R(a=1)--done----------c(a:1->2)---
 * consumer B: --------R(a=1)--done---c(a:1->2)--
 * ```
 *
 * @example
 * ```ts
 * import { createDatasync, createMemoryStore, json } from 'rx-datasync'
 * const sync = createDatasync(createMemoryStore(), { ackTimeout: '10s' })
 * const routes = sync.register('routes', { prefixes: ['config/routes/'], codec: json<{ via: string }>() })
 * routes.events$.subscribe((event) => { console.log(event.kind); event.done() })
 * sync.start()
 * ```
 */
export function createDatasync<R>(store: KvStore<R>, options: DatasyncOptions = {}): Datasync<R> {
  const scheduler = options.scheduler ?? asyncScheduler
  const ackTimeoutMs = toMillis(options.ackTimeout ?? '10s', 'ackTimeout')
  const retryDelayMs = toMillis(options.retryDelay ?? '1s', 'retryDelay')
  const policy = options.onAckFailure ?? 'continue'
  const maxRetries = options.maxRetries ?? 3
  const defaultMaxInFlight = options.maxInFlight ?? 1
  if (!['continue', 'retry', 'halt'].includes(policy)) {
    throw new TypeError(
      `onAckFailure: expected 'continue', 'retry' or 'halt', got ${JSON.stringify(policy)}`,
    )
  }
  checkCount('maxInFlight', defaultMaxInFlight, 1)
  checkCount('maxRetries', maxRetries, 0)

  const states: ConsumerState<R, unknown>[] = []
  const status = new BehaviorSubject<SyncStatus>({ state: 'idle' })
  const errors = new Subject<DatasyncError>()
  const activity = new Subject<SyncActivity>()
  const restarts = new Subject<EventReason>()
  let running = false
  let closed = false
  let started: Subscription | undefined

  const report = (error: DatasyncError) => {
    errors.next(error)
  }
  const setStatus = (next: SyncStatus) => {
    const current = status.value
    if (current.state !== next.state || current.error !== next.error) status.next(next)
  }

  const ackSettings = (consumer: string, kind: 'resync' | 'change'): AckSettings => ({
    consumer,
    kind,
    timeoutMs: ackTimeoutMs,
    policy,
    maxRetries,
    retryDelayMs,
    scheduler,
    report,
    settled: (latencyMs, error) => {
      if (!activity.observed) return
      activity.next(
        error
          ? { type: 'acknowledged', consumer, kind, latencyMs, error }
          : { type: 'acknowledged', consumer, kind, latencyMs },
      )
    },
  })

  /** Gives a consumer its event, and records it. */
  const deliver = <T>(state: ConsumerState<R, T>, event: ConsumerEvent<T>): void => {
    if (activity.observed) {
      activity.next({
        type: 'delivered',
        consumer: state.name,
        kind: event.kind,
        reason: event.reason,
        keys: event.kind === 'resync' ? event.items.length : event.changes.length,
      })
    }
    state.events.next(event)
  }

  const session = (): Observable<never> => {
    const fatal = new Subject<never>()
    let gateOpen = false

    const pump = (state: ConsumerState<R, unknown>): void => {
      while (gateOpen && state.inFlight < state.maxInFlight && state.queue.size > 0) {
        const changes = state.takeQueued()
        const last = changes.at(-1)
        if (last === undefined) return
        state.inFlight++
        // The delivery's subscription is registered before it runs: a consumer may ack at once.
        const delivery = new Subscription()
        state.deltas.add(delivery)
        delivery.add(
          awaitAck(
            (done) => {
              deliver(state, {
                kind: 'change',
                consumer: state.name,
                reason: 'live',
                revision: last.revision,
                changes,
                done,
              })
            },
            ackSettings(state.name, 'change'),
          ).subscribe({
            error: (error: unknown) => {
              fatal.error(error)
            },
            complete: () => {
              state.inFlight--
              state.deltas.remove(delivery)
              pump(state)
              state.publishLag()
            },
          }),
        )
      }
    }

    const onChanges = (event: ChangesEvent<R>) => {
      for (const state of states) {
        state.enqueue(event.changes, event.revision)
        pump(state)
        state.publishLag()
      }
    }

    const stepFor = (state: ConsumerState<R, unknown>, round: Round): Observable<never> =>
      defer(() => {
        const snapshot = round.snapshot as SnapshotEvent<R>
        const full =
          state.needsResync ||
          round.reason === 'manual' ||
          (round.reason !== 'startup' &&
            round.reason !== 'register' &&
            options.resyncAfterReconnect === true)
        if (full) {
          const reason = state.needsResync ? state.firstReason : round.reason
          return awaitAck(
            (done) => {
              const items = state.replaceView(snapshot.items)
              state.needsResync = false
              deliver(state, {
                kind: 'resync',
                consumer: state.name,
                reason,
                revision: snapshot.revision,
                items,
                done,
              })
            },
            ackSettings(state.name, 'resync'),
          )
        }
        const changes = state.diffTo(snapshot.items, snapshot.revision)
        if (changes.length === 0) return EMPTY
        return awaitAck(
          (done) => {
            deliver(state, {
              kind: 'change',
              consumer: state.name,
              reason: diffReason(round.reason),
              revision: snapshot.revision,
              changes,
              done,
            })
          },
          ackSettings(state.name, 'change'),
        )
      }) as Observable<never>

    const runRound = (round: Round): Observable<never> => {
      gateOpen = false
      for (const state of states) state.resetQueue(round.snapshot.revision)
      setStatus({ state: 'resyncing' })
      activity.next({
        type: 'round',
        reason: round.reason,
        cause: round.snapshot.cause,
        revision: round.snapshot.revision,
      })
      return concat(...states.map((state) => stepFor(state, round))).pipe(
        tap({
          complete: () => {
            gateOpen = true
            setStatus({ state: 'in-sync' })
            for (const state of states) pump(state)
          },
        }),
      )
    }

    const watchOnce = (reason: EventReason): Observable<never> => {
      const prefixes = [...new Set(states.flatMap((state) => state.prefixes))]
      let first = true
      return store.watch(prefixes).pipe(
        // A watch ends only when its store is closed: nothing more can be kept in sync.
        concatWith(throwError(() => new ClosedError(`the ${store.name} store`))),
        connect((events: Observable<StoreEvent<R>>) =>
          merge(
            events.pipe(
              filter((event): event is SnapshotEvent<R> => event.type === 'snapshot'),
              switchMap((snapshot) => {
                const roundReason = first ? reason : reasonOf(snapshot.cause)
                first = false
                return runRound({
                  snapshot: snapshot,
                  reason: roundReason,
                })
              }),
            ),
            events.pipe(
              filter((event): event is ChangesEvent<R> => event.type === 'changes'),
              tap(onChanges),
              ignoreElements(),
            ),
          ),
        ),
      )
    }

    // The store's own health: a lost connection degrades the status; when it comes back without
    // a snapshot (a resumable watch), the status returns to where the round left it.
    const storeHealth = store.status$.pipe(
      tap((storeStatus) => {
        const current = status.value.state
        if (storeStatus.state === 'degraded') {
          if (storeStatus.error) report(storeStatus.error)
          if (current !== 'connecting') {
            setStatus(
              storeStatus.error
                ? { state: 'degraded', error: storeStatus.error }
                : { state: 'degraded' },
            )
          }
        } else if (storeStatus.state === 'ready' && current === 'degraded') {
          if (options.resyncAfterReconnect === true && store.capabilities.resumable) {
            // A resuming store sends no snapshot after a reconnect (nothing was lost), but a full
            // resync round was asked for: restart the watch to get one.
            restarts.next('reconnect')
          } else {
            setStatus({ state: gateOpen ? 'in-sync' : 'resyncing' })
          }
        }
      }),
      ignoreElements(),
    )

    return merge(
      restarts.pipe(
        startWith<EventReason>('startup'),
        switchMap((reason) => watchOnce(reason)),
      ),
      storeHealth,
      fatal,
    ).pipe(
      finalize(() => {
        gateOpen = false
        for (const state of states) state.resetQueue(state.revision)
      }),
    )
  }

  const run$ = defer(() => {
    if (closed) throw new ClosedError('the orchestrator')
    running = true
    setStatus({ state: 'connecting' })
    return merge(status.pipe(filter(() => running)), session())
  }).pipe(
    tap({
      error: (error: unknown) => {
        running = false
        const failure =
          error instanceof DatasyncError
            ? error
            : new DatasyncError('internal', String(error), { cause: error })
        setStatus({ state: 'halted', error: failure })
      },
    }),
    finalize(() => {
      if (running) {
        running = false
        if (status.value.state !== 'halted') setStatus({ state: 'stopped' })
      }
    }),
    distinctUntilChanged(),
    share(),
  )

  const register = <T>(name: string, consumerOptions: ConsumerOptions<T, R>): Consumer<T> => {
    if (closed) throw new ClosedError('the orchestrator')
    if (typeof name !== 'string' || name === '') {
      throw new TypeError(
        `register: expected a non-empty consumer name, got ${JSON.stringify(name)}`,
      )
    }
    if (states.some((state) => state.name === name)) {
      throw new TypeError(`register: a consumer named '${name}' is already registered`)
    }
    const prefixes = consumerOptions.prefixes as unknown
    if (
      !Array.isArray(prefixes) ||
      prefixes.length === 0 ||
      !prefixes.every((p) => typeof p === 'string')
    ) {
      throw new TypeError(
        `register '${name}': expected prefixes as a non-empty array of strings, got ${JSON.stringify(prefixes)}`,
      )
    }
    const maxInFlight = consumerOptions.maxInFlight ?? defaultMaxInFlight
    checkCount(`register '${name}': maxInFlight`, maxInFlight, 1)
    const codec = (consumerOptions.codec ?? identity<R>()) as Codec<T, R>
    const decode = consumerOptions.decode ?? 'eager'
    if (decode !== 'eager' && decode !== 'lazy') {
      throw new TypeError(
        `register '${name}': decode: expected 'eager' or 'lazy', got ${JSON.stringify(decode)}`,
      )
    }
    const state = new ConsumerState<R, T>(
      name,
      [...prefixes],
      codec,
      maxInFlight,
      report,
      decode,
      store.name,
    )
    states.push(state as ConsumerState<R, unknown>)
    state.lag.pipe(skip(1), distinctUntilChanged()).subscribe((lag) => {
      activity.next({ type: 'lag', consumer: name, lag })
    })
    if (running) {
      state.firstReason = 'register'
      restarts.next('register')
    }
    return {
      name,
      prefixes: state.prefixes,
      events$: state.events.asObservable(),
      lag$: state.lag.pipe(distinctUntilChanged()),
      view: () => state.snapshot(),
    }
  }

  return {
    register,
    run$,
    start() {
      started?.unsubscribe()
      started = run$.subscribe({ error: () => undefined })
      return started
    },
    resync() {
      if (running) restarts.next('manual')
    },
    status$: status.asObservable(),
    errors$: errors.asObservable(),
    activity$: activity.asObservable(),
    stop() {
      started?.unsubscribe()
      started = undefined
    },
    close() {
      if (closed) return
      started?.unsubscribe()
      closed = true
      for (const state of states) {
        state.events.complete()
        state.lag.complete()
      }
      errors.complete()
      activity.complete()
      status.complete()
      restarts.complete()
    },
  }
}

/** The reason a round's differences are delivered with, for consumers that already hold a view. */
function diffReason(reason: EventReason): EventReason {
  // A fresh run over existing views is a reconnect; a late registration's restart is just news.
  return reason === 'startup' ? 'reconnect' : reason === 'register' ? 'live' : reason
}

function checkCount(what: string, value: number, min: number): void {
  if (!(Number.isInteger(value) || value === Infinity) || value < min) {
    throw new TypeError(`${what}: expected an integer of at least ${min}, got ${value}`)
  }
}
