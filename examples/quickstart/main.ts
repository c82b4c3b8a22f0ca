// The quickstart: two consumers kept in sync with an in-memory store, no server needed.
// Run it with `npm run quickstart`.
import { filter, firstValueFrom, lastValueFrom } from 'rxjs'
import { createDatasync, createMemoryStore, json, type ConsumerEvent } from 'rx-datasync'

interface Iface {
  readonly mtu: number
  readonly enabled: boolean
}
interface Route {
  readonly via: string
}

const iface = json<Iface>()
const route = json<Route>()

// The embedded default store, seeded with some configuration.
const store = createMemoryStore({
  initial: {
    'config/interfaces/eth0': iface.encode({ mtu: 1500, enabled: true }),
    'config/interfaces/eth1': iface.encode({ mtu: 9000, enabled: false }),
    'config/routes/default': route.encode({ via: '10.0.0.1' }),
  },
})

const sync = createDatasync(store, { ackTimeout: '5s' })
const interfaces = sync.register('interfaces', {
  prefixes: ['config/interfaces/'],
  codec: iface,
})
const routes = sync.register('routes', { prefixes: ['config/routes/'], codec: route })

const show = (value: unknown) => (value === undefined ? '(none)' : JSON.stringify(value))

function print<T>(event: ConsumerEvent<T>): void {
  if (event.kind === 'resync') {
    console.log(
      `[${event.consumer}] resync (${event.reason}), ${event.items.length} key${event.items.length === 1 ? '' : 's'}:`,
    )
    for (const item of event.items) console.log(`    ${item.key} = ${show(item.value)}`)
  } else {
    console.log(`[${event.consumer}] change (${event.reason}):`)
    for (const change of event.changes) {
      const now = change.op === 'put' ? show(change.value) : '(deleted)'
      console.log(`    ${change.op} ${change.key}: ${show(change.prev)} -> ${now}`)
    }
  }
}

// Each consumer applies its events and acknowledges with done(). The interfaces consumer takes
// a moment over its resync: the routes consumer waits for it (ordered, acknowledged resync).
interfaces.events$.subscribe((event) => {
  print(event)
  if (event.kind === 'resync') {
    setTimeout(() => {
      console.log('[interfaces] done: resync applied')
      event.done()
    }, 200)
  } else {
    event.done()
  }
})
routes.events$.subscribe((event) => {
  print(event)
  event.done()
})
sync.status$.subscribe((status) => {
  console.log(`status: ${status.state}`)
})

sync.start()
await firstValueFrom(sync.status$.pipe(filter((status) => status.state === 'in-sync')))

// Changes flow once every consumer acknowledged its resync; each carries prev and current values.
await lastValueFrom(store.put('config/interfaces/eth0', iface.encode({ mtu: 9000, enabled: true })))
await lastValueFrom(store.put('config/routes/backup', route.encode({ via: '10.0.0.2' })))
await lastValueFrom(store.delete('config/interfaces/eth1'))

// Each consumer's view now equals its part of the store.
for (const consumer of [interfaces, routes]) {
  const held = [...consumer.view().keys()].sort().join(', ')
  const stored = (await lastValueFrom(store.listKeys(consumer.prefixes[0] ?? ''))).join(', ')
  console.log(`${consumer.name} holds: ${held} (store: ${stored})`)
}

sync.close()
await store.close()
