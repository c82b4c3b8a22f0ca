/**
 * The conformance suite on combined stores over real servers: a routed store of files (FileDB)
 * and etcd, and a layered store of files under Redis. The file source holds the keys of several
 * test areas (written by the FileDB test writer, which rewrites the data files); the server holds
 * the rest, the keys of the gap tests among them. The server is reached through a TCP proxy, so
 * `fault.interrupt()` cuts only it: the file source keeps going, and the server's part heals by
 * itself when the proxy comes back.
 */
import { mkdir, mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe } from 'vitest'
import { createEtcdStore } from '../../src/backends/etcd/index.js'
import { createFileStore } from '../../src/backends/filedb/index.js'
import { createRedisStore } from '../../src/backends/redis/index.js'
import { createLayeredStore, createRoutedStore, type KvStore } from '../../src/index.js'
import {
  redisCommand,
  startEtcd,
  startRedis,
  type EtcdServer,
  type RedisServer,
} from '../servers/index.js'
import { watcherCount } from '../support/etcd.js'
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js'
import { fileWriter } from './file-writer.js'
import { describeStore } from './suite.js'

const SERVER_START_MS = 180_000

/** A FileDB store over a fresh directory, with the test writer and the clean-up. */
async function files() {
  const dir = await mkdtemp(join(tmpdir(), 'combined-conformance-'))
  const data = join(dir, 'data')
  await mkdir(data)
  // settle 0: the writer replaces files atomically, so there is nothing half-written to wait out.
  const store = createFileStore({ paths: [data], settle: 0 })
  return {
    store,
    writer: fileWriter(store, data),
    close: async () => {
      await store.close()
      await rm(dir, { recursive: true, force: true })
    },
  }
}

/** Routes: the test prefix to `server`, each of `split` under it to `file`. */
function routes(p: string, server: KvStore, file: KvStore, split: readonly string[]) {
  return Object.fromEntries([[p, server] as const, ...split.map((key) => [p + key, file] as const)])
}

describe('routed: files + etcd', { timeout: 90_000 }, () => {
  let etcd: EtcdServer | undefined
  beforeAll(async () => {
    etcd = await startEtcd()
  }, SERVER_START_MS)
  afterAll(async () => {
    await etcd?.cleanup()
  }, SERVER_START_MS)

  // The file source takes keys of the broker, snapshot, prev, resync-order, backpressure and
  // decode tests; etcd the rest: the gap tests' keys and every transaction's. A test that needs
  // one write to arrive before another (q/, j/) keeps its keys in one source: two sources'
  // changes have no order between them.
  const split = ['b/', 'k/1', 's/1', 'a/2', 'q/', 'j/', 'c/', 'z/']

  describeStore(
    'routed: files + etcd',
    async (p) => {
      if (etcd === undefined) throw new Error('etcd did not start')
      const proxy: TcpProxy = await startTcpProxy(etcd.clientPort)
      const live = createEtcdStore({
        endpoints: [proxy.url],
        reconnectInterval: '500ms',
        statusInterval: '1s',
      })
      const liveWriter = createEtcdStore({ endpoints: [...etcd.endpoints] })
      const file = await files()
      const store = createRoutedStore(routes(p, live, file.store, split))
      const writer = createRoutedStore(routes(p, liveWriter, file.writer, split))
      const urls = etcd.endpoints
      return {
        store,
        writer,
        fault: { interrupt: () => proxy.interrupt(), restore: () => proxy.restore() },
        activeWatches: () => watcherCount(urls),
        close: async () => {
          await store.close()
          await writer.close()
          await file.close()
          await proxy.close()
        },
      }
    },
    { faults: true, convergeMs: 30_000 },
  )
})

describe('layered: files under Redis', { timeout: 90_000 }, () => {
  let redis: RedisServer | undefined
  let proxy: TcpProxy | undefined
  beforeAll(async () => {
    redis = await startRedis({ name: 'combined-conformance' })
    proxy = await startTcpProxy(redis.port, { cutWith: 'close' })
  }, SERVER_START_MS)
  afterAll(async () => {
    await proxy?.close()
    await redis?.cleanup()
  }, SERVER_START_MS)

  // The writer puts the keys of these areas in the file layer (its transactions' keys among
  // them: t/, x/, y/), the rest in the Redis layer above it, where the store's own writes go.
  // A test that needs one write to arrive before another (j/: the bad value before the next
  // key) keeps its keys in one source: two sources' changes have no order between them.
  const split = ['b/', 'k/', 's/1', 'a/2', 't/', 'x/', 'y/', 'j/']
  let count = 0

  describeStore(
    'layered: files under Redis',
    async (p) => {
      if (redis === undefined || proxy === undefined) throw new Error('redis did not start')
      const port = redis.port
      const cut = proxy
      const name = `combined-${process.pid}-${++count}`
      const quick = { maxReconnectDelay: '500ms', heartbeatInterval: '1s' } as const
      const top = createRedisStore({
        node: { host: '127.0.0.1', port: cut.port },
        connectionName: name,
        ...quick,
      })
      const topWriter = createRedisStore({
        node: { host: '127.0.0.1', port },
        connectionName: `${name}-writer`,
        ...quick,
      })
      const file = await files()
      const store = createLayeredStore([
        { name: 'files', store: file.store },
        { name: 'redis', store: top },
      ])
      const writer = createRoutedStore(routes(p, topWriter, file.writer, split))
      return {
        store,
        writer,
        fault: {
          interrupt: async () => {
            await cut.interrupt()
            await redisCommand(port, 'CLIENT', 'KILL', 'TYPE', 'pubsub')
          },
          restore: () => cut.restore(),
        },
        close: async () => {
          await cut.restore()
          await store.close()
          await writer.close()
          await file.close()
        },
      }
    },
    { faults: true },
  )
})
