/**
 * Issue 16, the chaos run's Redis Cluster finding: a slot moved from one master to another, step
 * by step (IMPORTING, MIGRATING, MIGRATE of half the keys, writes, a relist, a fresh watch and a
 * broker listing half-way, MIGRATE of the rest, SETSLOT NODE). MIGRATE deletes each key on the
 * source (a `del` keyspace event there) after restoring it on the target: no consumer may see
 * such a key deleted, and a listing half-way must find every key, on whichever side it is.
 * Before the fix, the listing kept only the keys on the slot's owner in the slot map (the
 * source), so a relist half-way dropped the migrated keys and the orchestrator told consumers
 * they were deleted (then put back once the move ended).
 */
import { filter, firstValueFrom, lastValueFrom, type Subscription } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createDatasync,
  revision,
  string,
  type Datasync,
  type StoreEvent,
} from '../../src/index.js'
import { createRedisStore, type RedisStore } from '../../src/backends/redis/index.js'
import { keySlot } from '../../src/backends/redis/slots.js'
import { recordConsumer } from '../../src/testing/index.js'
import { pollUntil, redisCommand, startRedisCluster, type RedisCluster } from '../servers/index.js'

const text = string()
const enc = (value: string) => text.encode(value)
const dec = (raw: Uint8Array) => text.decode(raw)

let cluster: RedisCluster | undefined
const stores: RedisStore[] = []
const syncs: Datasync<Uint8Array>[] = []

beforeAll(async () => {
  cluster = await startRedisCluster({ replicasPerMaster: 0 })
}, 120_000)

afterAll(async () => {
  for (const sync of syncs) sync.close()
  await Promise.all(stores.map((store) => store.close()))
  await cluster?.cleanup()
})

function store(): RedisStore {
  const created = createRedisStore({
    cluster: { nodes: cluster!.startupNodes },
    commandTimeout: '2s',
    heartbeatInterval: '500ms',
    maxReconnectDelay: '200ms',
  })
  stores.push(created)
  return created
}

async function ownerOf(slot: number): Promise<number> {
  const reply = (await redisCommand(cluster!.ports[0]!, 'CLUSTER', 'SLOTS')) as [
    number,
    number,
    [string, number],
  ][]
  const range = reply.find(([start, end]) => start <= slot && slot <= end)
  if (!range) throw new Error(`no master serves slot ${slot}`)
  return range[2][1]
}

const myId = async (port: number) => String(await redisCommand(port, 'CLUSTER', 'MYID'))

async function migrate(source: number, target: number, keys: readonly string[]): Promise<void> {
  await redisCommand(source, 'MIGRATE', '127.0.0.1', target, '', 0, 5000, 'KEYS', ...keys)
}

type Items = Record<string, string>

function snapshotItems(event: StoreEvent<Uint8Array>): Items {
  if (event.type !== 'snapshot') throw new Error(`a ${event.type} event, not a snapshot`)
  return Object.fromEntries(event.items.map((item) => [item.key, dec(item.value)]))
}

async function listed(over: RedisStore, prefix: string): Promise<Items> {
  const items = await lastValueFrom(over.list(prefix))
  return Object.fromEntries(items.map((item) => [item.key, dec(item.value)]))
}

describe('redis cluster: a slot moved step by step', () => {
  it('MIGRATE is not a delete; a relist, a fresh watch and a listing half-way see every key', async () => {
    const tag = `{move-${process.pid}}`
    const p = `${tag}/`
    const slot = keySlot(tag)
    const keys = Array.from({ length: 20 }, (_, i) => `${p}k${i}`)
    const writer = store()
    for (const key of keys) await lastValueFrom(writer.put(key, enc(`v0-${key}`)))
    const expected = new Map(keys.map((key) => [key, `v0-${key}`]))
    const items = () => [...expected].map(([key, value]) => ({ key, value, revision: revision(0) }))
    const all = () => Object.fromEntries(expected)

    // A store-level watch (every event kept) and a consumer under the orchestrator.
    const watched = store()
    const events: StoreEvent<Uint8Array>[] = []
    const watching: Subscription = watched.watch([p]).subscribe((event) => events.push(event))
    const instance = createDatasync(watched, { ackTimeout: '10s' })
    syncs.push(instance)
    const recorder = recordConsumer(instance.register('all', { prefixes: [p], codec: text }))
    instance.start()
    await firstValueFrom(instance.status$.pipe(filter((status) => status.state === 'in-sync')))
    await pollUntil(() => events.length > 0, { description: 'the first snapshot' })
    expect(snapshotItems(events[0]!)).toEqual(all())

    const source = await ownerOf(slot)
    const target = cluster!.ports.find((port) => port !== source)!
    const [sourceId, targetId] = await Promise.all([myId(source), myId(target)])
    await redisCommand(target, 'CLUSTER', 'SETSLOT', slot, 'IMPORTING', sourceId)
    await redisCommand(source, 'CLUSTER', 'SETSLOT', slot, 'MIGRATING', targetId)
    await migrate(source, target, keys.slice(0, 10))

    // Writes half-way: to a migrated key (runs on the target, after ASK), to one still on the
    // source, a new key (missing on the source: the target), and a delete of a migrated key.
    const writes: [string, string | undefined][] = [
      [keys[2]!, 'v1'],
      [keys[15]!, 'v1'],
      [`${p}new`, 'v1'],
      [keys[3]!, undefined],
    ]
    for (const [key, value] of writes) {
      if (value === undefined) await lastValueFrom(writer.delete(key))
      else await lastValueFrom(writer.put(key, enc(value)))
      if (value === undefined) expected.delete(key)
      else expected.set(key, value)
    }
    await recorder.untilEquals(items(), 30_000)

    // A relist half-way: the subscribers cut, the next session lists both sides of the move.
    const before = events.length
    for (const port of [source, target]) {
      await redisCommand(port, 'CLIENT', 'KILL', 'TYPE', 'pubsub')
    }
    const relist = await pollUntil(
      () => events.slice(before).find((event) => event.type === 'snapshot'),
      { description: 'the watch to relist half-way through the move', timeoutMs: 30_000 },
    )
    expect(snapshotItems(relist)).toEqual(all())
    // A fresh watch and a broker listing half-way.
    const fresh = await firstValueFrom(store().watch([p]))
    expect(snapshotItems(fresh)).toEqual(all())
    expect(await listed(writer, p)).toEqual(all())

    await migrate(
      source,
      target,
      [...keys.slice(10), `${p}new`].filter((k) => expected.has(k)),
    )
    for (const port of [
      target,
      source,
      ...cluster!.ports.filter((q) => q !== source && q !== target),
    ]) {
      await redisCommand(port, 'CLUSTER', 'SETSLOT', slot, 'NODE', targetId)
    }
    await pollUntil(async () => (await ownerOf(slot)) === target, {
      description: `slot ${slot} to move to ${target}`,
    })
    await lastValueFrom(writer.put(keys[0]!, enc('v2')))
    expected.set(keys[0]!, 'v2')
    await recorder.untilEquals(items(), 30_000)
    expect(await listed(writer, p)).toEqual(all())

    // No delete but the one written.
    const deletes = events.flatMap((event) =>
      event.type === 'changes'
        ? event.changes.filter((c) => c.op === 'delete').map((c) => c.key)
        : [],
    )
    // (The written delete may come as a change, or fall into a relist's snapshot.)
    expect(deletes.filter((key) => key !== keys[3])).toEqual([])
    const consumerDeletes = recorder.events.flatMap((event) =>
      event.kind === 'change'
        ? event.changes.filter((c) => c.op === 'delete').map((c) => c.key)
        : [],
    )
    expect(consumerDeletes).toEqual([keys[3]])
    expect(recorder.violations).toEqual([])
    watching.unsubscribe()
  }, 120_000)
})
