import type { Cluster, Redis } from 'ioredis'
import {
  NEVER,
  Observable,
  Subscription,
  concat,
  defer,
  exhaustMap,
  finalize,
  from,
  of,
  retry,
  throwError,
  timer,
  type SchedulerLike,
} from 'rxjs'
import { valuesEqual } from '../../core/equal.js'
import {
  UnavailableError,
  type DatasyncError,
  type DatasyncErrorOptions,
} from '../../core/errors.js'
import type { Change, KeyValue, SnapshotCause, StoreEvent } from '../../core/events.js'
import { matchesAny } from '../../core/snapshot.js'
import { createSessionConnection, type Role } from './connections.js'
import { NAME, toDatasyncError } from './errors.js'
import type { Health } from './health.js'
import {
  NON_WRITE_EVENTS,
  ensureKeyspaceEvents,
  keyPattern,
  normalizePrefixes,
} from './keyspace.js'
import type { HostPort, Settings } from './options.js'
import {
  clusterTopology,
  readEach,
  readValues,
  scanPages,
  serverRunId,
  type Topology,
} from './reads.js'
import type { RevisionClock } from './revisions.js'
import { decodeWriteMessage, writesChannel, type WrittenKey } from './scripts.js'
import { keySlot } from './slots.js'

/** What a watch needs from its store. */
export interface WatchContext {
  readonly settings: Settings
  readonly scheduler: SchedulerLike
  readonly clock: RevisionClock
  readonly health: Health
  /** The broker's Cluster client (to read the slot map), or undefined for a node or Sentinel. */
  readonly cluster: Cluster | undefined
  /** Registers a connection, so that `close()` can end it and wait for it. */
  readonly track: (connection: Redis) => void
  /** Forgets a connection that ended. */
  readonly untrack: (connection: Redis) => void
}

/** At most this many keys are read per batch of notifications. */
const MAX_BATCH_KEYS = 5_000

/** A watch session ended in a way that may have lost notifications; the next one relists. */
class GapError extends UnavailableError {
  override readonly name = 'UnavailableError'
  constructor(
    readonly snapshotCause: SnapshotCause,
    message: string,
    options: DatasyncErrorOptions = {},
  ) {
    super(NAME, message, options)
  }
}

/** One master's pair of session connections. */
interface Endpoint {
  readonly name: string
  /** Its position in the session's slot map (0 for a node or Sentinel master). */
  readonly index: number
  readonly sub: Redis
  readonly reader: Redis
  /** What arrived from this master and is not merged into the session's queue yet. */
  readonly inbox: Unit[]
}

/**
 * Something that arrived on a subscriber connection, in arrival order (`seq`): a keyspace event
 * for a key (`read`: its value must be read), or the message of a write made through a store
 * (`write`: the exact values of one put, delete or transaction).
 */
type Unit =
  | {
      readonly seq: number
      readonly endpoint: Endpoint
      readonly kind: 'read'
      readonly key: string
    }
  | {
      readonly seq: number
      readonly endpoint: Endpoint
      readonly kind: 'write'
      readonly writes: readonly WrittenKey[]
      readonly writer: string
      readonly sequence: bigint
    }

function keysOf(unit: Unit): readonly string[] {
  return unit.kind === 'read' ? [unit.key] : unit.writes.map((write) => write.key)
}

/** What a watch keeps across its sessions. */
interface WatchState {
  readonly id: string
  readonly prefixes: readonly string[]
  /**
   * The value of every key as last emitted: the prev of the next change, and the no-op filter
   * (`watchMemory: 'values'`; always empty when `'lean'`).
   */
  known: Map<string, Uint8Array>
  /** The cause of the next snapshot. */
  cause: SnapshotCause
  /** Whether a snapshot was emitted yet (the first one always says `startup`). */
  started: boolean
}

let watchCount = 0

/**
 * A watch of the keys under `prefixes`: a chain of sessions. Each session subscribes first, on a
 * subscriber connection per master, to the keyspace events of the prefixes and to the store's
 * write messages, queueing what arrives; then it lists (SCAN + MGET on every master, through a
 * reader connection to the same server), emits the snapshot, and turns the queue and everything
 * after it into change events. A session ends at the first sign that events may have been lost (a
 * connection closed, a heartbeat unanswered, the Cluster's slot map changed, a read failed); the
 * next one starts after a backoff and its snapshot carries the cause (`reconnect` or
 * `watch-error`). Only fatal errors (authentication, configuration) end the watch.
 *
 * Ordering. A write message carries the exact values of one write, in order with the keyspace
 * events around it. A keyspace event alone (another client's write, an expiry, an eviction, a
 * rename) carries no value: the key is read afterwards. Reads go one batch at a time over one
 * connection per master, so each read sees the server later than the one before: read values
 * never go back in time. What a read cannot place is a write message that arrives while it runs
 * (the write may have happened before or after the read executed): after each read a PING on the
 * subscribers (answered after every message published before it) collects those, and a key with
 * such a message keeps that message's value rather than the read's. The snapshot is treated like
 * a read: what was queued before it is read again.
 *
 * On a Cluster each master's events arrive on their own connection, and the order between two
 * connections means nothing: a store's write to a key on one master may arrive after its next
 * write, to a key on another. So the masters' streams are merged, never reordered within one
 * stream, so that each store's messages come in the order of their sequence numbers; a message
 * whose predecessor has not arrived waits, and when nothing can go on a PING on every subscriber
 * tells whether the predecessor is still coming (it was published before the PING) or will never
 * come (its write failed before it published, or it ran concurrently and is simply later).
 */
export function watchKeys(
  context: WatchContext,
  prefixes: readonly string[],
): Observable<StoreEvent<Uint8Array>> {
  return defer(() => {
    const state: WatchState = {
      id: `watch-${++watchCount}`,
      prefixes: normalizePrefixes(prefixes),
      known: new Map(),
      cause: 'startup',
      started: false,
    }
    const { settings, scheduler, health } = context
    // Nothing to watch: one empty snapshot, and nothing ever after.
    if (state.prefixes.length === 0) {
      return concat(
        of<StoreEvent<Uint8Array>>({
          type: 'snapshot',
          revision: context.clock.tick(),
          items: [],
          cause: 'startup',
        }),
        NEVER,
      )
    }
    return defer(() => session(context, state)).pipe(
      retry({
        resetOnSuccess: true,
        delay: (error: unknown, attempt: number) => {
          const mapped = error instanceof GapError ? error : toDatasyncError(error, 'watch')
          health.markDown(state.id, mapped)
          if (isFatal(mapped)) return throwError(() => mapped)
          if (state.started) state.cause = causeOf(mapped)
          const delay = Math.min(
            settings.reconnectDelayMs * 2 ** (attempt - 1),
            settings.maxReconnectDelayMs,
          )
          return timer(delay, scheduler)
        },
      }),
      finalize(() => {
        health.remove(state.id)
      }),
    )
  })
}

function isFatal(error: DatasyncError): boolean {
  return error.code === 'auth' || error.code === 'config' || error.code === 'capability'
}

function causeOf(error: DatasyncError): SnapshotCause {
  if (error instanceof GapError) return error.snapshotCause
  return error.code === 'unavailable' ? 'reconnect' : 'watch-error'
}

function session(context: WatchContext, state: WatchState): Observable<StoreEvent<Uint8Array>> {
  return new Observable<StoreEvent<Uint8Array>>((subscriber) => {
    const { settings, clock, health, scheduler } = context
    const clusterClient = context.cluster
    const isCluster = clusterClient !== undefined
    const channelPrefix = `__keyspace@${settings.db}__:`
    const patterns = state.prefixes.map((prefix) => channelPrefix + keyPattern(prefix))
    const channel = writesChannel(settings.db)
    const connections: Redis[] = []
    const endpoints: Endpoint[] = []
    const timers = new Subscription()
    /** Units merged from the endpoints' inboxes, in the order they are turned into events. */
    const queue: Unit[] = []
    /** The next sequence number expected from each writing store. */
    const expected = new Map<string, bigint>()
    let seq = 0
    let ordering = false
    let topology: Topology | undefined
    let done = false
    let live = false
    let busy = false

    /*
     * `watchMemory: 'lean'` keeps no value per key. A read cannot tell a write it has not seen
     * from one it saw already, so the no-op filter needs the value last reported, but only while
     * an event may still be pending that was published before that value was read: the values
     * of the listing until the events queued during it are read again (`listed`, up to
     * `listedUntil`), and each value read since until the events that arrived before its barrier
     * are turned into changes (`recent`). Then they are forgotten.
     */
    const lean = settings.watchMemory === 'lean'
    let listed: Map<string, Uint8Array> | undefined
    let listedUntil = 0
    const recent = new Map<string, { readonly value: Uint8Array | undefined; until: number }>()

    /**
     * Lean mode: whether a value read for `key` (after the event `unitSeq`, with every event up
     * to `until` arrived) is the one reported already for an event that may predate it; records
     * it either way. An event after the last read's barrier is a new write: its value is
     * reported even when it equals the last one (a rewrite, as etcd reports it).
     */
    const settled = (
      key: string,
      value: Uint8Array | undefined,
      unitSeq: number,
      until: number,
    ): boolean => {
      const last = recent.get(key)
      let reported: { value: Uint8Array | undefined } | undefined
      if (last !== undefined) {
        if (unitSeq <= last.until) reported = last
      } else if (listed !== undefined && unitSeq <= listedUntil) {
        reported = { value: listed.get(key) }
      }
      recent.set(key, { value, until })
      return (
        reported !== undefined &&
        (reported.value === undefined || value === undefined
          ? reported.value === value
          : valuesEqual(reported.value, value))
      )
    }

    /** Lean mode: forgets the values no pending event can be compared with any more. */
    const forget = (): void => {
      if (listed === undefined && recent.size === 0) return
      let pending = Infinity
      for (const unit of queue) pending = Math.min(pending, unit.seq)
      for (const endpoint of endpoints) {
        for (const unit of endpoint.inbox) pending = Math.min(pending, unit.seq)
      }
      if (listed !== undefined && listedUntil < pending) listed = undefined
      for (const [key, entry] of recent) if (entry.until < pending) recent.delete(key)
    }

    const fail = (error: unknown): void => {
      if (done) return
      done = true
      subscriber.error(error)
    }

    const open = (role: Role, address: HostPort | undefined, name: string): Redis => {
      const connection = createSessionConnection(settings, role, address)
      connections.push(connection)
      context.track(connection)
      // Most errors also surface as a closed connection or a rejected command; a refused
      // password or bad TLS material ends the watch instead of retrying forever. (ioredis emits
      // such an error before it closes the connection.)
      connection.on('error', (error: unknown) => {
        const mapped = toDatasyncError(error, `the ${role} connection to ${name}`)
        if (isFatal(mapped)) fail(mapped)
      })
      connection.on('close', () => {
        fail(new GapError('reconnect', `the ${role} connection to ${name} closed`))
      })
      connection.once('end', () => {
        context.untrack(connection)
      })
      return connection
    }

    const onKeyspaceEvent = (endpoint: Endpoint, channelName: string, event: string): void => {
      if (done || !channelName.startsWith(channelPrefix)) return
      const key = channelName.slice(channelPrefix.length)
      if (NON_WRITE_EVENTS.has(event) || !matchesAny(key, state.prefixes)) return
      endpoint.inbox.push({ seq: ++seq, endpoint, kind: 'read', key })
      merge()
      flush()
    }

    const onWriteMessage = (endpoint: Endpoint, payload: Buffer): void => {
      if (done) return
      const message = decodeWriteMessage(payload)
      // On a Cluster every node relays every message; only the master that ran the write
      // delivers it in order with the write's keyspace events.
      if (!message || (topology && topology.owners[message.slot] !== endpoint.index)) return
      // A message without writes under the prefixes still counts: it moves its store's sequence.
      const writes = message.writes.filter((write) => matchesAny(write.key, state.prefixes))
      endpoint.inbox.push({
        seq: ++seq,
        endpoint,
        kind: 'write',
        writes,
        writer: message.writer,
        sequence: message.sequence,
      })
      merge()
      flush()
    }

    const eligible = (unit: Unit): boolean => {
      if (unit.kind === 'read' || endpoints.length === 1) return true
      const next = expected.get(unit.writer)
      return next !== undefined && unit.sequence <= next
    }

    const take = (endpoint: Endpoint): void => {
      const unit = endpoint.inbox.shift()
      if (unit === undefined) return
      if (unit.kind === 'write') {
        const next = expected.get(unit.writer)
        if (next === undefined || unit.sequence >= next)
          expected.set(unit.writer, unit.sequence + 1n)
      }
      queue.push(unit)
    }

    /**
     * Moves units from the inboxes to the queue: always the earliest arrived among the inbox
     * heads that may go (a read, or a store's next message). When heads wait and none may go, a
     * barrier settles which predecessors are still coming.
     */
    const merge = (): void => {
      for (;;) {
        let best: { endpoint: Endpoint; seq: number } | undefined
        for (const endpoint of endpoints) {
          const head = endpoint.inbox[0]
          if (head && eligible(head) && (!best || head.seq < best.seq)) {
            best = { endpoint, seq: head.seq }
          }
        }
        if (!best) break
        take(best.endpoint)
      }
      if (!live || ordering || done || !endpoints.some((e) => e.inbox.length > 0)) return
      ordering = true
      // What arrived before the PINGs go out is what this barrier can settle (see `settle`).
      const cutoff = seq
      Promise.all(endpoints.map((e) => e.sub.ping())).then(
        () => {
          if (done) return
          ordering = false
          settle(cutoff)
          merge()
          flush()
        },
        (error: unknown) => {
          fail(new GapError('reconnect', 'a subscriber did not answer', { cause: error }))
        },
      )
    }

    /**
     * After a barrier everything published before each master answered its PING has arrived.
     * That is a cut per master, not one moment for all: a message that arrived while the PINGs
     * were out may have been published after another master answered, before its predecessor
     * (sent to that master) was published. So only messages that arrived before the PINGs went
     * out (`seq <= cutoff`) count here: their predecessors were published before they were, so
     * before every PING, and have arrived if they ever will. A store whose next message is
     * missing then continues from the lowest sequence number among those; if the heads still
     * block each other (writes that ran concurrently), the earliest arrived of them goes first.
     * Later arrivals wait for the next barrier.
     */
    const settle = (cutoff: number): void => {
      const lowest = new Map<string, bigint>()
      for (const endpoint of endpoints) {
        for (const unit of endpoint.inbox) {
          if (unit.kind !== 'write' || unit.seq > cutoff) continue
          const next = expected.get(unit.writer)
          if (next !== undefined && unit.sequence < next) continue
          const low = lowest.get(unit.writer)
          if (low === undefined || unit.sequence < low) lowest.set(unit.writer, unit.sequence)
        }
      }
      for (const [writer, low] of lowest) expected.set(writer, low)
      if (endpoints.some((e) => e.inbox[0] && eligible(e.inbox[0]))) return
      let first: { endpoint: Endpoint; seq: number } | undefined
      for (const endpoint of endpoints) {
        const head = endpoint.inbox[0]
        if (head && head.seq <= cutoff && (!first || head.seq < first.seq)) {
          first = { endpoint, seq: head.seq }
        }
      }
      if (first) take(first.endpoint)
    }

    /** Emits one change event for `changes` (already applied to `known`), if any. */
    const emit = (
      changes: (
        | { op: 'put'; key: string; value: Uint8Array; prev?: Uint8Array }
        | { op: 'delete'; key: string; prev?: Uint8Array }
      )[],
    ): void => {
      if (changes.length === 0 || done) return
      const at = clock.tick()
      if (!lean) {
        for (const change of changes) {
          clock.record(change.key, change.op === 'put' ? change.value : undefined, at)
        }
      }
      subscriber.next({
        type: 'changes',
        revision: at,
        changes: changes.map((change): Change<Uint8Array> => ({ ...change, revision: at })),
      })
    }

    /**
     * Applies a key's new value to `known`; the change, if any. A written value always counts
     * (a put of the same value is still a put); a read value only when it differs, since a read
     * cannot tell a rewrite from an event already seen.
     */
    const change = (key: string, value: Uint8Array | undefined, written: boolean) => {
      if (lean) {
        if (value === undefined) return { op: 'delete' as const, key }
        return { op: 'put' as const, key, value }
      }
      const prev = state.known.get(key)
      if (value === undefined) {
        if (prev === undefined) return undefined
        state.known.delete(key)
        return { op: 'delete' as const, key, prev }
      }
      if (prev !== undefined && !written && valuesEqual(prev, value)) return undefined
      state.known.set(key, value)
      return prev === undefined
        ? { op: 'put' as const, key, value }
        : { op: 'put' as const, key, value, prev }
    }

    /** Emits each write message of a batch as its own change event, in arrival order. */
    const emitWrites = (batch: readonly Unit[]): void => {
      for (const unit of batch) {
        if (unit.kind !== 'write') continue
        const changes = []
        for (const write of unit.writes) {
          const applied = change(write.key, write.value, true)
          if (applied) changes.push(applied)
          // Lean: a read after this message compares with the value it reported, not an older one.
          if (lean) {
            const until = Math.max(recent.get(write.key)?.until ?? 0, unit.seq)
            recent.set(write.key, { value: write.value, until })
          }
        }
        emit(changes)
      }
    }

    /**
     * Turns waiting units into change events, one batch at a time. A key whose last unit in the
     * batch is a write message needs no read: its values are exact. The others are read (each
     * from the master that published the event), then a PING on the subscribers makes sure every
     * message published before the read executed has arrived: a key with a write message among
     * those is left to that message (the read may be older or newer than it), so a value never
     * goes back in time.
     */
    const flush = (): void => {
      while (live && !busy && !done && queue.length > 0) {
        let count = 0
        let keys = 0
        for (const unit of queue) {
          const size = keysOf(unit).length
          if (count > 0 && keys + size > MAX_BATCH_KEYS) break
          keys += size
          count++
        }
        const batch = queue.splice(0, count)
        const last = new Map<string, Unit>()
        for (const unit of batch) for (const key of keysOf(unit)) last.set(key, unit)
        const reads = new Map<Endpoint, string[]>()
        for (const [key, unit] of last) {
          if (unit.kind !== 'read') continue
          const list = reads.get(unit.endpoint)
          if (list) list.push(key)
          else reads.set(unit.endpoint, [key])
        }
        if (reads.size === 0) {
          emitWrites(batch)
          forget()
          continue
        }
        busy = true
        const readAll = Promise.all(
          [...reads].map(([endpoint, list]) => readValues(endpoint.reader, list, isCluster)),
        )
        readAll
          .then(async (results) => {
            await Promise.all([...reads.keys()].map((endpoint) => endpoint.sub.ping()))
            return results
          })
          .then(
            (results) => {
              if (done) return
              const overtaken = new Set<string>()
              for (const unit of [...queue, ...endpoints.flatMap((e) => e.inbox)]) {
                if (unit.kind === 'write') for (const write of unit.writes) overtaken.add(write.key)
              }
              emitWrites(batch)
              // Every message published before the reads executed has arrived by now.
              const until = seq
              const changes = []
              for (const result of results) {
                for (const [key, value] of result) {
                  if (overtaken.has(key)) continue
                  if (lean && settled(key, value, last.get(key)?.seq ?? 0, until)) continue
                  const applied = change(key, value, false)
                  if (applied) changes.push(applied)
                }
              }
              emit(changes)
              busy = false
              forget()
              flush()
            },
            (error: unknown) => {
              fail(new GapError('watch-error', 'reading notified keys failed', { cause: error }))
            },
          )
        return
      }
    }

    /**
     * SCAN every endpoint, read the values, each key from the master that owns its slot. Each
     * page's values are read as soon as the page arrives, pipelined behind the next SCAN; the
     * prefixes are scanned side by side. Returns the items sorted by key, each key once (SCAN may
     * return a key twice: the later read, the newer value, wins), and the value of each.
     */
    const list = async (): Promise<{
      items: KeyValue<Uint8Array>[]
      known: Map<string, Uint8Array>
    }> => {
      const known = new Map<string, Uint8Array>()
      // One count for every value the listing finds new: it was first seen at that point.
      const at = clock.tick()
      const keep = (key: string, value: Uint8Array | undefined) => {
        if (value !== undefined) known.set(key, value)
      }
      const reads: Promise<void>[] = []
      await Promise.all(
        endpoints.map((endpoint) => {
          const owners = topology?.owners
          return Promise.all(
            state.prefixes.map((prefix) =>
              scanPages(endpoint.reader, prefix, settings.scanCount, (page) => {
                const keys = owners
                  ? page.filter((key) => owners[keySlot(key)] === endpoint.index)
                  : [...page]
                if (keys.length === 0) return
                const read = readEach(endpoint.reader, keys, isCluster, keep)
                // Awaited below, once every page is in; a failure before that must not go unhandled.
                read.catch(() => undefined)
                reads.push(read)
              }),
            ),
          )
        }),
      )
      await Promise.all(reads)
      // Sorting the keys alone, with the built-in string order, is several times faster than
      // sorting the items with a comparator (at 100k keys about 70 ms against 200).
      const keys = [...known.keys()].sort()
      const items = keys.map((key): KeyValue<Uint8Array> => {
        const value = known.get(key) as Uint8Array
        // Lean: nothing is recorded; the values are kept only until the events queued during
        // the listing are read again.
        return { key, value, revision: lean ? at : clock.observe(key, value, at) }
      })
      return { items, known }
    }

    const startTimers = (): void => {
      timers.add(
        timer(settings.heartbeatMs, settings.heartbeatMs, scheduler)
          .pipe(exhaustMap(() => from(Promise.all(endpoints.map((e) => e.sub.ping())))))
          .subscribe({
            error: (error: unknown) => {
              fail(
                new GapError('reconnect', 'a subscriber did not answer its heartbeat', {
                  cause: error,
                }),
              )
            },
          }),
      )
      const probe = endpoints[0]?.reader
      if (topology && probe) {
        const signature = topology.signature
        timers.add(
          timer(settings.topologyCheckMs, settings.topologyCheckMs, scheduler)
            .pipe(exhaustMap(() => from(clusterTopology(probe))))
            .subscribe({
              next: (current) => {
                if (current.signature !== signature) {
                  fail(
                    new GapError(
                      'watch-error',
                      'the cluster slot map changed (failover or slot move)',
                    ),
                  )
                }
              },
              error: (error: unknown) => {
                fail(
                  new GapError('reconnect', 'reading the cluster slot map failed', {
                    cause: error,
                  }),
                )
              },
            }),
        )
      }
    }

    const start = async (): Promise<void> => {
      if (clusterClient) topology = await clusterTopology(clusterClient)
      const target = settings.target
      const addresses: (HostPort | undefined)[] = topology ? [...topology.masters] : [undefined]
      addresses.forEach((address, index) => {
        const name = address
          ? `${address.host}:${address.port}`
          : target.mode === 'sentinel'
            ? `the master '${target.masterName}'`
            : target.mode === 'node'
              ? `${target.node.host}:${target.node.port}`
              : 'the cluster'
        endpoints.push({
          name,
          index,
          sub: open('watch', address, name),
          reader: open('read', address, name),
          inbox: [],
        })
      })
      await Promise.all(endpoints.flatMap((e) => [e.sub.connect(), e.reader.connect()]))
      await Promise.all(
        endpoints.map(async (endpoint) => {
          endpoint.sub.on('pmessage', (_pattern: string, channelName: string, event: string) => {
            onKeyspaceEvent(endpoint, channelName, event)
          })
          endpoint.sub.on('messageBuffer', (channelName: Buffer, payload: Buffer) => {
            if (channelName.toString() === channel) onWriteMessage(endpoint, payload)
          })
          // All at once (one round trip): each must be done before the listing starts, none
          // depends on another. INFO goes out on the subscriber before SUBSCRIBE, in this order.
          const [a, b] = await Promise.all([
            serverRunId(endpoint.sub),
            serverRunId(endpoint.reader),
            ensureKeyspaceEvents(endpoint.reader, settings.keyspaceEvents, endpoint.name),
            endpoint.sub.subscribe(channel),
            endpoint.sub.psubscribe(...patterns),
          ])
          // Through Sentinel the two connections resolve the master separately: during a
          // failover they may reach different servers, and a reader elsewhere would answer for
          // keys whose events it never saw.
          if (a !== b) {
            throw new GapError(
              'reconnect',
              `the watch connections reached different servers for ${endpoint.name}`,
            )
          }
        }),
      )
      if (done) return
      // Subscribed everywhere: from here every write is either in the listing or in the queue.
      const listing = await list()
      // Everything that arrived before this barrier may be older or newer than the listing:
      // read those keys again rather than trust the messages' values.
      await Promise.all(endpoints.map((e) => e.sub.ping()))
      if (done) return
      const buffered = [...queue.splice(0), ...endpoints.flatMap((e) => e.inbox.splice(0))]
      const reread = new Map<string, Unit>()
      for (const unit of buffered.sort((a, b) => a.seq - b.seq)) {
        if (unit.kind === 'write') {
          const next = expected.get(unit.writer)
          if (next === undefined || unit.sequence >= next)
            expected.set(unit.writer, unit.sequence + 1n)
        }
        for (const key of keysOf(unit)) {
          reread.set(key, { seq: unit.seq, endpoint: unit.endpoint, kind: 'read', key })
        }
      }
      queue.push(...reread.values())
      if (lean) {
        listed = listing.known
        listedUntil = seq
        recent.clear()
        // Nothing queued meanwhile: nothing to compare the listing with.
        forget()
      } else {
        state.known = listing.known
      }
      const cause = state.started ? state.cause : 'startup'
      state.started = true
      live = true
      health.markUp(state.id)
      subscriber.next({ type: 'snapshot', revision: clock.tick(), items: listing.items, cause })
      if (done) return
      startTimers()
      flush()
    }

    start().catch((error: unknown) => {
      fail(error)
    })

    return () => {
      done = true
      timers.unsubscribe()
      for (const connection of connections) connection.disconnect()
    }
  })
}
