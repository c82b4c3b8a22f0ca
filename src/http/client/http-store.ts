import { EMPTY, catchError, defer, map, mergeMap, of, throwError, type Observable } from 'rxjs'
import type { KeyValue, StoreEvent } from '../../core/events.js'
import type {
  DeleteOptions,
  KvStore,
  PutOptions,
  TxnOp,
  TxnOptions,
  TxnResult,
  WatchOptions,
} from '../../core/store.js'
import { StoreEdge } from '../../internal/edge.js'
import { encodeValue, fromWireKeyValue, parseRevision, type WireKeyValue } from '../wire.js'
import { NAME, check, resolveClientOptions, type HttpStoreOptions } from './options.js'
import { HttpFailure, httpErrorMapper, request } from './request.js'
import { watchOverHttp } from './watch.js'

/**
 * A {@link KvStore} over a store served by `serveStore` (`rx-datasync/http`), for Node 20 and
 * browsers: REST calls with `fetch`, and watches over Server-Sent Events read from a streamed
 * fetch body (so the token travels in a header). It imports nothing from Node.
 *
 * Every watch resumes after a broken connection from the last revision it delivered
 * (`Last-Event-ID`), so `capabilities.resumable` and `nativePrev` hold whatever store is served.
 * A 401 (no token, a wrong one) closes the store with an `AuthError`: it is fatal and never
 * retried. A 403 fails the one operation with an `AuthError` naming the key.
 *
 * @example
 * ```ts
 * import { createDatasync } from 'rx-datasync'
 * import { createHttpStore } from 'rx-datasync/http-client'
 * const store = createHttpStore('https://config.example.com', { token: 'secret' })
 * const sync = createDatasync(store)
 * ```
 *
 * @throws TypeError naming the URL or option when one is wrong.
 */
export function createHttpStore(url: string, options: HttpStoreOptions = {}): KvStore {
  const settings = resolveClientOptions(url, options)
  const edge = new StoreEdge({ name: NAME, mapError: httpErrorMapper(settings.base) })
  const call = (
    what: string,
    method: 'GET' | 'PUT' | 'DELETE' | 'POST',
    path: string,
    query: Record<string, string>,
    body: () => unknown,
  ) => edge.op(what, () => request(settings, method, path, query, body()))

  return {
    name: NAME,
    capabilities: settings.capabilities,
    status$: edge.health.status$,

    // The served store's identity (its revisions are the ones this store gives): none when it
    // has none, or when the server is older than the route (its 404 would otherwise close the
    // store as "not a rx-datasync server").
    identity: () =>
      edge
        .op('read the served store identity', () =>
          request(settings, 'GET', '/v1/identity', {}).pipe(
            catchError((raw: unknown) =>
              raw instanceof HttpFailure && raw.status === 404 ? of({}) : throwError(() => raw),
            ),
          ),
        )
        .pipe(
          mergeMap((answer) => {
            const identity = (answer as { identity?: unknown }).identity
            return typeof identity === 'string' ? of(identity) : EMPTY
          }),
        ),

    watch(
      prefixes: readonly string[],
      watchOptions?: WatchOptions,
    ): Observable<StoreEvent<Uint8Array>> {
      return defer(() => {
        check.prefixes(prefixes)
        return edge.watch(watchOverHttp(settings, edge, [...prefixes], watchOptions))
      })
    },

    get(key: string): Observable<KeyValue<Uint8Array> | undefined> {
      return call(`get '${key}'`, 'GET', '/v1/kv', { key }, () => {
        check.key('get', key)
      }).pipe(
        map((answer) => {
          const item = (answer as { item: WireKeyValue | null }).item
          return item === null ? undefined : fromWireKeyValue(item)
        }),
      )
    },

    list(prefix: string): Observable<readonly KeyValue<Uint8Array>[]> {
      return call(`list '${prefix}'`, 'GET', '/v1/list', { prefix }, () => {
        check.prefix('list', prefix)
      }).pipe(map((answer) => (answer as { items: WireKeyValue[] }).items.map(fromWireKeyValue)))
    },

    listKeys(prefix: string): Observable<readonly string[]> {
      return call(`listKeys '${prefix}'`, 'GET', '/v1/keys', { prefix }, () => {
        check.prefix('listKeys', prefix)
      }).pipe(map((answer) => (answer as { keys: string[] }).keys))
    },

    put(key: string, value: Uint8Array, putOptions?: PutOptions): Observable<void> {
      const ttl = putOptions?.ttl
      return call(`put '${key}'`, 'PUT', '/v1/kv', { key }, () => {
        check.key('put', key)
        check.value('put', key, value)
        if (ttl !== undefined) check.ttlMs('put', ttl)
        return { value: encodeValue(value), ...(ttl === undefined ? {} : { ttl }) }
      }).pipe(map(() => undefined))
    },

    delete(key: string, deleteOptions?: DeleteOptions): Observable<{ readonly deleted: number }> {
      const prefix = deleteOptions?.prefix === true
      const query: Record<string, string> = prefix ? { key, prefix: 'true' } : { key }
      return call(`delete '${key}'`, 'DELETE', '/v1/kv', query, () => {
        if (prefix) check.prefix('delete', key)
        else check.key('delete', key)
      }).pipe(map((answer) => ({ deleted: (answer as { deleted: number }).deleted })))
    },

    txn(
      ops: readonly TxnOp<Uint8Array>[],
      txnOptions?: TxnOptions<Uint8Array>,
    ): Observable<TxnResult> {
      const conditions = txnOptions?.conditions ?? []
      const body = () => {
        check.writes(ops, (what, ttl) => check.ttlMs(what, ttl))
        check.conditions(conditions)
        return {
          ops: ops.map((op) =>
            op.op === 'put'
              ? {
                  op: 'put',
                  key: op.key,
                  value: encodeValue(op.value),
                  ...(op.ttl === undefined ? {} : { ttl: op.ttl }),
                }
              : { op: 'delete', key: op.key, prefix: op.prefix === true },
          ),
          conditions: conditions.map((condition) =>
            'exists' in condition
              ? { key: condition.key, exists: condition.exists }
              : 'revision' in condition
                ? { key: condition.key, revision: condition.revision.toString() }
                : { key: condition.key, value: encodeValue(condition.value) },
          ),
        }
      }
      return call('txn', 'POST', '/v1/txn', {}, body).pipe(
        map((answer) => {
          const result = answer as { succeeded: boolean; revision: string }
          return { succeeded: result.succeeded, revision: parseRevision(result.revision, 'txn') }
        }),
      )
    },

    close(): Promise<void> {
      edge.close()
      return Promise.resolve()
    },
  }
}
