import { Observable, Subject, catchError, tap, throwError } from 'rxjs'
import { ClosedError, type DatasyncError } from '../core/errors.js'
import { isConnectionFault, type ErrorMapper, type Mapped } from './errors.js'
import { StoreHealth, type HealthPart } from './store-health.js'

/** What a store's edge needs to know. */
export interface StoreEdgeOptions {
  /** The backend's name in messages: `etcd` gives "the etcd store is closed". */
  readonly name: string
  /** The backend's error table, bound to what the store knows about itself. */
  readonly mapError: ErrorMapper
  /**
   * Whether the broker's calls report the store's health: an answer marks the broker part up, a
   * connection fault (`unavailable`, `timeout`) marks it down. A backend whose client reports its
   * connection's health by events of its own (ioredis) sets `false`.
   * @default true
   */
  readonly operationsReportHealth?: boolean
}

/**
 * The one edge between a store and its raw client. It owns the store's open or closed state and
 * its {@link StoreHealth}, and wraps every raw call so that it
 *
 * - refuses after close (with the fatal error that closed the store, or a `ClosedError`),
 * - maps raw errors once through the backend's table (a `store`-scoped error closes the store),
 * - reports the store's health,
 * - ends when the store closes: an operation in flight errors, a watch completes (or errors with
 *   the fatal error).
 *
 * This is the etcd3 `PromiseWrap` idea: after it, a backend is a client edge, an error table, a
 * watch and a factory.
 */
export class StoreEdge {
  readonly health: StoreHealth
  readonly #name: string
  readonly #mapError: ErrorMapper
  /** Reports the broker's calls; undefined when the client reports health itself. */
  readonly #broker: HealthPart | undefined
  /** Emits once, when the store closes. */
  readonly #closing = new Subject<void>()
  #closed = false
  /** The error that closed the store, when one did. */
  #fatal: DatasyncError | undefined

  constructor(options: StoreEdgeOptions) {
    this.#name = options.name
    this.#mapError = options.mapError
    this.health = new StoreHealth()
    this.#broker = (options.operationsReportHealth ?? true) ? this.health.part() : undefined
  }

  /** Whether the store is closed (by `close()` or by a fatal error). */
  get closed(): boolean {
    return this.#closed
  }

  /**
   * The part the broker's calls report on (undefined with `operationsReportHealth: false`), for a
   * broker call that reports by itself: a status probe whose answer can say the server is unusable.
   */
  get broker(): HealthPart | undefined {
    return this.#broker
  }

  /** The error that closed the store, when one did. */
  get fatal(): DatasyncError | undefined {
    return this.#fatal
  }

  /** What a call on a closed store fails with. */
  refusal(): DatasyncError {
    return this.#fatal ?? new ClosedError(`the ${this.#name} store`)
  }

  /** Throws {@link refusal} when the store is closed. */
  assertOpen(): void {
    if (this.#closed) throw this.refusal()
  }

  /**
   * Maps a raw error met while doing `what`: a `store`-scoped error closes the store, and a
   * connection fault marks `part` down. Returns the library's error.
   */
  fail(raw: unknown, what: string, part: HealthPart | undefined = this.#broker): DatasyncError {
    return this.handle(raw, what, part).error
  }

  /**
   * As {@link fail}, but returns the mapping with its scope: a watch decides by it
   * (`isFatalToWatch`) whether to go on.
   */
  handle(raw: unknown, what: string, part: HealthPart | undefined = this.#broker): Mapped {
    const mapped = this.#mapError(raw, what)
    if (mapped.scope === 'store') this.close(mapped.error)
    else if (isConnectionFault(mapped.error)) part?.down(mapped.error)
    return mapped
  }

  /**
   * A cold broker operation. On subscribe it refuses if the store is closed, then calls `run`:
   * an error `run` throws synchronously (an argument check) passes through as it is; an error of
   * the Promise or Observable it returns is mapped once by {@link fail}. Its answers mark the
   * broker part up. It errors with {@link refusal} when the store closes while it is in flight.
   */
  op<T>(what: string, run: () => Promise<T> | Observable<T>): Observable<T> {
    return new Observable<T>((subscriber) => {
      if (this.#closed) {
        subscriber.error(this.refusal())
        return undefined
      }
      const closing = this.#closing.subscribe(() => {
        subscriber.error(this.refusal())
      })
      // A synchronous throw (an argument check) passes through as it is.
      let running: Promise<T> | Observable<T>
      try {
        running = run()
      } catch (error) {
        subscriber.error(error)
        return closing
      }
      if (running instanceof Promise) {
        // A promise without the Observable plumbing: a broker call is the hot path of writes.
        running.then(
          (value) => {
            if (subscriber.closed) return
            this.#broker?.up()
            subscriber.next(value)
            subscriber.complete()
          },
          (raw: unknown) => {
            if (!subscriber.closed) subscriber.error(this.fail(raw, what))
          },
        )
        return closing
      }
      closing.add(
        running
          .pipe(
            tap(() => this.#broker?.up()),
            catchError((raw: unknown) => throwError(() => this.fail(raw, what))),
          )
          .subscribe(subscriber),
      )
      return closing
    })
  }

  /**
   * Ends `source` when the store closes: it completes after `close()`, or errors with the fatal
   * error that closed the store. Subscribed after close, it errors with {@link refusal}.
   */
  watch<T>(source: Observable<T>): Observable<T> {
    return this.#until(source, 'complete')
  }

  /**
   * Closes the store (once): operations in flight error, watches end, the status ends with
   * `closed` (carrying `error`). Returns whether this call closed it.
   */
  close(error?: DatasyncError): boolean {
    if (this.#closed) return false
    this.#closed = true
    this.#fatal = error
    this.health.close(error)
    this.#closing.next()
    this.#closing.complete()
    return true
  }

  #until<T>(source: Observable<T>, onClose: 'complete' | 'error'): Observable<T> {
    return new Observable<T>((subscriber) => {
      if (this.#closed) {
        subscriber.error(this.refusal())
        return undefined
      }
      const subscription = this.#closing.subscribe(() => {
        if (this.#fatal === undefined && onClose === 'complete') subscriber.complete()
        else subscriber.error(this.refusal())
      })
      subscription.add(source.subscribe(subscriber))
      return subscription
    })
  }
}
