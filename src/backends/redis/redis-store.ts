import { randomBytes } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import {
  Observable,
  Subject,
  asyncScheduler,
  catchError,
  defer,
  firstValueFrom,
  from,
  fromEvent,
  lastValueFrom,
  map,
  race,
  takeUntil,
  throwError,
  timeout,
  timer,
} from 'rxjs'
import type { Duration } from '../../core/duration.js'
import { CapabilityError, ClosedError, UnavailableError } from '../../core/errors.js'
import type { KeyValue, StoreEvent } from '../../core/events.js'
import type { Revision } from '../../core/revision.js'
import type {
  Capabilities,
  DeleteOptions,
  KvStore,
  PutOptions,
  StoreStatus,
  TxnCondition,
  TxnOp,
  TxnOptions,
  TxnResult,
} from '../../core/store.js'
import { createMainClient, ended, mapAddress } from './connections.js'
import { NAME, toDatasyncError } from './errors.js'
import { Health } from './health.js'
import { argumentChecks, type ArgumentChecks, type CheckedWrite } from '../../internal/checks.js'
import { keyPattern } from './keyspace.js'
import { resolveSettings, type RedisStoreOptions } from './options.js'
import { asBuffer, clusterTopology, copyBytes, groupKeys, readValues, scanKeys } from './reads.js'
import { RevisionClock } from './revisions.js'
import { messageHead, runWriteScript, writesChannel } from './scripts.js'
import { keySlot } from './slots.js'
import { watchKeys } from './watch.js'

/** A Redis store: a {@link KvStore} of bytes with a status check. */
export interface RedisStore extends KvStore {
  /**
   * A status check: PINGs the server (every master of a Cluster) and emits the slowest round
   * trip in milliseconds, or fails with a retryable `UnavailableError`.
   */
  ping(): Observable<number>
}

const CAPABILITIES: Capabilities = Object.freeze({
  write: true,
  txn: true,
  ttl: true,
  nativePrev: false,
  resumable: false,
  atomicPrefixDelete: false,
})

/** A write of a transaction, checked; a put's TTL in milliseconds. */
type Write = CheckedWrite<Uint8Array>

/**
 * Creates a {@link KvStore} on Redis: one node, a master behind Sentinel, or a Cluster. Nothing
 * connects until an operation or a watch is subscribed.
 *
 * **Watch.** Keyspace notifications (`notify-keyspace-events` needs the classes `K g $ x e`; the
 * store sets them, or with the option `keyspaceEvents: 'verify'` leaves the server alone and fails
 * with a `ConfigError` naming what is missing). Needs Redis 6.0 or later. Each watch subscribes first, on a dedicated connection per master, queueing what
 * arrives; then it lists (SCAN + MGET on every master), emits the snapshot, and applies the queue:
 * nothing written after the subscription falls between listing and events (P1). Every write made
 * through a Redis store (this one or another) also publishes its values, so a watch delivers each
 * such put, delete and transaction exactly, as its own change event (a transaction as one event,
 * P8). A write by another client raises only a keyspace event without a value: the watch reads
 * the key from the master that published the event. Reads and messages are ordered so that a
 * key's values never go back in time (see `watch.ts`); several outside writes to a key that land
 * before its read arrive as one change with the latest value. On a Cluster, where nothing orders
 * two masters, a watch still delivers one store's writes in the order that store made them. Deletes, expirations, evictions and
 * renames (a delete of the old name and a put of the new) all arrive; a delete carries the last
 * value the watch emitted as `prev`. Redis pub/sub is at-most-once, so any lost connection,
 * unanswered heartbeat, Sentinel failover or Cluster slot-map change ends the watch's session: the
 * next one relists and emits a snapshot with cause `reconnect` or `watch-error` (P4), which the
 * orchestrator diffs against each consumer's view.
 *
 * ```
 * watch(['a/']):  --S(startup)--c--c----x(connection lost)--S(reconnect)--c--
 * ```
 *
 * **Revisions.** Redis has no revisions; the store counts its own, so they are monotonic per store
 * instance (two instances count independently). Each change event gets the next count; a key's
 * revision (in `get`, `list` and snapshots) is the count at which this store last saw its value
 * change, and stays the same while the value does. A transaction condition on a revision holds
 * when the key still holds the value this store saw at that revision (compared on the server by
 * SHA-1, atomically); a revision this store cannot vouch for (the key changed since, or it was
 * forgotten, see `revisionCacheSize`) fails the condition. Redis keeps no history, so a change
 * and change back that this store never saw goes unnoticed: use a value condition for strict
 * compare-and-swap.
 *
 * **Watch memory.** With `watchMemory: 'values'` (the default) each watch keeps every watched
 * key's value (the `prev` of its changes, its no-op filter) and records it in the revision table;
 * with `'lean'` it keeps nothing per key once the events that arrived during its reads are
 * settled, its changes carry no `prev`, and its revisions fail revision conditions (see
 * `RedisStoreOptions.watchMemory`).
 *
 * **Broker.** `list` and `listKeys` SCAN every master, drop duplicates and keys whose value is
 * gone, and sort; a listing is not a point-in-time view across keys (SCAN is not atomic).
 * `put` with `ttl` is `SET ... PX` (millisecond precision). `delete(prefix, { prefix: true })` is
 * SCAN, then DEL in batches of 500 keys (one slot per batch on a Cluster, each batch one change
 * event) and is **not atomic** (`capabilities.atomicPrefixDelete` is false): keys written under
 * the prefix meanwhile may survive, and a failure midway leaves the earlier batches deleted. `txn` runs as one Lua script: conditions
 * and writes are atomic, and a watch delivers the transaction as one change event (P8); on a
 * Cluster every key of a transaction must be in one hash slot (use a hash tag such as
 * `{user42}`), and a prefix delete inside a transaction is refused there. The store handles
 * string keys only: keys of other types are invisible to it. Writes publish their values on the
 * channel `__rx-datasync__:writes@<db>`, which every watch of the database receives (on a Cluster,
 * every node relays it): large values cost their size once more per watching connection.
 *
 * @example
 * ```ts
 * import { createRedisStore } from 'rx-datasync/redis'
 * import { createDatasync, json } from 'rx-datasync'
 * const store = createRedisStore({ node: '127.0.0.1:6379' })
 * const sync = createDatasync(store)
 * sync.register('routes', { prefixes: ['config/routes/'], codec: json() })
 * sync.start()
 * ```
 */
export function createRedisStore(options: RedisStoreOptions): RedisStore {
  const settings = resolveSettings(options)
  const scheduler = options.scheduler ?? asyncScheduler
  const clock = new RevisionClock(settings.revisionCacheSize)
  const health = new Health()
  const connections = new Set<Redis | Cluster>()
  const closing = new Subject<void>()
  /** This store's id and write counter, in its write messages (see `scripts.ts`). */
  const writerId = randomBytes(8)
  let sequence = 0n
  let closed = false
  let closePromise: Promise<void> | undefined

  const main = createMainClient(settings)
  connections.add(main)
  main.on('error', (error: unknown) => {
    // Lost connections show as close/reconnecting; a refused password or bad TLS stays visible.
    const mapped = toDatasyncError(error, 'the connection')
    if (mapped.code === 'auth' || mapped.code === 'config') health.markDown('main', mapped)
  })
  main.on('ready', () => {
    health.markUp('main')
  })
  const lost = () => {
    if (!closed)
      health.markDown('main', new UnavailableError(NAME, 'the connection was lost; reconnecting'))
  }
  main.on('close', lost)
  main.on('reconnecting', lost)
  const cluster = settings.target.mode === 'cluster' ? (main as Cluster) : undefined

  const assertOpen = () => {
    if (closed) throw new ClosedError(`the ${NAME} store`)
  }

  /** A cold operation: checks run on subscribe, then the promise; client errors mapped once. */
  function operation<T>(what: string, check: () => void, run: () => Promise<T>): Observable<T> {
    return defer(() => {
      assertOpen()
      check()
      return from(run()).pipe(
        catchError((error: unknown) => throwError(() => toDatasyncError(error, what))),
      )
    })
  }

  /** Resolves when the Cluster client is ready (it may be reconnecting after an outage). */
  async function clusterReady(client: Cluster): Promise<void> {
    if (client.status === 'ready') return
    if (client.status === 'wait') {
      await client.connect()
      return
    }
    await firstValueFrom(
      fromEvent(client, 'ready').pipe(
        timeout({
          first: settings.commandTimeoutMs,
          scheduler,
          with: () =>
            throwError(
              () => new UnavailableError(NAME, `the cluster is not ready (${client.status})`),
            ),
        }),
      ),
    )
  }

  /** The connections to every master (the one server of a node or Sentinel setup). */
  async function masters(): Promise<{ node: Redis; owns: (key: string) => boolean }[]> {
    if (!cluster) return [{ node: main as Redis, owns: () => true }]
    await clusterReady(cluster)
    for (let attempt = 1; ; attempt++) {
      const topology = await clusterTopology(cluster)
      const pool = cluster.nodes('master')
      const found = topology.masters.map((announced) => {
        const { host, port } = mapAddress(settings, announced)
        return pool.find((n) => n.options.host === host && n.options.port === port)
      })
      if (found.every((node) => node !== undefined)) {
        return found.map((node, index) => ({
          node,
          owns: (key: string) => topology.owners[keySlot(key)] === index,
        }))
      }
      if (attempt === 3) {
        throw new UnavailableError(
          NAME,
          'the client does not know every master yet (topology changing)',
        )
      }
      // The slot map changed under the client (failover, reconnect): learn the new one.
      await new Promise<void>((resolve, reject) => {
        cluster.refreshSlotsCache((error) => {
          if (error) reject(error)
          else resolve()
        })
      })
    }
  }

  async function scanAll(prefix: string): Promise<{ node: Redis; keys: string[] }[]> {
    const all = await masters()
    return Promise.all(
      all.map(async ({ node, owns }) => ({
        node,
        keys: (await scanKeys(node, prefix, settings.scanCount)).filter(owns),
      })),
    )
  }

  async function listItems(prefix: string): Promise<KeyValue<Uint8Array>[]> {
    const items: KeyValue<Uint8Array>[] = []
    for (const { node, keys } of await scanAll(prefix)) {
      const values = await readValues(node, keys, cluster !== undefined)
      for (const [key, value] of values) {
        if (value !== undefined) items.push({ key, value, revision: clock.observe(key, value) })
      }
    }
    return items.sort((a, b) => compareKeys(a.key, b.key))
  }

  async function deletePrefix(prefix: string): Promise<number> {
    let deleted = 0
    for (const { keys } of await scanAll(prefix)) {
      // One script per batch (one slot each on a Cluster): watches see each batch as one event.
      for (const group of groupKeys(keys, cluster !== undefined)) {
        const result = await write(
          group.map((key) => ({ op: 'delete', key, prefix: false })),
          [],
        )
        deleted += result.deleted
      }
    }
    return deleted
  }

  /**
   * Runs writes under conditions as one script (see `scripts.ts`), which publishes them to the
   * watches; records the new revisions.
   */
  async function write(
    writes: readonly Write[],
    conditions: readonly TxnCondition<Uint8Array>[],
  ): Promise<{ succeeded: boolean; deleted: number; revision: Revision }> {
    if (writes.length === 0 && conditions.length === 0) {
      return { succeeded: true, deleted: 0, revision: clock.now() }
    }
    const keys: string[] = []
    const index = new Map<string, number>()
    const keyIndex = (key: string): string => {
      let at = index.get(key)
      if (at === undefined) {
        keys.push(key)
        at = keys.length
        index.set(key, at)
      }
      return String(at)
    }
    const conditionArgs: (string | Buffer)[] = []
    for (const condition of conditions) {
      if ('exists' in condition) {
        conditionArgs.push(condition.exists ? 'present' : 'absent', keyIndex(condition.key), '')
      } else if ('revision' in condition) {
        if (condition.revision === 0n) {
          conditionArgs.push('absent', keyIndex(condition.key), '')
        } else {
          const expected = clock.digestAt(condition.key, condition.revision)
          // A revision this store cannot vouch for: the condition does not hold.
          if (expected === undefined) return { succeeded: false, deleted: 0, revision: clock.now() }
          conditionArgs.push('digest', keyIndex(condition.key), expected)
        }
      } else {
        conditionArgs.push('value', keyIndex(condition.key), asBuffer(condition.value))
      }
    }
    const opArgs: (string | Buffer)[] = []
    for (const item of writes) {
      if (item.op === 'put') {
        const ttl = item.ttl === undefined ? '' : String(item.ttl)
        opArgs.push('put', keyIndex(item.key), asBuffer(item.value), ttl)
      } else if (item.prefix) {
        opArgs.push('delp', keyPattern(item.key), '', '')
      } else {
        opArgs.push('del', keyIndex(item.key), '', '')
      }
    }
    const first = keys[0]
    const slot = first === undefined ? 0 : keySlot(first)
    // Numbered in the order the scripts go out on the connection.
    sequence++
    const result = await runWriteScript(main, keys, [
      writesChannel(settings.db),
      messageHead(slot, writerId, sequence),
      String(conditions.length),
      ...conditionArgs,
      String(writes.length),
      ...opArgs,
    ])
    if (!result.succeeded || writes.length === 0) {
      return { ...result, revision: clock.now() }
    }
    const at = clock.tick()
    for (const item of writes) {
      if (item.op === 'put') clock.record(item.key, item.value, at)
      else if (!item.prefix) clock.record(item.key, undefined, at)
    }
    return { ...result, revision: at }
  }

  function checkTxn(
    writes: readonly Write[],
    conditions: readonly TxnCondition<Uint8Array>[],
  ): void {
    if (!cluster) return
    if (writes.some((write) => write.op === 'delete' && write.prefix)) {
      throw new CapabilityError(
        NAME,
        'prefix deletes inside a transaction on a Redis Cluster',
        'a prefix may span every hash slot; delete the keys by name in the transaction, or call delete(prefix, { prefix: true }) outside it',
      )
    }
    const keys = [...conditions.map((c) => c.key), ...writes.map((w) => w.key)]
    const first = keys[0]
    if (first === undefined) return
    const slot = keySlot(first)
    const other = keys.find((key) => keySlot(key) !== slot)
    if (other !== undefined) {
      throw new CapabilityError(
        NAME,
        'transactions across hash slots on a Redis Cluster',
        `'${first}' is in slot ${slot} and '${other}' in slot ${keySlot(other)}; the keys of one transaction must share a hash tag, e.g. 'user:{42}:name' and 'user:{42}:mail'`,
      )
    }
  }

  const watchContext = {
    settings,
    scheduler,
    clock,
    health,
    cluster,
    track: (connection: Redis) => {
      connections.add(connection)
    },
    untrack: (connection: Redis) => {
      connections.delete(connection)
    },
  }

  return {
    name: NAME,
    capabilities: CAPABILITIES,
    status$: new Observable<StoreStatus>((subscriber) => health.status$.subscribe(subscriber)),

    watch(prefixes: readonly string[]): Observable<StoreEvent<Uint8Array>> {
      return defer(() => {
        assertOpen()
        assertPrefixes(prefixes)
        return watchKeys(watchContext, prefixes).pipe(takeUntil(closing))
      })
    },

    get(key: string): Observable<KeyValue<Uint8Array> | undefined> {
      return operation(
        'get',
        () => {
          assertKey('get', key)
        },
        async () => {
          // MGET, not GET: a key holding another type reads as missing, as everywhere else.
          const [value] = await main.mgetBuffer(key)
          if (value == null) return undefined
          const bytes = copyBytes(value)
          return { key, value: bytes, revision: clock.observe(key, bytes) }
        },
      )
    },

    list(prefix: string): Observable<readonly KeyValue<Uint8Array>[]> {
      return operation(
        'list',
        () => {
          assertPrefix('list', prefix)
        },
        () => listItems(prefix),
      )
    },

    listKeys(prefix: string): Observable<readonly string[]> {
      return operation(
        'listKeys',
        () => {
          assertPrefix('listKeys', prefix)
        },
        async () => (await scanAll(prefix)).flatMap(({ keys }) => keys).sort(compareKeys),
      )
    },

    put(key: string, value: Uint8Array, putOptions?: PutOptions): Observable<void> {
      let ttlMs: number | undefined
      return operation(
        'put',
        () => {
          assertKey('put', key)
          assertValue('put', key, value)
          ttlMs = putOptions?.ttl === undefined ? undefined : ttlMillis('put', putOptions.ttl)
        },
        async () => {
          await write(
            [
              ttlMs === undefined
                ? { op: 'put', key, value }
                : { op: 'put', key, value, ttl: ttlMs },
            ],
            [],
          )
        },
      )
    },

    delete(key: string, deleteOptions?: DeleteOptions): Observable<{ readonly deleted: number }> {
      const prefix = deleteOptions?.prefix === true
      return operation(
        'delete',
        () => {
          if (prefix) assertPrefix('delete', key)
          else assertKey('delete', key)
        },
        async () => {
          if (prefix) return { deleted: await deletePrefix(key) }
          const { deleted } = await write([{ op: 'delete', key, prefix: false }], [])
          return { deleted }
        },
      )
    },

    txn(
      ops: readonly TxnOp<Uint8Array>[],
      txnOptions?: TxnOptions<Uint8Array>,
    ): Observable<TxnResult> {
      let writes: Write[] = []
      const conditions = txnOptions?.conditions ?? []
      return operation(
        'txn',
        () => {
          writes = check.writes(ops, ttlMillis)
          check.conditions(conditions)
          checkTxn(writes, conditions)
        },
        async () => {
          const { succeeded, revision } = await write(writes, conditions)
          return { succeeded, revision }
        },
      )
    },

    ping(): Observable<number> {
      return operation(
        'ping',
        () => undefined,
        async () => {
          const started = scheduler.now()
          const all = await masters()
          await Promise.all(all.map(({ node }) => node.ping()))
          return scheduler.now() - started
        },
      )
    },

    close(): Promise<void> {
      if (closePromise) return closePromise
      closed = true
      closing.next()
      closing.complete()
      const all = [...connections]
      for (const connection of all) connection.disconnect()
      // Wait for the sockets to close, but never hang a shutdown on a dead server.
      const done = Promise.all(all.map(ended)).then(() => undefined)
      closePromise = lastValueFrom(
        race(from(done), timer(settings.commandTimeoutMs, scheduler).pipe(map(() => undefined))),
        {
          defaultValue: undefined,
        },
      ).then(() => {
        health.close()
      })
      return closePromise
    },
  }
}

function compareKeys(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}

const check: ArgumentChecks = argumentChecks({ backend: NAME, bytesOnly: true })
const assertKey: ArgumentChecks['key'] = check.key
const assertPrefix: ArgumentChecks['prefix'] = check.prefix
const assertPrefixes: ArgumentChecks['prefixes'] = check.prefixes
const assertValue: ArgumentChecks['value'] = check.value

/** A TTL in whole milliseconds: Redis counts whole milliseconds; round up so a key never expires early. */
function ttlMillis(what: string, ttl: Duration): number {
  return Math.ceil(check.ttlMs(what, ttl))
}
