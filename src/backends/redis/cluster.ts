import type { Cluster, Redis } from 'ioredis'
import { firstValueFrom, fromEvent, throwError, timeout, type SchedulerLike } from 'rxjs'
import { CapabilityError, UnavailableError } from '../../core/errors.js'
import type { TxnCondition } from '../../core/store.js'
import { mapAddress } from './connections.js'
import { NAME } from './errors.js'
import type { HostPort, Settings } from './options.js'
import { keysInSlot, scanKeys } from './reads.js'
import { readSlotMoves } from './migrations.js'
import type { Write } from './scripts.js'
import { SLOT_COUNT, keySlot } from './slots.js'

/** A Cluster's masters and which of them serves each slot, from CLUSTER SLOTS. */
export interface Topology {
  readonly masters: readonly HostPort[]
  /** Slot number to index into `masters`. */
  readonly owners: Int16Array
  /** A string that changes whenever any slot changes master. */
  readonly signature: string
}

/** Reads the slot map with CLUSTER SLOTS from a cluster client or one of its nodes. */
export async function clusterTopology(client: Redis | Cluster): Promise<Topology> {
  const reply = (await client.call('CLUSTER', 'SLOTS')) as [number, number, [string, number]][]
  const masters: HostPort[] = []
  const index = new Map<string, number>()
  const owners = new Int16Array(SLOT_COUNT).fill(-1)
  const ranges: string[] = []
  for (const [start, end, master] of reply) {
    const [host, port] = master
    const id = `${host}:${port}`
    let at = index.get(id)
    if (at === undefined) {
      at = masters.length
      index.set(id, at)
      masters.push({ host, port })
    }
    for (let slot = start; slot <= end; slot++) owners[slot] = at
    ranges.push(`${start}-${end}@${id}`)
  }
  if (owners.includes(-1)) {
    throw new UnavailableError(NAME, 'the cluster does not serve every hash slot (cluster down?)')
  }
  return { masters, owners, signature: ranges.sort().join(',') }
}

/** A master the broker talks to: its connection, and whether a key's slot is served by it. */
export interface Master {
  readonly node: Redis
  readonly owns: (key: string) => boolean
}

/** Keys a listing found, and the connection to read them through. */
export interface Scanned {
  readonly node: Redis | Cluster
  readonly keys: string[]
}

/**
 * The masters behind the broker's connection: the one server of a node or Sentinel setup, or
 * every master of a Cluster (found through the Cluster client's pool, whose connections it
 * keeps up).
 */
export class Masters {
  readonly #main: Redis | Cluster
  readonly #settings: Settings
  readonly #scheduler: SchedulerLike

  constructor(main: Redis | Cluster, settings: Settings, scheduler: SchedulerLike) {
    this.#main = main
    this.#settings = settings
    this.#scheduler = scheduler
  }

  /** The Cluster client, or undefined for a node or Sentinel. */
  get cluster(): Cluster | undefined {
    return this.#settings.target.mode === 'cluster' ? (this.#main as Cluster) : undefined
  }

  /** The connections to every master. */
  async all(): Promise<Master[]> {
    return (await this.#masters()).all
  }

  async #masters(): Promise<{ all: Master[]; topology?: Topology }> {
    const cluster = this.cluster
    if (!cluster) return { all: [{ node: this.#main as Redis, owns: () => true }] }
    await this.#ready(cluster)
    for (let attempt = 1; ; attempt++) {
      const topology = await clusterTopology(cluster)
      const pool = cluster.nodes('master')
      const found = topology.masters.map((announced) => {
        const { host, port } = mapAddress(this.#settings, announced)
        return pool.find((n) => n.options.host === host && n.options.port === port)
      })
      if (found.every((node) => node !== undefined)) {
        const all = found.map((node, index) => ({
          node,
          owns: (key: string) => topology.owners[keySlot(key)] === index,
        }))
        return { all, topology }
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

  /**
   * Every string key under `prefix`, by the master that serves it. On a Cluster, the keys of a
   * slot being moved (or found off their master) come last, to be read through the Cluster
   * client, which follows ASK and MOVED; once every SCAN is done, a moving slot's target is asked
   * for its keys again (a key moved there after its SCAN went past, before the source's did, is
   * on neither list). See `listMasters` for the watch's listing.
   */
  async scan(prefix: string): Promise<Scanned[]> {
    const { all, topology } = await this.#masters()
    const cluster = this.cluster
    if (!cluster || !topology) {
      return Promise.all(
        all.map(async ({ node }) => ({
          node,
          keys: await scanKeys(node, prefix, this.#settings.scanCount),
        })),
      )
    }
    const nodes = all.map(({ node }) => node)
    const moves = await readSlotMoves(nodes, topology.masters)
    const strays = new Set<string>()
    const scanned = await Promise.all(
      all.map(async ({ node }, index) => {
        const keys = await scanKeys(node, prefix, this.#settings.scanCount)
        const own = keys.filter((key) => {
          const slot = keySlot(key)
          if (topology.owners[slot] === index && !moves.bySlot.has(slot)) return true
          strays.add(key)
          return false
        })
        return { node, keys: own }
      }),
    )
    for (const move of moves.bySlot.values()) {
      const target = nodes[move.target]
      if (target === undefined) continue
      for (const key of await keysInSlot(target, move.slot)) {
        if (key.startsWith(prefix)) strays.add(key)
      }
    }
    return strays.size === 0 ? scanned : [...scanned, { node: cluster, keys: [...strays] }]
  }

  /** Resolves when the Cluster client is ready (it may be reconnecting after an outage). */
  async #ready(client: Cluster): Promise<void> {
    if (client.status === 'ready') return
    if (client.status === 'wait') {
      await client.connect()
      return
    }
    await firstValueFrom(
      fromEvent(client, 'ready').pipe(
        timeout({
          first: this.#settings.commandTimeoutMs,
          scheduler: this.#scheduler,
          with: () =>
            throwError(
              () => new UnavailableError(NAME, `the cluster is not ready (${client.status})`),
            ),
        }),
      ),
    )
  }
}

/**
 * What a transaction on a Cluster must keep to: every key in one hash slot (the script runs on
 * one master), and no prefix delete (a prefix may span every slot).
 *
 * @throws CapabilityError naming the keys (and the hash tag that would join them).
 */
export function checkClusterTxn(
  writes: readonly Write[],
  conditions: readonly TxnCondition<Uint8Array>[],
): void {
  if (writes.some((item) => item.op === 'delete' && item.prefix)) {
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
