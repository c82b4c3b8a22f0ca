/**
 * PostgreSQL: one server of the run's own. The store under test reaches it through a TCP proxy;
 * the writer and the reader connect directly. Faults: connection cuts, the watch's backend
 * terminated (pg_terminate_backend), SIGSTOP/SIGCONT, kill -9 and restart, and a compaction of
 * the log past the store's revision while its connection is cut (its watch must relist).
 */
import { lastValueFrom } from 'rxjs'
import { createPostgresStore, type PostgresStore } from '../../../src/backends/postgres/index.js'
import { WATCH_APPLICATION } from '../../../src/backends/postgres/connection.js'
import { startPostgres, type PostgresServer } from '../../servers/postgres.js'
import { startTcpProxy, type TcpProxy } from '../../support/tcp-proxy.js'
import { hold, readText, serverFaults, type Fault, type Target } from '../target.js'

export function postgresTarget(): Target {
  let server: PostgresServer | undefined
  let proxy: TcpProxy | undefined
  let writer: PostgresStore | undefined
  const pg = () => {
    if (server === undefined) throw new Error('postgres did not start')
    return server
  }
  const common = serverFaults(pg, () => proxy!)
  const faults: Fault[] = [
    common.cut,
    {
      kind: 'watch terminated',
      run: async () => {
        await pg().terminate(WATCH_APPLICATION)
      },
    },
    common.sigstop,
    common.kill,
    {
      kind: 'compaction',
      run: async (_, holdMs) => {
        await proxy!.interrupt()
        await hold(holdMs) // the writer goes on writing meanwhile
        await lastValueFrom(writer!.compact())
        await proxy!.restore()
      },
    },
  ]
  return {
    name: 'postgres',
    faults,
    root: (id) => `${id}/`,
    async start() {
      server = await startPostgres()
      proxy = await startTcpProxy(server.port)
      writer = createPostgresStore(server.connection())
    },
    open() {
      const store = createPostgresStore({
        ...pg().connection(),
        port: proxy!.port,
        reconnectInterval: '500ms',
        reapInterval: '200ms',
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
      await proxy?.restore()
      if (server?.isPaused === true) server.resume()
      if (server !== undefined && !server.running) await server.restart()
    },
    async stop() {
      await writer?.close()
      await proxy?.close()
      await server?.cleanup()
    },
  }
}
