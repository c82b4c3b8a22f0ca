/**
 * The conformance suite against real etcd: one member, and a three-member cluster. Servers start
 * once per block; each test gets fresh stores. The store under test reaches the members through
 * loopback TCP proxies, so `fault.interrupt()` cuts only its connections while the writer (a
 * second store connected directly) keeps writing.
 *
 * The stores resume their watch after a reconnection (the default): gap recovery through a
 * relist is proved by test/integration/etcd-faults.test.ts (compaction while disconnected).
 */
import { afterAll, beforeAll, describe } from 'vitest'
import { createEtcdStore, type EtcdStore } from '../../src/backends/etcd/index.js'
import { startEtcd, startEtcdCluster, type EtcdCluster, type EtcdServer } from '../servers/index.js'
import { watcherCount, watchersReach } from '../support/etcd.js'
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js'
import { bytes, withCodec, withPrefix } from '../../src/index.js'
import { describeStore, type StoreFixture } from './suite.js'

const SERVER_START_MS = 180_000

/** A fixture over members whose client ports are `ports` and client URLs `urls`. */
async function fixture(ports: readonly number[], urls: readonly string[]): Promise<StoreFixture> {
  // Every watch of the previous test is gone, so counting watchers on the members is exact.
  await watchersReach(urls, 0)
  const proxies: TcpProxy[] = await Promise.all(ports.map((port) => startTcpProxy(port)))
  const store: EtcdStore = createEtcdStore({
    endpoints: proxies.map((proxy) => proxy.url),
    reconnectInterval: '500ms',
    statusInterval: '1s',
  })
  const writer: EtcdStore = createEtcdStore({ endpoints: [...urls] })
  return {
    store,
    writer,
    fault: {
      interrupt: async () => {
        await Promise.all(proxies.map((proxy) => proxy.interrupt()))
      },
      restore: async () => {
        await Promise.all(proxies.map((proxy) => proxy.restore()))
      },
    },
    activeWatches: () => watcherCount(urls),
    close: async () => {
      await store.close()
      await writer.close()
      await Promise.all(proxies.map((proxy) => proxy.close()))
    },
  }
}

describe('etcd, one member', { timeout: 90_000 }, () => {
  let etcd: EtcdServer | undefined
  beforeAll(async () => {
    etcd = await startEtcd()
  }, SERVER_START_MS)
  afterAll(async () => {
    await etcd?.cleanup()
  }, SERVER_START_MS)

  describeStore(
    'etcd (one member)',
    () => {
      if (etcd === undefined) throw new Error('etcd did not start')
      return fixture([etcd.clientPort], etcd.endpoints)
    },
    { faults: true, convergeMs: 30_000 },
  )

  // The typed and prefixed views compose over etcd: the whole suite through them.
  describeStore(
    'etcd (one member) through withCodec(withPrefix(store, "view/"), bytes())',
    async () => {
      if (etcd === undefined) throw new Error('etcd did not start')
      const base = await fixture([etcd.clientPort], etcd.endpoints)
      return {
        ...base,
        store: withCodec(withPrefix(base.store, 'view/'), bytes()),
        writer: withPrefix(base.writer ?? base.store, 'view/'),
      }
    },
    { faults: true, convergeMs: 30_000 },
  )
})

describe('etcd, three-member cluster', { timeout: 90_000 }, () => {
  let cluster: EtcdCluster | undefined
  beforeAll(async () => {
    cluster = await startEtcdCluster(3)
  }, SERVER_START_MS)
  afterAll(async () => {
    await cluster?.cleanup()
  }, SERVER_START_MS)

  describeStore(
    'etcd (three-member cluster)',
    () => {
      if (cluster === undefined) throw new Error('the etcd cluster did not start')
      return fixture(
        cluster.members.map((member) => member.clientPort),
        cluster.endpoints,
      )
    },
    { faults: true, convergeMs: 30_000 },
  )
})
