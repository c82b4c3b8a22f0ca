// A client process of bench/http-fanout.ts (the parent starts several, so that no single core
// parses every client's stream). It opens `count` watches of `prefix`, either through the HTTP
// server or straight to etcd (one watch each, spread over `etcdClients` etcd stores), and
// reports, for every value the parent writes, when the first and the last of its watches
// received it (performance.timeOrigin + now: one clock for all the processes of the machine).
//
// HTTP watches come in two kinds:
// - `full` of them are createHttpStore watches (fetch, the library's SSE parser, its events);
// - the rest are lean: one node:http request each, whose SSE frames are cut at the blank line
//   and whose change batches are JSON-parsed and decoded with the wire's own fromWireChange.
//   Both read, parse and decode every batch; the lean one skips fetch's web streams and the
//   store's status machinery, which cost the client process, not the server.
import { get } from 'node:http'
import { createEtcdStore } from '../../src/backends/etcd/index.js'
import type { Change } from '../../src/core/events.js'
import type { KvStore } from '../../src/core/store.js'
import { createHttpStore } from '../../src/http/client/index.js'
import { fromWireChange, type WireChanges } from '../../src/http/wire.js'

interface Input {
  readonly mode: 'http' | 'etcd'
  readonly url: string
  readonly endpoints: readonly string[]
  readonly count: number
  /** How many of the HTTP watches are createHttpStore ones. */
  readonly full: number
  readonly etcdClients: number
  readonly prefix: string
}

const input = JSON.parse(process.argv[2] ?? '{}') as Input
const send = (message: unknown) => process.send?.(message)
const now = () => performance.timeOrigin + performance.now()
const decoder = new TextDecoder()

/** Per sequence number: how many watches have it, and when the first got it. */
const seen = new Map<number, { got: number; first: number }>()
let snapshots = 0
const closers: (() => Promise<void>)[] = []

const onSnapshot = () => {
  snapshots++
  if (snapshots === input.count) send({ type: 'ready' })
}

const onChanges = (changes: readonly Change<Uint8Array>[]) => {
  const at = now()
  for (const change of changes) {
    if (change.op !== 'put') continue
    const seq = Number(decoder.decode(change.value))
    const entry = seen.get(seq) ?? { got: 0, first: at }
    entry.got++
    seen.set(seq, entry)
    if (entry.got === input.count) {
      seen.delete(seq)
      send({ type: 'received', seq, first: entry.first, last: at })
    }
  }
}

/** A watch over one node:http request: the SSE frames cut at blank lines, batches decoded. */
function leanWatch(url: string, prefix: string): void {
  let buffer = ''
  const request = get(
    `${url}/v1/watch?prefix=${encodeURIComponent(prefix)}`,
    { headers: { accept: 'text/event-stream' }, agent: false },
    (response) => {
      if (response.statusCode !== 200) throw new Error(`watch: HTTP ${response.statusCode}`)
      response.setEncoding('utf8')
      response.on('data', (text: string) => {
        buffer += text
        for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
          const frame = buffer.slice(0, end)
          buffer = buffer.slice(end + 2)
          if (frame.startsWith('event: changes\n')) {
            const data = frame.slice(frame.indexOf('\ndata: ') + 7)
            onChanges((JSON.parse(data) as WireChanges).changes.map(fromWireChange))
          } else if (frame.startsWith('event: snapshot\n') && frame.includes('\nid: ')) {
            onSnapshot()
          }
        }
      })
    },
  )
  closers.push(() => {
    request.destroy()
    return Promise.resolve()
  })
}

if (input.mode === 'http') {
  for (let i = 0; i < input.count; i++) {
    if (i < input.full) {
      const store = createHttpStore(input.url, { idleTimeout: '120s' })
      store.watch([input.prefix]).subscribe((event) => {
        if (event.type === 'snapshot') onSnapshot()
        else onChanges(event.changes)
      })
      closers.push(() => store.close())
    } else {
      leanWatch(input.url, input.prefix)
    }
  }
} else {
  const stores: KvStore[] = Array.from({ length: input.etcdClients }, () =>
    createEtcdStore({
      endpoints: [...input.endpoints],
      dialTimeout: '30s',
      allowDelayedStart: true,
    }),
  )
  for (let i = 0; i < input.count; i++) {
    stores[i % stores.length]?.watch([input.prefix]).subscribe((event) => {
      if (event.type === 'snapshot') onSnapshot()
      else onChanges(event.changes)
    })
  }
  for (const store of stores) closers.push(() => store.close())
}

process.on('message', (message: { type: string }) => {
  if (message.type === 'ping') send({ type: 'pong', at: now() })
  if (message.type === 'cpu') send({ type: 'cpu', ...process.cpuUsage(), ms: performance.now() })
  if (message.type === 'stop') {
    void Promise.all(closers.map((close) => close())).then(() => process.exit(0))
  }
})
