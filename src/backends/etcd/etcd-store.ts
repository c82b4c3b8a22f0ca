import {
  BehaviorSubject,
  EMPTY,
  Observable,
  Subject,
  catchError,
  concatMap,
  defer,
  exhaustMap,
  expand,
  from,
  ignoreElements,
  lastValueFrom,
  map,
  merge,
  of,
  reduce,
  retry,
  share,
  takeUntil,
  tap,
  throwError,
  timeout,
  timer,
  type SchedulerLike,
} from 'rxjs'
import type { IKeyValue, IRangeResponse, IRequestOp } from 'etcd3'
import type { Etcd3 } from 'etcd3'
import type { Duration } from '../../core/duration.js'
import { ClosedError, DatasyncError, describe } from '../../core/errors.js'
import type { KeyValue, StoreEvent } from '../../core/events.js'
import { revision, type Revision } from '../../core/revision.js'
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
import { createClient, forgetToken } from './client.js'
import { NAME, isStaleToken, mapError, type ErrorContext, type Mapped } from './errors.js'
import { keyAfter, keyBytes, prefixRange, toBuffer, valueOf, type KeyRange } from './keys.js'
import { Leases, isLeaseGone } from './leases.js'
import {
  assertKey,
  assertNoDuplicates,
  assertPrefix,
  assertPrefixes,
  assertValue,
  checkOps,
  show,
  toCompare,
  ttlMillis,
} from './checks.js'
import { Limiter } from './limiter.js'
import { resolve } from './settings.js'
import { watchPrefixes } from './watch.js'
import { CLOSED, CONNECTING, READY } from '../../internal/status.js'

/** TLS settings of {@link EtcdStoreOptions}: PEM contents, not file names. */
export interface EtcdTlsOptions {
  /** The CA certificate(s) that signed the members' certificates. @default the system's CAs */
  readonly ca?: string | Uint8Array
  /** The client certificate, for members that check client certificates. @default none */
  readonly cert?: string | Uint8Array
  /** The client certificate's private key; required with `cert`. @default none */
  readonly key?: string | Uint8Array
  /**
   * Accept any server certificate, without checking its CA or host name. For tests only: it
   * leaves the connection open to a man in the middle. @default false
   */
  readonly insecureSkipVerify?: boolean
}

/** Options of {@link createEtcdStore}. Every field has a default; `{}` talks to 127.0.0.1:2379. */
export interface EtcdStoreOptions {
  /**
   * The members' client URLs: `host:port`, `http://host:port` or `https://host:port` (https, or
   * a `tls` option, turns TLS on). Each request goes to one of them; a member that fails is
   * left behind for another.
   *
   * @default ['127.0.0.1:2379']
   */
  readonly endpoints?: readonly string[]
  /**
   * How long a first contact may take: a watch stream must be created, and the status probe
   * must answer, within it; without `allowDelayedStart`, a watch that cannot reach etcd for this
   * long fails.
   *
   * @default '1s'
   */
  readonly dialTimeout?: Duration
  /** How long one request (get, put, a page of a listing, a transaction) may take. @default '3s' */
  readonly operationTimeout?: Duration
  /** TLS towards the members. @default none (plain text, unless an endpoint says https) */
  readonly tls?: EtcdTlsOptions
  /**
   * User and password, when etcd has authentication enabled. A wrong pair is a fatal
   * `AuthError`: the store closes with it (status `closed`), nothing retries.
   *
   * @default no authentication
   */
  readonly auth?: { readonly username: string; readonly password: string }
  /**
   * Compacts etcd's history periodically: every `autoCompact`, to the revision seen one period
   * earlier, so a watch that was away for less than one period still resumes without a relist.
   * Runs while the store is in use (a watch or a `status$` subscriber). 0 turns it off.
   *
   * @default 0 (off)
   */
  readonly autoCompact?: Duration
  /**
   * After every reconnection, relist (a snapshot with cause `reconnect`) instead of resuming
   * from the last revision. Resuming loses nothing while etcd has the history; set this (and the
   * orchestrator's own `resyncAfterReconnect`) to have consumers resynced after each outage, as
   * the Go original's `resync-after-reconnect` did.
   *
   * @default false
   */
  readonly resyncAfterReconnect?: boolean
  /**
   * Let watches wait for etcd when it cannot be reached at start (status `connecting`), retrying
   * every `reconnectInterval`, and deliver their first snapshot once it is up. Without it, a
   * watch that cannot reach etcd within `dialTimeout` fails with an `UnavailableError`.
   *
   * @default false
   */
  readonly allowDelayedStart?: boolean
  /** The longest pause between two attempts to reach etcd (reconnects back off up to it). @default '2s' */
  readonly reconnectInterval?: Duration
  /**
   * The TTL of the session lease behind `put(key, value, { session: true })`: how long such keys
   * outlive a client that died without `close()`. Rounded up to whole seconds.
   *
   * @default '5s'
   */
  readonly sessionTtl?: Duration
  /** How often the status probe asks a member for its status while `status$` or a watch is subscribed. @default '5s' */
  readonly statusInterval?: Duration
  /**
   * How many write requests (puts, deletes, transactions, compactions) may be in flight at once;
   * more wait in order. A burst of thousands of writes then never meets etcd's "too many
   * requests".
   *
   * @default 64
   */
  readonly maxWritesInFlight?: number
  /**
   * The most keys one page of a listing asks for. Pages are also sized from the bytes seen so
   * far to stay near 2 MiB, far below gRPC's reply limit, and every page reads the same
   * revision.
   *
   * @default 1000
   */
  readonly pageSize?: number
  /**
   * Puts with a TTL share a lease when they come within this long of its grant: one lease per
   * TTL per window instead of one per put. A key then lives between its TTL and TTL + window.
   *
   * @default '1s'
   */
  readonly leaseWindow?: Duration
  /** Where every timer runs (timeouts, backoff, probes, keepalives, auto-compaction). @default asyncScheduler */
  readonly scheduler?: SchedulerLike
}

/** Options of an etcd put: those of every store, and the session lease. */
export interface EtcdPutOptions extends PutOptions {
  /**
   * The key lives as long as this client: it is attached to the store's session lease, kept
   * alive until `close()` (which revokes it) and expired by etcd `sessionTtl` after the client
   * died. Not with `ttl`.
   *
   * @default false
   */
  readonly session?: boolean
}

/** A transaction operation of the etcd store: a put may also use the session lease. */
export type EtcdTxnOp<V> =
  | TxnOp<V>
  | {
      readonly op: 'put'
      readonly key: string
      readonly value: V
      readonly ttl?: Duration
      readonly session?: boolean
    }

/** A {@link KvStore} over etcd, with etcd's extras: session keys and compaction. */
export interface EtcdStore extends KvStore {
  /** Writes a value; `ttl` expires it, `session` ties it to this client's life. */
  put(key: string, value: Uint8Array, options?: EtcdPutOptions): Observable<void>
  /** Runs the operations atomically when the conditions hold (one etcd transaction). */
  txn(
    ops: readonly EtcdTxnOp<Uint8Array>[],
    options?: TxnOptions<Uint8Array>,
  ): Observable<TxnResult>
  /**
   * Compacts etcd's history up to `revision` (the current revision when absent), waiting until
   * it is physically done. Watches that need older history relist. Emits the revision compacted
   * to; a revision already compacted fails with code `compacted`.
   */
  compact(revision?: Revision): Observable<{ readonly revision: Revision }>
}

const CAPABILITIES: Capabilities = Object.freeze({
  write: true,
  txn: true,
  ttl: true,
  nativePrev: true,
  resumable: true,
  atomicPrefixDelete: true,
})

/** Pages aim at this many bytes. */
const PAGE_TARGET_BYTES = 2 * 1024 * 1024
/** The first page of a listing asks for at most this many keys (their size is unknown yet). */
const FIRST_PAGE = 32
/** How often a listing starts over when its revision is compacted under it. */
const LIST_ATTEMPTS = 5

/**
 * Creates a store over etcd v3 (the etcd3 client). Nothing connects until something is
 * subscribed. Watches are a snapshot read at one revision R in pages, then a watch from R + 1
 * with previous values; a broken stream resumes from the last revision (nothing lost), a
 * compacted one relists. Writes are bounded in flight; TTLs share leases; session keys live as
 * long as the client.
 *
 * Several prefixes are watched with one etcd watch over the smallest key range that holds them
 * all, so a transaction across them arrives as one event; the client drops the keys in that
 * range outside the prefixes. Keep one watch's prefixes close together (under one root) so that
 * range carries little else.
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
  const settings = resolve(options)
  const { scheduler } = settings
  let client: Etcd3
  try {
    client = createClient({
      endpoints: settings.endpoints,
      tls: settings.tls,
      auth: options.auth,
      reconnectIntervalMs: settings.reconnectIntervalMs,
      now: () => scheduler.now(),
    })
  } catch (error) {
    if (error instanceof TypeError) throw error
    // grpc-js checks the PEM material when the credentials are made.
    throw new TypeError(
      `${NAME}: tls: expected PEM certificates and a PEM private key, got material gRPC refuses (${describe(error)})`,
      { cause: error },
    )
  }
  const errorContext: ErrorContext = {
    endpoints: settings.endpoints,
    username: options.auth?.username,
  }
  const writes = new Limiter(settings.maxWritesInFlight)
  const status = new BehaviorSubject<StoreStatus>(CONNECTING)
  const stop = new Subject<void>()
  let closing: Promise<void> | undefined
  const fatal = new Subject<never>()
  let closed = false
  let failure: DatasyncError | undefined
  let contacted = false
  let probeError: DatasyncError | undefined
  const downWatches = new Map<object, DatasyncError>()

  const refresh = () => {
    if (closed || failure !== undefined) return
    const error = downWatches.values().next().value ?? probeError
    const state = contacted ? (error ? 'degraded' : 'ready') : 'connecting'
    const current = status.value
    if (current.state === state && (current.error === undefined) === (error === undefined)) return
    status.next(error ? { state, error } : state === 'ready' ? READY : CONNECTING)
  }

  /** The highest revision any answer showed: no snapshot of this store may be older. */
  let highest = 0n
  const observe = (seen: bigint) => {
    if (seen > highest) highest = seen
  }

  const contact = () => {
    contacted = true
    probeError = undefined
    refresh()
  }

  /** Ends the store for good after an error retrying cannot fix (authentication, TLS). */
  const fail = (error: DatasyncError) => {
    if (closed || failure !== undefined) return
    failure = error
    status.next({ state: 'closed', error })
    status.complete()
    fatal.error(error)
  }

  const map$ = (raw: unknown, what: string): Mapped => mapError(raw, errorContext, what)
  const handle = (raw: unknown, what: string): Mapped => {
    if (isStaleToken(raw)) forgetToken(client)
    const mapped = map$(raw, what)
    if (mapped.scope === 'store') fail(mapped.error)
    return mapped
  }

  /**
   * The one edge where a client promise becomes a cold Observable: refused once the store is
   * closed or failed, bounded by `timeoutMs`, its error mapped (a store-wide one closes the store).
   */
  const call = <T>(
    what: string,
    run: () => Promise<T>,
    callOptions: { readonly timeoutMs?: number; readonly contact?: boolean } = {},
  ): Observable<T> =>
    defer(() => {
      if (failure !== undefined) return throwError(() => failure)
      if (closed) return throwError(() => new ClosedError(`the ${NAME} store`))
      return from(run())
    }).pipe(
      timeout({ first: callOptions.timeoutMs ?? settings.operationTimeoutMs, scheduler }),
      tap((response) => {
        const header = (response as { header?: { revision?: string } } | undefined)?.header
        if (header?.revision !== undefined) observe(BigInt(header.revision))
        if (callOptions.contact !== false) contact()
      }),
      catchError((raw: unknown) => throwError(() => handle(raw, what).error)),
    )

  const leases = new Leases({
    client,
    scheduler,
    windowMs: settings.leaseWindowMs,
    sessionTtlSeconds: settings.sessionTtlSeconds,
    call: (what, run) => call(what, run),
  })

  /**
   * Every key in `ranges` at one revision, in pages: the first page fixes the revision R and
   * every later page reads R, so writes during the listing cannot make it inconsistent. Starts
   * over when R is compacted under it.
   *
   * Every page is linearizable (a later page waits until the member has applied R), except,
   * with `quick`, the first: a watch's snapshot needs a consistent view, not the latest one
   * (the watch brings what follows), so the member may answer from what it has applied, without
   * a round through the raft leader, and the snapshot is taken when it is asked for. A lagging
   * member could answer with an older revision: when R is below a revision this store has
   * already seen, the page is read again linearizably, so the store's snapshots never go back
   * in time. Broker listings are fully linearizable: they see every write that completed.
   *
   * Each page is converted as it arrives (`convert`), so the client's own objects for a page
   * (a dozen per key) are garbage before the next page comes: a listing of 100k keys never holds
   * them all at once.
   */
  const listRanges = <T>(
    ranges: readonly KeyRange[],
    keysOnly: boolean,
    what: string,
    convert: (kv: IKeyValue) => T,
    quick = false,
  ): Observable<{ revision: bigint; items: T[] }> =>
    defer(() => {
      const floor = highest
      let pinned: string | undefined
      let limit = Math.min(FIRST_PAGE, settings.pageSize)
      let bytes = 0
      let count = 0
      const read = (range: KeyRange, start: Buffer, serializable: boolean) =>
        call(what, () =>
          client.kv.range({
            key: start,
            range_end: range.end,
            limit,
            revision: pinned ?? 0,
            keys_only: keysOnly,
            serializable,
          }),
        )
      const page = (range: KeyRange, start: Buffer): Observable<IRangeResponse> =>
        (pinned !== undefined || !quick
          ? read(range, start, false)
          : read(range, start, true).pipe(
              concatMap((response) =>
                BigInt(response.header.revision) >= floor
                  ? of(response)
                  : read(range, start, false),
              ),
            )
        ).pipe(
          tap((response) => {
            pinned ??= response.header.revision
            for (const kv of response.kvs) bytes += kv.key.length + (kv.value?.length ?? 0) + 64
            count += response.kvs.length
            const average = count === 0 ? 64 : bytes / count
            limit = Math.max(
              1,
              Math.min(settings.pageSize, Math.floor(PAGE_TARGET_BYTES / average)),
            )
          }),
        )
      return from(ranges).pipe(
        concatMap((range) =>
          page(range, range.start).pipe(
            expand((response) => {
              const lastKv = response.kvs.at(-1)
              return response.more && lastKv !== undefined
                ? page(range, keyAfter(lastKv.key))
                : EMPTY
            }),
          ),
        ),
        reduce((items: T[], response) => {
          for (const kv of response.kvs) items.push(convert(kv))
          return items
        }, []),
        map((items) => ({ revision: BigInt(pinned ?? '0'), items })),
      )
    }).pipe(
      retry({
        count: LIST_ATTEMPTS,
        delay: (error: unknown) =>
          error instanceof DatasyncError && error.code === 'compacted'
            ? of(0)
            : throwError(() => error),
      }),
    )

  const toKeyValue = (kv: IKeyValue): KeyValue<Uint8Array> => ({
    key: kv.key.toString('utf8'),
    value: valueOf(kv.value),
    revision: revision(kv.mod_revision),
  })

  const probe$ = timer(0, settings.statusIntervalMs, scheduler).pipe(
    exhaustMap(() =>
      call('status probe', () => client.maintenance.status(), {
        timeoutMs: settings.dialTimeoutMs,
        contact: false,
      }).pipe(
        tap((answer) => {
          if (answer.leader === '0') {
            probeError = new DatasyncError(
              'unavailable',
              `${NAME}: the member at ${answer.header.member_id} has no raft leader`,
            )
            contacted = true
            refresh()
          } else contact()
        }),
        catchError((error: unknown) => {
          if (error instanceof DatasyncError && error.retryable) {
            probeError = error
            refresh()
          }
          return EMPTY
        }),
      ),
    ),
  )

  const compactTo = (target: Revision | undefined): Observable<{ readonly revision: Revision }> =>
    (target === undefined
      ? call('read the current revision', () => client.maintenance.status()).pipe(
          map((answer) => revision(answer.header.revision)),
        )
      : of(target)
    ).pipe(
      concatMap((to) =>
        writes
          .run(
            call(`compact to revision ${to}`, () =>
              client.kv.compact({ revision: to.toString(), physical: true }),
            ),
          )
          .pipe(map(() => ({ revision: to }))),
      ),
    )

  // Every tick compacts to the revision the previous tick saw: one period of history is kept.
  const autoCompact$ =
    settings.autoCompactMs > 0
      ? defer(() => {
          let previous: Revision | undefined
          return timer(settings.autoCompactMs, settings.autoCompactMs, scheduler).pipe(
            exhaustMap(() =>
              call('read the current revision', () => client.maintenance.status()).pipe(
                concatMap((answer) => {
                  const target = previous
                  previous = revision(answer.header.revision)
                  return target === undefined ? EMPTY : compactTo(target)
                }),
                catchError(() => EMPTY),
              ),
            ),
          )
        })
      : EMPTY

  // Background work runs while anything holds it (a watch or a status$ subscriber).
  const background$ = merge(probe$, autoCompact$).pipe(ignoreElements(), share())

  const status$ = new Observable<StoreStatus>((subscriber) => {
    if (closed || failure !== undefined) {
      // The subject has completed: replay the final state by hand.
      subscriber.next(failure === undefined ? CLOSED : { state: 'closed', error: failure })
      subscriber.complete()
      return undefined
    }
    const subscription = status.subscribe(subscriber)
    subscription.add(background$.subscribe())
    return subscription
  })

  const watchContext = {
    client,
    scheduler,
    endpoints: settings.endpoints,
    dialTimeoutMs: settings.dialTimeoutMs,
    reconnectIntervalMs: settings.reconnectIntervalMs,
    resyncAfterReconnect: settings.resyncAfterReconnect,
    allowDelayedStart: settings.allowDelayedStart,
    list: (prefixes: readonly string[]) =>
      listRanges(prefixes.map(prefixRange), false, 'list for a watch', toKeyValue, true),
    map: map$,
    fail: handle,
    observe,
    contacted: () => contacted,
    up: (token: object) => {
      downWatches.delete(token)
      contact()
    },
    down: (token: object, error: DatasyncError) => {
      if (!downWatches.has(token)) downWatches.set(token, error)
      refresh()
    },
    gone: (token: object) => {
      downWatches.delete(token)
      refresh()
    },
  }

  const operation = <T>(build: () => Observable<T>): Observable<T> =>
    defer(() => {
      if (failure !== undefined) return throwError(() => failure)
      if (closing !== undefined) return throwError(() => new ClosedError(`the ${NAME} store`))
      return build()
    })

  const leaseFor = (ttl: Duration | undefined, session: boolean | undefined, what: string) => {
    if (session === true && ttl !== undefined) {
      throw new TypeError(`${NAME} ${what}: give either ttl or session, not both`)
    }
    if (session === true) return leases.forSession()
    if (ttl !== undefined) return leases.forTtl(ttlMillis(what, ttl))
    return of(undefined)
  }

  /**
   * Runs a write that may use leases, in a write slot. `track` notes the leases it used: when
   * etcd no longer has one (expired early, revoked), it is forgotten and the write tried once
   * more with a fresh lease.
   */
  const withLeases = <T>(
    write: (
      track: (id$: Observable<string | undefined>) => Observable<string | undefined>,
    ) => Observable<T>,
  ): Observable<T> =>
    writes.run(
      defer(() => {
        const used = new Set<string>()
        const track = (id$: Observable<string | undefined>) =>
          id$.pipe(
            tap((id) => {
              if (id !== undefined) used.add(id)
            }),
          )
        return write(track).pipe(
          catchError((error: unknown) => {
            if (isLeaseGone(error)) for (const id of used) leases.invalidate(id)
            return throwError(() => error)
          }),
        )
      }).pipe(
        retry({
          count: 1,
          delay: (error: unknown) => (isLeaseGone(error) ? of(0) : throwError(() => error)),
        }),
      ),
    )

  const store: EtcdStore = {
    name: NAME,
    capabilities: CAPABILITIES,
    status$,

    watch(prefixes: readonly string[]): Observable<StoreEvent<Uint8Array>> {
      return operation(() => {
        assertPrefixes(prefixes)
        return merge(watchPrefixes(watchContext, prefixes), fatal, background$).pipe(
          takeUntil(stop),
        )
      })
    },

    get(key: string): Observable<KeyValue<Uint8Array> | undefined> {
      return operation(() => {
        assertKey('get', key)
        return call(`get ${show(key)}`, () => client.kv.range({ key: keyBytes(key) })).pipe(
          map((response) => {
            const kv = response.kvs[0]
            return kv === undefined ? undefined : toKeyValue(kv)
          }),
        )
      })
    },

    list(prefix: string): Observable<readonly KeyValue<Uint8Array>[]> {
      return operation(() => {
        assertPrefix('list', prefix)
        return listRanges([prefixRange(prefix)], false, `list ${show(prefix)}`, toKeyValue).pipe(
          map(({ items }) => items),
        )
      })
    },

    listKeys(prefix: string): Observable<readonly string[]> {
      return operation(() => {
        assertPrefix('listKeys', prefix)
        return listRanges([prefixRange(prefix)], true, `list the keys of ${show(prefix)}`, (kv) =>
          kv.key.toString('utf8'),
        ).pipe(map(({ items }) => items))
      })
    },

    put(key: string, value: Uint8Array, putOptions?: EtcdPutOptions): Observable<void> {
      return operation(() => {
        assertKey('put', key)
        assertValue('put', key, value)
        const what = `put ${show(key)}`
        return withLeases((track) =>
          track(leaseFor(putOptions?.ttl, putOptions?.session, what)).pipe(
            concatMap((lease) =>
              call(what, () =>
                client.kv.put({
                  key: keyBytes(key),
                  value: toBuffer(value),
                  ...(lease === undefined ? {} : { lease }),
                }),
              ),
            ),
          ),
        ).pipe(map(() => undefined))
      })
    },

    delete(key: string, deleteOptions?: DeleteOptions): Observable<{ readonly deleted: number }> {
      return operation(() => {
        const prefix = deleteOptions?.prefix === true
        if (prefix) assertPrefix('delete', key)
        else assertKey('delete', key)
        const range = prefix ? prefixRange(key) : { start: keyBytes(key), end: undefined }
        return writes
          .run(
            call(`delete ${prefix ? 'every key under ' : ''}${show(key)}`, () =>
              client.kv.deleteRange({
                key: range.start,
                ...(range.end === undefined ? {} : { range_end: range.end }),
              }),
            ),
          )
          .pipe(map((response) => ({ deleted: Number(response.deleted) })))
      })
    },

    txn(
      ops: readonly EtcdTxnOp<Uint8Array>[],
      txnOptions?: TxnOptions<Uint8Array>,
    ): Observable<TxnResult> {
      return operation(() => {
        const checked = checkOps(ops)
        const conditions = txnOptions?.conditions ?? []
        const compare = conditions.map(toCompare)
        assertNoDuplicates(checked)
        const what = `transaction of ${checked.length} operations`
        return withLeases((track) => {
          const needs = checked.map((op) =>
            op.op === 'put' ? track(leaseFor(op.ttl, op.session, what)) : of(undefined),
          )
          return (needs.length === 0 ? of([] as (string | undefined)[]) : combine(needs)).pipe(
            concatMap((ids) => {
              const success = checked.map((op, index): IRequestOp => {
                if (op.op === 'put') {
                  const lease = ids[index]
                  return {
                    request_put: {
                      key: keyBytes(op.key),
                      value: toBuffer(op.value),
                      ...(lease === undefined ? {} : { lease }),
                    },
                  }
                }
                const range = op.prefix === true ? prefixRange(op.key) : undefined
                return {
                  request_delete_range: range
                    ? { key: range.start, range_end: range.end }
                    : { key: keyBytes(op.key) },
                }
              })
              return call(what, () => client.kv.txn({ compare, success, failure: [] }))
            }),
          )
        }).pipe(
          map((response): TxnResult => ({
            succeeded: response.succeeded,
            revision: revision(response.header.revision),
          })),
        )
      })
    },

    compact(to?: Revision): Observable<{ readonly revision: Revision }> {
      return operation(() => {
        if (to !== undefined && typeof to !== 'bigint') {
          throw new TypeError(`${NAME} compact: expected a Revision (bigint), got ${show(to)}`)
        }
        return compactTo(to)
      })
    },

    close(): Promise<void> {
      closing ??= (async () => {
        // Watches end first; the session lease is revoked while the client still works, so
        // session keys go at once; then nothing more is accepted.
        stop.next()
        stop.complete()
        await lastValueFrom(leases.revoke(), { defaultValue: undefined }).catch(() => undefined)
        closed = true
        client.close()
        if (failure === undefined) {
          status.next(CLOSED)
          status.complete()
        }
      })()
      return closing
    },
  }
  return store
}

/** Emits every lease id once all are there (several TTLs in one transaction). */
function combine(
  sources: readonly Observable<string | undefined>[],
): Observable<(string | undefined)[]> {
  return from(sources).pipe(
    concatMap((source) => source),
    reduce((ids: (string | undefined)[], id) => [...ids, id], []),
  )
}
