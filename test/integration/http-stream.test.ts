/**
 * The watch stream's framing and heartbeat, read as raw bytes off a real server's socket: the
 * response is not chunked (its end is the connection's close), so each frame is on the wire as it
 * is; and the heartbeat goes only to streams that were written nothing since its last tick. The
 * heartbeat runs on a virtual-time scheduler: each tick is one `advance()`, no timer waits.
 */
import { request, type IncomingMessage } from 'node:http'
import { lastValueFrom, VirtualTimeScheduler } from 'rxjs'
import { afterEach, describe, expect, it } from 'vitest'
import { createMemoryStore, string, type KvStore } from '../../src/index.js'
import { serveStore } from '../../src/http/index.js'

const text = string()
const HEARTBEAT_MS = 1000

const opened: (() => unknown)[] = []
afterEach(async () => {
  for (const close of opened.splice(0).reverse()) await close()
})

const put = (store: KvStore, key: string, value: string) =>
  lastValueFrom(store.put(key, text.encode(value)), { defaultValue: undefined })

/** A watch read as raw text: what came so far, and a wait for a text to come. */
async function rawWatch(url: string, prefix: string) {
  const response = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(`${url}/v1/watch?prefix=${encodeURIComponent(prefix)}`, resolve)
    req.on('error', reject)
    req.end()
  })
  opened.push(() => response.destroy())
  let received = ''
  const waiters: (() => void)[] = []
  response.setEncoding('utf8')
  response.on('data', (chunk: string) => {
    received += chunk
    for (const wake of waiters.splice(0)) wake()
  })
  return {
    response,
    get text() {
      return received
    },
    /** Resolves once the stream holds `wanted` after `from` (an offset in the text). */
    until(wanted: string, from = 0): Promise<number> {
      return new Promise((resolve) => {
        const check = () => {
          const at = received.indexOf(wanted, from)
          if (at >= 0) resolve(at + wanted.length)
          else waiters.push(check)
        }
        check()
      })
    },
  }
}

/** A server whose heartbeat ticks when the test says: `advance()` is one tick. */
async function serveWithTicks(store: KvStore) {
  const scheduler = new VirtualTimeScheduler()
  const server = await serveStore(store, { heartbeat: HEARTBEAT_MS, scheduler })
  opened.push(() => server.close())
  return {
    server,
    advance: () => {
      scheduler.maxFrames = scheduler.frame + HEARTBEAT_MS
      scheduler.flush()
    },
  }
}

describe('http: the watch stream', { timeout: 20_000 }, () => {
  it('is not chunked: the frames are on the wire as they are, until the connection closes', async () => {
    const store = createMemoryStore()
    opened.push(() => store.close())
    await put(store, 'a/1', 'one')
    const { server } = await serveWithTicks(store)
    const watch = await rawWatch(server.url, 'a/')
    expect(watch.response.headers['transfer-encoding']).toBeUndefined()
    expect(watch.response.headers['content-length']).toBeUndefined()
    expect(watch.response.headers.connection).toBe('close')
    expect(watch.response.headers['content-type']).toBe('text/event-stream; charset=utf-8')
    const afterSnapshot = await watch.until('"more":false}\n\n')
    await put(store, 'a/2', 'two')
    const end = await watch.until('\n\n', afterSnapshot)
    // The whole frame, with no chunk-size line before it or CRLF after it.
    expect(watch.text.slice(afterSnapshot, end)).toMatch(
      /^event: changes\nid: 2\ndata: \{"revision":"2","changes":\[\{"op":"put","key":"a\/2",.*\}\]\}\n\n$/,
    )
  })

  it('a heartbeat goes to a stream written nothing since the last tick, not to a busy one', async () => {
    const store = createMemoryStore()
    opened.push(() => store.close())
    await put(store, 'a/0', 'zero')
    await put(store, 'b/0', 'zero')
    const { server, advance } = await serveWithTicks(store)
    const busy = await rawWatch(server.url, 'a/')
    const idle = await rawWatch(server.url, 'b/')
    let busyAt = await busy.until('"more":false}\n\n')
    let idleAt = await idle.until('"more":false}\n\n')

    // Tick 1: both were written their snapshot since the stream began; no tick before: skipped.
    advance()
    // a/1 at revision 3: only the busy stream sees it.
    await put(store, 'a/1', 'one')
    busyAt = await busy.until('id: 3\n', busyAt)
    // Tick 2: the busy stream was written a/1 since tick 1 (skipped); the idle one was written
    // nothing since: it gets a progress event to revision 3 (its resume position moves).
    advance()
    idleAt = await idle.until('event: progress\nid: 3\ndata: {"revision":"3"}\n\n', idleAt)
    // Tick 3: nothing written to the busy stream since tick 2: a progress event, to revision 3,
    // which it has already, so just a heartbeat comment. The idle one got its progress since
    // tick 2: skipped.
    advance()
    busyAt = await busy.until(': heartbeat\n\n', busyAt)
    // A change both see shows what came before it on each stream.
    await put(store, 'a/2', 'two')
    await put(store, 'b/2', 'two')
    const busyEnd = await busy.until('id: 4\n', busyAt)
    const idleEnd = await idle.until('id: 5\n', idleAt)
    expect(busy.text.slice(busyAt, busyEnd)).toBe('event: changes\nid: 4\n')
    expect(idle.text.slice(idleAt, idleEnd)).toBe('event: changes\nid: 5\n')
    // Before tick 3 the busy stream had no heartbeat: its frames were the snapshot and a/1.
    expect(busy.text.split(': heartbeat').length - 1).toBe(1)
    expect(busy.text).not.toContain('event: progress')
    expect(idle.text.split('event: progress').length - 1).toBe(1)
    expect(idle.text).not.toContain(': heartbeat')
  })
})
