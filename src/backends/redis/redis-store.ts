import { randomBytes } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import { asyncScheduler, defer, from, lastValueFrom, map, race, timer, type Observable } from 'rxjs'
import type { Duration } from '../../core/duration.js'
import { UnavailableError } from '../../core/errors.js'
import type { KeyValue, StoreEvent } from '../../core/events.js'
import type { Revision } from '../../core/revision.js'
import type {
  Capabilities,
  DeleteOptions,
  KvStore,
  PutOptions,
  TxnCondition,
  TxnOp,
  TxnOptions,
  TxnResult,
} from '../../core/store.js'
import { argumentChecks, type ArgumentChecks } from '../../internal/checks.js'
import { StoreEdge } from '../../internal/edge.js'
import { byKey, compareKeys } from '../../internal/order.js'
import { BulkLimit } from './bulk-limit.js'
import { asBuffer, copyBytes } from './bytes.js'
import { Masters, checkClusterTxn } from './cluster.js'
import { createMainClient, ended } from './connections.js'
import { NAME, storeErrorMapper, toDatasyncError } from './errors.js'
import { resolveOptions, type RedisStoreOptions } from './options.js'
import { groupKeys, readValues } from './reads.js'
import { RevisionClock } from './revisions.js'
import { PutBatch } from './put-batch.js'
import { messageHead, putMessagePrefix, writesChannel } from './messages.js'
import { encodeWrite, runPutsScript, runWriteScript, type Write } from './scripts.js'
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

/**
 * Creates a {@link KvStore} on Redis: one node, a master behind Sentinel, or a Cluster (Redis 6.0
 * or later). Nothing connects until an operation or a watch is subscribed. A watch follows
 * keyspace notifications and the values every Redis store publishes with its writes; Redis
 * pub/sub is at-most-once, so a lost connection ends the watch's session and the next one
 * relists (P4). Revisions are this store's own count. How the watch orders what arrives, what it
 * remembers (`watchMemory`), what revisions vouch for, and what the broker operations guarantee
 * (prefix deletes are not atomic; a Cluster transaction stays in one hash slot): see
 * `src/backends/redis/README.md`.
 *
 * ```
 * watch(['a/']):  --S(startup)--c--c----x(connection lost)--S(reconnect)--c--
 * ```
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
  const settings = resolveOptions(options)
  const scheduler = options.scheduler ?? asyncScheduler
  const clock = new RevisionClock(settings.revisionCacheSize)
  /** The main connection's last error, for the message of a command it could not send. */
  let connectionError: unknown
  const mapError = storeErrorMapper(() => connectionError)
  // ioredis reports the connections' health by its events: the main one and each watch's part.
  const edge = new StoreEdge({
    name: NAME,
    mapError,
    operationsReportHealth: false,
  })
  const connections = new Set<Redis | Cluster>()
  /** This store's id and write counter, in its write messages (see `scripts.ts`). */
  const writerId = randomBytes(8)
  let sequence = 0n
  let closePromise: Promise<void> | undefined

  const main = createMainClient(settings)
  connections.add(main)
  const mainHealth = edge.health.part()
  main.on('error', (error: unknown) => {
    connectionError = error
    // Lost connections show as close/reconnecting; a refused password or bad TLS stays visible.
    const mapped = toDatasyncError(error, 'the connection').error
    if (mapped.code === 'auth' || mapped.code === 'config') mainHealth.down(mapped)
  })
  main.on('ready', () => {
    connectionError = undefined
    mainHealth.up()
  })
  const lost = () => {
    mainHealth.down(new UnavailableError(NAME, 'the connection was lost; reconnecting'))
  }
  main.on('close', lost)
  main.on('reconnecting', lost)
  const masters = new Masters(main, settings, scheduler)
  const cluster = masters.cluster
  /** Writes go through it: refused before they are sent when over a bulk limit (`bulk-limit.ts`). */
  const limits = new BulkLimit(settings.maxValueBytes, async () => {
    const found = await Promise.all(
      (await masters.all()).map(async ({ node }) => {
        const reply = (await node.config('GET', 'proto-max-bulk-len')) as unknown[]
        return Number(reply[1])
      }),
    )
    const limit = Math.min(...found.filter(Number.isFinite))
    if (!Number.isFinite(limit)) throw new Error('CONFIG GET proto-max-bulk-len answered nothing')
    return limit
  })
  const channel = writesChannel(settings.db)
  /**
   * Plain puts on a node or a Sentinel master, batched per turn of the event loop (on a Cluster
   * a script's keys must share a slot: each put runs the write script). Every other command on
   * `main` flushes it first (`flushed`), so commands keep the order they were made in.
   */
  const puts =
    cluster === undefined
      ? new PutBatch(async (batch) => {
          const outcomes = await runPutsScript(main, channel, batch)
          batch.forEach((item, i) => {
            if (outcomes[i] === undefined) clock.record(item.key, item.value, clock.tick())
          })
          return outcomes
        })
      : undefined
  /** Sends the queued puts, then returns `main` for the next command. */
  const flushed = (): Redis | Cluster => {
    puts?.flush()
    return main
  }

  async function listItems(prefix: string): Promise<KeyValue<Uint8Array>[]> {
    const items: KeyValue<Uint8Array>[] = []
    flushed()
    for (const { node, keys } of await masters.scan(prefix)) {
      const values = await readValues(node, keys, cluster !== undefined)
      for (const [key, value] of values) {
        if (value !== undefined) items.push({ key, value, revision: clock.observe(key, value) })
      }
    }
    return items.sort(byKey)
  }

  async function deletePrefix(prefix: string): Promise<number> {
    let deleted = 0
    flushed()
    for (const { keys } of await masters.scan(prefix)) {
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
    puts?.flush()
    if (writes.length === 0 && conditions.length === 0) {
      return { succeeded: true, deleted: 0, revision: clock.now() }
    }
    const encoded = encodeWrite(writes, conditions, (key, at) => clock.digestAt(key, at))
    // A revision this store cannot vouch for: the condition does not hold.
    if (encoded === undefined) return { succeeded: false, deleted: 0, revision: clock.now() }
    const first = encoded.keys[0]
    // Numbered in the order the scripts go out on the connection.
    sequence++
    const head = messageHead(first === undefined ? 0 : keySlot(first), writerId, sequence)
    const result = await runWriteScript(main, channel, head, encoded)
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

  const watchContext = {
    settings,
    scheduler,
    clock,
    health: edge.health,
    mapError,
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
    status$: edge.health.status$,

    watch(prefixes: readonly string[]): Observable<StoreEvent<Uint8Array>> {
      return edge.watch(
        defer(() => {
          assertPrefixes(prefixes)
          return watchKeys(watchContext, prefixes)
        }),
      )
    },

    get(key: string): Observable<KeyValue<Uint8Array> | undefined> {
      return edge.op('get', () => {
        assertKey('get', key)
        // MGET, not GET: a key holding another type reads as missing, as everywhere else.
        return flushed()
          .mgetBuffer(key)
          .then(([value]) => {
            if (value == null) return undefined
            const bytes = copyBytes(value)
            return { key, value: bytes, revision: clock.observe(key, bytes) }
          })
      })
    },

    list(prefix: string): Observable<readonly KeyValue<Uint8Array>[]> {
      return edge.op('list', () => {
        assertPrefix('list', prefix)
        return listItems(prefix)
      })
    },

    listKeys(prefix: string): Observable<readonly string[]> {
      return edge.op('listKeys', () => {
        assertPrefix('listKeys', prefix)
        flushed()
        return masters.scan(prefix).then((all) => all.flatMap(({ keys }) => keys).sort(compareKeys))
      })
    },

    put(key: string, value: Uint8Array, putOptions?: PutOptions): Observable<void> {
      return edge.op('put', () => {
        assertKey('put', key)
        assertValue('put', key, value)
        const ttl = putOptions?.ttl === undefined ? undefined : ttlMillis('put', putOptions.ttl)
        const item: Write =
          ttl === undefined ? { op: 'put', key, value } : { op: 'put', key, value, ttl }
        return limits.run('put', [item], () => {
          if (puts === undefined) return write([item], []).then(() => undefined)
          // Numbered in the order the puts go out on the connection (the batch keeps it).
          sequence++
          const bytes = asBuffer(value)
          const prefix = putMessagePrefix(keySlot(key), writerId, sequence, key, bytes.length)
          return puts.put({ key, value: bytes, ttl, prefix })
        })
      })
    },

    delete(key: string, deleteOptions?: DeleteOptions): Observable<{ readonly deleted: number }> {
      return edge.op('delete', () => {
        if (deleteOptions?.prefix === true) {
          assertPrefix('delete', key)
          return limits.run('delete', [], () => deletePrefix(key)).then((deleted) => ({ deleted }))
        }
        assertKey('delete', key)
        const item: Write = { op: 'delete', key, prefix: false }
        return limits
          .run('delete', [item], () => write([item], []))
          .then(({ deleted }) => ({ deleted }))
      })
    },

    txn(
      ops: readonly TxnOp<Uint8Array>[],
      txnOptions?: TxnOptions<Uint8Array>,
    ): Observable<TxnResult> {
      return edge.op('txn', () => {
        const conditions = txnOptions?.conditions ?? []
        const writes = check.writes(ops, ttlMillis)
        check.conditions(conditions)
        if (cluster) checkClusterTxn(writes, conditions)
        return limits
          .run('txn put', writes, () => write(writes, conditions))
          .then(({ succeeded, revision }) => ({ succeeded, revision }))
      })
    },

    ping(): Observable<number> {
      return edge.op('ping', async () => {
        const started = scheduler.now()
        flushed()
        const all = await masters.all()
        await Promise.all(all.map(({ node }) => node.ping()))
        return scheduler.now() - started
      })
    },

    close(): Promise<void> {
      if (closePromise) return closePromise
      edge.close()
      const all = [...connections]
      for (const connection of all) connection.disconnect()
      // Wait for the sockets to close, but never hang a shutdown on a dead server.
      const done = Promise.all(all.map(ended)).then(() => undefined)
      closePromise = lastValueFrom(
        race(from(done), timer(settings.commandTimeoutMs, scheduler).pipe(map(() => undefined))),
        { defaultValue: undefined },
      )
      return closePromise
    },
  }
}

const check: ArgumentChecks = argumentChecks({ backend: NAME, bytesOnly: true })
const assertKey: ArgumentChecks['key'] = check.key
const assertPrefix: ArgumentChecks['prefix'] = check.prefix
const assertPrefixes: ArgumentChecks['prefixes'] = check.prefixes
const assertValue: ArgumentChecks['value'] = check.value

/**
 * A TTL in whole milliseconds: Redis counts whole milliseconds; rounded up, so that a key never
 * expires early.
 */
function ttlMillis(what: string, ttl: Duration): number {
  return Math.ceil(check.ttlMs(what, ttl))
}
