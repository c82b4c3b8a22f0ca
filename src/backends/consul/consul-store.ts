import {
  EMPTY,
  NEVER,
  Observable,
  Subject,
  catchError,
  concat,
  defer,
  exhaustMap,
  finalize,
  ignoreElements,
  map,
  of,
  share,
  switchMap,
  tap,
  timer,
} from 'rxjs'
import { ClosedError, DatasyncError, UnavailableError } from '../../core/errors.js'
import type { KeyValue, StoreEvent } from '../../core/events.js'
import { ZERO_REVISION } from '../../core/revision.js'
import type {
  Capabilities,
  DeleteOptions,
  KvStore,
  PutOptions,
  StoreStatus,
  TxnOp,
  TxnOptions,
  TxnResult,
} from '../../core/store.js'
import { ConsulEdge, type TxnAnswer } from './client.js'
import { NAME } from './errors.js'
import { Health } from './health.js'
import {
  assertConditions,
  assertKey,
  assertPrefix,
  assertPrefixes,
  assertValue,
  show,
  toWrites,
  ttlSeconds,
  type Write,
} from './keys.js'
import { resolveSettings, type ConsulStoreOptions } from './options.js'
import { rolledBack, runTxn } from './txn.js'
import { keyValueOf, watchListing } from './watch.js'

const EMPTY_SNAPSHOT: StoreEvent<Uint8Array> = Object.freeze({
  type: 'snapshot',
  revision: ZERO_REVISION,
  items: [],
  cause: 'startup',
})

const CAPABILITIES: Capabilities = Object.freeze({
  write: true,
  txn: true,
  ttl: true,
  // Changes carry prev, but from the watch's own last listing, not from Consul.
  nativePrev: false,
  // A broken blocking query is followed by a fresh listing (a snapshot).
  resumable: false,
  atomicPrefixDelete: true,
})

/**
 * Creates a {@link KvStore} on a Consul agent's KV store, through its HTTP API (the `consul`
 * client). Nothing connects until an operation, a watch or `status$` is subscribed.
 *
 * - `watch(prefixes)` lists the prefixes' common root, then follows it with blocking queries and
 *   turns each new listing into one `changes` event with a change (and prev value) per key that
 *   differs. Writes between two listings are merged (intermediate values are not seen; every
 *   final value is). An index that goes backwards gives a snapshot with cause `index-reset`; a
 *   lost connection or an agent restart gives one with cause `reconnect`. Blocking queries are
 *   rate limited and retried with backoff; `status$` is `degraded` meanwhile.
 * - Revisions are Consul's indexes: a key's ModifyIndex, a listing's `X-Consul-Index`, as bigints.
 * - `txn` goes through `/v1/txn` (atomic, conditions included). A put is two of Consul's
 *   operations there (a delete and a set, so that it clears an earlier TTL), and Consul caps a
 *   transaction at 128 operations (64 before 1.14): a larger one fails with an `invalid-argument`
 *   error saying so, and is never split (the parts would not be atomic together).
 * - `put(key, value, { ttl })` puts the key held by a new session with that TTL and behaviour
 *   `delete`, never renewed. Unlike an etcd lease, which expires after its TTL, Consul promises
 *   only that the key lives at least its TTL: its servers time a session out at twice the TTL (a
 *   10s TTL key goes after about 20s), and a leader election restarts the timers. The TTL must be
 *   from the servers' `session_ttl_min` (10s by default, see `minTtl`) to 24h.
 * - Keys may not start with `/`, contain `//` or have `.`/`..` segments: Consul's HTTP server
 *   cleans URL paths, so it could not address them.
 *
 * ```
 * watch(['a/']):         S(I)------c---------S(reconnect)--c--
 * blocking queries:      --B(I)----B(J)--x(agent gone)---L--B--
 * put('a/1', v):         ----(u|)
 * ```
 *
 * @example
 * ```ts
 * import { createDatasync, json } from 'rx-datasync'
 * import { createConsulStore } from 'rx-datasync/consul'
 * const store = createConsulStore({ address: '127.0.0.1:8500', token: process.env.CONSUL_HTTP_TOKEN })
 * const sync = createDatasync(store)
 * const routes = sync.register('routes', { prefixes: ['config/routes/'], codec: json<{ via: string }>() })
 * routes.events$.subscribe((event) => { console.log(event.kind); event.done() })
 * sync.start()
 * ```
 */
export function createConsulStore(options: ConsulStoreOptions = {}): KvStore {
  const settings = resolveSettings(options)
  const scheduler = settings.scheduler
  const health = new Health()
  const closing = new Subject<void>()
  let closed = false
  let fatal: DatasyncError | undefined

  const closeWith = (error?: DatasyncError): void => {
    if (closed) return
    closed = true
    fatal = error
    closing.next()
    closing.complete()
    edge.close()
    health.close(error)
  }
  const edge = new ConsulEdge(settings, (error) => {
    closeWith(error)
  })
  const broker = health.source()

  const refusal = (): DatasyncError => fatal ?? new ClosedError(`the ${NAME} store`)

  /**
   * Ends `source` when the store closes: a watch completes (or errors with the fatal error that
   * closed the store), an operation errors.
   */
  const untilClosed = <T>(source: Observable<T>, onClose: 'complete' | 'error'): Observable<T> =>
    new Observable<T>((subscriber) => {
      if (closed) {
        subscriber.error(refusal())
        return undefined
      }
      const subscription = closing.subscribe(() => {
        if (fatal === undefined && onClose === 'complete') subscriber.complete()
        else subscriber.error(refusal())
      })
      subscription.add(source.subscribe(subscriber))
      return subscription
    })

  /** A broker operation: checked when subscribed, reported to the status, ended by close. */
  const operation = <T>(body: () => Observable<T>): Observable<T> =>
    untilClosed(
      defer(body).pipe(
        tap({
          next: () => {
            broker.ok()
          },
          error: (error: unknown) => {
            if (isConnectionFault(error)) broker.failed(error)
          },
        }),
      ),
      'error',
    )

  const probe = health.source()
  const statusCheck$ = timer(0, settings.statusIntervalMs, scheduler).pipe(
    exhaustMap(() =>
      edge.leader().pipe(
        tap((leader) => {
          if (leader !== '') probe.ok()
          else {
            probe.failed(
              new UnavailableError(
                NAME,
                `the agent at ${settings.address} knows no cluster leader; waiting for an election`,
              ),
            )
          }
        }),
        catchError((error: unknown) => {
          if (isConnectionFault(error)) probe.failed(error)
          return EMPTY
        }),
      ),
    ),
    ignoreElements(),
    finalize(() => {
      probe.ended()
    }),
    share(),
  )

  const status$ = new Observable<StoreStatus>((subscriber) => {
    const subscription = health.status$.subscribe(subscriber)
    if (!closed) subscription.add(statusCheck$.subscribe())
    return subscription
  })

  const write = (what: string, writes: readonly Write[]): Observable<TxnResult> =>
    runTxn(edge, writes, [], what)

  return {
    name: NAME,
    capabilities: CAPABILITIES,
    status$,

    watch(prefixes: readonly string[]): Observable<StoreEvent<Uint8Array>> {
      return untilClosed(
        defer(() => {
          assertPrefixes(prefixes)
          // Nothing to watch: an empty view that never changes (listing the whole KV store to
          // learn its index would cost more than it tells).
          if (prefixes.length === 0) return concat(of(EMPTY_SNAPSHOT), NEVER)
          const source = health.source()
          return watchListing(prefixes, {
            list: (root, blocking) => edge.list(root, blocking),
            waitMs: settings.waitMs,
            minQueryIntervalMs: settings.minQueryIntervalMs,
            retryDelayMs: settings.retryDelayMs,
            maxRetryDelayMs: settings.maxRetryDelayMs,
            scheduler,
            ok: source.ok,
            failed: source.failed,
            ended: source.ended,
          })
        }),
        'complete',
      )
    },

    get(key: string): Observable<KeyValue<Uint8Array> | undefined> {
      return operation(() => {
        assertKey('get', key)
        return edge
          .get(key)
          .pipe(map(({ entry }) => (entry === undefined ? undefined : keyValueOf(entry))))
      })
    },

    list(prefix: string): Observable<readonly KeyValue<Uint8Array>[]> {
      return operation(() => {
        assertPrefix('list', prefix)
        return edge.list(prefix).pipe(map((listing) => listing.entries.map(keyValueOf).sort(byKey)))
      })
    },

    listKeys(prefix: string): Observable<readonly string[]> {
      return operation(() => {
        assertPrefix('listKeys', prefix)
        return edge.keys(prefix).pipe(map((listing) => [...listing.keys].sort(compareKeys)))
      })
    },

    put(key: string, value: Uint8Array, putOptions?: PutOptions): Observable<void> {
      return operation(() => {
        assertKey('put', key)
        assertValue('put', key, value)
        const ttl = putOptions?.ttl
        const put: Write =
          ttl === undefined
            ? { op: 'put', key, value }
            : { op: 'put', key, value, ttl: ttlSeconds('put', ttl, settings.minTtlMs) }
        return write(`put '${key}'`, [put]).pipe(map(() => undefined))
      })
    },

    delete(key: string, deleteOptions?: DeleteOptions): Observable<{ readonly deleted: number }> {
      return operation(() => {
        const prefix = deleteOptions?.prefix === true
        if (!prefix) {
          assertKey('delete', key)
          // The get fails the transaction (deleting nothing) when the key is missing.
          return edge
            .txn(
              [{ KV: { Verb: 'get', Key: key } }, { KV: { Verb: 'delete', Key: key } }],
              `delete '${key}'`,
            )
            .pipe(map((answer) => ({ deleted: deletedOne(answer, key) })))
        }
        assertPrefix('delete', key)
        if (key === '') {
          // A transaction needs a key: deleting everything is a count, then one recursive delete.
          return edge
            .keys('')
            .pipe(
              switchMap((listing) =>
                edge.deleteTree('').pipe(map(() => ({ deleted: listing.keys.length }))),
              ),
            )
        }
        return edge
          .txn(
            [{ KV: { Verb: 'get-tree', Key: key } }, { KV: { Verb: 'delete-tree', Key: key } }],
            `delete prefix '${key}'`,
          )
          .pipe(
            map((answer) => {
              if (!answer.ok) throw rolledBack(`delete prefix '${key}'`, answer.errors)
              return { deleted: answer.results.length }
            }),
          )
      })
    },

    txn(
      ops: readonly TxnOp<Uint8Array>[],
      txnOptions?: TxnOptions<Uint8Array>,
    ): Observable<TxnResult> {
      return operation(() => {
        const writes = toWrites(ops, settings.minTtlMs)
        const conditions = txnOptions?.conditions ?? []
        assertConditions(conditions)
        if (writes.length === 0 && conditions.length === 0) {
          throw new TypeError(`${NAME} txn: expected at least one operation or condition, got none`)
        }
        return runTxn(edge, writes, conditions, 'txn')
      })
    },

    close(): Promise<void> {
      closeWith()
      return Promise.resolve()
    },
  }
}

function deletedOne(answer: TxnAnswer, key: string): number {
  if (answer.ok) return 1
  const missing = answer.errors.every((e) => e.OpIndex === 0 && /doesn't exist/.test(e.What))
  if (answer.errors.length > 0 && missing) return 0
  throw rolledBack(`delete ${show(key)}`, answer.errors)
}

/** A failure that says something about the connection (not a refused write or a conflict). */
function isConnectionFault(error: unknown): error is DatasyncError {
  return (
    error instanceof DatasyncError && (error.code === 'unavailable' || error.code === 'timeout')
  )
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

function byKey(a: { readonly key: string }, b: { readonly key: string }): number {
  return compareKeys(a.key, b.key)
}
