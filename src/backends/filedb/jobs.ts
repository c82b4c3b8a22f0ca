import {
  AsyncSubject,
  EMPTY,
  Subject,
  catchError,
  concatMap,
  defer,
  ignoreElements,
  lastValueFrom,
  of,
  tap,
  type Observable,
  type ObservableInput,
} from 'rxjs'

/**
 * Runs jobs one at a time, in the order they were queued: each starts when the one before it
 * has ended, whether it succeeded or failed. A job is made when its turn comes, from anything
 * `from` takes (a Promise, an Observable), so a `TestScheduler` drives a queue of cold
 * observables in virtual time.
 *
 * ```
 * a = cold('--a|') and b = cold('-b|'), both queued at 0:
 * a runs:           --a|
 * b runs:              -b|
 * enqueue(() => a): ---(a|)
 * enqueue(() => b): -----(b|)
 * ```
 */
export class JobQueue {
  readonly #jobs = new Subject<Observable<never>>()

  constructor() {
    this.#jobs.pipe(concatMap((job) => job)).subscribe()
  }

  /**
   * Queues `job`. The result is hot (the job runs whether it is subscribed or not) and replays:
   * it emits the job's last value and completes when the job ends, or errors with its error.
   */
  enqueue<T>(job: () => ObservableInput<T>): Observable<T> {
    const result = new AsyncSubject<T>()
    this.#jobs.next(
      defer(job).pipe(
        // Not tap(result): tap would call a Subject's own subscribe() as its subscribe hook.
        tap({
          next: (value) => {
            result.next(value)
          },
          error: (error: unknown) => {
            result.error(error)
          },
          complete: () => {
            result.complete()
          },
        }),
        ignoreElements(),
        catchError(() => EMPTY),
      ),
    )
    return result.asObservable()
  }

  /** Resolves when every job queued so far has ended. */
  idle(): Promise<void> {
    return lastValueFrom(this.enqueue(() => of(undefined)))
  }
}
