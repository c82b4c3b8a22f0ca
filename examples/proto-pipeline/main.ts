// A protobuf-typed sync pipeline on the in-memory store: the schema is loaded from routes.proto at
// run time, values are stored in protobuf's canonical JSON mapping, one consumer decodes eagerly,
// another lazily, and a value of the wrong message type is reported with its key.
// Run it with `node --conditions=source --import tsx examples/proto-pipeline/main.ts`.
import { fileURLToPath } from 'node:url'
import { filter, firstValueFrom, lastValueFrom, timeout } from 'rxjs'
import {
  CodecError,
  createDatasync,
  createMemoryStore,
  withCodec,
  withPrefix,
  type ConsumerEvent,
} from 'rx-datasync'
import { loadProtoCodec } from 'rx-datasync/proto'

/** A net.v1.Route as protobufjs decodes it (int64 as a Long, enums as numbers). */
interface Route {
  destination?: string
  nextHop?: string
  metric?: number
  protocol?: number
  tableId?: number | { toString(): string }
  labels?: Record<string, string>
  updated?: { seconds?: number | { toString(): string }; nanos?: number }
  hold?: { seconds?: number; nanos?: number }
}
const STATIC = 1
const BGP = 2

const schema = fileURLToPath(new URL('routes.proto', import.meta.url))
const route = await loadProtoCodec<Route>(schema, 'net.v1.Route', { form: 'json' })
const show = (value: Route) => new TextDecoder().decode(route.encode(value))

// The store holds bytes; a typed view under 'config/' writes routes (the prefix keeps its '/').
const store = createMemoryStore()
const config = withCodec(withPrefix(store, 'config/'), route)
const now = { seconds: 1_700_000_000, nanos: 250_000_000 }
await lastValueFrom(
  config.txn([
    {
      op: 'put',
      key: 'routes/default',
      value: { destination: '0.0.0.0/0', nextHop: '10.0.0.1', metric: 10, protocol: STATIC },
    },
    {
      op: 'put',
      key: 'routes/backup',
      value: { destination: '0.0.0.0/0', nextHop: '10.0.0.2', metric: 100, protocol: STATIC },
    },
    {
      op: 'put',
      key: 'routes/peer',
      value: {
        destination: '192.0.2.0/24',
        nextHop: '10.0.0.9',
        protocol: BGP,
        tableId: 4_294_967_296,
        labels: { peer: 'as65001' },
        updated: now,
        hold: { seconds: 90 },
      },
    },
  ]),
)
const stored = await lastValueFrom(store.get('config/routes/peer'))
console.log(`stored as canonical JSON: ${new TextDecoder().decode(stored?.value)}`)

const sync = createDatasync(store, { ackTimeout: '5s' })
// 'fib' applies every route: eager decoding (the default) reads each value as it arrives.
const fib = sync.register('fib', { prefixes: ['config/routes/'], codec: route })
// 'audit' follows everything under config/ but looks at few values: lazy decoding.
const audit = sync.register('audit', { prefixes: ['config/'], codec: route, decode: 'lazy' })

sync.errors$.subscribe((error) => {
  console.log(`[errors$] ${error.message}`)
})

fib.events$.subscribe((event: ConsumerEvent<Route>) => {
  if (event.kind === 'resync') {
    console.log(`[fib] resync (${event.reason}):`)
    for (const item of event.items) console.log(`    ${item.key} = ${show(item.value)}`)
  } else {
    for (const change of event.changes) {
      const now = change.op === 'put' ? show(change.value) : '(deleted)'
      const before = change.prev === undefined ? '(none)' : show(change.prev)
      console.log(`[fib] ${change.op} ${change.key}: ${before} -> ${now}`)
    }
  }
  event.done()
})

audit.events$.subscribe((event: ConsumerEvent<Route>) => {
  if (event.kind === 'resync') {
    // Nothing is decoded here: the 3 values stay bytes until read.
    console.log(`[audit] resync of ${event.items.length} keys, none decoded`)
  } else {
    for (const change of event.changes) {
      if (change.op === 'delete') {
        console.log(`[audit] ${change.key} deleted`)
        continue
      }
      try {
        console.log(`[audit] ${change.key} now goes via ${change.value.nextHop ?? '?'}`)
      } catch (error) {
        // In lazy mode a value that does not decode throws its CodecError when read.
        if (!(error instanceof CodecError)) throw error
        console.log(`[audit] ${change.key} cannot be read (${error.codec})`)
      }
    }
  }
  event.done()
})

sync.start()
await firstValueFrom(sync.status$.pipe(filter((status) => status.state === 'in-sync')))

const lastChange = firstValueFrom(
  fib.events$.pipe(
    filter((e) => e.kind === 'change' && e.changes.some((c) => c.key === 'config/routes/lab')),
    timeout(5_000),
  ),
)
await lastValueFrom(
  config.put('routes/default', { destination: '0.0.0.0/0', nextHop: '10.0.0.3', metric: 5 }),
)
await lastValueFrom(config.delete('routes/backup'))
// A value of another message type under the routes prefix: reported with its key, the
// stream goes on, and 'fib' keeps the key's last good value (it has none here).
const iface = await loadProtoCodec<{ name?: string; mtu?: number }>(schema, 'net.v1.Interface', {
  form: 'json',
})
await lastValueFrom(store.put('config/routes/eth0', iface.encode({ name: 'eth0', mtu: 1500 })))
await lastValueFrom(
  config.put('routes/lab', { destination: '198.51.100.0/24', nextHop: '10.0.0.7' }),
)
await lastChange

console.log(`fib holds: ${[...fib.view().keys()].join(', ')}`)
console.log(`audit holds: ${[...audit.view().keys()].join(', ')}`)

sync.close()
await store.close()
