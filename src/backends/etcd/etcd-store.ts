import {
  Observable,
  defer,
  from,
  ignoreElements,
  lastValueFrom,
  map,
  merge,
  of,
  share,
  timeout,
} from 'rxjs'
import type { KeyValue, StoreEvent } from '../../core/events.js'
import { revision, type Revision } from '../../core/revision.js'
import type {
  Capabilities,
  DeleteOptions,
  StoreStatus,
  TxnOptions,
  TxnResult,
  WatchOptions,
} from '../../core/store.js'
import { show } from '../../internal/checks.js'
import { StoreEdge } from '../../internal/edge.js'
import type { ErrorMapper } from '../../internal/errors.js'
import {
  assertKey,
  assertNoDuplicates,
  assertPrefix,
  assertPrefixes,
  assertRequestSize,
  assertValue,
  checkOps,
  toCompare,
  toRequestOps,
} from './checks.js'
import { createClient, forgetToken, unary } from './client.js'
import { NAME, errorMapper, isStaleToken } from './errors.js'
import { keyBytes, prefixRange, toKeyValue } from './keys.js'
import { Leases, allLeases } from './leases.js'
import { Limiter } from './limiter.js'
import { listRanges, type ListContext } from './list.js'
import { autoCompact$, compactTo, probe$, type MaintenanceContext } from './maintenance.js'
import {
  resolveOptions,
  type EtcdPutOptions,
  type EtcdStore,
  type EtcdStoreOptions,
  type EtcdTxnOp,
} from './options.js'
import { watchPrefixes, type WatchContext } from './watch.js'
import { Writer } from './writer.js'
import { decodePutResponse, decodeRangeResponse, decodeTxnResponse } from './wire/decode.js'
import { encodePutRequest, encodeRangeRequest, encodeTxnRequest } from './wire/encode.js'

const CAPABILITIES: Capabilities = Object.freeze({
  write: true,
  txn: true,
  ttl: true,
  nativePrev: true,
  resumable: true,
  atomicPrefixDelete: true,
})

/** etcd's default `--max-txn-ops`: a batch of puts is one Txn of at most this many. */
const ETCD_MAX_TXN_OPS = 128
/** Bytes a batch leaves under `maxRequestBytes` for the request's own framing. */
const TXN_HEADROOM = 1024

/**
 * Creates a store over etcd v3 (the etcd3 client): a snapshot read at one revision, then a watch
 * from the next one that resumes after a broken stream without losing anything. Nothing connects
 * until something is subscribed. How it watches, resumes, reports its status and writes:
 * `src/backends/etcd/README.md`.
 *
 * ```
 * watch(['cfg/']):   S(R)---c---c---x(member killed)---c(resumed on another)---S(compacted)---c--
 * status$:           connecting--ready--------degraded--------ready------------------------------
 * ```
 *
 * @example
 * ```ts
 * import { createDatasync, json } from 'rx-datasync'
 * import { createEtcdStore, loadEtcdConfig } from 'rx-datasync/etcd'
 * const store = createEtcdStore((await loadEtcdConfig()) ?? { endpoints: ['127.0.0.1:2379'] })
 * const sync = createDatasync(store)
 * const routes = sync.register('routes', { prefixes: ['config/routes/'], codec: json<{ via: string }>() })
 * routes.events$.subscribe((event) => { console.log(event.kind); event.done() })
 * sync.start()
 * ```
 *
 * @throws TypeError when an option is not what is documented.
 */
export function createEtcdStore(options: EtcdStoreOptions = {}): EtcdStore {
  const settings = resolveOptions(options)
  const { scheduler } = settings
  const client = createClient({
    endpoints: settings.endpoints,
    tls: settings.tls,
    auth: options.auth,
    reconnectIntervalMs: settings.reconnectIntervalMs,
    now: () => scheduler.now(),
  })
  const table = errorMapper({ endpoints: settings.endpoints, username: options.auth?.username })
  // Every raw error is mapped here once: a stale auth token is forgotten on the way, so that the
  // next call authenticates again.
  const mapError: ErrorMapper = (raw, what) => {
    if (isStaleToken(raw)) forgetToken(client)
    return table(raw, what)
  }
  // A store waiting for etcd (allowDelayedStart) is connecting, not degraded, until first contact.
  const edge = new StoreEdge({ name: NAME, mapError })
  const writes = new Limiter(settings.maxWritesInFlight)
  let closing: Promise<void> | undefined

  /** One client request as a cold Observable, bounded by `timeoutMs`. */
  const request = <T>(run: () => Promise<T>, timeoutMs: number): Observable<T> =>
    defer(() => from(run())).pipe(timeout({ first: timeoutMs, scheduler }))
  /** A request through the edge: refused once closed, its error mapped, its answer reported. */
  const call = <T>(what: string, run: () => Promise<T>): Observable<T> =>
    edge.op(what, () => request(run, settings.operationTimeoutMs))

  const leases = new Leases({
    client,
    scheduler,
    windowMs: settings.leaseWindowMs,
    sessionTtlSeconds: settings.sessionTtlSeconds,
    call,
  })
  const writer = new Writer({
    maxOps: Math.min(ETCD_MAX_TXN_OPS, settings.maxWritesInFlight),
    maxBytes: settings.maxRequestBytes - TXN_HEADROOM,
    put: (put) =>
      request(
        () => unary(client, 'Put', encodePutRequest(put), decodePutResponse),
        settings.operationTimeoutMs,
      ),
    puts: (puts) =>
      request(() => {
        const success = puts.map((put) => ({ put }))
        return unary(
          client,
          'Txn',
          encodeTxnRequest({ compare: [], success, failure: [] }),
          decodeTxnResponse,
        )
      }, settings.operationTimeoutMs),
    run: (write) => request(write, settings.operationTimeoutMs),
  })
  const lists: ListContext = { client, pageSize: settings.pageSize, call }
  const maintenance: MaintenanceContext = { client, scheduler, writes, call }

  // Background work runs while anything holds it (a watch or a status$ subscriber).
  const background$ = merge(
    probe$({
      scheduler,
      intervalMs: settings.statusIntervalMs,
      status: () =>
        defer(() => {
          edge.assertOpen()
          return request(() => client.maintenance.status(), settings.dialTimeoutMs)
        }),
      part: edge.broker,
      fail: (raw, what) => edge.fail(raw, what),
    }),
    autoCompact$(maintenance, settings.autoCompactMs),
  ).pipe(ignoreElements(), share())

  const status$ = new Observable<StoreStatus>((subscriber) => {
    const subscription = edge.health.status$.subscribe(subscriber)
    if (!edge.closed) subscription.add(background$.subscribe())
    return subscription
  })

  const watchContext: WatchContext = {
    client,
    scheduler,
    endpoints: settings.endpoints,
    dialTimeoutMs: settings.dialTimeoutMs,
    reconnectIntervalMs: settings.reconnectIntervalMs,
    resyncAfterReconnect: settings.resyncAfterReconnect,
    allowDelayedStart: settings.allowDelayedStart,
    list: (prefixes) =>
      listRanges(lists, {
        ranges: prefixes.map(prefixRange),
        keysOnly: false,
        what: 'list for a watch',
        convert: toKeyValue,
      }),
    map: table,
    fail: (raw, what, part) => edge.handle(raw, what, part),
    contacted: () => edge.health.contacted,
    part: () => edge.health.part(),
  }

  const store: EtcdStore = {
    name: NAME,
    capabilities: CAPABILITIES,
    status$,

    // A status answer's header names the cluster: another cluster's revisions mean nothing here.
    identity: () =>
      edge
        .op('read the cluster id', () =>
          request(() => client.maintenance.status(), settings.dialTimeoutMs),
        )
        .pipe(map((answer) => `etcd cluster ${answer.header.cluster_id}`)),

    watch(prefixes: readonly string[], options?: WatchOptions): Observable<StoreEvent<Uint8Array>> {
      return edge.watch(
        defer(() => {
          assertPrefixes(prefixes)
          return merge(watchPrefixes(watchContext, prefixes, options), background$)
        }),
      )
    },

    get(key: string): Observable<KeyValue<Uint8Array> | undefined> {
      const what = `get ${show(key)}`
      return edge.op(what, () => {
        assertKey('get', key)
        return call(what, () =>
          unary(client, 'Range', encodeRangeRequest({ key: keyBytes(key) }), decodeRangeResponse),
        ).pipe(
          map((response) => {
            const kv = response.kvs[0]
            return kv === undefined ? undefined : toKeyValue(kv)
          }),
        )
      })
    },

    list(prefix: string): Observable<readonly KeyValue<Uint8Array>[]> {
      const what = `list ${show(prefix)}`
      return edge.op(what, () => {
        assertPrefix('list', prefix)
        return listRanges(lists, {
          ranges: [prefixRange(prefix)],
          keysOnly: false,
          what,
          convert: toKeyValue,
        }).pipe(map(({ items }) => items))
      })
    },

    listKeys(prefix: string): Observable<readonly string[]> {
      const what = `list the keys of ${show(prefix)}`
      return edge.op(what, () => {
        assertPrefix('listKeys', prefix)
        return listRanges(lists, {
          ranges: [prefixRange(prefix)],
          keysOnly: true,
          what,
          convert: (kv) => kv.key,
        }).pipe(map(({ items }) => items))
      })
    },

    put(key: string, value: Uint8Array, putOptions?: EtcdPutOptions): Observable<void> {
      const what = `put ${show(key)}`
      return edge.op(what, () => {
        assertKey('put', key)
        assertValue('put', key, value)
        assertRequestSize(what, [{ key, value }], settings.maxRequestBytes)
        const ttl = putOptions?.ttl
        const session = putOptions?.session
        const bytes = keyBytes(key)
        // In the writer's queue from now on (a put made after this one is applied after it),
        // batched with the puts waiting beside it; a put with a lease leaves once it is there.
        if (ttl === undefined && session !== true) {
          return writer.ready<undefined>({ key, put: { key: bytes, value, lease: undefined } })
        }
        const lease$ = leases.forPut(ttl, session, what)
        return leases.retryWhenLost((track) =>
          edge.op(what, () =>
            writer.write(track(lease$), (lease) => ({
              key,
              put: { key: bytes, value, lease: lease === undefined ? undefined : BigInt(lease) },
            })),
          ),
        )
      })
    },

    delete(key: string, deleteOptions?: DeleteOptions): Observable<{ readonly deleted: number }> {
      const prefix = deleteOptions?.prefix === true
      const what = `delete ${prefix ? 'every key under ' : ''}${show(key)}`
      return edge.op(what, () => {
        if (prefix) assertPrefix('delete', key)
        else assertKey('delete', key)
        const range = prefix ? prefixRange(key) : { start: keyBytes(key), end: undefined }
        return writer
          .ready({
            run: () =>
              client.kv.deleteRange({
                key: range.start,
                ...(range.end === undefined ? {} : { range_end: range.end }),
              }),
          })
          .pipe(map((response) => ({ deleted: Number(response.deleted) })))
      })
    },

    txn(
      ops: readonly EtcdTxnOp<Uint8Array>[],
      txnOptions?: TxnOptions<Uint8Array>,
    ): Observable<TxnResult> {
      return edge.op('transaction', () => {
        const checked = checkOps(ops)
        const compare = (txnOptions?.conditions ?? []).map(toCompare)
        assertNoDuplicates(checked)
        const what = `transaction of ${checked.length} operations`
        assertRequestSize(what, checked, settings.maxRequestBytes)
        const needs = checked.map((op) =>
          op.op === 'put' ? leases.forPut(op.ttl, op.session, what) : of(undefined),
        )
        return leases
          .retryWhenLost((track) =>
            edge.op(what, () =>
              writer.write(allLeases(needs.map(track)), (ids) => {
                const success = toRequestOps(checked, ids)
                const request = encodeTxnRequest({ compare, success, failure: [] })
                return { run: () => unary(client, 'Txn', request, decodeTxnResponse) }
              }),
            ),
          )
          .pipe(
            map((response): TxnResult => ({
              succeeded: response.succeeded,
              revision: revision(response.revision),
            })),
          )
      })
    },

    compact(to?: Revision): Observable<{ readonly revision: Revision }> {
      return edge.op('compact', () => {
        if (to !== undefined && typeof to !== 'bigint') {
          throw new TypeError(`${NAME} compact: expected a Revision (bigint), got ${show(to)}`)
        }
        return compactTo(maintenance, to)
      })
    },

    close(): Promise<void> {
      closing ??= (async () => {
        // The session lease is revoked while the client still works, straight (the edge refuses
        // from now on), so session keys go at once. It starts first: its keepalives stop before
        // the edge cuts one in flight, which would count the lease as lost and leave it be.
        const revoked = lastValueFrom(
          leases.revoke((_what, run) => request(run, settings.operationTimeoutMs)),
          { defaultValue: undefined },
        ).catch(() => undefined)
        // Nothing more is accepted, operations in flight fail, watches end, status$ ends.
        edge.close()
        await revoked
        client.close()
      })()
      return closing
    },
  }
  return store
}
