import type { Cluster, Redis } from 'ioredis'
import { UnavailableError } from '../../core/errors.js'
import { NAME } from './errors.js'
import type { HostPort } from './options.js'

/** A node of a Cluster as one master's CLUSTER NODES describes it. */
export interface ClusterNode {
  readonly id: string
  readonly host: string
  readonly port: number
  /** A master taking part in the cluster (not failing, not joining, with an address). */
  readonly master: boolean
  readonly myself: boolean
}

/** One line each of CLUSTER NODES, and the slots the answering master is moving. */
export interface NodesReply {
  readonly nodes: readonly ClusterNode[]
  /** Slots it gives away (MIGRATING), to the node of that id. */
  readonly migrating: readonly (readonly [slot: number, to: string])[]
  /** Slots it takes in (IMPORTING), from the node of that id. */
  readonly importing: readonly (readonly [slot: number, from: string])[]
}

/**
 * Parses CLUSTER NODES: `<id> <ip:port@cport[,hostname]> <flags> <master> <ping> <pong> <epoch>
 * <link> <slot>...`, where a slot being moved shows, on the answering node's own line only, as
 * `[slot->-<id>]` (migrating to) or `[slot-<-<id>]` (importing from).
 */
export function parseClusterNodes(text: string): NodesReply {
  const nodes: ClusterNode[] = []
  const migrating: [number, string][] = []
  const importing: [number, string][] = []
  for (const line of text.split('\n')) {
    const fields = line.trim().split(' ')
    const [id, address, flagList] = fields
    if (id === undefined || address === undefined || flagList === undefined) continue
    const hostPort = address.split('@')[0] ?? ''
    const colon = hostPort.lastIndexOf(':')
    if (colon < 0) continue
    const flags = new Set(flagList.split(','))
    const myself = flags.has('myself')
    nodes.push({
      id,
      host: hostPort.slice(0, colon),
      port: Number(hostPort.slice(colon + 1)),
      master:
        flags.has('master') && !['fail', 'fail?', 'handshake', 'noaddr'].some((f) => flags.has(f)),
      myself,
    })
    if (!myself) continue
    for (const field of fields.slice(8)) {
      const move = /^\[(\d+)-([<>])-(\w+)\]$/.exec(field)
      if (!move) continue
      const [, slot, direction, other] = move as unknown as [string, string, string, string]
      ;(direction === '>' ? migrating : importing).push([Number(slot), other])
    }
  }
  return { nodes, migrating, importing }
}

/** The `host:port` of an address, as ASK and MOVED replies name a master. */
export function addressKey(address: HostPort): string {
  return `${address.host}:${address.port}`
}

/**
 * Every master of the cluster a client's CLUSTER NODES lists, beyond `masters` (those serving
 * slots, from CLUSTER SLOTS): a master that serves no slot yet may be a slot move's target.
 */
export async function allMasters(
  client: Redis | Cluster,
  masters: readonly HostPort[],
): Promise<HostPort[]> {
  const reply = parseClusterNodes(String(await client.call('CLUSTER', 'NODES')))
  const known = new Set(masters.map(addressKey))
  const all = [...masters]
  for (const node of reply.nodes) {
    if (node.master && !known.has(addressKey(node))) all.push({ host: node.host, port: node.port })
  }
  return all
}

/** A slot being moved from one master to another (indices into the session's masters). */
export interface SlotMove {
  readonly slot: number
  readonly source: number
  readonly target: number
}

/** The slot moves under way, by slot; `signature` changes whenever one starts or ends. */
export interface SlotMoves {
  readonly bySlot: ReadonlyMap<number, SlotMove>
  readonly signature: string
}

/** No slot moving (a node or a Sentinel master). */
export const NO_MOVES: SlotMoves = { bySlot: new Map(), signature: '' }

/**
 * The slot moves under way, from each master's own CLUSTER NODES line (MIGRATING on the
 * source, IMPORTING on the target: either side counts, as during a move's first and last steps
 * only one side has it). `readers[i]` reaches `masters[i]`.
 *
 * @throws UnavailableError when a move involves a master not among `masters` (the next session
 *   learns it).
 */
export async function readSlotMoves(
  readers: readonly Redis[],
  masters: readonly HostPort[],
): Promise<SlotMoves> {
  const index = new Map(masters.map((master, i) => [addressKey(master), i]))
  const replies = await Promise.all(
    readers.map(async (reader) => parseClusterNodes(String(await reader.call('CLUSTER', 'NODES')))),
  )
  const bySlot = new Map<number, SlotMove>()
  replies.forEach((reply, self) => {
    const where = (id: string, slot: number): number => {
      const node = reply.nodes.find((n) => n.id === id)
      const at = node === undefined ? undefined : index.get(addressKey(node))
      if (at === undefined) {
        throw new UnavailableError(
          NAME,
          `slot ${slot} is moving to or from node ${id}${node ? ` (${addressKey(node)})` : ''}, which this watch does not know yet`,
        )
      }
      return at
    }
    for (const [slot, to] of reply.migrating) {
      bySlot.set(slot, { slot, source: self, target: where(to, slot) })
    }
    for (const [slot, from] of reply.importing) {
      bySlot.set(slot, { slot, source: where(from, slot), target: self })
    }
  })
  const signature = [...bySlot.values()]
    .map((move) => `${move.slot}:${move.source}>${move.target}`)
    .sort()
    .join(',')
  return { bySlot, signature }
}
