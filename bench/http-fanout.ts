// Fan-out benchmark (npm run bench:http): CLIENTS watching clients on one HTTP server over etcd,
// against the same clients each opening its own etcd watch. Targets: put-to-last-client p99
// under 50 ms, under 20 KiB of server memory per idle client.
//
// The clients live in PROCS child processes (bench/children/http-clients.ts), so that no one
// core reads and parses every stream; FULL of the HTTP clients are createHttpStore watches, the
// rest lean TCP readers that still parse and decode every batch (see the child).
//
// Latency, for each of WRITES puts made one at a time (after WARMUP untimed ones): from the
// put's acknowledgement (and, the stricter figure, from the put's call) to the moment the last
// of the CLIENTS watches received it, on the clock every process of the machine shares
// (performance.timeOrigin + now; a ping measures each child's offset). Each write is also split
// at the server: when the hub got the change from etcd, when it had handed it to every client,
// and when the sockets' writes were flushed.
//
// Memory: the server process's RSS and heap at 0, half and all the clients (idle, after a GC,
// and after a first wave of clients came and went, so that what the first connections build
// once is in the baseline), per client; for the etcd side, etcd's RSS.
//
// PROFILE=dir runs the client processes with V8's --prof, logging into that directory (run the
// parent, the server's process, with node --prof for its own), and prints the writes' window in
// each process's time since it started, for node --prof-process --range=from,to. (--cpu-prof
// counts the callbacks of I/O as idle time: useless for a server.)
import { readFile } from 'node:fs/promises'
import { Observable, lastValueFrom } from 'rxjs'
import { createEtcdStore } from '../src/backends/etcd/index.js'
import type { StoreEvent } from '../src/core/events.js'
import type { KvStore, WatchOptions } from '../src/core/store.js'
import { serveStore } from '../src/http/index.js'
import { startEtcd } from '../test/servers/index.js'
import { startChild, type Child } from './lib/child.js'
import { collectGarbage } from './lib/gc.js'
import { percentile } from './lib/stats.js'

const CLIENTS = Number(process.env.CLIENTS ?? 1000)
const WRITES = Number(process.env.WRITES ?? 200)
const WARMUP = Number(process.env.WARMUP ?? 20)
const PROCS = Number(process.env.PROCS ?? 4)
const FULL = Number(process.env.FULL ?? 100)
const PROFILE = process.env.PROFILE
const PREFIX = 'fanout/'
const KEY = `${PREFIX}key`
const now = () => performance.timeOrigin + performance.now()
const encoder = new TextEncoder()
const decoder = new TextDecoder()

async function rssOf(pid: number): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8')
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1] ?? 0) * 1024
}

/** CPU time (ms) a process used so far, from /proc (utime + stime, 100 ticks a second). */
async function cpuOf(pid: number): Promise<number> {
  const fields = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]?.split(' ') ?? []
  return (Number(fields[11]) + Number(fields[12])) * 10
}

const settle = async () => {
  for (let i = 0; i < 3; i++) {
    collectGarbage()
    await new Promise((resolve) => setTimeout(resolve, 200))
  }
}

const memory = async (etcdPid: number) => ({
  rss: process.memoryUsage().rss,
  heap: process.memoryUsage().heapUsed,
  etcd: await rssOf(etcdPid),
})

/** When the server's hub got each write, handed it to every session, and flushed the sockets. */
interface ServerMark {
  readonly got: number
  readonly handed: number
  flushed: number
  cpuMs: number
}

/** The upstream store, with the hub's handling of each benchmark write timed. */
function timed(store: KvStore, marks: Map<number, ServerMark>): KvStore {
  const watch = (prefixes: readonly string[], options?: WatchOptions) =>
    new Observable<StoreEvent<Uint8Array>>((subscriber) =>
      store.watch(prefixes, options).subscribe({
        next: (event) => {
          if (event.type !== 'changes') {
            subscriber.next(event)
            return
          }
          const cpu = process.cpuUsage()
          const got = now()
          subscriber.next(event)
          const handed = now()
          for (const change of event.changes) {
            if (change.op !== 'put' || change.key !== KEY) continue
            const mark: ServerMark = { got, handed, flushed: handed, cpuMs: 0 }
            marks.set(Number(decoder.decode(change.value)), mark)
            // Node writes a response's chunks when it uncorks the socket, on the next tick:
            // this tick is queued after every session's.
            process.nextTick(() => {
              mark.flushed = now()
              const used = process.cpuUsage(cpu)
              mark.cpuMs = (used.user + used.system) / 1000
            })
          }
        },
        error: (error: unknown) => {
          subscriber.error(error)
        },
        complete: () => {
          subscriber.complete()
        },
      }),
    )
  return { ...store, watch }
}

/** Each child's clock offset from ours (its now minus ours), from the fastest of 10 pings. */
async function clockOffsets(children: readonly Child[]) {
  return Promise.all(
    children.map(async (child) => {
      let best = { rtt: Infinity, offset: 0 }
      for (let i = 0; i < 10; i++) {
        const sent = now()
        child.send({ type: 'ping' })
        const { at } = await child.next<{ type: 'pong'; at: number }>('pong')
        const back = now()
        if (back - sent < best.rtt) best = { rtt: back - sent, offset: at - (sent + back) / 2 }
      }
      return best
    }),
  )
}

/** A child's CPU time so far (ms), and its time since it started (ms). */
const childCpu = async (child: Child) => {
  child.send({ type: 'cpu' })
  const used = await child.next<{ type: 'cpu'; user: number; system: number; ms: number }>('cpu')
  return { cpuMs: (used.user + used.system) / 1000, ms: used.ms }
}

const etcd = await startEtcd()
const etcdPid = etcd.pid ?? 0
const writer = createEtcdStore({ endpoints: [...etcd.endpoints] })
const put = (key: string, text: string) =>
  lastValueFrom(writer.put(key, encoder.encode(text)), { defaultValue: undefined })
for (let i = 0; i < 20; i++) await put(`${PREFIX}seed/${i}`, String(i))

async function run(mode: 'http' | 'etcd') {
  const marks = new Map<number, ServerMark>()
  const upstream = timed(createEtcdStore({ endpoints: [...etcd.endpoints] }), marks)
  const server =
    mode === 'http' ? await serveStore(upstream, { maxClients: CLIENTS + 10 }) : undefined
  const warm = startChild('http-clients', {
    mode,
    url: server?.url ?? '',
    endpoints: etcd.endpoints,
    count: Math.min(200, CLIENTS),
    full: Math.min(20, FULL, CLIENTS),
    etcdClients: 2,
    prefix: PREFIX,
  })
  await warm.next('ready')
  warm.send({ type: 'stop' })
  await warm.exited
  await settle()
  const steps = [{ clients: 0, ...(await memory(etcdPid)) }]
  const children: Child[] = []
  let clients = 0
  // Two waves of processes, to measure the memory at half and all the clients.
  for (const wave of [0, 1]) {
    const started: Child[] = []
    for (let p = wave; p < PROCS; p += 2) {
      const share = (of: number) =>
        Math.floor((of * (p + 1)) / PROCS) - Math.floor((of * p) / PROCS)
      clients += share(CLIENTS)
      started.push(
        startChild(
          'http-clients',
          {
            mode,
            url: server?.url ?? '',
            endpoints: etcd.endpoints,
            count: share(CLIENTS),
            full: share(Math.min(FULL, CLIENTS)),
            etcdClients: Math.max(1, Math.round(10 / PROCS)),
            prefix: PREFIX,
          },
          {
            execArgv:
              PROFILE === undefined
                ? []
                : [
                    '--prof',
                    '--no-logfile-per-isolate',
                    `--logfile=${PROFILE}/${mode}-client-${p}.log`,
                  ],
          },
        ),
      )
    }
    await Promise.all(started.map((child) => child.next('ready')))
    children.push(...started)
    await settle()
    steps.push({ clients, ...(await memory(etcdPid)) })
  }
  const half = steps[1]!
  const all = steps[2]!

  const offsets = await clockOffsets(children)
  // Untimed writes first, as every benchmark here warms up: the first writes through a path
  // pay for its compilation in every process.
  const write = async (seq: number) => {
    const received = children.map((child, i) =>
      child
        .next<{ type: 'received'; seq: number; first: number; last: number }>('received')
        .then((m) => m.last - (offsets[i]?.offset ?? 0)),
    )
    const call = now()
    await put(KEY, String(seq))
    const ack = now()
    const last = Math.max(...(await Promise.all(received)))
    return { call, ack, last, mark: marks.get(seq) }
  }
  for (let seq = -WARMUP; seq < 0; seq++) await write(seq)
  const window = [performance.now()]
  const childCpuBefore = await Promise.all(children.map(childCpu))
  const serverCpuBefore = process.cpuUsage()
  const etcdCpuBefore = await cpuOf(etcdPid)
  const rows: { call: number; ack: number; last: number; mark: ServerMark | undefined }[] = []
  for (let seq = 0; seq < WRITES; seq++) rows.push(await write(seq))
  const serverCpu = process.cpuUsage(serverCpuBefore)
  window.push(performance.now())
  const etcdCpu = (await cpuOf(etcdPid)) - etcdCpuBefore
  const childCpuAfter = await Promise.all(children.map(childCpu))
  const childCpuMs = childCpuAfter.map((after, i) => after.cpuMs - (childCpuBefore[i]?.cpuMs ?? 0))
  for (const child of children) child.send({ type: 'stop' })
  await Promise.all(children.map((child) => child.exited))
  await server?.close()
  await upstream.close()

  const stat = (values: number[]) =>
    `${percentile(values, 50).toFixed(1)}/${percentile(values, 99).toFixed(1)}`
  const kib = (bytes: number, clients: number) => `${(bytes / clients / 1024).toFixed(1)} KiB`
  const marked = rows.filter((row) => row.mark !== undefined)
  const perWrite = (ms: number) => (ms / WRITES).toFixed(2)
  return {
    mode,
    clients: CLIENTS,
    procs: PROCS,
    ...(mode === 'http' ? { createHttpStoreClients: Math.min(FULL, CLIENTS) } : {}),
    writes: WRITES,
    'p50/p99 ms from ack': stat(rows.map((row) => row.last - row.ack)),
    'p50/p99 ms from put call': stat(rows.map((row) => row.last - row.call)),
    'put call to ack': stat(rows.map((row) => row.ack - row.call)),
    // The tail's writes: its latency from the ack, and when it came (seconds into the run).
    'slowest 5 (ms from ack @ s)': [...rows]
      .sort((a, b) => b.last - b.ack - (a.last - a.ack))
      .slice(0, 5)
      .map(
        (row) =>
          `${(row.last - row.ack).toFixed(1)} @ ${((row.call - rows[0]!.call) / 1000).toFixed(2)}`,
      )
      .join(', '),
    ...(mode === 'http'
      ? {
          'server got, from put call': stat(marked.map((row) => row.mark!.got - row.call)),
          'server handed to all sessions': stat(
            marked.map((row) => row.mark!.handed - row.mark!.got),
          ),
          'server flushed all sockets': stat(
            marked.map((row) => row.mark!.flushed - row.mark!.got),
          ),
          'flushed to last client': stat(marked.map((row) => row.last - row.mark!.flushed)),
          'server CPU ms per write (fan-out, mean)': (
            marked.reduce((sum, row) => sum + row.mark!.cpuMs, 0) / marked.length
          ).toFixed(2),
          'server process CPU ms per write': perWrite((serverCpu.user + serverCpu.system) / 1000),
          'server RSS per idle client (half, all)': `${kib(half.rss - steps[0]!.rss, half.clients)}, ${kib(all.rss - steps[0]!.rss, CLIENTS)}`,
          'server heap per idle client (half, all)': `${kib(half.heap - steps[0]!.heap, half.clients)}, ${kib(all.heap - steps[0]!.heap, CLIENTS)}`,
        }
      : {
          'etcd RSS per idle client (half, all)': `${kib(half.etcd - steps[0]!.etcd, half.clients)}, ${kib(all.etcd - steps[0]!.etcd, CLIENTS)}`,
        }),
    'etcd CPU ms per write': perWrite(etcdCpu),
    'client processes CPU ms per write (each)': childCpuMs.map(perWrite).join(' '),
    ...(PROFILE === undefined
      ? {}
      : {
          'profile ranges (server; clients)': [
            window.map((ms) => ms.toFixed(0)).join(','),
            ...childCpuAfter.map(
              (after, i) => `${childCpuBefore[i]?.ms.toFixed(0)},${after.ms.toFixed(0)}`,
            ),
          ].join('; '),
        }),
    'clock offsets ms (rtt)': offsets
      .map((o) => `${o.offset.toFixed(2)} (${o.rtt.toFixed(2)})`)
      .join(' '),
  }
}

// MODES=http runs only the fan-out side.
for (const mode of (process.env.MODES ?? 'http,etcd').split(',') as ('http' | 'etcd')[]) {
  console.log(JSON.stringify(await run(mode), undefined, 1))
}
await writer.close()
await etcd.cleanup()
process.exit(0)
