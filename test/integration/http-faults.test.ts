/**
 * The HTTP server and client through faults, with real servers on loopback: the HTTP server
 * restarted, connections cut by a TCP proxy in the middle of a snapshot and of a change storm, a
 * client too slow to read, and the upstream etcd killed and restarted behind the server. Every
 * client must end holding exactly the store's state.
 */
import { request as httpGet, type IncomingMessage } from 'node:http'
import { filter, firstValueFrom, lastValueFrom, timeout } from 'rxjs'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createMemoryStore, string, type KvStore, type StoreEvent } from '../../src/index.js'
import { createEtcdStore } from '../../src/backends/etcd/index.js'
import { serveStore, type StoreServer } from '../../src/http/index.js'
import { createHttpStore, type FetchLike } from '../../src/http/client/index.js'
import { pollUntil, startEtcd, type EtcdServer } from '../servers/index.js'
import { startTcpProxy, type TcpProxy } from '../support/tcp-proxy.js'

const text = string()
const enc = (value: string) => text.encode(value)
const CONVERGE_MS = 30_000

/** Things to close after each test, last opened first. */
const opened: (() => unknown)[] = []
afterEach(async () => {
  for (const close of opened.splice(0).reverse()) await close()
})

async function serve(store: KvStore, options: Parameters<typeof serveStore>[1] = {}) {
  const server = await serveStore(store, options)
  opened.push(() => server.close())
  return server
}

async function proxyTo(server: StoreServer): Promise<TcpProxy> {
  const proxy = await startTcpProxy(server.port)
  opened.push(() => proxy.close())
  return proxy
}

/**
 * A client: a store over `url` and one watch of `prefix` applied to a map. It checks what the
 * contract promises on every event: revisions grow, a change's `prev` is the value the client
 * held (nativePrev), a delete removes a key it had.
 */
function client(url: string, prefix: string, fetch?: FetchLike) {
  const store = createHttpStore(url, {
    reconnectInterval: '300ms',
    ...(fetch === undefined ? {} : { fetch }),
  })
  const state = new Map<string, string>()
  const violations: string[] = []
  const snapshots: StoreEvent<Uint8Array>[] = []
  let last = -1n
  const subscription = store.watch([prefix]).subscribe({
    next: (event) => {
      if (event.type === 'snapshot') {
        snapshots.push(event)
        state.clear()
        for (const item of event.items) state.set(item.key, text.decode(item.value))
      } else {
        if (event.revision <= last) violations.push(`revision ${event.revision} after ${last}`)
        for (const change of event.changes) {
          const prev = change.prev === undefined ? undefined : text.decode(change.prev)
          if (prev !== state.get(change.key)) {
            violations.push(
              `${change.key}@${change.revision}: prev ${prev} but held ${state.get(change.key)}`,
            )
          }
          if (change.op === 'put') state.set(change.key, text.decode(change.value))
          else state.delete(change.key)
        }
      }
      last = event.revision
    },
    error: (error: unknown) => violations.push(`watch error: ${String(error)}`),
  })
  opened.push(async () => {
    subscription.unsubscribe()
    await store.close()
  })
  return { store, state, violations, snapshots }
}

type Client = ReturnType<typeof client>

/** Waits until every client holds exactly what `store` holds under `prefix`, with no violation. */
async function converged(
  store: KvStore,
  prefix: string,
  clients: readonly Client[],
): Promise<void> {
  const items = await lastValueFrom(store.list(prefix))
  const expected = new Map(items.map((item) => [item.key, text.decode(item.value)]))
  const same = (state: ReadonlyMap<string, string>) =>
    state.size === expected.size && [...expected].every(([key, value]) => state.get(key) === value)
  const synced = (c: Client) => c.snapshots.length > 0 && same(c.state)
  await pollUntil(() => (clients.every(synced) ? true : undefined), {
    timeoutMs: CONVERGE_MS,
    description: `every client holding the ${expected.size} keys under ${prefix}`,
  })
  for (const c of clients) expect(c.violations).toEqual([])
}

/** Lets the event loop run (sockets flush, clients read) between writes of a tight loop. */
const turn = () =>
  new Promise<void>((resolve) => {
    setImmediate(resolve)
  })

const put = (store: KvStore, key: string, value: string) =>
  lastValueFrom(store.put(key, enc(value)), { defaultValue: undefined })

describe('http: faults', { timeout: 120_000 }, () => {
  it('the server restarted: clients relist after missed writes, resume when nothing was missed', async () => {
    const upstream = createMemoryStore()
    opened.push(() => upstream.close())
    for (let i = 0; i < 50; i++) await put(upstream, `r/${i}`, `v${i}`)
    let server = await serveStore(upstream)
    const port = server.port
    const clients = [0, 1, 2].map(() => client(server.url, 'r/'))
    await converged(upstream, 'r/', clients)

    // Down while the store changes: the new server's log starts after the clients' revision.
    await server.close()
    await put(upstream, 'r/1', 'changed')
    await lastValueFrom(upstream.delete('r/2'))
    await put(upstream, 'r/new', 'n')
    server = await serveStore(upstream, { port })
    opened.push(() => server.close())
    await converged(upstream, 'r/', clients)
    expect(server.metrics().relists).toBe(3)

    // Down while nothing changes: the clients resume from their revision, no snapshot.
    await pollUntil(() => (server.metrics().clients === 3 ? true : undefined), {
      timeoutMs: CONVERGE_MS,
      description: 'three clients connected',
    })
    await server.close()
    server = await serveStore(upstream, { port })
    opened.push(() => server.close())
    await pollUntil(() => (server.metrics().resumes === 3 ? true : undefined), {
      timeoutMs: CONVERGE_MS,
      description: 'three clients resumed',
    })
    expect(server.metrics().relists).toBe(0)
    await put(upstream, 'r/after', 'a')
    await converged(upstream, 'r/', clients)
    // One snapshot at the start, one after the relist, none after the resume.
    for (const c of clients)
      expect(c.snapshots.map((event) => event.type === 'snapshot' && event.cause)).toEqual([
        'startup',
        'compacted',
      ])
  })

  it('a stream quiet for idleTimeout (no heartbeat) is dropped and resumed, nothing lost', async () => {
    const upstream = createMemoryStore()
    opened.push(() => upstream.close())
    await put(upstream, 'q/a', '1')
    const server = await serve(upstream, { heartbeat: '1h' })
    const store = createHttpStore(server.url, { idleTimeout: '400ms', reconnectInterval: '300ms' })
    const state = new Map<string, string>()
    const degraded: string[] = []
    const subscription = store.watch(['q/']).subscribe((event) => {
      if (event.type === 'snapshot') state.clear()
      const items = event.type === 'snapshot' ? event.items : []
      for (const item of items) state.set(item.key, text.decode(item.value))
      if (event.type === 'changes')
        for (const change of event.changes)
          if (change.op === 'put') state.set(change.key, text.decode(change.value))
    })
    const statuses = store.status$.subscribe((status) => {
      if (status.state === 'degraded') degraded.push(status.error?.message ?? '')
    })
    opened.push(async () => {
      subscription.unsubscribe()
      statuses.unsubscribe()
      await store.close()
    })
    // Data after the snapshot moves the deadline; then the quiet drops the stream, which resumes.
    await pollUntil(() => (state.get('q/a') === '1' ? true : undefined), {
      timeoutMs: CONVERGE_MS,
      description: 'the snapshot',
    })
    await put(upstream, 'q/b', '2')
    await pollUntil(() => (server.metrics().resumes >= 1 ? true : undefined), {
      timeoutMs: CONVERGE_MS,
      description: 'the client resumed after its idle timeout',
    })
    expect(degraded.some((message) => message.includes('idleTimeout'))).toBe(true)
    expect(server.metrics().relists).toBe(0)
    await put(upstream, 'q/c', '3')
    await pollUntil(
      () => (state.get('q/c') === '3' && state.get('q/b') === '2' ? true : undefined),
      {
        timeoutMs: CONVERGE_MS,
        description: 'every write after the resume',
      },
    )
  })

  it('a connection cut in the middle of a snapshot: the client relists and holds the whole store', async () => {
    const upstream = createMemoryStore()
    opened.push(() => upstream.close())
    const filler = 'x'.repeat(200)
    await lastValueFrom(
      upstream.txn(
        Array.from({ length: 3000 }, (_, i) => ({
          op: 'put' as const,
          key: `s/${i}`,
          value: enc(`${i}-${filler}`),
        })),
      ),
    )
    const server = await serve(upstream, { snapshotChunk: 100 })
    const proxy = await proxyTo(server)
    // Cuts the proxy when the first chunk of the first snapshot arrives, and passes nothing the
    // client would have received after the cut.
    let armed = true
    let cutAt: number | undefined
    const decoder = new TextDecoder()
    let watchRequests = 0
    const tap: FetchLike = async (url, init) => {
      if (url.includes('/v1/watch')) watchRequests++
      const response = await fetch(url, init)
      if (!url.includes('/v1/watch') || response.body === null || !armed) return response
      armed = false
      let cut = false
      const body = response.body.pipeThrough(
        new TransformStream<Uint8Array, Uint8Array>({
          transform(chunk, controller) {
            if (cut) return
            const seen = decoder.decode(chunk)
            if (seen.includes('"more":true')) {
              cut = true
              cutAt = server.metrics().eventsSent
              // Only the events before the first complete chunk boundary get through.
              controller.enqueue(chunk.subarray(0, seen.indexOf('"more":true')))
              void proxy.interrupt().then(() => proxy.restore())
              return
            }
            controller.enqueue(chunk)
          },
        }),
      )
      return new Response(body, { status: response.status, headers: response.headers })
    }
    const store = createHttpStore(proxy.url, { reconnectInterval: '200ms', fetch: tap })
    opened.push(() => store.close())
    const events: StoreEvent<Uint8Array>[] = []
    const subscription = store.watch(['s/']).subscribe((event) => events.push(event))
    opened.push(() => {
      subscription.unsubscribe()
    })
    await pollUntil(() => (events.length > 0 ? true : undefined), {
      timeoutMs: CONVERGE_MS,
      description: 'a complete snapshot',
    })
    expect(cutAt).toBeDefined()
    expect(events).toHaveLength(1)
    const snapshot = events[0]
    expect(snapshot?.type).toBe('snapshot')
    if (snapshot?.type !== 'snapshot') return
    expect(snapshot.items).toHaveLength(3000)
    expect(snapshot.revision).toBe(upstream.revision())
    // The first stream ended before its snapshot completed: the client asked twice.
    expect(watchRequests).toBe(2)
    expect(server.metrics().eventsSent).toBeGreaterThan(cutAt ?? 0)
  })

  it('connections cut in the middle of a change storm: every client ends with the store state', async () => {
    const upstream = createMemoryStore()
    opened.push(() => upstream.close())
    const server = await serve(upstream, { historySize: 100 })
    const proxy = await proxyTo(server)
    const clients = [0, 1, 2, 3].map(() => client(proxy.url, 'w/'))
    await converged(upstream, 'w/', clients)
    const comebacks = () => server.metrics().resumes + server.metrics().relists
    const write = async (i: number) => {
      if (i % 10 === 0) await turn()
      if (i % 7 === 3) await lastValueFrom(upstream.delete(`w/${i % 40}`))
      else await put(upstream, `w/${i % 40}`, `v${i}`)
    }
    let i = 0
    for (const cut of [0, 1]) {
      for (const end = i + 400; i < end; i++) await write(i)
      await proxy.interrupt()
      // Written while every client is cut off.
      for (const end = i + 150; i < end; i++) await write(i)
      await proxy.restore()
      // The storm goes on while the clients come back (from the log, or with a snapshot).
      while (comebacks() < 4 * (cut + 1)) await write(i++)
    }
    for (const end = i + 200; i < end; i++) await write(i)
    await converged(upstream, 'w/', clients)
    const { resumes, relists } = server.metrics()
    // Cut twice; each client came back twice, from the log or with a snapshot.
    expect(resumes + relists).toBe(8)
  })

  it('a client that stops reading is cut past maxBufferedBytes; the others are not slowed', async () => {
    const upstream = createMemoryStore()
    opened.push(() => upstream.close())
    const server = await serve(upstream, { maxBufferedBytes: 256 * 1024 })
    const reader = client(server.url, 'b/')
    await converged(upstream, 'b/', [reader])
    // A raw client that reads the headers, then nothing.
    const raw = new Promise<IncomingMessage>((resolve) => {
      const request = httpGet(`${server.url}/v1/watch?prefix=b/`, (response) => {
        response.pause()
        resolve(response)
      })
      request.end()
    })
    await pollUntil(() => (server.metrics().clients === 2 ? true : undefined), {
      timeoutMs: CONVERGE_MS,
      description: 'the raw client connected',
    })
    // Loopback socket buffers hold megabytes: write until the server cuts the raw client.
    const big = 'y'.repeat(64 * 1024)
    for (let i = 0; server.metrics().slowClientsCut === 0 && i < 5000; i++) {
      await put(upstream, `b/${i % 50}`, `${i}-${big}`)
      await turn()
    }
    expect(server.metrics().slowClientsCut).toBe(1)
    // Reading again, the raw client finds the stream ended by the server.
    const response = await raw
    const ended = new Promise<void>((resolve) => {
      response.socket.once('close', () => {
        resolve()
      })
    })
    response.resume()
    await ended
    await converged(upstream, 'b/', [reader])
    expect(reader.snapshots).toHaveLength(1)
    expect(server.metrics().clients).toBe(1)
  })
})

describe(
  'http: the upstream etcd killed and restarted behind the server',
  { timeout: 180_000 },
  () => {
    let etcd: EtcdServer | undefined
    beforeAll(async () => {
      etcd = await startEtcd()
    }, 180_000)
    afterAll(async () => {
      await etcd?.cleanup()
    }, 180_000)

    it('clients see the server degraded, then converge with the store', async () => {
      if (etcd === undefined) throw new Error('etcd did not start')
      const upstream = createEtcdStore({
        endpoints: [...etcd.endpoints],
        reconnectInterval: '500ms',
      })
      const writer = createEtcdStore({ endpoints: [...etcd.endpoints], reconnectInterval: '500ms' })
      opened.push(() => upstream.close())
      opened.push(() => writer.close())
      for (let i = 0; i < 20; i++) await put(writer, `e/${i}`, `v${i}`)
      const server = await serve(upstream)
      const clients = [0, 1].map(() => client(server.url, 'e/'))
      await converged(writer, 'e/', clients)
      await etcd.kill()
      for (const { store } of clients) {
        await firstValueFrom(
          store.status$.pipe(
            filter((status) => status.state === 'degraded'),
            timeout(CONVERGE_MS),
          ),
        )
      }
      await etcd.start()
      for (let i = 0; i < 20; i++) {
        if (i % 3 === 0) await lastValueFrom(writer.delete(`e/${i}`))
        else await put(writer, `e/${i}`, `w${i}`)
      }
      await converged(writer, 'e/', clients)
      for (const { store } of clients) {
        await firstValueFrom(
          store.status$.pipe(
            filter((status) => status.state === 'ready'),
            timeout(CONVERGE_MS),
          ),
        )
      }
    })
  },
)
