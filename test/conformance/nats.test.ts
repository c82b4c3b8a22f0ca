/**
 * The conformance suite against real nats-server (2.9) with JetStream: one server, and a
 * three-server cluster with buckets of three replicas. Servers start once per block; each test
 * gets a fresh bucket (so the consumer count of P7 is exact) and fresh stores. The store under
 * test reaches its server through a loopback TCP proxy and does not follow the cluster's other
 * servers, so `fault.interrupt()` cuts only its connection while the writer (a second store,
 * connected directly) keeps writing.
 *
 * The store resumes its watch after a reconnection; relisting when the history is gone is proved
 * by test/integration/nats-faults.test.ts (a purge while disconnected).
 */
import { lastValueFrom } from 'rxjs'
import { afterAll, beforeAll, describe } from 'vitest'
import { createNatsStore, type NatsStore } from '../../src/backends/nats/index.js'
import {
  NATS_TEST_TIMINGS,
  createNatsBucket,
  deleteNatsBucket,
  startNats,
  startNatsCluster,
  type NatsCluster,
  type NatsServer,
} from '../servers/nats.js'
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js'
import { describeStore, type StoreFixture } from './suite.js'

const SERVER_START_MS = 180_000

let buckets = 0

async function fixture(
  storeServer: number,
  urls: readonly string[],
  replicas: number,
): Promise<StoreFixture> {
  buckets++
  const bucket = `conf_${process.pid}_${buckets}`
  await createNatsBucket(urls, bucket, { replicas })
  const proxy: TcpProxy = await startTcpProxy(storeServer)
  const store: NatsStore = createNatsStore({
    servers: `nats://${proxy.address}`,
    bucket,
    discoverServers: false,
    ...NATS_TEST_TIMINGS,
  })
  const writer: NatsStore = createNatsStore({ servers: [...urls], bucket, ...NATS_TEST_TIMINGS })
  // Connected before the test starts, as the writer is.
  await lastValueFrom(store.get('warm-up'), { defaultValue: undefined })
  await lastValueFrom(writer.get('warm-up'), { defaultValue: undefined })
  return {
    store,
    writer,
    fault: {
      interrupt: () => proxy.interrupt(),
      restore: () => proxy.restore(),
    },
    activeWatches: () => lastValueFrom(writer.activeConsumers()),
    close: async () => {
      await store.close()
      await writer.close()
      await proxy.close()
      await deleteNatsBucket(urls, bucket)
    },
  }
}

describe('nats, one server', { timeout: 90_000 }, () => {
  let server: NatsServer | undefined
  beforeAll(async () => {
    server = await startNats()
  }, SERVER_START_MS)
  afterAll(async () => {
    await server?.cleanup()
  }, SERVER_START_MS)

  describeStore(
    'nats (one server)',
    () => {
      if (server === undefined) throw new Error('nats-server did not start')
      return fixture(server.port, [server.url], 1)
    },
    { faults: true, convergeMs: 30_000 },
  )
})

describe('nats, three-server cluster', { timeout: 90_000 }, () => {
  let cluster: NatsCluster | undefined
  beforeAll(async () => {
    cluster = await startNatsCluster(3)
  }, SERVER_START_MS)
  afterAll(async () => {
    await cluster?.cleanup()
  }, SERVER_START_MS)

  describeStore(
    'nats (three-server cluster, three replicas)',
    () => {
      const server = cluster?.servers[1]
      if (cluster === undefined || server === undefined) {
        throw new Error('the nats cluster did not start')
      }
      return fixture(server.port, cluster.urls, 3)
    },
    { faults: true, convergeMs: 30_000 },
  )
})
