import {
  Observable,
  defer,
  finalize,
  forkJoin,
  map,
  of,
  switchMap,
  timeout,
  type SchedulerLike,
} from 'rxjs'
import { toMillis } from '../core/duration.js'
import { DatasyncError } from '../core/errors.js'
import type { Revision } from '../core/revision.js'
import type { KvStore, TxnOp } from '../core/store.js'
import type { ConsumerState } from './consumer-state.js'
import type { CommitOptions, CommitResult, ConsumerOutcome } from './types.js'

/** What a consumer must hold for a written key to count as applied. */
type Wanted<R> = { readonly op: 'put'; readonly raw: R } | { readonly op: 'delete' }

/** One consumer waited for by one write. */
class Waiter<R> {
  /** The write's revision, once the store answered. */
  revision: Revision | undefined
  /** The consumer's latest ack failure since the write was sent: its outcome's error. */
  failure: DatasyncError | undefined
  /** Receives the outcome; set while someone waits. */
  settle: ((outcome: ConsumerOutcome) => void) | undefined
  /** Settled before anyone waited (at once, when the store answered). */
  outcome: ConsumerOutcome | undefined

  constructor(
    readonly state: ConsumerState<R, unknown>,
    readonly keys: Map<string, Wanted<R>>,
  ) {}
}

/**
 * The writes waiting to be applied by consumers (`Datasync.commit`). A consumer has applied a
 * write once it holds no unacknowledged event and its view holds every written key it covers as
 * written (a put: the key at the write's revision or later, or holding the very value written; a
 * delete: the key gone). It is checked when the store answers the write (a write that changes
 * nothing for an idle consumer is applied at once) and after each of the consumer's
 * acknowledgements. Its latest ack failure since the write was sent is its outcome's error. With
 * `maxInFlight` above 1 under a steady flow of changes, "no unacknowledged event" is when the
 * consumer has caught up.
 */
export class Commits<R> {
  readonly #waiting = new Map<string, Set<Waiter<R>>>()

  /**
   * Whether `state` covers a key `ops` write: a key under its prefixes, or a prefix delete that
   * overlaps one of them.
   */
  static covers<R>(state: ConsumerState<R, unknown>, ops: readonly TxnOp<R>[]): boolean {
    return ops.some((op) =>
      op.op === 'delete' && op.prefix === true
        ? state.prefixes.some((p) => p.startsWith(op.key) || op.key.startsWith(p))
        : state.matches(op.key),
    )
  }

  /**
   * Starts waiting for `states` before the write is sent (so that no acknowledgement is missed);
   * `applied(revision)` then gives each consumer's outcome once the store has answered.
   */
  begin(
    states: readonly ConsumerState<R, unknown>[],
    ops: readonly TxnOp<R>[],
  ): { applied(revision: Revision): Observable<ConsumerOutcome>[]; cancel(): void } {
    const waiters = states.map((state) => {
      const waiter = new Waiter(state, wantedBy(state, ops))
      let set = this.#waiting.get(state.name)
      if (set === undefined) this.#waiting.set(state.name, (set = new Set()))
      set.add(waiter)
      return waiter
    })
    return {
      applied: (revision) =>
        waiters.map((waiter) => {
          waiter.revision = revision
          this.#check(waiter)
          return this.#outcome(waiter)
        }),
      cancel: () => {
        for (const waiter of waiters) this.#forget(waiter)
      },
    }
  }

  /** A consumer's ack settled, with its failure if it failed. */
  settled(consumer: string, error?: DatasyncError): void {
    if (error === undefined) return
    for (const waiter of this.#waiting.get(consumer) ?? []) waiter.failure = error
  }

  /** The consumer's delivery is settled (its book-keeping done): re-checks its writes. */
  afterSettle(state: ConsumerState<R, unknown>): void {
    for (const waiter of [...(this.#waiting.get(state.name) ?? [])]) this.#check(waiter)
  }

  /** The outcome of one waiter: at once when it already applied, else when it does or leaves. */
  #outcome(waiter: Waiter<R>): Observable<ConsumerOutcome> {
    return new Observable<ConsumerOutcome>((subscriber) => {
      const deliver = (outcome: ConsumerOutcome) => {
        subscriber.next(outcome)
        subscriber.complete()
      }
      if (waiter.outcome) {
        deliver(waiter.outcome)
        return undefined
      }
      waiter.settle = deliver
      const away = waiter.state.away$.subscribe(() => {
        this.#finish(waiter, {
          consumer: waiter.state.name,
          error: new DatasyncError(
            'closed',
            `consumer '${waiter.state.name}' left (closed, or lost its last subscriber) before it applied the write at revision ${waiter.revision}`,
          ),
        })
      })
      return () => {
        away.unsubscribe()
        this.#forget(waiter)
      }
    })
  }

  #check(waiter: Waiter<R>): void {
    if (waiter.revision === undefined || !waiter.state.idle) return
    for (const [key, wanted] of waiter.keys) {
      const done =
        wanted.op === 'delete'
          ? !waiter.state.view.holdsKey(key)
          : waiter.state.view.holdsAt(key, waiter.revision, wanted.raw)
      if (done) waiter.keys.delete(key)
    }
    if (waiter.keys.size > 0) return
    const { name } = waiter.state
    this.#finish(
      waiter,
      waiter.failure ? { consumer: name, error: waiter.failure } : { consumer: name },
    )
  }

  #finish(waiter: Waiter<R>, outcome: ConsumerOutcome): void {
    this.#forget(waiter)
    if (waiter.settle) waiter.settle(outcome)
    else waiter.outcome = outcome
  }

  #forget(waiter: Waiter<R>): void {
    const set = this.#waiting.get(waiter.state.name)
    if (set?.delete(waiter) && set.size === 0) this.#waiting.delete(waiter.state.name)
  }
}

/** The keys of `ops` that `state` covers, and what it must hold for each. */
function wantedBy<R>(
  state: ConsumerState<R, unknown>,
  ops: readonly TxnOp<R>[],
): Map<string, Wanted<R>> {
  const keys = new Map<string, Wanted<R>>()
  for (const op of ops) {
    if (op.op === 'put') {
      if (state.matches(op.key)) keys.set(op.key, { op: 'put', raw: op.value })
    } else if (op.prefix === true) {
      for (const key of state.view.keysUnder(op.key)) keys.set(key, { op: 'delete' })
    } else if (state.matches(op.key)) {
      keys.set(op.key, { op: 'delete' })
    }
  }
  return keys
}

/**
 * `Datasync.commit`: writes `ops` as one transaction of `store`, then waits for every listening
 * consumer of `states` that covers a written key (see {@link Commits}), each for at most the
 * timeout.
 */
export function commitAndWait<R>(
  store: KvStore<R>,
  states: readonly ConsumerState<R, unknown>[],
  commits: Commits<R>,
  scheduler: SchedulerLike,
  ops: readonly TxnOp<R>[],
  options: CommitOptions<R>,
): Observable<CommitResult> {
  return defer(() => {
    const timeoutMs = toMillis(options.timeout ?? '30s', 'commit timeout')
    const covering = states.filter((state) => state.listening && Commits.covers(state, ops))
    const pending = commits.begin(covering, ops)
    const late = (name: string, revision: Revision) =>
      of<ConsumerOutcome>({
        consumer: name,
        error: new DatasyncError(
          'timeout',
          `consumer '${name}' did not apply the write at revision ${revision} within ${timeoutMs} ms`,
        ),
      })
    return store.txn(ops, options.conditions ? { conditions: options.conditions } : {}).pipe(
      switchMap(({ succeeded, revision }) => {
        if (!succeeded) return of<CommitResult>({ succeeded, revision, consumers: [] })
        const outcomes = pending.applied(revision).map((outcome, i) =>
          outcome.pipe(
            timeout({
              first: timeoutMs,
              scheduler,
              with: () => late(covering[i]?.name ?? '', revision),
            }),
          ),
        )
        return (outcomes.length === 0 ? of([]) : forkJoin(outcomes)).pipe(
          map((consumers): CommitResult => ({ succeeded, revision, consumers })),
        )
      }),
      finalize(() => {
        pending.cancel()
      }),
    )
  })
}
