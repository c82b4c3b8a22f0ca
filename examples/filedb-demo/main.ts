// FileDB: configuration in JSON and YAML files, watched, with no server. Two consumers resync in
// order from the files under data/, then a file is edited and the change arrives with its
// previous and current values. The demo works on a temporary copy of data/ and removes it.
// Run it with: node --conditions=source --import tsx examples/filedb-demo/main.ts
import { cp, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join, relative } from 'node:path'
import { fileURLToPath } from 'node:url'
import { filter, firstValueFrom, lastValueFrom, take, timeout } from 'rxjs'
import { createDatasync, json, type ConsumerEvent } from 'rx-datasync'
import { createFileStore } from 'rx-datasync/filedb'

interface Iface {
  readonly enabled: boolean
  readonly mtu: number
  readonly addresses?: readonly string[]
}
interface Route {
  readonly dst: string
  readonly via: string
}

const here = dirname(fileURLToPath(import.meta.url))
const work = await mkdtemp(join(tmpdir(), 'filedb-demo-'))
const data = join(work, 'data')
await cp(join(here, 'data'), data, { recursive: true })
console.log(`data: a copy of examples/filedb-demo/data in ${work}`)

const store = createFileStore({ paths: [data], statusPath: join(work, 'status.json') })
store.errors$.subscribe((error) => {
  console.log(`store problem: ${error.message}`)
})

const sync = createDatasync(store, { ackTimeout: '5s' })
const interfaces = sync.register('interfaces', {
  prefixes: ['config/interfaces/'],
  codec: json<Iface>(),
})
const routes = sync.register('routes', { prefixes: ['config/routes/'], codec: json<Route>() })

const show = (value: unknown) => (value === undefined ? '(none)' : JSON.stringify(value))

function print<T>(event: ConsumerEvent<T>): void {
  if (event.kind === 'resync') {
    console.log(
      `[${event.consumer}] resync (${event.reason}) at revision ${event.revision}, ${event.items.length} keys:`,
    )
    for (const item of event.items) console.log(`    ${item.key} = ${show(item.value)}`)
  } else {
    console.log(`[${event.consumer}] change (${event.reason}) at revision ${event.revision}:`)
    for (const change of event.changes) {
      const now = change.op === 'put' ? show(change.value) : '(deleted)'
      console.log(`    ${change.op} ${change.key}: ${show(change.prev)} -> ${now}`)
    }
  }
}

// The interfaces consumer takes a moment over its resync; the routes consumer gets its own only
// once interfaces acknowledged (ordered, acknowledged resync).
interfaces.events$.subscribe((event) => {
  print(event)
  if (event.kind === 'resync') {
    setTimeout(() => {
      console.log('[interfaces] done: resync applied')
      event.done()
    }, 300)
  } else {
    event.done()
  }
})
routes.events$.subscribe((event) => {
  print(event)
  if (event.kind === 'resync') console.log('[routes] done: resync applied')
  event.done()
})
sync.status$.subscribe((status) => {
  console.log(`sync status: ${status.state}`)
})

sync.start()
await firstValueFrom(
  sync.status$.pipe(
    filter((status) => status.state === 'in-sync'),
    take(1),
    timeout(10_000),
  ),
)

// Edit a file as an editor saves it: a temporary file renamed over the original. One route
// changes, one is added; the unchanged route produces no event.
const routesFile = join(data, 'routes', 'static.yaml')
console.log(
  `\nediting ${relative(work, routesFile)}: default route via 10.0.0.254, a new backup route`,
)
const edited = (await readFile(routesFile, 'utf8'))
  .replace('via: 10.0.0.1', 'via: 10.0.0.254')
  .concat('  - key: config/routes/backup\n    value:\n      dst: 0.0.0.0/0\n      via: 10.0.0.2\n')
await writeFile(`${routesFile}.tmp`, edited)
await rename(`${routesFile}.tmp`, routesFile)

await firstValueFrom(
  routes.events$.pipe(
    filter((event) => event.kind === 'change'),
    take(1),
    timeout(10_000),
  ),
)

// The store can publish the application's state to its status file (JSON or YAML by extension).
await lastValueFrom(store.publishStatus({ state: 'ok', consumers: ['interfaces', 'routes'] }), {
  defaultValue: undefined,
})
console.log(
  `\nstatus.json: ${(await readFile(join(work, 'status.json'), 'utf8')).replace(/\s+/g, ' ')}`,
)

for (const consumer of [interfaces, routes]) {
  console.log(`${consumer.name} holds: ${[...consumer.view().keys()].join(', ')}`)
}

sync.close()
await store.close()
await rm(work, { recursive: true, force: true })
console.log('done')
