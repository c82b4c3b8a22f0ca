import { NEVER, Observable, concat, defer, from, map, mergeMap, of, reduce, switchMap } from 'rxjs'
import { CapabilityError } from '../../core/errors.js'
import type { KeyValue, StoreEvent } from '../../core/events.js'
import { revision } from '../../core/revision.js'
import type {
  Capabilities,
  DeleteOptions,
  KvStore,
  PutOptions,
  TxnOp,
  TxnOptions,
  TxnResult,
  WatchOptions,
} from '../../core/store.js'
import { StoreEdge } from '../../internal/edge.js'
import { compareKeys } from '../../internal/order.js'
import { NAME, errorMapper } from './errors.js'
import { lastPerKey, type FeedEvent, type FeedStart } from './feed.js'
import { assertKey, assertPrefix, assertPrefixes, assertValue, filterFor } from './keys.js'
import { NatsLink, type Handles } from './link.js'
import { resolveOptions, type NatsStoreOptions } from './options.js'
import { NOTHING_WATCHED, watchBucket } from './watch.js'
import { Slots, assertTxn, deleteOne, publish, readEntry, runTxn } from './writes.js'

/**
 * The store {@link createNatsStore} returns: a {@link KvStore} of bytes over a JetStream KV
 * bucket, with `activeConsumers()` for tests and monitoring.
 */
export interface NatsStore extends KvStore {
  /** How many consumers the bucket's stream has now (every watch and listing holds one). */
  activeConsumers(): Observable<number>
}

const CAPABILITIES: Capabilities = Object.freeze({
  write: true,
  // One key's conditional put or delete is atomic; several operations are not (nats-server 2.9
  // has no atomic batch): `txn` refuses them with a CapabilityError.
  txn: false,
  // Per-key TTLs need nats-server 2.11 (Nats-TTL).
  ttl: false,
  // Changes carry prev, but from the watch's own view, not from the server.
  nativePrev: false,
  // A broken watch resumes from its last revision + 1 while the stream holds that history.
  resumable: true,
  // A prefix delete is one conditional delete per key.
  atomicPrefixDelete: false,
})

/**
 * Creates a {@link NatsStore} on a NATS JetStream KV bucket (the `@nats-io/*` clients). Nothing
 * connects until an operation, a watch or `status$` is subscribed. Keys map to NATS keys by
 * segment (`a/b` is `a.b`, see `keys.ts`), so a prefix is a subject filter; the revision is the
 * stream sequence; a watch is a snapshot of the last message per key then every later message,
 * resuming after a break from its last revision while the stream holds it (see `watch.ts` and
 * `src/backends/nats/README.md`).
 *
 * ```
 * watch(['a/']):  S(R)--c(R+1)--c--x(connection lost)--c(resumed, no snapshot)--
 * put('a/1', v):  ----(u|)
 * ```
 *
 * @example
 * ```ts
 * import { createDatasync, json } from 'rx-datasync'
 * import { createNatsStore } from 'rx-datasync/nats'
 * const store = createNatsStore({ servers: 'nats://127.0.0.1:4222', bucket: 'config', create: true })
 * const sync = createDatasync(store)
 * const routes = sync.register('routes', { prefixes: ['routes/'], codec: json<{ via: string }>() })
 * routes.events$.subscribe((event) => { console.log(event.kind); event.done() })
 * sync.start()
 * ```
 */
export function createNatsStore(options: NatsStoreOptions = {}): NatsStore {
  const settings = resolveOptions(options)
  const scheduler = settings.scheduler
  const mapError = errorMapper(settings.servers, settings.bucket)
  const edge = new StoreEdge({ name: NAME, mapError })
  const link = new NatsLink(settings, edge.health.part())
  const slots = new Slots(settings.maxConcurrentRequests)
  const close = (): void => {
    if (edge.close()) void link.close()
  }
  // A store-scoped failure (a refused login) closes the connection too.
  edge.health.status$.subscribe((status) => {
    if (status.state === 'closed') void link.close()
  })

  /** Runs `work` with the handles, within the request timeout (connecting first if needed). */
  const call = <T>(work: (handles: Handles) => Promise<T>): Observable<T> =>
    link.ready().pipe(switchMap((handles) => from(work(handles))))
  const write = <T>(work: (handles: Handles) => Promise<T>): Observable<T> =>
    call((handles) => slots.run(() => work(handles)))

  const feed = (filter: string, start: FeedStart, headersOnly = false): Observable<FeedEvent> =>
    link.ready().pipe(switchMap((handles) => link.feed(handles, filter, start, headersOnly)))

  /** Every key under `prefix` with its last message, read by one consumer (one stream position). */
  const listLast = (prefix: string, headersOnly: boolean) =>
    lastPerKey(
      feed(filterFor(prefix).subject, { from: 'last-per-subject' }, headersOnly),
      prefix,
      () =>
        call(async (handles) =>
          BigInt((await handles.jsm.streams.info(handles.stream)).state.last_seq),
        ),
    ).pipe(map(({ items }) => items))

  return {
    name: NAME,
    capabilities: CAPABILITIES,
    status$: edge.health.status$,

    // The bucket's stream and when it was made: a bucket deleted and made again (its sequences
    // start over) or another server's bucket of the same name is another store.
    identity: () =>
      edge.op('read the bucket identity', () =>
        call(async (handles) => {
          const { config, created, cluster } = await handles.jsm.streams.info(handles.stream)
          const where = cluster?.name === undefined ? '' : ` cluster ${cluster.name}`
          return `nats stream ${config.name} created ${created}${where}`
        }),
      ),

    activeConsumers(): Observable<number> {
      return edge.op('consumer count', () =>
        call(
          async (handles) => (await handles.jsm.streams.info(handles.stream)).state.consumer_count,
        ),
      )
    },

    watch(
      prefixes: readonly string[],
      watchOptions?: WatchOptions,
    ): Observable<StoreEvent<Uint8Array>> {
      return edge.watch(
        defer(() => {
          assertPrefixes(prefixes)
          if (prefixes.length === 0) return concat(of(NOTHING_WATCHED), NEVER)
          // One health part for the watch: a failure it retries marks it down (not the broker's).
          const health = edge.health.part()
          return watchBucket(
            {
              feed: (filter, start) => feed(filter, start),
              bounds: () =>
                call(async (handles) => {
                  const { state } = await handles.jsm.streams.info(handles.stream)
                  return { first: BigInt(state.first_seq), last: BigInt(state.last_seq) }
                }),
              resumeWithinMs: settings.resumeWithinMs,
              backoff: { firstMs: settings.retryDelayMs, maxMs: settings.maxRetryDelayMs },
              scheduler,
              mapError: (raw, what) => edge.handle(raw, what, health),
              health,
            },
            prefixes,
            watchOptions,
          )
        }),
      )
    },

    get(key: string): Observable<KeyValue<Uint8Array> | undefined> {
      return edge.op(`get '${key}'`, () => {
        assertKey('get', key)
        return call((handles) => readEntry(handles, key)).pipe(
          map((entry) =>
            entry.value === undefined
              ? undefined
              : { key, value: entry.value, revision: revision(entry.seq) },
          ),
        )
      })
    },

    list(prefix: string): Observable<readonly KeyValue<Uint8Array>[]> {
      return edge.op(`list '${prefix}'`, () => {
        assertPrefix('list', prefix)
        return listLast(prefix, false)
      })
    },

    listKeys(prefix: string): Observable<readonly string[]> {
      return edge.op(`listKeys '${prefix}'`, () => {
        assertPrefix('listKeys', prefix)
        return listLast(prefix, true).pipe(
          map((items) => items.map((item) => item.key).sort(compareKeys)),
        )
      })
    },

    put(key: string, value: Uint8Array, putOptions?: PutOptions): Observable<void> {
      return edge.op(`put '${key}'`, () => {
        assertKey('put', key)
        assertValue('put', key, value)
        if (putOptions?.ttl !== undefined) {
          throw new CapabilityError(
            NAME,
            'TTL',
            'nats-server 2.9 has no per-key TTL (it needs 2.11)',
          )
        }
        return write((handles) => publish(handles, key, value)).pipe(map(() => undefined))
      })
    },

    delete(key: string, deleteOptions?: DeleteOptions): Observable<{ readonly deleted: number }> {
      const prefix = deleteOptions?.prefix === true
      return edge.op(prefix ? `delete prefix '${key}'` : `delete '${key}'`, () => {
        if (!prefix) {
          assertKey('delete', key)
          return write((handles) => deleteOne(handles, key)).pipe(map((deleted) => ({ deleted })))
        }
        assertPrefix('delete', key)
        return listLast(key, true).pipe(
          mergeMap((items) => from(items)),
          mergeMap(
            (item) => write((handles) => deleteOne(handles, item.key)),
            settings.maxConcurrentRequests,
          ),
          reduce((deleted, one) => deleted + one, 0),
          map((deleted) => ({ deleted })),
        )
      })
    },

    txn(
      ops: readonly TxnOp<Uint8Array>[],
      txnOptions?: TxnOptions<Uint8Array>,
    ): Observable<TxnResult> {
      return edge.op('txn', () => {
        const conditions = txnOptions?.conditions ?? []
        assertTxn(ops, conditions)
        return write((handles) => runTxn(handles, ops, conditions))
      })
    },

    close(): Promise<void> {
      close()
      return link.close()
    },
  }
}
