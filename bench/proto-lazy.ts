// Resync of 100k protobuf values to a consumer that reads a few of them, with eager and with lazy
// decoding, on the memory store (no server: the figure is the orchestrator's and the codec's cost).
// Run it with `node --conditions=source --import tsx bench/proto-lazy.ts`.
// Prints the median of 5 runs of each mode, per form, and the ratio eager / lazy.
import { performance } from 'node:perf_hooks'
import protobuf from 'protobufjs'
import { filter, firstValueFrom, timeout } from 'rxjs'
import { createDatasync, createMemoryStore, type Codec } from 'rx-datasync'
import { protoCodec, type ProtoForm } from 'rx-datasync/proto'

const VALUES = 100_000
const READS = 10
const RUNS = 5

// A route as a config store would hold it: scalars, an enum, a repeated and a map field, a
// nested message and a Timestamp; about 120 bytes in binary form.
const root = protobuf.parse(`
  syntax = "proto3";
  package bench.v1;
  import "google/protobuf/timestamp.proto";
  enum Protocol { PROTOCOL_UNSPECIFIED = 0; PROTOCOL_STATIC = 1; PROTOCOL_BGP = 2; }
  message NextHop { string address = 1; string interface = 2; uint32 weight = 3; }
  message Route {
    string destination = 1;
    repeated NextHop next_hops = 2;
    uint32 metric = 3;
    Protocol protocol = 4;
    int64 table_id = 5;
    map<string, string> labels = 6;
    google.protobuf.Timestamp updated = 7;
    bool enabled = 8;
  }
`).root
// protobuf.parse reads one source and leaves its imports to us: add the built-in Timestamp.
const timestamp = protobuf.common.get('google/protobuf/timestamp.proto')
if (timestamp?.nested) root.addJSON(timestamp.nested)
const routeType = root.lookupType('bench.v1.Route')

interface Route {
  destination?: string
  metric?: number
}

const route = (i: number) => ({
  destination: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}/32`,
  nextHops: [
    { address: `192.168.${i % 250}.1`, interface: `eth${i % 4}`, weight: 1 },
    { address: `192.168.${i % 250}.2`, interface: `eth${(i + 1) % 4}`, weight: 2 },
  ],
  metric: i % 1000,
  protocol: 1 + (i % 2),
  tableId: 254,
  labels: { site: `dc${i % 3}`, owner: 'netops' },
  updated: { seconds: 1_700_000_000 + i, nanos: 0 },
  enabled: true,
})

const keyOf = (i: number) => `routes/${String(i).padStart(6, '0')}`

/** Counts decodes, so the output shows how many values each mode decoded. */
function counted(codec: Codec<Route>): Codec<Route> & { decodes: number } {
  const result = {
    name: codec.name,
    decodes: 0,
    encode: (value: Route) => codec.encode(value),
    decode: (raw: Uint8Array) => {
      result.decodes++
      return codec.decode(raw)
    },
  }
  return result
}

/** One resync of the whole store to one consumer that reads READS values; milliseconds. */
async function resyncOnce(
  initial: Record<string, Uint8Array>,
  codec: Codec<Route>,
  decode: 'eager' | 'lazy',
): Promise<{ ms: number; decodes: number }> {
  const store = createMemoryStore({ initial })
  const sync = createDatasync(store, { ackTimeout: '60s' })
  const decoder = counted(codec)
  const consumer = sync.register('reader', { prefixes: ['routes/'], codec: decoder, decode })
  let checked = 0
  consumer.events$.subscribe((event) => {
    if (event.kind === 'resync') {
      if (event.items.length !== VALUES) throw new Error(`resync of ${event.items.length} keys`)
      const step = Math.floor(VALUES / READS)
      for (let i = 0; i < VALUES; i += step) {
        const value = event.items[i]?.value
        if (value?.destination !== route(i).destination) throw new Error(`wrong value at ${i}`)
        checked++
      }
    }
    event.done()
  })
  const inSync = firstValueFrom(
    sync.status$.pipe(
      filter((status) => status.state === 'in-sync'),
      timeout(120_000),
    ),
  )
  const start = performance.now()
  sync.start()
  await inSync
  const ms = performance.now() - start
  if (checked !== READS) throw new Error(`read ${checked} values, expected ${READS}`)
  sync.close()
  await store.close()
  return { ms, decodes: decoder.decodes }
}

const median = (values: readonly number[]) => {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.floor(sorted.length / 2)] ?? NaN
}
const fmt = (ms: number) => `${ms.toFixed(1)} ms`

console.log(
  `resync of ${VALUES.toLocaleString('en')} protobuf values to a consumer that reads ${READS} of them; median of ${RUNS} runs (node ${process.version})`,
)
for (const form of ['binary', 'json'] as ProtoForm[]) {
  const codec = protoCodec<Route>(routeType, { form })
  const initial: Record<string, Uint8Array> = {}
  let size = 0
  for (let i = 0; i < VALUES; i++) {
    const raw = codec.encode(route(i))
    size += raw.byteLength
    initial[keyOf(i)] = raw
  }
  const times = { eager: [] as number[], lazy: [] as number[] }
  const decodes = { eager: 0, lazy: 0 }
  // One warm-up of each, then the runs alternate, so drift on a shared machine hits both.
  await resyncOnce(initial, codec, 'eager')
  await resyncOnce(initial, codec, 'lazy')
  for (let run = 0; run < RUNS; run++) {
    for (const mode of ['eager', 'lazy'] as const) {
      const result = await resyncOnce(initial, codec, mode)
      times[mode].push(result.ms)
      decodes[mode] = result.decodes
    }
  }
  const eager = median(times.eager)
  const lazy = median(times.lazy)
  console.log(
    `\n${form} form (${(size / VALUES).toFixed(0)} bytes per value, ${(size / 1e6).toFixed(1)} MB):`,
  )
  console.log(
    `  eager: ${fmt(eager)}  (runs: ${times.eager.map(fmt).join(', ')}; ${decodes.eager} decodes)`,
  )
  console.log(
    `  lazy:  ${fmt(lazy)}  (runs: ${times.lazy.map(fmt).join(', ')}; ${decodes.lazy} decodes)`,
  )
  console.log(`  eager / lazy: ${(eager / lazy).toFixed(1)}x`)
}
