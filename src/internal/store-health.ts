import { BehaviorSubject, type Observable } from 'rxjs'
import type { DatasyncError } from '../core/errors.js'
import type { StoreStatus } from '../core/store.js'
import { CONNECTING, READY, statusStream } from './status.js'

/**
 * One reporter of a store's health: the broker's calls, a watch session, a status probe. Each
 * part reports what it last learnt; the store's status is derived from all of them.
 */
export interface HealthPart {
  /** It got an answer from the server. */
  up(): void
  /**
   * It failed in a way that says the server cannot be reached or used (and will retry).
   * `answered`: the failure is itself an answer (files were read, one is broken), so the store is
   * past `connecting`.
   */
  down(error: DatasyncError, answered?: boolean): void
  /** It stopped reporting (a watch was unsubscribed): it no longer counts either way. */
  gone(): void
}

/**
 * A store's status from the health of its parts, by one rule:
 *
 * - `connecting` until some part has had an answer from the server; while a part is down before
 *   that, `connecting` carries its error (a store whose server is not up yet is still connecting,
 *   and says why: etcd with `allowDelayedStart`, Redis or Consul started before their server);
 * - then `degraded`, with the error of the part that went down last, while any part is down;
 * - `ready` when no part is down;
 * - `closed` (with the fatal error, if one closed the store) at the end, for good.
 *
 * The same failure reported again (a retry that failed alike: same code and message) is no news
 * and emits nothing.
 */
export class StoreHealth {
  /** The parts that are down now, in the order they went down (the last one names the error). */
  readonly #down = new Map<object, DatasyncError>()
  readonly #subject = new BehaviorSubject<StoreStatus>(CONNECTING)
  /** Some part has had an answer: the store is past `connecting` for good. */
  #contacted = false
  #closed = false

  /** The current status, replayed to each subscriber; completes after {@link close}. */
  readonly status$: Observable<StoreStatus> = statusStream(this.#subject, () => this.#closed)

  /** The status now. */
  get current(): StoreStatus {
    return this.#subject.value
  }

  /** Whether some part has had an answer since the store was created. */
  get contacted(): boolean {
    return this.#contacted
  }

  /** Whether {@link close} was called. */
  get closed(): boolean {
    return this.#closed
  }

  /** A new reporter. */
  part(): HealthPart {
    const token = {}
    return {
      up: () => {
        this.#contacted = true
        this.#down.delete(token)
        this.#publish()
      },
      down: (error, answered = false) => {
        if (answered) this.#contacted = true
        // Re-inserted so that the latest failure names the error.
        this.#down.delete(token)
        this.#down.set(token, error)
        this.#publish()
      },
      gone: () => {
        if (this.#down.delete(token)) this.#publish()
      },
    }
  }

  /** Ends the status with `closed`, carrying the fatal error if one closed the store. */
  close(error?: DatasyncError): void {
    if (this.#closed) return
    this.#closed = true
    this.#down.clear()
    this.#subject.next(error === undefined ? { state: 'closed' } : { state: 'closed', error })
    this.#subject.complete()
  }

  #publish(): void {
    if (this.#closed) return
    const error = [...this.#down.values()].at(-1)
    const next: StoreStatus =
      error === undefined
        ? this.#contacted
          ? READY
          : CONNECTING
        : { state: this.#contacted ? 'degraded' : 'connecting', error }
    const current = this.#subject.value
    const same =
      current.state === next.state &&
      current.error?.code === next.error?.code &&
      current.error?.message === next.error?.message
    if (!same) this.#subject.next(next)
  }
}
