import type { Cluster, Redis } from 'ioredis'
import { UnavailableError } from '../../core/errors.js'
import { copyAll } from './bytes.js'
import { clusterTopology, type Topology } from './cluster.js'
import { NAME, toDatasyncError } from './errors.js'
import { NO_MOVES, addressKey, allMasters, readSlotMoves, type SlotMoves } from './migrations.js'
import { groupKeys } from './reads.js'
import { keySlot } from './slots.js'

/** Where a Cluster watch session reads a key: its masters, who serves each slot, what moves. */
export interface Routes {
  /** The reader connection of each master, by its index in the session's slot map. */
  readonly readers: readonly Redis[]
  /** Slot number to the index of the master serving it. */
  readonly owners: Int16Array
  /** Each master's index by `host:port`, as ASK and MOVED name it. */
  readonly index: ReadonlyMap<string, number>
  readonly moves: SlotMoves
}

/**
 * A watch session's slot map: the slot owners (CLUSTER SLOTS), with every master the cluster
 * lists as its own after those serving slots (one serving no slot yet may be a slot move's
 * target).
 */
export async function clusterLayout(cluster: Cluster): Promise<Topology> {
  const topology = await clusterTopology(cluster)
  return { ...topology, masters: await allMasters(cluster, topology.masters) }
}

/** A Cluster watch session's slot map and slot moves, and where it reads each key. */
export class SlotRoutes {
  readonly #topology: Topology
  /** The reader connection of each master of `topology`. */
  readonly #readers: readonly Redis[]
  readonly #index: ReadonlyMap<string, number>
  #moves: SlotMoves = NO_MOVES

  constructor(topology: Topology, readers: readonly Redis[]) {
    this.#topology = topology
    this.#readers = readers
    this.#index = new Map(topology.masters.map((master, i) => [addressKey(master), i]))
  }

  /** The slot moves under way when last read (none before the first {@link readMoves}). */
  get moves(): SlotMoves {
    return this.#moves
  }

  /** Reads the slot moves under way (before the listing). */
  async readMoves(): Promise<void> {
    this.#moves = await readSlotMoves(this.#readers, this.#topology.masters)
  }

  /**
   * After the listing: whether the slot map and the slot moves are still those it was made
   * with. If not, the listing may have missed a key that moved: the session ends, and the next
   * one lists again.
   */
  async unchanged(): Promise<boolean> {
    const probe = this.#readers[0]
    if (!probe) return true
    const before = this.#moves.signature
    const [current] = await Promise.all([clusterTopology(probe), this.readMoves()])
    return current.signature === this.#topology.signature && this.#moves.signature === before
  }

  /** Where each key is read now. */
  routes(): Routes {
    return {
      readers: this.#readers,
      owners: this.#topology.owners,
      index: this.#index,
      moves: this.#moves,
    }
  }
}

/** At most this many redirections per key: source to target, and one more while a move ends. */
const MAX_HOPS = 2

/**
 * Reads `keys` on a Cluster, each from the master serving its slot, as a client does: a key of
 * a slot being moved that its source no longer holds is answered `ASK` and read on the target
 * (after ASKING), a slot whose move just ended is answered `MOVED` and read there, and a
 * multi-key read the server cannot answer whole (`TRYAGAIN`: some keys moved, some not) is read
 * key by key. The key goes MIGRATE's way, target first, so a read that follows the redirection
 * finds its current value. A redirection for a slot not in `routes.moves` means the slot map
 * is not the session's any more: it fails (the session relists). Hands each key and its value
 * (undefined when missing) to `onValue`; returns the masters that answered.
 */
export async function readRouted(
  routes: Routes,
  keys: Iterable<string>,
  onValue: (key: string, value: Uint8Array | undefined) => void,
): Promise<Set<number>> {
  const byOwner = new Map<number, string[]>()
  for (const key of keys) {
    const owner = routes.owners[keySlot(key)] ?? -1
    const group = byOwner.get(owner)
    if (group) group.push(key)
    else byOwner.set(owner, [key])
  }
  const answered = new Set<number>()
  await Promise.all(
    [...byOwner].map(([owner, group]) =>
      readAt(routes, { at: owner, asking: false, hops: 0 }, group, onValue, answered),
    ),
  )
  return answered
}

interface Hop {
  readonly at: number
  readonly asking: boolean
  readonly hops: number
}

async function readAt(
  routes: Routes,
  hop: Hop,
  keys: readonly string[],
  onValue: (key: string, value: Uint8Array | undefined) => void,
  answered: Set<number>,
): Promise<void> {
  const reader = routes.readers[hop.at]
  if (reader === undefined) throw new RangeError(`no master ${hop.at} in this session`)
  answered.add(hop.at)
  const groups = groupKeys(keys, true)
  const pipeline = reader.pipeline()
  for (const group of groups) {
    // ASKING holds for the next command only: one before each MGET.
    if (hop.asking) pipeline.asking()
    pipeline.mgetBuffer(...group)
  }
  const results = (await pipeline.exec()) ?? []
  const step = hop.asking ? 2 : 1
  const retries: Promise<void>[] = []
  groups.forEach((group, i) => {
    const [error, reply] = results[i * step + step - 1] ?? [
      new Error('Connection is closed.'),
      null,
    ]
    if (!error) {
      const copies = copyAll(reply as (Buffer | null)[])
      group.forEach((key, j) => {
        onValue(key, copies[j])
      })
      return
    }
    retries.push(redirected(routes, hop, group, error, onValue, answered))
  })
  await Promise.all(retries)
}

function redirected(
  routes: Routes,
  hop: Hop,
  keys: readonly string[],
  error: Error,
  onValue: (key: string, value: Uint8Array | undefined) => void,
  answered: Set<number>,
): Promise<void> {
  const message = error.message
  if (message.startsWith('TRYAGAIN') && keys.length > 1) {
    // One key per MGET: each is either here or redirected, never TRYAGAIN.
    return Promise.all(keys.map((key) => readAt(routes, hop, [key], onValue, answered))).then(
      () => undefined,
    )
  }
  const redirection = /^(ASK|MOVED) (\d+) (\S+)/.exec(message)
  if (!redirection) return Promise.reject(toDatasyncError(error, 'MGET').error)
  const [, kind, slotText, address] = redirection as unknown as [string, string, string, string]
  const slot = Number(slotText)
  const target = routes.index.get(address)
  if (!routes.moves.bySlot.has(slot) || target === undefined || hop.hops >= MAX_HOPS) {
    return Promise.reject(
      new UnavailableError(
        NAME,
        `slot ${slot} is moving or moved to ${address} (${kind} while reading ${JSON.stringify(keys[0])}): the cluster's slot map changed`,
        { cause: error },
      ),
    )
  }
  return readAt(
    routes,
    { at: target, asking: kind === 'ASK', hops: hop.hops + 1 },
    keys,
    onValue,
    answered,
  )
}
