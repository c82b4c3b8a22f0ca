import {
  EMPTY,
  NEVER,
  Observable,
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
import { UnavailableError, type DatasyncError } from '../../core/errors.js'
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
import { StoreEdge } from '../../internal/edge.js'
import { isConnectionFault } from '../../internal/errors.js'
import { byKey, compareKeys } from '../../internal/order.js'
import { ConsulHttp } from './client.js'
import { NAME, errorMapper } from './errors.js'
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
import { resolveOptions, type ConsulStoreOptions } from './options.js'
import { rolledBack, runTxn } from './txn.js'
import { keyValueOf, watchListing } from './watch.js'
import type { TxnAnswer } from './wire.js'

/**
 * The store {@link createConsulStore} returns: a {@link KvStore} of bytes with every capability
 * but a native prev and resuming (see `src/backends/consul/README.md`). Consul adds nothing to
 * the contract's surface.
 */
export type ConsulStore = KvStore

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
 * Creates a {@link ConsulStore} on a Consul agent's KV store, through its HTTP API (the `consul`
 * client). Nothing connects until an operation, a watch or `status$` is subscribed. A watch lists
 * the prefixes' common root, then follows it with blocking queries, one `changes` event (with prev
 * values) per listing that differs; revisions are Consul's indexes; `txn` is one atomic
 * `/v1/txn`; a TTL is a session's. What that means for merged writes, index resets, TTLs, the
 * transaction limit and keys is in `src/backends/consul/README.md`.
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
export function createConsulStore(options: ConsulStoreOptions = {}): ConsulStore {
  const settings = resolveOptions(options)
  const scheduler = settings.scheduler
  const mapError = errorMapper(settings.address)
  const edge = new StoreEdge({ name: NAME, mapError })
  // The raw client maps each request's errors, naming what the request did; one that reaches
  // the whole store (an unknown token, a TLS failure) closes it here. Whoever made the request
  // (the edge's broker, a watch, the status check) reports it to the store's health.
  const http = new ConsulHttp(settings, (raw, what) => {
    const { error, scope } = mapError(raw, what)
    if (scope === 'store') close(error)
    return error
  })
  const close = (error?: DatasyncError): void => {
    if (edge.close(error)) http.close()
  }

  const probe = edge.health.part()
  const statusCheck$ = timer(0, settings.statusIntervalMs, scheduler).pipe(
    exhaustMap(() =>
      http.leader().pipe(
        tap((leader) => {
          if (leader !== '') probe.up()
          else {
            probe.down(
              new UnavailableError(
                NAME,
                `the agent at ${settings.address} knows no cluster leader; waiting for an election`,
              ),
            )
          }
        }),
        catchError((error: unknown) => {
          if (isConnectionFault(error)) probe.down(error)
          return EMPTY
        }),
      ),
    ),
    ignoreElements(),
    finalize(() => {
      probe.gone()
    }),
    share(),
  )

  const status$ = new Observable<StoreStatus>((subscriber) => {
    const subscription = edge.health.status$.subscribe(subscriber)
    if (!edge.closed) subscription.add(statusCheck$.subscribe())
    return subscription
  })

  const write = (what: string, writes: readonly Write[]): Observable<TxnResult> =>
    runTxn(http, writes, [], what)

  return {
    name: NAME,
    capabilities: CAPABILITIES,
    status$,

    watch(prefixes: readonly string[]): Observable<StoreEvent<Uint8Array>> {
      return edge.watch(
        defer(() => {
          assertPrefixes(prefixes)
          // Nothing to watch: an empty view that never changes (listing the whole KV store to
          // learn its index would cost more than it tells).
          if (prefixes.length === 0) return concat(of(EMPTY_SNAPSHOT), NEVER)
          return watchListing(prefixes, {
            // A listing afresh (the first, and after every failure) is a consistent read.
            list: (root, blocking) => http.list(root, blocking, blocking === undefined),
            waitMs: settings.waitMs,
            minQueryIntervalMs: settings.minQueryIntervalMs,
            backoff: { firstMs: settings.retryDelayMs, maxMs: settings.maxRetryDelayMs },
            scheduler,
            mapError,
            health: edge.health.part(),
          })
        }),
      )
    },

    get(key: string): Observable<KeyValue<Uint8Array> | undefined> {
      return edge.op(`get '${key}'`, () => {
        assertKey('get', key)
        return http
          .get(key)
          .pipe(map(({ entry }) => (entry === undefined ? undefined : keyValueOf(entry))))
      })
    },

    list(prefix: string): Observable<readonly KeyValue<Uint8Array>[]> {
      return edge.op(`list '${prefix}'`, () => {
        assertPrefix('list', prefix)
        return http.list(prefix).pipe(map((listing) => listing.entries.map(keyValueOf).sort(byKey)))
      })
    },

    listKeys(prefix: string): Observable<readonly string[]> {
      return edge.op(`listKeys '${prefix}'`, () => {
        assertPrefix('listKeys', prefix)
        return http.keys(prefix).pipe(map((listing) => [...listing.keys].sort(compareKeys)))
      })
    },

    put(key: string, value: Uint8Array, putOptions?: PutOptions): Observable<void> {
      return edge.op(`put '${key}'`, () => {
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
      const prefix = deleteOptions?.prefix === true
      return edge.op(prefix ? `delete prefix '${key}'` : `delete '${key}'`, () => {
        if (!prefix) {
          assertKey('delete', key)
          // The get fails the transaction (deleting nothing) when the key is missing.
          return http
            .txn(
              [{ KV: { Verb: 'get', Key: key } }, { KV: { Verb: 'delete', Key: key } }],
              `delete '${key}'`,
            )
            .pipe(map((answer) => ({ deleted: deletedOne(answer, key) })))
        }
        assertPrefix('delete', key)
        if (key === '') {
          // A transaction needs a key: deleting everything is a count, then one recursive delete.
          return http
            .keys('')
            .pipe(
              switchMap((listing) =>
                http.deleteTree('').pipe(map(() => ({ deleted: listing.keys.length }))),
              ),
            )
        }
        return http
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
      return edge.op('txn', () => {
        const writes = toWrites(ops, settings.minTtlMs)
        const conditions = txnOptions?.conditions ?? []
        assertConditions(conditions)
        if (writes.length === 0 && conditions.length === 0) {
          throw new TypeError(`${NAME} txn: expected at least one operation or condition, got none`)
        }
        return runTxn(http, writes, conditions, 'txn')
      })
    },

    close(): Promise<void> {
      close()
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
