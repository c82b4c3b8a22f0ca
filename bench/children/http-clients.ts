// A client process of bench/http-fanout.ts (the parent starts several, so that no single core
// parses every client's stream). It opens `count` watches of `prefix`, either through the HTTP
// server or straight to etcd (one watch each, spread over `etcdClients` etcd stores), and
// reports, for every value the parent writes, when the first and the last of its watches
// received it (performance.timeOrigin + now: one clock for all the processes of the machine).
//
// HTTP watches come in two kinds:
// - `full` of them are createHttpStore watches (fetch, the library's SSE parser, its events);
// - the rest are lean: one TCP connection each, whose SSE frames are cut at the blank line and
//   whose change batches are JSON-parsed and decoded with the wire's own fromWireChange.
//   Both read, parse and decode every batch; the lean one skips fetch's web streams, node:http's
//   parser and the store's status machinery, which cost the client process, not the server.
import { connect } from 'node:net'
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

/**
 * A watch over one TCP connection: the request written by hand, the response's head skipped (its
 * status checked), then the SSE frames cut at blank lines, batches decoded. No node:http parser:
 * the server's watch response is not chunked (its body is the frames as they are), and a client
 * process here stands for many machines, so the less CPU it takes from the server's two cores,
 * the more the figures say about the server.
 */
function leanWatch(url: string, prefix: string): void {
  const { hostname, port } = new URL(url)
  let buffer = ''
  let head = true
  const socket = connect(Number(port), hostname, () => {
    socket.write(
      `GET /v1/watch?prefix=${encodeURIComponent(prefix)} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nAccept: text/event-stream\r\n\r\n`,
    )
  })
  socket.setEncoding('utf8')
  socket.on('data', (text: string) => {
    buffer += text
    if (head) {
      const end = buffer.indexOf('\r\n\r\n')
      if (end < 0) return
      const status = buffer.slice(0, buffer.indexOf('\r\n'))
      if (!status.startsWith('HTTP/1.1 200 ')) throw new Error(`watch: ${status}`)
      if (/^transfer-encoding:/im.test(buffer.slice(0, end))) {
        throw new Error('watch: a chunked response (this reader expects the frames as they are)')
      }
      buffer = buffer.slice(end + 4)
      head = false
    }
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
  closers.push(() => {
    socket.destroy()
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
