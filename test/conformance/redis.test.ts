/**
 * The conformance suite against real Redis deployments started by the harness: one node, a
 * master with two replicas behind three sentinels, and a cluster of three masters with a replica
 * each. Servers start once for the file; each test gets fresh clients.
 *
 * The store under test reaches every data node through a TCP proxy (Sentinel and Cluster map the
 * announced addresses to the proxies with `natMap`), and the writer connects directly: the fault
 * hook cuts the proxies (and kills the servers' pub/sub connections), so the store stays
 * disconnected while the writer goes on, until `restore`.
 */
import { afterAll, beforeAll, describe } from 'vitest'
import { createRedisStore, type RedisStoreOptions } from '../../src/backends/redis/index.js'
import {
  redisCommand,
  startRedis,
  startRedisCluster,
  startSentinelSetup,
  type RedisCluster,
  type RedisServer,
  type SentinelSetup,
} from '../servers/index.js'
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js'
import { bytes, withCodec, withPrefix } from '../../src/index.js'
import { describeStore, type StoreFixture } from './suite.js'

const TIMEOUT = 60_000

let node: RedisServer | undefined
let sentinel: SentinelSetup | undefined
let cluster: RedisCluster | undefined
const proxies = new Map<number, TcpProxy>()

beforeAll(async () => {
  const [a, b, c] = await Promise.allSettled([
    startRedis({ name: 'conformance-redis' }),
    startSentinelSetup(),
    startRedisCluster(),
  ])
  // Keep whatever started, so afterAll cleans it up even when another setup failed.
  node = a.status === 'fulfilled' ? a.value : undefined
  sentinel = b.status === 'fulfilled' ? b.value : undefined
  cluster = c.status === 'fulfilled' ? c.value : undefined
  for (const result of [a, b, c]) if (result.status === 'rejected') throw result.reason
  const ports = [node!.port, ...sentinel!.nodes.map((n) => n.port), ...cluster!.ports]
  for (const port of ports) proxies.set(port, await startTcpProxy(port, { cutWith: 'close' }))
}, 300_000)

afterAll(async () => {
  await Promise.all([...proxies.values()].map((proxy) => proxy.close()))
  await Promise.all([node?.cleanup(), sentinel?.cleanup(), cluster?.cleanup()])
})

let fixtureCount = 0

/** `natMap` sending every announced data-node address through its proxy. */
function natMap(ports: readonly number[]): Record<string, { host: string; port: number }> {
  return Object.fromEntries(
    ports.map((port) => [
      `127.0.0.1:${port}`,
      { host: '127.0.0.1', port: proxies.get(port)!.port },
    ]),
  )
}

/** How many watch subscriber connections named `name` the servers on `ports` hold. */
async function watchConnections(ports: readonly number[], name: string): Promise<number> {
  let count = 0
  for (const port of ports) {
    const list = String(await redisCommand(port, 'CLIENT', 'LIST', 'TYPE', 'pubsub'))
    count += list.split('\n').filter((line) => line.includes(` name=${name}:watch `)).length
  }
  return count
}

/** A fixture over one deployment: `ports` are its data nodes, `options` how to reach it. */
function fixture(
  ports: () => readonly number[],
  options: (proxied: boolean) => RedisStoreOptions,
  view: (store: ReturnType<typeof createRedisStore>) => StoreFixture['store'] = (s) => s,
): () => Promise<StoreFixture> {
  return () => {
    const name = `conformance-${process.pid}-${++fixtureCount}`
    const quick = {
      maxReconnectDelay: '500ms',
      heartbeatInterval: '1s',
      connectionName: name,
    } as const
    const store = createRedisStore({ ...options(true), ...quick })
    const writer = createRedisStore({
      ...options(false),
      ...quick,
      connectionName: `${name}-writer`,
    })
    const cut = async () => {
      await Promise.all(ports().map((port) => proxies.get(port)!.interrupt()))
      for (const port of ports()) await redisCommand(port, 'CLIENT', 'KILL', 'TYPE', 'pubsub')
    }
    return Promise.resolve({
      store: view(store),
      writer: view(writer),
      fault: {
        interrupt: cut,
        restore: async () => {
          await Promise.all(ports().map((port) => proxies.get(port)!.restore()))
        },
      },
      activeWatches: () => watchConnections(ports(), name),
      close: async () => {
        await Promise.all(ports().map((port) => proxies.get(port)!.restore()))
        await Promise.all([store.close(), writer.close()])
      },
    })
  }
}

describe('redis node', { timeout: TIMEOUT }, () => {
  describeStore(
    'redis node',
    fixture(
      () => [node!.port],
      (proxied) => ({
        node: { host: '127.0.0.1', port: proxied ? proxies.get(node!.port)!.port : node!.port },
      }),
    ),
    { faults: true },
  )

  // The default watch is lean (no value per key): the orchestrator gives prev values. The one
  // that keeps a copy of every value keeps every promise too.
  describeStore(
    "redis node, watchMemory: 'values'",
    fixture(
      () => [node!.port],
      (proxied) => ({
        node: { host: '127.0.0.1', port: proxied ? proxies.get(node!.port)!.port : node!.port },
        watchMemory: 'values',
      }),
    ),
    { faults: true },
  )

  // The typed and prefixed views compose over Redis: the whole suite through them.
  const nodeFixture = fixture(
    () => [node!.port],
    (proxied) => ({
      node: { host: '127.0.0.1', port: proxied ? proxies.get(node!.port)!.port : node!.port },
    }),
  )
  describeStore(
    'redis node through withCodec(withPrefix(store, "view/"), bytes())',
    async () => {
      const base = await nodeFixture()
      return {
        ...base,
        store: withCodec(withPrefix(base.store, 'view/'), bytes()),
        writer: withPrefix(base.writer ?? base.store, 'view/'),
      }
    },
    { faults: true },
  )
})

describe('redis sentinel', { timeout: TIMEOUT }, () => {
  describeStore(
    'redis sentinel',
    fixture(
      () => sentinel!.nodes.map((n) => n.port),
      (proxied) => ({
        sentinel: { sentinels: sentinel!.sentinelAddresses, masterName: sentinel!.masterName },
        ...(proxied ? { natMap: natMap(sentinel!.nodes.map((n) => n.port)) } : {}),
      }),
    ),
    { faults: true },
  )
})

const clusterOptions = (proxied: boolean): RedisStoreOptions => ({
  cluster: {
    nodes: cluster!.ports.map((port) => ({
      host: '127.0.0.1',
      port: proxied ? proxies.get(port)!.port : port,
    })),
  },
  ...(proxied ? { natMap: natMap(cluster!.ports) } : {}),
})

// Keys spread over every master. A Cluster runs a transaction only on keys of one hash slot, and
// the suite's transactions name keys of many slots: here the suite checks that the store refuses
// them with a CapabilityError (though it claims capabilities.txn); they run in the next block.
describe('redis cluster', { timeout: TIMEOUT }, () => {
  describeStore(
    'redis cluster',
    fixture(() => cluster!.ports, clusterOptions),
    { txnAcrossKeys: false, faults: true },
  )
  // The default (lean) watch above; the one that keeps values where ordering is hardest: every
  // master's stream merged.
  describeStore(
    "redis cluster, watchMemory: 'values'",
    fixture(
      () => cluster!.ports,
      (proxied) => ({ ...clusterOptions(proxied), watchMemory: 'values' }),
    ),
    { txnAcrossKeys: false, faults: true },
  )
})

// Every key under one hash tag, as a Cluster user must lay out keys written together: the whole
// suite, transactions included.
describe('redis cluster, one hash slot', { timeout: TIMEOUT }, () => {
  describeStore(
    'redis cluster, one hash slot',
    fixture(
      () => cluster!.ports,
      clusterOptions,
      (store) => withPrefix(store, '{conformance}'),
    ),
    { faults: true },
  )
})
