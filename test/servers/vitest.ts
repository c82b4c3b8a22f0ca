/**
 * vitest glue: start a server for a describe block and clean it up afterwards, whether or not the
 * tests failed.
 */
import { afterAll, beforeAll } from 'vitest'
import { cleanupAllServers } from './process.js'

/** Anything with an idempotent cleanup(): a ServerProcess, an etcd or Redis cluster, a setup. */
export interface Cleanable {
  cleanup(): Promise<void>
}

/**
 * Starts a server in beforeAll and cleans it up in afterAll. Returns an accessor for the server:
 *
 * ```ts
 * const etcd = useServer(() => startEtcd())
 * it('...', async () => { await etcdPut(etcd().clientUrl, 'k', 'v') })
 * ```
 */
export function useServer<T extends Cleanable>(start: () => Promise<T>): () => T {
  let server: T | undefined
  beforeAll(async () => {
    server = await start()
  })
  afterAll(async () => {
    await server?.cleanup()
  })
  return () => {
    if (server === undefined)
      throw new Error('useServer: the server is not started (beforeAll failed?)')
    return server
  }
}

/** Starts a server, runs `fn` with it and cleans it up afterwards, whatever `fn` did. */
export async function withServer<T extends Cleanable, R>(
  start: () => Promise<T>,
  fn: (server: T) => Promise<R> | R,
): Promise<R> {
  const server = await start()
  try {
    return await fn(server)
  } finally {
    await server.cleanup()
  }
}

/** Registers an afterAll that cleans up every server this file started and did not clean up. */
export function cleanupServersAfterAll(): void {
  afterAll(cleanupAllServers)
}
