import {
  BehaviorSubject,
  EMPTY,
  Subject,
  concatWith,
  connect,
  defer,
  distinctUntilChanged,
  filter,
  finalize,
  ignoreElements,
  merge,
  share,
  skip,
  startWith,
  switchMap,
  tap,
  throwError,
  timer,
  mergeMap,
  observeOn,
  queueScheduler,
  type Observable,
  type Subscription,
} from 'rxjs'
import { ClosedError, DatasyncError } from '../core/errors.js'
import type { ChangesEvent, SnapshotEvent, StoreEvent } from '../core/events.js'
import type { KvStore } from '../core/store.js'
import { Commits, commitAndWait } from './commit.js'
import { asDatasyncError } from '../internal/errors.js'
import { ConsumerState } from './consumer-state.js'
import { Courier } from './courier.js'
import { DeltaPump } from './deltas.js'
import { keyRetryRules } from './key-retry.js'
import type { Restoring } from './persist/identity.js'
import { SnapshotKeeper } from './persist/keeper.js'
import { resyncRound } from './round.js'
import { isFullRound, reasonOf, restoredWatch, type Restart } from './restart.js'
import { checkPrefixes, resolveConsumer, resolveSettings } from './settings.js'
import type {
  Consumer,
  ConsumerOptions,
  Datasync,
  DatasyncOptions,
  EventReason,
  SyncActivity,
  SyncStatus,
} from './types.js'

export type { Datasync } from './types.js'

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
  const settings = resolveSettings(options)
  /** The registered consumers in registration order (a new list when one closes). */
  let states: ConsumerState<R, unknown>[] = []
  const status = new BehaviorSubject<SyncStatus>({ state: 'idle' })
  const errors = new Subject<DatasyncError>()
  const activity = new Subject<SyncActivity>()
  const restarts = new Subject<Restart>()
  let running = false
  /** Whether a run started already: only the first one restores a saved snapshot. */
  let ranOnce = false
  /** What every store watch asks: a listing after each reconnection, for the full resync. */
  const relist = settings.resyncAfterReconnect ? { relistOnReconnect: true } : {}
  /** The current run's delta pump: a consumer's retry that falls due is delivered through it. */
  let pump: DeltaPump<R> | undefined
  let closed = false
  let started: Subscription | undefined

  const report = (error: DatasyncError) => {
    errors.next(error)
  }
  const keyRetry = keyRetryRules(settings, report, activity, (state) => {
    pump?.pumpOne(state as ConsumerState<R, unknown>)
  })
  const keeper =
    settings.persist &&
    new SnapshotKeeper<R>({
      options: settings.persist,
      storeName: store.name,
      identity: store.identity?.bind(store),
      scheduler: settings.scheduler,
      report,
      activity,
    })
  const setStatus = (next: SyncStatus) => {
    const current = status.value
    if (current.state !== next.state || current.error !== next.error) status.next(next)
  }
  const commits = new Commits<R>()
  const courier = new Courier(
    settings,
    report,
    activity,
    (consumer, error) => {
      commits.settled(consumer, error)
    },
    (state) => {
      commits.afterSettle(state)
    },
  )

  /** One run, from subscribing `run$` to its end: watches, rounds and deltas. */
  const session = (): Observable<never> => {
    const fatal = new Subject<never>()
    const deltas = new DeltaPump(
      () => states,
      courier,
      (error) => {
        fatal.error(error)
      },
    )
    pump = deltas
    /** The store answered this run (not only a restored snapshot is held). */
    let live = false
    /** A restored snapshot waits for the store's identity: its answers say nothing yet. */
    let waiting = false
    const markLive = () => {
      if (waiting) return
      live = true
      if (status.value.state === 'restored') setStatus({ state: 'in-sync' })
    }

    // A snapshot supersedes everything queued: deltas wait until every consumer acked the round.
    const runRound = (snapshot: SnapshotEvent<R>, restart: Restart, whole = false) => {
      deltas.close()
      for (const state of states) state.resetForRound(snapshot.revision)
      setStatus({ state: 'resyncing' })
      const { revision, cause } = snapshot
      // Anti-entropy is a relist for differences only, delivered as a gap's.
      const reason: EventReason = restart === 'anti-entropy' ? 'gap' : restart
      activity.next({ type: 'round', reason, cause, revision })
      const full = isFullRound(restart, reason, settings.resyncAfterReconnect, whole)
      return resyncRound(states, { snapshot, reason, full }, courier).pipe(
        tap({
          complete: () => {
            // In sync before the first delta goes out. The gate opens first: a status subscriber
            // that starts another round (resync()) closes it again before the pump runs. A
            // restored snapshot is not live until the store answers.
            deltas.open()
            setStatus({ state: reason === 'restored' && !live ? 'restored' : 'in-sync' })
            deltas.pumpAll()
          },
        }),
      )
    }

    /**
     * One store watch over the consumers' prefixes. A `restored` snapshot (saved by an earlier
     * run) is given at once, and the watch resumes after its revision (a resumable store sends
     * what changed since, another a snapshot); `resume` false (another store): a full resync.
     */
    const watchOnce = (reason: Restart, { snapshot: restored, resume }: Restoring<R> = {}) => {
      const prefixes = [...new Set(states.flatMap((state) => state.prefixes))]
      let first = true
      let whole = false
      waiting = resume !== undefined
      keeper?.begin(prefixes)
      const watched = restored
        ? restoredWatch(store, prefixes, relist, restored, resume, (same) => {
            whole = !same
            waiting = false
            // The store answered (its identity): live, unless a full round is to follow.
            if (same && resume !== undefined) markLive()
          })
        : store.watch(prefixes, relist)
      return watched.pipe(
        // A watch ends only when its store is closed: nothing more can be kept in sync.
        concatWith(throwError(() => new ClosedError(`the ${store.name} store`))),
        connect((events: Observable<StoreEvent<R>>) =>
          merge(
            events.pipe(
              filter((event): event is SnapshotEvent<R> => event.type === 'snapshot'),
              switchMap((snapshot) => {
                if (snapshot === restored) {
                  keeper?.adopt(snapshot, true)
                  return runRound(snapshot, 'restored')
                }
                keeper?.adopt(snapshot)
                // The round that follows sets the status.
                live = true
                const roundReason = first ? reason : reasonOf(snapshot.cause)
                const wholeRound = first && whole
                first = false
                return runRound(snapshot, roundReason, wholeRound)
              }),
            ),
            events.pipe(
              filter((event): event is ChangesEvent<R> => event.type === 'changes'),
              tap((event) => {
                keeper?.apply(event)
                markLive()
                deltas.onChanges(event)
              }),
              ignoreElements(),
            ),
          ),
        ),
      )
    }

    // The store's own health: a lost connection degrades the status, its return restores it. A
    // full resync after a reconnection comes as the store's snapshot (`relistOnReconnect`).
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
        } else if (storeStatus.state === 'ready') {
          // The store answers: a restored snapshot is followed by what changed since (P4).
          // Not live yet (a restored snapshot waits for the store's identity): still restored.
          const next = !deltas.isOpen ? 'resyncing' : live ? 'in-sync' : 'restored'
          if (current === 'degraded') setStatus({ state: next })
          markLive()
        }
      }),
      ignoreElements(),
    )

    // The first run restores the saved snapshot, if any; later ones hold views already.
    const restore = keeper !== undefined && !ranOnce
    ranOnce = true
    const startup: Observable<never> = restore
      ? keeper
          .load([...new Set(states.flatMap((state) => state.prefixes))])
          .pipe(mergeMap((restoring) => watchOnce('startup', restoring)))
      : watchOnce('startup')
    // Anti-entropy: a relist now and then, only while in sync (a round in progress is one).
    const antiEntropy =
      settings.antiEntropyMs === undefined
        ? EMPTY
        : timer(settings.antiEntropyMs, settings.antiEntropyMs, settings.scheduler).pipe(
            tap(() => {
              if (status.value.state === 'in-sync') restarts.next('anti-entropy')
            }),
            ignoreElements(),
          )

    return merge(
      restarts.pipe(
        // A restart asked for while switchMap tears the last watch down (its end changes the
        // store's status) waits: switchMap entered from its own unsubscribe keeps both watches.
        observeOn(queueScheduler),
        startWith<Restart | undefined>(undefined),
        switchMap((reason) => (reason === undefined ? startup : watchOnce(reason))),
      ),
      storeHealth,
      keeper?.saves() ?? EMPTY,
      antiEntropy,
      fatal,
    ).pipe(
      finalize(() => {
        pump = undefined
        deltas.close()
        for (const state of states) state.cancel()
        keeper?.flush()
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
        setStatus({ state: 'halted', error: asDatasyncError(error) })
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
    const consumer = resolveConsumer(name, consumerOptions, settings.maxInFlight, (taken) =>
      states.some((state) => state.name === taken),
    )
    const state = new ConsumerState<R, T>({
      name,
      ...consumer,
      report,
      storeName: store.name,
      firstReason: running ? 'register' : 'startup',
      keyRetry,
    })
    states.push(state as ConsumerState<R, unknown>)
    state.lag$.pipe(skip(1), distinctUntilChanged()).subscribe((lag) => {
      activity.next({ type: 'lag', consumer: name, lag })
    })
    // A consumer that missed a round (registered while running, or nobody listened) gets its
    // resync from a fresh round when it is subscribed: the store watch restarts (with its
    // prefixes), and the others receive only what changed, if anything.
    state.listening$.pipe(filter((listening) => listening)).subscribe(() => {
      if (running && state.missedRound) restarts.next('register')
    })
    return {
      name,
      get prefixes() {
        return state.prefixes
      },
      events$: state.events$,
      lag$: state.lag$.pipe(distinctUntilChanged()),
      view: () => state.view.snapshot(),
      failing: () => state.failing(),
      setPrefixes(prefixes: readonly string[]) {
        if (state.closed) throw new ClosedError(`the consumer '${name}'`)
        state.setPrefixes(checkPrefixes(`setPrefixes '${name}'`, prefixes))
        if (running && state.listening) restarts.next('register')
      },
      close() {
        if (state.closed) return
        state.close()
        states = states.filter((other) => other !== state)
      },
    }
  }

  return {
    register,
    consumers: () => states.map((state) => state.name),
    commit: (ops, commitOptions = {}) =>
      defer(() => {
        if (closed) throw new ClosedError('the orchestrator')
        if (!running) {
          // Nothing would deliver the write: the caller would wait for its timeout in vain.
          throw new DatasyncError(
            'closed',
            'commit: the orchestrator is not running; start it (sync.start()) before writing through it, or write to the store directly',
          )
        }
        return commitAndWait(store, states, commits, settings.scheduler, ops, commitOptions)
      }),
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
      for (const state of states) state.complete()
      errors.complete()
      activity.complete()
      status.complete()
      restarts.complete()
    },
  }
}
