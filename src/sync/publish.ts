import {
  AsyncSubject,
  finalize,
  merge,
  tap,
  ignoreElements,
  catchError,
  concat,
  defer,
  map,
  mergeMap,
  of,
  retry,
  throwError,
  timer,
  asyncScheduler,
  type Observable,
  type OperatorFunction,
  type SchedulerLike,
} from 'rxjs'
import type { Codec } from '../core/codec.js'
import type { Duration } from '../core/duration.js'
import { toMillis } from '../core/duration.js'
import { CodecError, DatasyncError, isRetryable } from '../core/errors.js'
import type { KvStore } from '../core/store.js'
import { asDatasyncError } from '../internal/errors.js'
import { backoffDelay, checkBackoff, DEFAULT_JITTER } from '../internal/backoff.js'

/** One write for {@link publishTo}: a put (with an optional TTL) or a delete of a key. */
export type Publication<T> =
  | { readonly op: 'put'; readonly key: string; readonly value: T; readonly ttl?: Duration }
  | { readonly op: 'delete'; readonly key: string; readonly prefix?: boolean }

/** The outcome of one {@link Publication}, emitted in completion order. */
export type PublishResult<T> =
  | { readonly ok: true; readonly publication: Publication<T>; readonly attempts: number }
  | {
      readonly ok: false
      readonly publication: Publication<T>
      readonly attempts: number
      readonly error: DatasyncError
    }

/** Options of {@link publishTo}. */
export interface PublishOptions<T, R> {
  /** Writes in flight at once (different keys; one key is always written in order). @default 16 */
  readonly concurrency?: number
  /** Encodes values for the store; a value it cannot encode is reported, not written. */
  readonly codec?: Codec<T, R>
  /** Retries of a write that failed with a retryable error (unavailable, timeout, conflict). @default 5 */
  readonly retries?: number
  /** The first retry's delay; each next one doubles it, up to 30 s. @default '100ms' */
  readonly retryDelay?: Duration
  /**
   * The share of each retry delay that is random (0 to 1): a delay `d` becomes a value between
   * `d * (1 - jitter)` and `d`, so writers that failed together do not retry together.
   * @default 0.2
   */
  readonly jitter?: number
  /** Where the jitter's randomness comes from (a fixed sequence in tests). @default Math.random */
  readonly random?: () => number
  /** The scheduler for retry delays. @default asyncScheduler */
  readonly scheduler?: SchedulerLike
}

/**
 * Writes a stream of publications into a store with bounded concurrency, keeping the order of
 * writes to the same key (a prefix delete is ordered with every key under it). A write waiting
 * for an earlier one of its key holds its concurrency slot meanwhile. A transient failure is retried with backoff; a value that cannot be
 * encoded, or a write that still fails, becomes an `ok: false` result and the stream goes on.
 *
 * ```
 * source:  -a1--b1--a2-----|
 * writes:   [a1][b1] [a2]      (a2 starts only after a1 is written)
 * result:  ---r--r-----r---|
 * ```
 *
 * @example
 * ```ts
 * import { from } from 'rxjs'
 * import { createMemoryStore, json, publishTo } from 'rx-datasync'
 * const store = createMemoryStore()
 * from([{ op: 'put' as const, key: 'config/a', value: { on: true } }])
 *   .pipe(publishTo(store, { codec: json<{ on: boolean }>() }))
 *   .subscribe((result) => { console.log(result.ok) })
 * ```
 */
export function publishTo<T, R = Uint8Array>(
  store: KvStore<R>,
  options: PublishOptions<T, R> = {},
): OperatorFunction<Publication<T>, PublishResult<T>> {
  const concurrency = options.concurrency ?? 16
  const retries = options.retries ?? 5
  const firstDelayMs = toMillis(options.retryDelay ?? '100ms', 'retryDelay')
  const scheduler = options.scheduler ?? asyncScheduler
  const backoff = checkBackoff('publishTo', {
    firstMs: firstDelayMs,
    maxMs: Math.max(30_000, firstDelayMs),
    jitter: options.jitter ?? DEFAULT_JITTER,
    ...(options.random === undefined ? {} : { random: options.random }),
  })
  if (!Number.isInteger(concurrency) || concurrency < 1) {
    throw new TypeError(
      `publishTo: expected concurrency as an integer of at least 1, got ${concurrency}`,
    )
  }
  const codec = options.codec

  const encode = (key: string, value: T): R => {
    if (!codec) return value as unknown as R
    try {
      return codec.encode(value)
    } catch (error) {
      throw new CodecError(key, codec.name, error)
    }
  }

  const write = (publication: Publication<T>): Observable<unknown> =>
    defer(() =>
      publication.op === 'put'
        ? store.put(
            publication.key,
            encode(publication.key, publication.value),
            publication.ttl === undefined ? undefined : { ttl: publication.ttl },
          )
        : store.delete(publication.key, { prefix: publication.prefix === true }),
    )

  return (source) =>
    defer(() => {
      // Writes started and not yet finished. A new write waits for every one it conflicts with:
      // the same key, or a key under a prefix delete (either way round). mergeMap calls this
      // function only when a slot is free, so at most `concurrency` writes are ever pending.
      // They are indexed by key (prefix deletes apart): a burst of thousands in flight must not
      // compare each new write with every pending one.
      const pending = new PendingWrites<T>()

      return source.pipe(
        mergeMap((publication) => {
          const previous = pending.conflicting(publication).map((entry) => entry.done)
          const mine = { publication, done: new AsyncSubject<void>() }
          pending.add(mine)
          let attempts = 0
          const attempt = defer(() => {
            attempts++
            return write(publication)
          }).pipe(
            retry({
              count: retries,
              delay: (error: unknown, n) =>
                isRetryable(error)
                  ? timer(backoffDelay(backoff, n), scheduler)
                  : throwError(() => error),
            }),
            map((): PublishResult<T> => ({ ok: true, publication, attempts })),
            catchError((error: unknown) =>
              of<PublishResult<T>>({
                ok: false,
                publication,
                attempts,
                error: asDatasyncError(error),
              }),
            ),
          )
          // Release the writes waiting for this one only when it has finished: on teardown
          // everything is cancelled together and nothing queued may start.
          const release = () => {
            pending.delete(mine)
            mine.done.next()
            mine.done.complete()
          }
          return concat(merge(...previous).pipe(ignoreElements()), attempt).pipe(
            tap({ complete: release }),
            finalize(() => {
              pending.delete(mine)
            }),
          )
        }, concurrency),
      )
    })
}

/** A write started and not yet finished, and what completes when it has. */
interface PendingWrite<T> {
  readonly publication: Publication<T>
  readonly done: AsyncSubject<void>
}

/** The pending writes of one `publishTo`, by key; prefix deletes apart (they are rare). */
class PendingWrites<T> {
  readonly #byKey = new Map<string, Set<PendingWrite<T>>>()
  readonly #prefixDeletes = new Set<PendingWrite<T>>()

  add(entry: PendingWrite<T>): void {
    if (isPrefixDelete(entry.publication)) {
      this.#prefixDeletes.add(entry)
      return
    }
    const key = entry.publication.key
    const same = this.#byKey.get(key)
    if (same === undefined) this.#byKey.set(key, new Set([entry]))
    else same.add(entry)
  }

  delete(entry: PendingWrite<T>): void {
    if (isPrefixDelete(entry.publication)) {
      this.#prefixDeletes.delete(entry)
      return
    }
    const key = entry.publication.key
    const same = this.#byKey.get(key)
    if (same?.delete(entry) === true && same.size === 0) this.#byKey.delete(key)
  }

  /** The pending writes `publication` must wait for (see {@link conflicts}). */
  conflicting(publication: Publication<T>): PendingWrite<T>[] {
    const out: PendingWrite<T>[] = []
    if (isPrefixDelete(publication)) {
      for (const [key, entries] of this.#byKey) {
        if (key.startsWith(publication.key)) out.push(...entries)
      }
    } else {
      const same = this.#byKey.get(publication.key)
      if (same !== undefined) out.push(...same)
    }
    for (const entry of this.#prefixDeletes) {
      if (conflicts(entry.publication, publication)) out.push(entry)
    }
    return out
  }
}

function isPrefixDelete<T>(publication: Publication<T>): boolean {
  return publication.op === 'delete' && publication.prefix === true
}

/** Whether two writes touch a common key, so the later must wait for the earlier. */
function conflicts<T>(a: Publication<T>, b: Publication<T>): boolean {
  const covers = (w: Publication<T>, key: string) =>
    w.op === 'delete' && w.prefix === true ? key.startsWith(w.key) : key === w.key
  return covers(a, b.key) || covers(b, a.key)
}
