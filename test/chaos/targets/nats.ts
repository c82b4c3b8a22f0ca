/**
 * NATS JetStream KV: one server, a fresh bucket per schedule. The store under test reaches the
 * server through a TCP proxy; the writer and the reader connect directly. Faults: connection
 * cuts, SIGSTOP/SIGCONT, a stop held down then a start, a restart (no kill -9: see below).
 */
import { lastValueFrom } from 'rxjs'
import { createNatsStore } from '../../../src/backends/nats/index.js'
import {
  NATS_TEST_TIMINGS,
  createNatsBucket,
  deleteNatsBucket,
  startNats,
  type NatsServer,
} from '../../servers/nats.js'
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js'
import { hold, readText, serverFaults, type Fault, type Target } from '../target.js'

export function natsTarget(): Target {
  let server: NatsServer | undefined
  let proxy: TcpProxy | undefined
  let buckets = 0
  const nats = () => {
    if (server === undefined) throw new Error('nats-server did not start')
    return server
  }
  const common = serverFaults(nats, () => proxy!)
  const faults: Fault[] = [
    common.cut,
    common.sigstop,
    {
      // Not kill -9: JetStream syncs its files every 2 minutes by default (sync_interval), so a
      // crash loses writes it acknowledged, and the checker would rightly flag the store going
      // back. That is nats-server's durability setting, not this library's (chaos-servers seed 1
      // found it). A stop with SIGTERM, held down, then a start:
      kind: 'stop and start',
      run: async (_, holdMs) => {
        await nats().stop()
        await hold(holdMs)
        await nats().restart()
      },
    },
    common.restart,
  ]
  return {
    name: 'nats',
    faults,
    root: (id) => `${id}/`,
    async start() {
      server = await startNats()
      proxy = await startTcpProxy(server.port)
    },
    async open() {
      const bucket = `chaos_${process.pid}_${++buckets}`
      const urls = [nats().url]
      await createNatsBucket(urls, bucket, { replicas: 1 })
      const store = createNatsStore({
        servers: `nats://${proxy!.address}`,
        bucket,
        discoverServers: false,
        ...NATS_TEST_TIMINGS,
      })
      const writer = createNatsStore({ servers: urls, bucket, ...NATS_TEST_TIMINGS })
      await lastValueFrom(writer.get('warm-up'), { defaultValue: undefined })
      return {
        store,
        writer,
        read: (prefix) => readText(writer, prefix),
        close: async () => {
          await store.close()
          await writer.close()
          await deleteNatsBucket(urls, bucket).catch(() => undefined)
        },
      }
    },
    async heal() {
      await proxy?.restore()
      if (server?.isPaused === true) server.resume()
      if (server !== undefined && !server.running) await server.restart()
    },
    async stop() {
      await proxy?.close()
      await server?.cleanup()
    },
  }
}
