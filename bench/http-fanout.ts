// Fan-out benchmark (npm run bench:http): 1,000 watching clients in a separate process on one
// HTTP server over etcd, against the same clients each opening its own etcd watch. Measures
// put-to-last-client latency (p50/p99 over WRITES puts, one at a time) and the memory each
// idle client costs the server (the HTTP server process's RSS and heap; etcd's RSS for the
// direct watches). Targets: p99 < 50 ms, < 20 KiB per idle client.
import { readFile } from 'node:fs/promises'
import { lastValueFrom } from 'rxjs'
import { createEtcdStore } from '../src/backends/etcd/index.js'
import { serveStore } from '../src/http/index.js'
import { startEtcd } from '../test/servers/index.js'
import { startChild } from './lib/child.js'
import { collectGarbage } from './lib/gc.js'
import { percentile } from './lib/stats.js'

const CLIENTS = Number(process.env.CLIENTS ?? 1000)
const WRITES = Number(process.env.WRITES ?? 200)
const PREFIX = 'fanout/'
const now = () => performance.timeOrigin + performance.now()

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024
}

const settle = async () => {
  for (let i = 0; i < 3; i++) {
    collectGarbage()
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

const etcd = await startEtcd()
const writer = createEtcdStore({ endpoints: [...etcd.endpoints] })
for (let i = 0; i < 20; i++) {
  await lastValueFrom(writer.put(`${PREFIX}seed/${i}`, new TextEncoder().encode(String(i))), {
    defaultValue: undefined,
  })
}

async function run(mode: 'http' | 'etcd') {
  const upstream = createEtcdStore({ endpoints: [...etcd.endpoints] })
  const server =
    mode === 'http' ? await serveStore(upstream, { maxClients: CLIENTS + 10 }) : undefined
  await settle()
  const before = {
    rss: process.memoryUsage().rss,
    heap: process.memoryUsage().heapUsed,
    etcd: await rssOf(etcd.pid ?? 0),
  }
  const child = startChild('http-clients', {
    mode,
    url: server?.url ?? '',
    endpoints: etcd.endpoints,
    count: CLIENTS,
    etcdClients: 10,
    prefix: PREFIX,
  })
  await child.next('ready')
  await settle()
  const after = {
    rss: process.memoryUsage().rss,
    heap: process.memoryUsage().heapUsed,
    etcd: await rssOf(etcd.pid ?? 0),
  }
  const latencies: number[] = []
  for (let seq = 0; seq < WRITES; seq++) {
    const received = child.next<{ type: 'received'; seq: number; at: number }>('received')
    const start = now()
    await lastValueFrom(writer.put(`${PREFIX}key`, new TextEncoder().encode(String(seq))), {
      defaultValue: undefined,
    })
    const { at } = await received
    latencies.push(at - start)
  }
  child.send({ type: 'stop' })
  await child.exited
  await server?.close()
  await upstream.close()
  const perClient = (bytes: number) => `${(bytes / CLIENTS / 1024).toFixed(1)} KiB`
  return {
    mode,
    clients: CLIENTS,
    p50Ms: percentile(latencies, 50).toFixed(1),
    p99Ms: percentile(latencies, 99).toFixed(1),
    serverRssPerClient: mode === 'http' ? perClient(after.rss - before.rss) : '-',
    serverHeapPerClient: mode === 'http' ? perClient(after.heap - before.heap) : '-',
    etcdRssPerClient: perClient(after.etcd - before.etcd),
  }
}

// MODES=http runs only the fan-out side.
for (const mode of (process.env.MODES ?? 'http,etcd').split(',') as ('http' | 'etcd')[]) {
  console.log(JSON.stringify(await run(mode)))
}
await writer.close()
await etcd.cleanup()
process.exit(0)
