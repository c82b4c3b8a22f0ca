/**
 * The conformance suite against real Consul agents: a dev agent, and a three-server cluster read
 * through a client agent. Agents start once per block; each test gets fresh stores. The store
 * under test reaches its agent through a loopback proxy, so `fault.interrupt()` cuts only its
 * connections while the writer (a second store connected directly) keeps writing; the proxy also
 * counts the blocking queries in flight (P7).
 *
 * The agents run with `session_ttl_min = "1s"` and the stores with `minTtl: '1s'`, so the suite's
 * TTL test (a 1s TTL) runs as it is; with Consul's default minimum a 1s TTL is refused (see
 * test/integration/consul.test.ts).
 */
import { lastValueFrom } from 'rxjs'
import { afterAll, beforeAll, describe } from 'vitest'
import { createConsulStore } from '../../src/backends/consul/index.js'
import type { KvStore } from '../../src/index.js'
import { CONSUL_BUILD_TIMEOUT_MS, ensureConsul } from '../servers/consul-install.js'
import {
  startConsul,
  startConsulCluster,
  type ConsulAgent,
  type ConsulCluster,
} from '../servers/consul.js'
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js'
import { describeStore, type StoreFixture } from './suite.js'

const AGENT_START_MS = 180_000
const LOW_TTL = 'session_ttl_min = "1s"\n'

/** Store options for tests: short waits and backoff, so a fault heals within the suite's bounds. */
const TIMINGS = {
  waitTime: '5s',
  requestTimeout: '3s',
  retryDelay: '100ms',
  maxRetryDelay: '1s',
  statusInterval: '1s',
  minTtl: '1s',
} as const

async function fixture(agent: string, writerAgent: string): Promise<StoreFixture> {
  const [agentHost, agentPort] = agent.split(':')
  if (agentHost === undefined || agentPort === undefined) throw new Error(`bad address ${agent}`)
  const proxy: TcpProxy = await startTcpProxy(Number(agentPort))
  const store: KvStore = createConsulStore({ address: proxy.address, ...TIMINGS })
  const writer: KvStore = createConsulStore({ address: writerAgent, ...TIMINGS })
  // Connected before the test starts, as the writer is: the suite's P3 test writes right after
  // start() and expects the store's first listing to come before that write.
  await lastValueFrom(store.get('warm-up'))
  await lastValueFrom(writer.get('warm-up'))
  return {
    store,
    writer,
    fault: {
      interrupt: () => proxy.interrupt(),
      restore: () => proxy.restore(),
    },
    activeWatches: () => proxy.blockingQueries,
    close: async () => {
      await store.close()
      await writer.close()
      await proxy.close()
    },
  }
}

beforeAll(() => ensureConsul(), CONSUL_BUILD_TIMEOUT_MS)

describe('consul, dev agent', { timeout: 90_000 }, () => {
  let agent: ConsulAgent | undefined
  beforeAll(async () => {
    agent = await startConsul({ config: LOW_TTL })
  }, AGENT_START_MS)
  afterAll(async () => {
    await agent?.cleanup()
  }, AGENT_START_MS)

  describeStore(
    'consul (dev agent)',
    () => {
      if (agent === undefined) throw new Error('consul did not start')
      return fixture(agent.address, agent.address)
    },
    { convergeMs: 30_000, faults: true },
  )
})

describe('consul, three servers and a client agent', { timeout: 90_000 }, () => {
  let cluster: ConsulCluster | undefined
  beforeAll(async () => {
    cluster = await startConsulCluster({ servers: 3, clients: 1, config: LOW_TTL })
  }, AGENT_START_MS)
  afterAll(async () => {
    await cluster?.cleanup()
  }, AGENT_START_MS)

  describeStore(
    'consul (three servers, read through a client agent)',
    () => {
      const client = cluster?.clients[0]
      const server = cluster?.servers[1]
      if (client === undefined || server === undefined)
        throw new Error('the consul cluster did not start')
      return fixture(client.address, server.address)
    },
    { convergeMs: 30_000, faults: true },
  )
})
