/**
 * Faults against real Consul agents, each ending with every consumer holding exactly the store's
 * state: the agent killed and restarted during a watch (a server with a data directory, so the
 * data and Consul's indexes survive; and a dev agent, which loses both), the agent paused with
 * SIGSTOP past the client's timeouts and resumed, and a server of a three-server cluster killed
 * (the store talks to a client agent, as Consul intends: the agent follows the servers' leader).
 */
import { filter, firstValueFrom, lastValueFrom, timeout } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createConsulStore, type ConsulStoreOptions } from '../../src/backends/consul/index.js'
import {
  createDatasync,
  string,
  type Datasync,
  type KvStore,
  type StoreEvent,
  type StoreStatus,
} from '../../src/index.js'
import { recordConsumer, type ConsumerRecorder } from '../../src/testing/index.js'
import { CONSUL_BUILD_TIMEOUT_MS, ensureConsul } from '../servers/consul-install.js'
import { startConsul, startConsulCluster, type ConsulCluster } from '../servers/consul.js'
import { pollUntil } from '../servers/index.js'

const text = string()
const enc = (value: string) => text.encode(value)
const dec = (raw: Uint8Array) => text.decode(raw)

/** Short timeouts, so that faults show within seconds. */
const FAST: ConsulStoreOptions = {
  waitTime: '5s',
  requestTimeout: '2s',
  retryDelay: '100ms',
  maxRetryDelay: '1s',
  statusInterval: '500ms',
}

let counter = 0
const fresh = () => `fault-${process.pid}-${++counter}/`

beforeAll(() => ensureConsul(), CONSUL_BUILD_TIMEOUT_MS)

/** Writes through `store`, retrying while the cluster has no leader (bounded). */
async function write(store: KvStore, key: string, value: string | undefined): Promise<void> {
  await pollUntil(
    async () => {
      if (value === undefined) await lastValueFrom(store.delete(key))
      else await lastValueFrom(store.put(key, enc(value)), { defaultValue: undefined })
      return true
    },
    { timeoutMs: 60_000, attemptTimeoutMs: 10_000, description: `the write of ${key}` },
  )
}

/** The store's listing of `prefix`, decoded, as recorders compare it. */
async function listing(store: KvStore, prefix: string) {
  return (await lastValueFrom(store.list(prefix))).map((item) => ({
    ...item,
    value: dec(item.value),
  }))
}

function waitStatus(store: KvStore, state: StoreStatus['state'], within = 60_000) {
  return firstValueFrom(
    store.status$.pipe(
      filter((status) => status.state === state),
      timeout(within),
    ),
  )
}

interface Watched {
  readonly sync: Datasync<Uint8Array>
  readonly all: ConsumerRecorder<string>
  readonly some: ConsumerRecorder<string>
  readonly raw: StoreEvent<Uint8Array>[]
  stop(): void
}

/** Two consumers with overlapping prefixes, and a raw watch to see the store's own events. */
async function watchAll(store: KvStore, p: string): Promise<Watched> {
  const sync = createDatasync(store, { ackTimeout: '10s' })
  const all = recordConsumer(sync.register('all', { prefixes: [p], codec: text }))
  const some = recordConsumer(sync.register('some', { prefixes: [`${p}x/`], codec: text }))
  sync.start()
  const raw: StoreEvent<Uint8Array>[] = []
  const watching = store.watch([p]).subscribe((event) => raw.push(event))
  await firstValueFrom(
    sync.status$.pipe(
      filter((s) => s.state === 'in-sync'),
      timeout(30_000),
    ),
  )
  await pollUntil(() => raw.length > 0, { timeoutMs: 30_000 })
  return {
    sync,
    all,
    some,
    raw,
    stop() {
      watching.unsubscribe()
      sync.close()
    },
  }
}

/** The causes of the raw watch's snapshots after the first `before` events, once there is one. */
async function snapshotCauses(watched: Watched, before: number): Promise<string[]> {
  const causes = () =>
    watched.raw.slice(before).flatMap((e) => (e.type === 'snapshot' ? [e.cause] : []))
  await pollUntil(() => causes().length > 0, { timeoutMs: 30_000 })
  return causes()
}

/** Every consumer holds exactly what the store holds, and no promise was broken. */
async function converged(store: KvStore, p: string, watched: Watched): Promise<void> {
  await watched.all.untilEquals(await listing(store, p), '60s')
  await watched.some.untilEquals(await listing(store, `${p}x/`), '60s')
  expect(watched.all.violations).toEqual([])
  expect(watched.some.violations).toEqual([])
}

describe('the agent restarted during a watch', () => {
  it('a server with its data: the watch relists (cause reconnect) and consumers converge', async () => {
    const agent = await startConsul({ mode: 'server', node: 'restarted' })
    const store = createConsulStore({ address: agent.address, ...FAST })
    const p = fresh()
    let watched: Watched | undefined
    try {
      await write(store, `${p}x/keep`, 'k')
      await write(store, `${p}x/change`, 'c1')
      await write(store, `${p}drop`, 'd')
      watched = await watchAll(store, p)
      const before = watched.raw.length
      await agent.kill()
      await waitStatus(store, 'degraded')
      await agent.start()
      // Written as soon as the agent is back, before the watch's next try (up to 1s away).
      await write(store, `${p}x/change`, 'c2')
      await write(store, `${p}drop`, undefined)
      await write(store, `${p}x/new`, 'n')
      await converged(store, p, watched)
      await waitStatus(store, 'ready')
      // The raw watch retries on its own schedule: wait for its relisting too.
      const causes = await snapshotCauses(watched, before)
      expect(causes).toContain('reconnect')
      // Consul's indexes survived the restart: no reset.
      expect(causes).not.toContain('index-reset')
      const changes = watched.all.events.flatMap((e) => (e.kind === 'change' ? e.changes : []))
      expect(changes.find((c) => c.key === `${p}drop`)).toMatchObject({ op: 'delete', prev: 'd' })
      expect(changes.find((c) => c.key === `${p}x/change`)).toMatchObject({
        prev: 'c1',
        value: 'c2',
      })
    } finally {
      watched?.stop()
      await store.close()
      await agent.cleanup()
    }
  })

  it('a dev agent that loses its data: the index goes back, the watch relists (cause index-reset) and consumers converge to what is left', async () => {
    const agent = await startConsul({ mode: 'dev', node: 'forgetful' })
    const store = createConsulStore({ address: agent.address, ...FAST })
    const p = fresh()
    let watched: Watched | undefined
    try {
      for (let i = 0; i < 30; i++) await write(store, `${p}x/${i % 5}`, `v${i}`)
      watched = await watchAll(store, p)
      const before = watched.raw.length
      await agent.restart()
      await write(store, `${p}x/after`, 'restart')
      await watched.all.untilEquals(await listing(store, p), '60s')
      await watched.some.untilEquals(await listing(store, `${p}x/`), '60s')
      expect(watched.all.state).toEqual(new Map([[`${p}x/after`, 'restart']]))
      expect(await snapshotCauses(watched, before)).toContain('index-reset')
      // Consul's indexes restarted from 1: the recorder sees revisions go back (the deletes of
      // the lost keys carry the new listing's index). That is all it may find.
      const violations = [...watched.all.violations, ...watched.some.violations]
      console.log(`[consul index reset] the recorders saw ${violations.length} revisions go back`)
      for (const violation of violations) {
        expect(violation).toMatch(/^key '.*': revision \d+ applied after \d+$/)
      }
    } finally {
      watched?.stop()
      await store.close()
      await agent.cleanup()
    }
  })
})

describe('a three-server cluster with a client agent', () => {
  let cluster: ConsulCluster | undefined
  beforeAll(async () => {
    cluster = await startConsulCluster({ servers: 3, clients: 1 })
  }, 300_000)
  afterAll(async () => {
    await cluster?.cleanup()
  }, 120_000)

  it('the agent paused (SIGSTOP) past the client timeouts: degraded, then resumed: ready, and consumers converge', async () => {
    const client = cluster!.clients[0]!
    // The status check runs once a minute here: degraded must come from the watch's own timeout.
    const store = createConsulStore({ address: client.address, ...FAST, statusInterval: '60s' })
    const writer = createConsulStore({ address: cluster!.servers[0]!.address, ...FAST })
    const p = fresh()
    let watched: Watched | undefined
    try {
      await write(writer, `${p}x/keep`, 'k')
      await write(writer, `${p}x/change`, 'c1')
      await write(writer, `${p}drop`, 'd')
      watched = await watchAll(store, p)
      const syncStates: string[] = []
      watched.sync.status$.subscribe((s) => syncStates.push(s.state))
      await client.pause()
      // Written through a server while the client agent sleeps.
      await write(writer, `${p}x/change`, 'c2')
      await write(writer, `${p}drop`, undefined)
      await write(writer, `${p}x/new`, 'n')
      const degraded = await waitStatus(store, 'degraded')
      expect(degraded.error?.code).toBe('timeout')
      expect(syncStates).toContain('degraded')
      client.resume()
      await waitStatus(store, 'ready')
      await converged(store, p, watched)
      expect(syncStates.at(-1)).toBe('in-sync')
      const changes = watched.all.events.flatMap((e) => (e.kind === 'change' ? e.changes : []))
      expect(changes.find((c) => c.key === `${p}drop`)).toMatchObject({ op: 'delete', prev: 'd' })
    } finally {
      if (client.isPaused) client.resume()
      watched?.stop()
      await store.close()
      await writer.close()
    }
  })

  it('the leader server killed: the watch goes on through the client agent, and consumers converge', async () => {
    const c = cluster!
    const client = c.clients[0]!
    const store = createConsulStore({ address: client.address, ...FAST })
    const leader = await c.leader()
    const survivor = c.servers.find((s) => s !== leader)!
    const writer = createConsulStore({ address: survivor.address, ...FAST })
    const p = fresh()
    let watched: Watched | undefined
    try {
      await write(writer, `${p}x/1`, 'a')
      await write(writer, `${p}2`, 'b')
      watched = await watchAll(store, p)
      await leader.kill()
      // Writes go on once the two survivors elected a new leader (write() retries until then).
      for (let i = 0; i < 10; i++) await write(writer, `${p}x/${i % 3}`, `after-${i}`)
      await write(writer, `${p}2`, undefined)
      await converged(store, p, watched)
      expect(await c.leader()).not.toBe(leader)
      // The killed server comes back and catches up; the watch never noticed who leads.
      await leader.start()
      await write(writer, `${p}x/back`, 'yes')
      await converged(store, p, watched)
    } finally {
      watched?.stop()
      await store.close()
      await writer.close()
    }
  })

  it('a follower server killed: writes and the watch go on without a pause', async () => {
    const c = cluster!
    const client = c.clients[0]!
    const store = createConsulStore({ address: client.address, ...FAST })
    const leader = await c.leader()
    const follower = c.servers.find((s) => s !== leader && s.running)!
    const writer = createConsulStore({ address: leader.address, ...FAST })
    const p = fresh()
    let watched: Watched | undefined
    try {
      await write(writer, `${p}x/1`, 'a')
      watched = await watchAll(store, p)
      await follower.kill()
      for (let i = 0; i < 10; i++) await write(writer, `${p}x/${i % 4}`, `v${i}`)
      await converged(store, p, watched)
      const causes = watched.raw.flatMap((e) => (e.type === 'snapshot' ? [e.cause] : []))
      expect(causes).toEqual(['startup'])
      await follower.start()
    } finally {
      watched?.stop()
      await store.close()
      await writer.close()
    }
  })
})
