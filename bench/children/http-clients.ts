// The client process of bench/http-fanout.ts: opens `count` watches of `prefix`, either through
// the HTTP server (createHttpStore, one connection each) or straight to etcd (one watch each,
// spread over `etcdClients` etcd stores), and reports, for every value the parent writes, the
// time (performance.timeOrigin + now) at which the last of its watches received it.
import { createEtcdStore } from '../../src/backends/etcd/index.js'
import type { KvStore } from '../../src/core/store.js'
import { createHttpStore } from '../../src/http/client/index.js'

interface Input {
  readonly mode: 'http' | 'etcd'
  readonly url: string
  readonly endpoints: readonly string[]
  readonly count: number
  readonly etcdClients: number
  readonly prefix: string
}

const input = JSON.parse(process.argv[2] ?? '{}') as Input
const send = (message: unknown) => process.send?.(message)
const now = () => performance.timeOrigin + performance.now()

const stores: KvStore[] =
  input.mode === 'http'
    ? Array.from({ length: input.count }, () => createHttpStore(input.url, { idleTimeout: '120s' }))
    : Array.from({ length: input.etcdClients }, () =>
        createEtcdStore({
          endpoints: [...input.endpoints],
          dialTimeout: '30s',
          allowDelayedStart: true,
        }),
      )

/** Per sequence number: how many watches have it, and when the last got it. */
const seen = new Map<number, number>()
let snapshots = 0
for (let i = 0; i < input.count; i++) {
  const store = stores[i % stores.length]
  store?.watch([input.prefix]).subscribe((event) => {
    if (event.type === 'snapshot') {
      snapshots++
      if (snapshots === input.count) send({ type: 'ready' })
      return
    }
    for (const change of event.changes) {
      if (change.op !== 'put') continue
      const seq = Number(new TextDecoder().decode(change.value))
      const got = (seen.get(seq) ?? 0) + 1
      seen.set(seq, got)
      if (got === input.count) {
        seen.delete(seq)
        send({ type: 'received', seq, at: now() })
      }
    }
  })
}

process.on('message', (message: { type: string }) => {
  if (message.type === 'stop') {
    void Promise.all(stores.map((store) => store.close())).then(() => process.exit(0))
  }
})
