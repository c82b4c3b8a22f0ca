/**
 * The nats-server harness (test/servers/nats.ts) on its own: a single server keeps its JetStream
 * store across stop and restart (same ports, same directory); SIGSTOP (`pause`) makes a store's
 * pings go unanswered, so it reports `degraded` and `ready` again after `resume`; a cluster agrees
 * on a meta leader and tells which server a named connection is on.
 */
import { filter, firstValueFrom, lastValueFrom, timeout } from 'rxjs'
import { describe, expect, it } from 'vitest'
import { createNatsStore } from '../../src/backends/nats/index.js'
import { string } from '../../src/index.js'
import {
  NATS_TEST_TIMINGS,
  createNatsBucket,
  startNats,
  startNatsCluster,
  withServer,
} from '../servers/index.js'

const text = string()

describe('nats harness', { timeout: 180_000 }, () => {
  it('a single server: restart keeps the bucket; pause and resume show in the store status', async () => {
    await withServer(
      () => startNats(),
      async (server) => {
        await createNatsBucket([server.url], 'h')
        const store = createNatsStore({ servers: server.url, bucket: 'h', ...NATS_TEST_TIMINGS })
        try {
          await lastValueFrom(store.put('k', text.encode('v')), { defaultValue: undefined })
          const port = server.port
          await server.stop()
          expect(server.running).toBe(false)
          await server.start()
          expect(server.port).toBe(port)
          const got = await lastValueFrom(store.get('k'))
          expect(got && text.decode(got.value)).toBe('v')
          await server.pause()
          await firstValueFrom(
            store.status$.pipe(
              filter((status) => status.state === 'degraded'),
              timeout(30_000),
            ),
          )
          server.resume()
          await firstValueFrom(
            store.status$.pipe(
              filter((status) => status.state === 'ready'),
              timeout(30_000),
            ),
          )
          expect(await server.connections()).toBeGreaterThan(0)
        } finally {
          await store.close()
        }
      },
    )
  })

  it('a three-server cluster: one meta leader, and the server a named connection is on', async () => {
    await withServer(
      () => startNatsCluster(3),
      async (cluster) => {
        const leader = await cluster.metaLeader()
        expect(cluster.servers).toContain(leader)
        const third = cluster.servers[2]
        if (third === undefined) throw new Error('the cluster has no third server')
        const store = createNatsStore({
          servers: third.url,
          bucket: 'h3',
          create: { replicas: 3 },
          name: 'harness-probe',
          discoverServers: false,
        })
        try {
          await lastValueFrom(store.put('k', text.encode('v')), { defaultValue: undefined })
          expect(await cluster.connectedTo('harness-probe')).toBe(third)
        } finally {
          await store.close()
        }
      },
    )
  })
})
