import {
  ReplaySubject,
  catchError,
  defer,
  map,
  of,
  race,
  retry,
  shareReplay,
  take,
  takeUntil,
  tap,
  throwError,
  throwIfEmpty,
  timer,
  type Observable,
  type SchedulerLike,
} from 'rxjs'
import { isRetryable, type DatasyncError } from '../../core/errors.js'
import type { SnapshotEvent } from '../../core/events.js'
import { DEFAULT_JITTER, backoffDelay } from '../../internal/backoff.js'
import { SnapshotPersistError } from './format.js'

/** What the orchestrator does with a saved snapshot at its first start. */
export interface Restoring<R> {
  /** The saved snapshot to give the consumers now (reason `restored`); absent: none to give. */
  readonly snapshot?: SnapshotEvent<R>
  /**
   * When the watch may start, and how: `true` resumes after the snapshot's revision, `false`
   * lists afresh for a full resync (the store turned out to be another one). Absent: at once,
   * resuming.
   */
  readonly resume?: Observable<boolean>
}

/** The retries of a store's identity while the store cannot be reached. */
const BACKOFF = { firstMs: 100, maxMs: 5_000, jitter: DEFAULT_JITTER }

/**
 * The identity of the orchestrator's store (`KvStore.identity`), asked once per orchestrator
 * and retried until the store answers: a snapshot is saved with it, and a saved snapshot whose
 * identity differs is not resumed (another etcd cluster's revision 42 is not this one's).
 */
export class StoreIdentity {
  readonly #ask: (() => Observable<string>) | undefined
  readonly #scheduler: SchedulerLike
  readonly #waitMs: number
  /** The first attempt's outcome (the answer, or undefined when it failed), then the answer. */
  #first: ReplaySubject<string | undefined> | undefined
  /** The answer: the identity, or undefined when a lasting error says there is none to get. */
  #answer: Observable<string | undefined> | undefined
  /** The store's answer, once it came: kept across runs. */
  #found: string | undefined
  #stop = new ReplaySubject<void>(1)

  constructor(
    ask: (() => Observable<string>) | undefined,
    scheduler: SchedulerLike,
    /** How long `check` waits for the first attempt before it takes the store for down. */
    waitMs: number,
  ) {
    this.#ask = ask
    this.#scheduler = scheduler
    this.#waitMs = waitMs
  }

  /**
   * Asks the store (once): retried with a backoff while the error is retryable (the store cannot
   * be reached), until it answers or {@link stop} is called. A lasting error (closed, no
   * permission) ends it: the store is then taken as one without an identity.
   */
  ask(): void {
    const ask = this.#ask
    if (ask === undefined || this.#answer !== undefined) return
    const first = new ReplaySubject<string | undefined>(1)
    const stop = (this.#stop = new ReplaySubject<void>(1))
    let attempt = 0
    this.#first = first
    this.#answer = defer(ask).pipe(
      // A store that answers nothing has no identity to tell (taken as a lasting error).
      throwIfEmpty(() => new TypeError('identity() completed without a value')),
      tap({
        next: (found) => {
          first.next(found)
        },
        error: () => {
          first.next(undefined)
        },
      }),
      retry({
        delay: (error: unknown) =>
          isRetryable(error)
            ? timer(backoffDelay(BACKOFF, ++attempt), this.#scheduler)
            : throwError(() => error),
      }),
      take(1),
      tap((found) => {
        this.#found = found
      }),
      catchError(() => of(undefined)),
      takeUntil(stop),
      shareReplay(1),
    )
    this.#answer.subscribe({ error: () => undefined })
  }

  /**
   * The orchestrator's run ends: a store that has not answered yet is no longer asked (it is
   * asked again at the next run); what waits for the answer gets none.
   */
  stop(): void {
    if (this.#answer === undefined || this.#found !== undefined) return
    this.#stop.next()
    this.#answer = undefined
    this.#first = undefined
  }

  /** The store's identity once it answered; undefined when it has none (or was closed first). */
  known(): Observable<string | undefined> {
    this.ask()
    return this.#answer ?? of(undefined)
  }

  /**
   * What to do with a saved snapshot. Saved without an identity, or the store has none: restore
   * and resume. Else the store's first answer decides (asked while the file was read): the same
   * store, restore and resume; another, report it and restore nothing (the normal resync runs).
   * When the store could not be reached, or did not answer within `waitMs` (a paused server, a
   * connection attempt that takes its whole timeout), the snapshot is given now (it is what the
   * store is down for) and the watch waits for the answer: another store then means a full
   * resync.
   */
  check<R>(
    saved: SnapshotEvent<R> & { readonly identity?: string },
    source: string,
    report: (error: DatasyncError) => void,
  ): Observable<Restoring<R>> {
    const { identity: expected, ...snapshot } = saved
    const first = this.#first
    const answer = this.#answer
    if (expected === undefined || first === undefined || answer === undefined) {
      return of({ snapshot })
    }
    const other = (found: string, late: boolean) => {
      report(
        new SnapshotPersistError(
          source,
          'identity',
          `saved from ${expected}, but the store is ${found} (its revisions say nothing about the other's)${late ? '; the data restored while the store could not be reached is replaced' : ''}`,
        ),
      )
    }
    const inTime = race(
      first.pipe(take(1)),
      timer(this.#waitMs, this.#scheduler).pipe(map(() => undefined)),
    )
    return inTime.pipe(
      map((found): Restoring<R> => {
        if (found === expected) return { snapshot }
        if (found !== undefined) {
          other(found, false)
          return {}
        }
        const resume = answer.pipe(
          map((late) => {
            // No answer to get (a lasting error): resumed as with a store without identity.
            if (late === undefined || late === expected) return true
            other(late, true)
            return false
          }),
        )
        return { snapshot, resume }
      }),
    )
  }
}
