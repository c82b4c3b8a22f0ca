import type { SchedulerLike, Subject, Subscription } from 'rxjs'
import { asyncScheduler, timer } from 'rxjs'
import { DatasyncError } from '../core/errors.js'
import { backoffDelay, type BackoffOptions } from '../internal/backoff.js'
import type { ConsumerEvent, SyncActivity } from './types.js'

/**
 * The keys a consumer failed to apply, with their errors: pass it to `done` to acknowledge the
 * rest of the event (made by {@link failedKeys}).
 */
export class KeyFailures {
  readonly failures: ReadonlyMap<string, unknown>
  constructor(failures: ReadonlyMap<string, unknown>) {
    this.failures = failures
  }
}

/**
 * Names the keys of an event a consumer failed to apply, with their errors, for `done`: the
 * event counts as acknowledged, and each named key is re-delivered alone as a change (reason
 * `retry`: its current value, `prev` the value the consumer last applied) after a backoff of its
 * own (`keyRetry`), while every other key goes on. A newer change of a waiting key is folded
 * into its retry. A key that keeps failing keeps being retried (each failure is reported on
 * `errors$` and counted by `failing()`); a resync round starts its backoff again. A key the event
 * did not carry is ignored: an event merged by `batchQuiet` passes the one list to each event it
 * merged, and each takes its own keys.
 *
 * ```ts
 * events$.subscribe((event) => {
 *   const failed = new Map<string, unknown>()
 *   for (const change of event.kind === 'change' ? event.changes : []) {
 *     try { apply(change) } catch (error) { failed.set(change.key, error) }
 *   }
 *   event.done(failed.size > 0 ? failedKeys(failed) : undefined)
 * })
 * ```
 *
 * @throws TypeError when a key is not a non-empty string.
 */
export function failedKeys(
  failures:
    | ReadonlyMap<string, unknown>
    | Iterable<readonly [string, unknown]>
    | Readonly<Record<string, unknown>>,
): KeyFailures {
  const entries: Iterable<readonly [string, unknown]> =
    failures instanceof Map || isIterable(failures)
      ? (failures as Iterable<readonly [string, unknown]>)
      : Object.entries(failures)
  const map = new Map<string, unknown>()
  for (const [key, error] of entries) {
    if (typeof key !== 'string' || key === '') {
      throw new TypeError(
        `failedKeys: expected keys as non-empty strings, got ${JSON.stringify(key)}`,
      )
    }
    map.set(key, error)
  }
  return new KeyFailures(map)
}

/** A key a consumer failed to apply, retried after `retryInMs` (reported on `errors$`). */
export class KeyFailedError extends DatasyncError {
  override readonly name = 'KeyFailedError'
  constructor(
    readonly consumer: string,
    readonly key: string,
    readonly attempts: number,
    readonly retryInMs: number,
    cause: unknown,
  ) {
    super(
      'consumer-failed',
      `consumer '${consumer}' failed to apply key '${key}' (${attempts === 1 ? 'once' : `${attempts} times in a row`}): ${describe(cause)}; retried in ${retryInMs} ms`,
      { cause, retryable: true },
    )
  }
}

/** How a consumer's failing keys are retried and reported (wired by the orchestrator). */
export interface KeyRetryRules {
  readonly backoff: BackoffOptions
  readonly scheduler: SchedulerLike
  /** A key's backoff ended: the consumer has a delivery to make. */
  due(state: object): void
  /** A key failed (again), retried after `delayMs`. */
  failed(consumer: string, key: string, attempts: number, delayMs: number, error: unknown): void
}

/** Rules for a consumer state made without them (tests): 1 s doubling up to 5 min, no jitter. */
export const QUIET_KEY_RETRY: KeyRetryRules = {
  backoff: { firstMs: 1_000, maxMs: 300_000 },
  scheduler: asyncScheduler,
  due: () => undefined,
  failed: () => undefined,
}

/** The orchestrator's {@link KeyRetryRules}: failures go to `errors$` and `activity$`. */
export function keyRetryRules(
  settings: { readonly keyRetry: BackoffOptions; readonly scheduler: SchedulerLike },
  report: (error: DatasyncError) => void,
  activity: Subject<SyncActivity>,
  due: (state: object) => void,
): KeyRetryRules {
  return {
    backoff: settings.keyRetry,
    scheduler: settings.scheduler,
    due,
    failed: (consumer, key, attempts, delayMs, error) => {
      report(new KeyFailedError(consumer, key, attempts, delayMs, error))
      if (activity.observed) activity.next({ type: 'key-failed', consumer, key, attempts, delayMs })
    },
  }
}

/** What the consumer last applied of a key before it failed: its value, read when needed. */
export interface Applied<T> {
  readonly has: boolean
  read(): T
}

const NO_PREV: Applied<never> = { has: false, read: () => undefined as never }

/** One failing key. */
interface Entry<T> {
  attempts: number
  error: unknown
  readonly applied: Applied<T>
  /**
   * `waiting`: its backoff runs; `due`: it goes into the next delivery; `out`: a retry is
   * delivered, unacknowledged; `round`: a round will bring it (its backoff starts again).
   */
  state: 'waiting' | 'due' | 'out' | 'round'
  timer: Subscription | undefined
  /**
   * The revision of the change that failed (a change event's), or undefined (a resync item): a
   * later event that carried a newer change of the key and was applied ends the retry.
   */
  failedAt: bigint | undefined
}

/**
 * The failing keys of one consumer and their backoffs (client-go's rate-limited work queue, per
 * key). The consumer state asks it which keys to hold back and which are due.
 */
export class KeyRetries<T> {
  readonly #entries = new Map<string, Entry<T>>()
  /**
   * With events overlapping (`maxInFlight` above 1): the newest change revision of each key an
   * acknowledged event carried and the consumer applied, while other events are out, so that
   * an older event's failure arriving later is known to be moot. Empty when events do not
   * overlap.
   */
  readonly #applied = new Map<string, bigint>()
  readonly #rules: KeyRetryRules
  /** The consumer state, handed to `rules.due`. */
  readonly #owner: object

  constructor(rules: KeyRetryRules, owner: object) {
    this.#rules = rules
    this.#owner = owner
  }

  /**
   * The consumer acknowledged `event` naming `outcome`'s keys as failed: each starts (or goes
   * on with) its backoff, reported; a key the event did not carry is not this event's (ignored);
   * the event's other keys are applied.
   */
  failEvent(
    consumer: string,
    outcome: KeyFailures,
    event: ConsumerEvent<T>,
    overlapping = false,
  ): void {
    const carried = new Map<string, { applied: Applied<T>; at: bigint | undefined }>()
    if (event.kind === 'resync') {
      for (const item of event.items) carried.set(item.key, { applied: NO_PREV, at: undefined })
    } else {
      for (const change of event.changes) {
        carried.set(change.key, {
          applied: 'prev' in change ? { has: true, read: () => change.prev as T } : NO_PREV,
          at: change.revision,
        })
      }
    }
    for (const [key, error] of outcome.failures) {
      const found = carried.get(key)
      // Not carried by this event: another part of a merged event (batchQuiet passes one list
      // to each part it merged) takes it.
      if (found === undefined) continue
      // A later event already brought a newer change of the key and the consumer applied it:
      // what failed here is superseded, nothing is left to retry.
      const newer = this.#applied.get(key)
      if (newer !== undefined && found.at !== undefined && newer > found.at) continue
      const { attempts, delayMs } = this.fail(key, error, found.applied, found.at)
      this.#rules.failed(consumer, key, attempts, delayMs, error)
    }
    for (const [key, { at }] of carried) {
      if (!outcome.failures.has(key)) this.#appliedAt(key, at, overlapping)
    }
    if (!overlapping) this.#applied.clear()
  }

  /**
   * The consumer applied `event` whole: the retries it carried are done. `overlapping`: other
   * events of the consumer are out (`maxInFlight` above 1), and one of them may fail a key this
   * one brought newer.
   */
  succeededEvent(event: ConsumerEvent<T>, overlapping = false): void {
    if (event.kind === 'resync') {
      if (this.#entries.size > 0) for (const item of event.items) this.succeeded(item.key)
    } else if (overlapping || this.#entries.size > 0) {
      for (const change of event.changes) this.#appliedAt(change.key, change.revision, overlapping)
    }
    if (!overlapping) this.#applied.clear()
  }

  /** The consumer applied `key`'s change at revision `at` (undefined: a resync item). */
  #appliedAt(key: string, at: bigint | undefined, overlapping: boolean): void {
    this.succeeded(key, at)
    if (!overlapping || at === undefined) return
    const known = this.#applied.get(key)
    if (known === undefined || at > known) this.#applied.set(key, at)
  }

  get size(): number {
    return this.#entries.size
  }

  /** Whether a store change of `key` is to be held back: its retry will carry the latest value. */
  holds(key: string): boolean {
    const state = this.#entries.get(key)?.state
    return state === 'waiting' || state === 'due'
  }

  /**
   * The key failed (again): its backoff starts; returns the attempt count and the delay. `applied`
   * counts only at the first failure (what the consumer held before any of the failed values).
   */
  fail(
    key: string,
    error: unknown,
    applied: Applied<T>,
    at?: bigint,
  ): { attempts: number; delayMs: number } {
    let entry = this.#entries.get(key)
    if (entry === undefined) {
      entry = { attempts: 0, error, applied, state: 'waiting', timer: undefined, failedAt: at }
      this.#entries.set(key, entry)
    }
    entry.failedAt = at
    entry.timer?.unsubscribe()
    entry.attempts++
    entry.error = error
    entry.state = 'waiting'
    const delayMs = backoffDelay(this.#rules.backoff, entry.attempts)
    const mine = entry
    entry.timer = timer(delayMs, this.#rules.scheduler).subscribe(() => {
      mine.timer = undefined
      if (mine.state !== 'waiting') return
      mine.state = 'due'
      this.#rules.due(this.#owner)
    })
    return { attempts: entry.attempts, delayMs }
  }

  /**
   * A delivery carrying the key (its change at revision `at`, if a change) was applied: it is no
   * longer failing when that delivery was its retry, or brought a newer change than the one
   * that failed (an event delivered before the failure was known, `maxInFlight` above 1).
   */
  succeeded(key: string, at?: bigint): void {
    const entry = this.#entries.get(key)
    if (entry === undefined) return
    const newer = at !== undefined && entry.failedAt !== undefined && at > entry.failedAt
    if (entry.state !== 'out' && !newer) return
    entry.timer?.unsubscribe()
    this.#entries.delete(key)
  }

  /** The keys whose backoff ended, each with what the consumer last applied; now `out`. */
  takeDue(): [string, Applied<T>][] {
    const due: [string, Applied<T>][] = []
    for (const [key, entry] of this.#entries) {
      if (entry.state !== 'due') continue
      entry.state = 'out'
      due.push([key, entry.applied])
    }
    return due
  }

  /** Whether some key's backoff ended (it goes into the next delivery). */
  get anyDue(): boolean {
    for (const entry of this.#entries.values()) if (entry.state === 'due') return true
    return false
  }

  /** Forgets a key (it has nothing to retry: gone, and the consumer never held it). */
  drop(key: string): void {
    this.#entries.get(key)?.timer?.unsubscribe()
    this.#entries.delete(key)
  }

  /** A round starts: the backoffs stop, the round's differences will bring the keys. */
  toRound(): void {
    this.#applied.clear()
    for (const entry of this.#entries.values()) {
      entry.timer?.unsubscribe()
      entry.timer = undefined
      entry.state = 'round'
    }
  }

  /** The round brought the keys (a resync, or its differences): each starts over. */
  takeAll(): [string, Applied<T>][] {
    const all: [string, Applied<T>][] = []
    for (const [key, entry] of this.#entries) {
      entry.timer?.unsubscribe()
      all.push([key, entry.applied])
    }
    this.#entries.clear()
    return all
  }

  /** The failing keys with their attempts and last error. */
  failing(): ReadonlyMap<string, { readonly attempts: number; readonly error: unknown }> {
    const out = new Map<string, { attempts: number; error: unknown }>()
    for (const [key, entry] of this.#entries) {
      out.set(key, { attempts: entry.attempts, error: entry.error })
    }
    return out
  }
}

function isIterable(value: object): boolean {
  return typeof (value as { [Symbol.iterator]?: unknown })[Symbol.iterator] === 'function'
}

function describe(cause: unknown): string {
  return cause instanceof Error ? cause.message : String(cause)
}
