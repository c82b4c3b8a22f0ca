import type { Cluster, Redis } from 'ioredis'
import { copyAll } from './bytes.js'
import { toDatasyncError } from './errors.js'
import { keyPattern } from './keyspace.js'
import { keySlot } from './slots.js'

/** Keys per MGET/UNLINK command. */
export const BATCH = 500

/**
 * Every string key under `prefix` on one server, deduplicated (SCAN may return a key twice).
 * Paged with SCAN ... MATCH ... COUNT ... TYPE string.
 */
export async function scanKeys(node: Redis, prefix: string, count: number): Promise<string[]> {
  const keys = new Set<string>()
  await scanPages(node, prefix, count, (page) => {
    for (const key of page) keys.add(key)
  })
  return [...keys]
}

/**
 * Pages through the string keys under `prefix` on one server (SCAN ... MATCH ... COUNT ... TYPE
 * string), calling `onPage` with each page's keys as soon as it arrives: a command `onPage`
 * sends on the same connection is pipelined behind the next SCAN, so reading overlaps scanning.
 * A key may come twice (SCAN's guarantee is "at least once").
 */
export async function scanPages(
  node: Redis,
  prefix: string,
  count: number,
  onPage: (keys: readonly string[]) => void,
): Promise<void> {
  const pattern = keyPattern(prefix)
  let cursor = '0'
  do {
    const reply = (await node.call(
      'SCAN',
      cursor,
      'MATCH',
      pattern,
      'COUNT',
      String(count),
      'TYPE',
      'string',
    )) as [string, string[]]
    cursor = reply[0]
    const page = reply[1].filter((key) => key.startsWith(prefix))
    if (page.length > 0) onPage(page)
  } while (cursor !== '0')
}

/** Splits keys into groups one multi-key command may take: one slot each on a Cluster. */
export function groupKeys(keys: readonly string[], cluster: boolean): string[][] {
  const groups: string[][] = []
  if (!cluster) {
    for (let i = 0; i < keys.length; i += BATCH) groups.push(keys.slice(i, i + BATCH))
    return groups
  }
  const bySlot = new Map<number, string[]>()
  for (const key of keys) {
    const slot = keySlot(key)
    const group = bySlot.get(slot)
    if (group) group.push(key)
    else bySlot.set(slot, [key])
  }
  for (const group of bySlot.values()) {
    for (let i = 0; i < group.length; i += BATCH) groups.push(group.slice(i, i + BATCH))
  }
  return groups
}

/**
 * The values of `keys` on one server, read with pipelined MGETs (one slot per MGET on a Cluster
 * node, so a transaction's keys are read atomically); a missing key (or one that is not a string)
 * maps to undefined. Through a Cluster client, one MGET per key, which the client sends to the
 * key's master and redirects as a slot move asks (ASK, MOVED).
 */
export async function readValues(
  node: Redis | Cluster,
  keys: readonly string[],
  cluster: boolean,
): Promise<Map<string, Uint8Array | undefined>> {
  const values = new Map<string, Uint8Array | undefined>()
  await readEach(node, keys, cluster, (key, value) => {
    values.set(key, value)
  })
  return values
}

/**
 * Reads `keys` as {@link readValues} does, handing each key and its value (undefined when it is
 * missing) to `onValue` as the replies arrive, without building a map.
 */
export async function readEach(
  node: Redis | Cluster,
  keys: readonly string[],
  cluster: boolean,
  onValue: (key: string, value: Uint8Array | undefined) => void,
): Promise<void> {
  if (keys.length === 0) return
  if (node.isCluster) {
    const replies = await Promise.all(keys.map((key) => node.mgetBuffer(key)))
    keys.forEach((key, i) => {
      onValue(key, copyAll(replies[i] ?? [])[0])
    })
    return
  }
  const groups = groupKeys(keys, cluster)
  const pipeline = node.pipeline()
  for (const group of groups) pipeline.mgetBuffer(...group)
  const results = (await pipeline.exec()) ?? []
  groups.forEach((group, i) => {
    const [error, reply] = results[i] ?? [new Error('Connection is closed.'), null]
    if (error) throw toDatasyncError(error, 'MGET').error
    const copies = copyAll(reply as (Buffer | null)[])
    group.forEach((key, j) => {
      onValue(key, copies[j])
    })
  })
}

/** The `run_id` of the server behind a connection (INFO server), to tell servers apart. */
export async function serverRunId(node: Redis): Promise<string> {
  const info = await node.info('server')
  return /run_id:(\w+)/.exec(info)?.[1] ?? ''
}

/** Every key of `slot` on one Cluster master (CLUSTER COUNTKEYSINSLOT, then GETKEYSINSLOT). */
export async function keysInSlot(node: Redis, slot: number): Promise<string[]> {
  const count = Number(await node.call('CLUSTER', 'COUNTKEYSINSLOT', slot))
  if (count === 0) return []
  return (await node.call('CLUSTER', 'GETKEYSINSLOT', slot, count)) as string[]
}
