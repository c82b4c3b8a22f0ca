/**
 * etcd, one member or a three-member cluster. The store under test reaches every member through
 * a TCP proxy; the writer and the reader connect directly. Faults: connection cuts (the proxies),
 * kill -9 and restart of a member (the leader, in a cluster), SIGSTOP/SIGCONT, a graceful
 * restart, and a compaction past the store's revision while its connection is cut (so its watch
 * cannot resume and must relist).
 */
import { lastValueFrom } from 'rxjs'
import { createEtcdStore, type EtcdStore } from '../../../src/backends/etcd/index.js'
import { etcdLeader, startEtcd, startEtcdCluster, type EtcdServer } from '../../servers/index.js'
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js'
import { hold, readText, type Fault, type FaultContext, type Target } from '../target.js'

export function etcdTarget(members: 1 | 3): Target {
  let servers: readonly EtcdServer[] = []
  let cleanup: (() => Promise<void>) | undefined
  let proxies: TcpProxy[] = []
  let writer: EtcdStore | undefined

  const pick = async (context: FaultContext): Promise<EtcdServer> => {
    if (servers.length === 1 || context.random.chance(0.5)) return context.random.pick(servers)
    return etcdLeader(servers)
  }
  const cutAll = () => Promise.all(proxies.map((proxy) => proxy.interrupt()))
  const restoreAll = () => Promise.all(proxies.map((proxy) => proxy.restore()))

  const faults: Fault[] = [
    {
      kind: 'cut',
      run: async (context, holdMs) => {
        // Every proxy, or (in a cluster) one member's: the client fails over to another.
        const cut =
          members === 1 || context.random.chance(0.5) ? proxies : [context.random.pick(proxies)]
        await Promise.all(cut.map((proxy) => proxy.interrupt()))
        await hold(holdMs)
        await Promise.all(cut.map((proxy) => proxy.restore()))
      },
    },
    {
      kind: 'kill -9',
      run: async (context, holdMs) => {
        const server = await pick(context)
        await server.kill()
        await hold(holdMs)
        await server.restart()
      },
    },
    {
      kind: 'SIGSTOP',
      run: async (context, holdMs) => {
        const server = await pick(context)
        await server.pause()
        await hold(holdMs)
        server.resume()
      },
    },
    {
      kind: 'restart',
      run: async (context) => {
        const server = await pick(context)
        await server.restart()
      },
    },
    {
      kind: 'compaction',
      run: async (_, holdMs) => {
        await cutAll()
        await hold(holdMs) // the writer goes on writing meanwhile
        if (writer !== undefined) await lastValueFrom(writer.compact())
        await restoreAll()
      },
    },
  ]

  return {
    name: members === 1 ? 'etcd' : 'etcd-cluster',
    faults,
    root: (id) => `${id}/`,
    async start() {
      if (members === 1) {
        const server = await startEtcd()
        servers = [server]
        cleanup = () => server.cleanup()
      } else {
        const cluster = await startEtcdCluster(3)
        servers = cluster.members
        cleanup = () => cluster.cleanup()
      }
      proxies = await Promise.all(servers.map((server) => startTcpProxy(server.clientPort)))
      writer = createEtcdStore({ endpoints: servers.flatMap((server) => server.endpoints) })
    },
    open() {
      const store = createEtcdStore({
        endpoints: proxies.map((proxy) => proxy.url),
        reconnectInterval: '500ms',
        statusInterval: '1s',
      })
      const direct = writer!
      return Promise.resolve({
        store,
        writer: direct,
        read: (prefix) => readText(direct, prefix),
        close: () => store.close(),
      })
    },
    async heal() {
      await restoreAll()
      for (const server of servers) {
        if (server.isPaused) server.resume()
        if (!server.running) await server.restart()
      }
    },
    async stop() {
      await writer?.close()
      await Promise.all(proxies.map((proxy) => proxy.close()))
      await cleanup?.()
    },
  }
}
