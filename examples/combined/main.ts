// Combined stores: defaults in files, live values in etcd, behind one datasync. A layered store
// shows each key's live value where there is one and the file default otherwise: overriding a
// default, editing a default file, and deleting the override (which reveals the default again)
// each reach the consumer as one change with its previous value. A routed store over the same
// sources refuses a write to the read-only files, naming the key and the source.
//
// Live values go to etcd when ETCD_ENDPOINTS is set (e.g. ETCD_ENDPOINTS=127.0.0.1:2379; the
// example removes what it wrote), else to a memory store.
// Run it with: npm run example:combined
import { cp, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { filter, firstValueFrom, lastValueFrom, take, timeout } from 'rxjs'
import {
  createDatasync,
  createLayeredStore,
  createMemoryStore,
  createRoutedStore,
  json,
  type ConsumerEvent,
  type KvStore,
} from 'rx-datasync'
import { createEtcdStore } from 'rx-datasync/etcd'
import { createFileStore } from 'rx-datasync/filedb'

interface Iface {
  readonly mtu: number
  readonly enabled: boolean
}
const iface = json<Iface>()

const here = dirname(fileURLToPath(import.meta.url))
const work = await mkdtemp(join(tmpdir(), 'combined-example-'))
const defaultsDir = join(work, 'defaults')
await cp(join(here, 'defaults'), defaultsDir, { recursive: true })

const endpoints = process.env.ETCD_ENDPOINTS?.split(',').filter((endpoint) => endpoint !== '')
const live: KvStore =
  endpoints !== undefined && endpoints.length > 0
    ? createEtcdStore({ endpoints })
    : createMemoryStore()
console.log(`defaults: files in ${defaultsDir}; live values: ${live.name}`)
const files = createFileStore({ paths: [defaultsDir] })

// Lowest layer first: the live layer wins wherever it has the key. Writes go to 'live'.
const store = createLayeredStore(
  [
    { name: 'defaults', store: files },
    { name: 'live', store: live },
  ],
  { writeTo: 'live' },
)
const sync = createDatasync(store, { ackTimeout: '5s' })
const interfaces = sync.register('interfaces', { prefixes: ['config/interfaces/'], codec: iface })

const show = (value: unknown) => (value === undefined ? '(none)' : JSON.stringify(value))
function print(event: ConsumerEvent<Iface>): void {
  if (event.kind === 'resync') {
    console.log(`[interfaces] resync (${event.reason}):`)
    for (const item of event.items) console.log(`    ${item.key} = ${show(item.value)}`)
  } else {
    for (const change of event.changes) {
      const now = change.op === 'put' ? show(change.value) : '(deleted)'
      console.log(`[interfaces] ${change.op} ${change.key}: ${show(change.prev)} -> ${now}`)
    }
  }
}
interfaces.events$.subscribe((event) => {
  print(event)
  event.done()
})
const nextChange = () =>
  firstValueFrom(
    interfaces.events$.pipe(
      filter((event) => event.kind === 'change'),
      take(1),
      timeout(10_000),
    ),
  )

sync.start()
await firstValueFrom(
  sync.status$.pipe(
    filter((status) => status.state === 'in-sync'),
    take(1),
    timeout(10_000),
  ),
)

// Each source's health is its own: a dead etcd makes the store degraded, the files go on.
const sources = await firstValueFrom(store.sources$)
const states = Object.entries(sources).map(([name, status]) => `${name} ${status.state}`)
console.log(`sources: ${states.join(', ')}`)

console.log('\nlive override: eth0 mtu 9000')
let changed = nextChange()
await lastValueFrom(store.put('config/interfaces/eth0', iface.encode({ mtu: 9000, enabled: true })))
await changed

console.log('\ndefaults file edited: eth1 enabled')
const file = join(defaultsDir, 'interfaces.yaml')
const edited = (await readFile(file, 'utf8')).replace('enabled: false', 'enabled: true')
changed = nextChange()
await writeFile(`${file}.tmp`, edited)
await rename(`${file}.tmp`, file)
await changed

console.log('\nlive override removed: eth0 falls back to its default')
changed = nextChange()
await lastValueFrom(store.delete('config/interfaces/eth0'))
await changed

// A routed store places keys by prefix instead: the files own 'config/', so a write there is
// refused (FileDB is read-only). Its sources are shared here, so it is not closed on its own.
const routed = createRoutedStore({
  'config/': { name: 'defaults', store: files },
  'live/': { name: 'live', store: live },
})
const refused = await lastValueFrom(
  routed.put('config/interfaces/eth0', iface.encode({ mtu: 1, enabled: false })),
).catch((error: unknown) => error)
console.log(
  `\nrouted put to the files: ${refused instanceof Error ? refused.message : 'accepted?'}`,
)

const held = [...interfaces.view().values()].map((item) => `${item.key} = ${show(item.value)}`)
console.log(`\ninterfaces holds:\n    ${held.join('\n    ')}`)
sync.close()
await store.close() // closes both sources
await rm(work, { recursive: true, force: true })
console.log('done')
