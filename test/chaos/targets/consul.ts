/**
 * Consul: one server agent with a data directory (a restart keeps the data). The store under test
 * reaches it through a TCP proxy; the writer and the reader connect directly. Faults: connection
 * cuts, SIGSTOP/SIGCONT, kill -9 and restart, a graceful restart. TTLs (sessions) are allowed
 * down to 1 s, as in the conformance suite.
 */
import { lastValueFrom } from 'rxjs'
import { createConsulStore } from '../../../src/backends/consul/index.js'
import { ensureConsul } from '../../servers/consul-install.js'
import { startConsul, type ConsulAgent } from '../../servers/consul.js'
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js'
import { readText, serverFaults, type Fault, type Target } from '../target.js'

const TIMINGS = {
  waitTime: '5s',
  requestTimeout: '3s',
  retryDelay: '100ms',
  maxRetryDelay: '1s',
  statusInterval: '1s',
  minTtl: '1s',
} as const

export function consulTarget(): Target {
  let agent: ConsulAgent | undefined
  let proxy: TcpProxy | undefined
  const server = () => {
    if (agent === undefined) throw new Error('consul did not start')
    return agent
  }
  const common = serverFaults(server, () => proxy!)
  const faults: Fault[] = [common.cut, common.sigstop, common.kill, common.restart]
  return {
    name: 'consul',
    faults,
    root: (id) => `${id}/`,
    async start() {
      await ensureConsul()
      agent = await startConsul({ mode: 'server', config: 'session_ttl_min = "1s"\n' })
      const port = Number(agent.address.split(':')[1])
      proxy = await startTcpProxy(port)
    },
    async open() {
      const store = createConsulStore({ address: proxy!.address, ...TIMINGS })
      const writer = createConsulStore({ address: server().address, ...TIMINGS })
      await lastValueFrom(writer.get('warm-up'))
      return {
        store,
        writer,
        read: (prefix) => readText(writer, prefix),
        close: async () => {
          await store.close()
          await writer.close()
        },
      }
    },
    async heal() {
      await proxy?.restore()
      if (agent?.isPaused === true) agent.resume()
      if (agent !== undefined && !agent.running) await agent.restart()
    },
    async stop() {
      await proxy?.close()
      await agent?.cleanup()
    },
  }
}
