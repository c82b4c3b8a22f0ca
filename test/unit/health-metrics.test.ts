import { firstValueFrom, filter, lastValueFrom, take, timeout } from 'rxjs'
import { register as globalRegistry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import {
  createDatasync,
  createMemoryStore,
  failedKeys,
  type Done,
  type KvStore,
  type SnapshotPersistence,
} from '../../src/index.js'
import { createMetrics, type MetricsSnapshot } from '../../src/health/index.js'
import { createFaultStore, recordConsumer } from '../../src/testing/index.js'

/** The value of one sample line of Prometheus text, by metric name and labels. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  const wanted = Object.entries(labels).map(([key, value]) => `${key}="${value}"`)
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue
    const inside = line.slice(name.length + 1, line.lastIndexOf('}'))
    const parts = inside.split(',')
    if (wanted.every((part) => parts.includes(part)) && parts.length === wanted.length) {
      return Number(line.slice(line.lastIndexOf(' ') + 1))
    }
  }
  return undefined
}

/** Writes a string through any string store and waits for it. */
const put = (store: KvStore<string>, key: string, value: string) =>
  lastValueFrom(store.put(key, value))

describe('createMetrics', () => {
  it('counts deliveries, rounds, ack latency and lag of a real orchestrator run', async () => {
    const store = createMemoryStore<string>({ initial: { 'a/1': 'x', 'a/2': 'y', 'b/1': 'z' } })
    const sync = createDatasync(store)
    const metrics = createMetrics()
    const tracking = metrics.track('main', sync)
    const a = recordConsumer(sync.register('a', { prefixes: ['a/'] }))
    // 'slow' holds its acknowledgements until the test releases them: its lag grows.
    const held: Done[] = []
    const slow = sync.register('slow', { prefixes: ['b/'] })
    slow.events$.subscribe((event) => {
      if (event.kind === 'resync') event.done()
      else held.push(event.done)
    })
    sync.start()
    await a.until((state) => state.size === 2)
    await put(store, 'a/3', 'w')
    await a.until((state) => state.size === 3)
    await put(store, 'b/1', 'z2')
    await put(store, 'b/2', 'v')
    await put(store, 'b/3', 'u')
    const lagged = await firstValueFrom(
      metrics.metrics$.pipe(
        filter((m) => m.lag.some((l) => l.consumer === 'slow' && l.lag === 2)),
        timeout(10_000),
      ),
    )
    expect(lagged.lag).toContainEqual({ datasync: 'main', consumer: 'slow', lag: 2 })
    held.splice(0).forEach((done) => {
      done()
    })
    await firstValueFrom(
      metrics.metrics$.pipe(
        filter((m) => m.lag.some((l) => l.consumer === 'slow' && l.lag === 0)),
        timeout(10_000),
      ),
    )
    // The queued changes arrive as one more event; release it too.
    await firstValueFrom(
      metrics.metrics$.pipe(
        filter(() => held.length > 0),
        take(1),
        timeout(10_000),
      ),
    )
    held.splice(0).forEach((done) => {
      done()
    })

    const snapshot: MetricsSnapshot = metrics.snapshot()
    expect(snapshot.rounds).toEqual([
      { datasync: 'main', reason: 'startup', cause: 'startup', count: 1 },
    ])
    expect(snapshot.gaps).toEqual([])
    expect(snapshot.delivered).toContainEqual({
      datasync: 'main',
      consumer: 'a',
      kind: 'resync',
      reason: 'startup',
      events: 1,
      keys: 2,
    })
    expect(snapshot.delivered).toContainEqual({
      datasync: 'main',
      consumer: 'a',
      kind: 'change',
      reason: 'live',
      events: 1,
      keys: 1,
    })
    const slowChanges = snapshot.delivered.find((d) => d.consumer === 'slow' && d.kind === 'change')
    expect(slowChanges?.events).toBe(2)
    expect(slowChanges?.keys).toBe(3)
    const latency = snapshot.ackLatency.find((l) => l.consumer === 'a' && l.kind === 'resync')
    expect(latency?.count).toBe(1)
    expect(latency?.buckets.at(-1)).toEqual({ le: Infinity, count: 1 })
    expect(snapshot.states).toEqual([{ datasync: 'main', state: 'in-sync' }])

    const text = await metrics.prometheus()
    const labels = { datasync: 'main', consumer: 'a', kind: 'resync', reason: 'startup' }
    expect(sample(text, 'rx_datasync_events_delivered_total', labels)).toBe(1)
    expect(sample(text, 'rx_datasync_keys_delivered_total', labels)).toBe(2)
    expect(
      sample(text, 'rx_datasync_rounds_total', {
        datasync: 'main',
        reason: 'startup',
        cause: 'startup',
      }),
    ).toBe(1)
    expect(
      sample(text, 'rx_datasync_consumer_lag_keys', { datasync: 'main', consumer: 'slow' }),
    ).toBe(0)
    expect(
      sample(text, 'rx_datasync_ack_latency_seconds_count', {
        datasync: 'main',
        consumer: 'a',
        kind: 'resync',
      }),
    ).toBe(1)
    expect(sample(text, 'rx_datasync_state', { datasync: 'main', state: 'in-sync' })).toBe(1)
    expect(sample(text, 'rx_datasync_state', { datasync: 'main', state: 'halted' })).toBe(0)
    expect(a.violations).toEqual([])

    tracking.unsubscribe()
    sync.close()
    await store.close()
  })

  it('counts gaps by cause, ack failures and errors', async () => {
    const store = createFaultStore<string>({ initial: { 'k/1': 'v' } })
    const sync = createDatasync(store, { ackTimeout: 50 })
    const metrics = createMetrics({ prefix: 'app_' })
    metrics.track('cfg', sync)
    let first = true
    sync.register('lazy', { prefixes: ['k/'] }).events$.subscribe((event) => {
      // The first resync is never acknowledged: it times out (policy 'continue').
      if (first) first = false
      else event.done()
    })
    sync.start()
    await firstValueFrom(
      metrics.metrics$.pipe(
        filter((m) => m.ackFailures.length > 0),
        timeout(10_000),
      ),
    )
    store.breakWatch('watch-error')
    await put(store.inner, 'k/2', 'w')
    store.breakWatch('compacted')
    const snapshot = await firstValueFrom(
      metrics.metrics$.pipe(
        filter((m) => m.gaps.reduce((sum, gap) => sum + gap.count, 0) === 2),
        timeout(10_000),
      ),
    )
    expect(snapshot.gaps).toEqual([
      { datasync: 'cfg', cause: 'watch-error', count: 1 },
      { datasync: 'cfg', cause: 'compacted', count: 1 },
    ])
    expect(snapshot.ackFailures).toEqual([
      { datasync: 'cfg', consumer: 'lazy', kind: 'resync', code: 'ack-timeout', count: 1 },
    ])
    expect(snapshot.errors).toContainEqual({ datasync: 'cfg', code: 'ack-timeout', count: 1 })
    const text = await metrics.prometheus()
    expect(sample(text, 'app_gaps_total', { datasync: 'cfg', cause: 'compacted' })).toBe(1)
    expect(
      sample(text, 'app_ack_failures_total', {
        datasync: 'cfg',
        consumer: 'lazy',
        kind: 'resync',
        code: 'ack-timeout',
      }),
    ).toBe(1)
    sync.close()
    await store.close()
  })

  it('counts the keys consumers name as failed, and the snapshots persist saves', async () => {
    const store = createMemoryStore<string>({ initial: { 'a/1': 'x' } })
    const saved: Uint8Array[] = []
    const to: SnapshotPersistence = {
      name: 'in a test array',
      load: () => Promise.resolve(undefined),
      save: (data: Uint8Array) => {
        saved.push(data)
        return Promise.resolve()
      },
    }
    const sync = createDatasync(store, {
      persist: { to, every: 1 },
      keyRetry: { base: '1h', cap: '1h' },
    })
    const metrics = createMetrics()
    const tracking = metrics.track('main', sync)
    const consumer = sync.register('a', { prefixes: ['a/'] })
    // The first change of a/2 fails; everything else is applied.
    let failed = false
    consumer.events$.subscribe((event) => {
      const bad = event.kind === 'change' && event.changes.some((change) => change.key === 'a/2')
      if (bad && !failed) {
        failed = true
        event.done(failedKeys({ 'a/2': new Error('device busy') }))
      } else event.done()
    })
    sync.start()
    await firstValueFrom(sync.status$.pipe(filter((status) => status.state === 'in-sync')))
    await put(store, 'a/2', 'y')
    const counted = await firstValueFrom(
      metrics.metrics$.pipe(
        // Nothing changes after a/2: the save at the store's revision is the last one.
        filter(
          (m) =>
            m.keyFailures.length > 0 &&
            m.snapshotSaves.some((saves) => saves.revision === store.revision()),
        ),
        timeout(10_000),
      ),
    )
    expect(counted.keyFailures).toEqual([{ datasync: 'main', consumer: 'a', count: 1 }])
    const [saves] = counted.snapshotSaves
    expect(saves).toMatchObject({ datasync: 'main', saves: saved.length })
    expect(saves?.bytes).toBe(saved.at(-1)?.length)
    expect(saves?.keys).toBeGreaterThanOrEqual(1)
    const text = await metrics.prometheus()
    expect(
      sample(text, 'rx_datasync_key_failures_total', { datasync: 'main', consumer: 'a' }),
    ).toBe(1)
    expect(sample(text, 'rx_datasync_snapshot_saves_total', { datasync: 'main' })).toBe(
      saved.length,
    )
    expect(sample(text, 'rx_datasync_snapshot_bytes', { datasync: 'main' })).toBe(
      saved.at(-1)?.length,
    )
    tracking.unsubscribe()
    sync.close()
  })

  it('keeps a registry per instance, never the global one', async () => {
    const one = createMetrics()
    const two = createMetrics()
    const syncOne = createDatasync(createMemoryStore())
    const syncTwo = createDatasync(createMemoryStore())
    one.track('same-name', syncOne)
    two.track('same-name', syncTwo)
    syncOne.start()
    await firstValueFrom(
      one.metrics$.pipe(
        filter((m) => m.rounds.length > 0),
        timeout(10_000),
      ),
    )
    expect(await one.prometheus()).toContain('rx_datasync_rounds_total{datasync="same-name"')
    expect(await two.prometheus()).not.toContain('rx_datasync_rounds_total{')
    expect(globalRegistry.getSingleMetric('rx_datasync_rounds_total')).toBeUndefined()
    expect(one.registry).not.toBe(two.registry)
    expect(one.contentType).toMatch(/^text\/plain/)
    syncOne.close()
    syncTwo.close()
  })

  it('refuses a name tracked twice, and says why Prometheus text is off', async () => {
    const metrics = createMetrics({ prometheus: false })
    const sync = createDatasync(createMemoryStore())
    metrics.track('x', sync)
    expect(() => metrics.track('x', sync)).toThrow(/already tracked/)
    expect(metrics.registry).toBeUndefined()
    await expect(metrics.prometheus()).rejects.toThrow(/prometheus: false/)
    expect(() => createMetrics({ prefix: 'bad prefix' })).toThrow(TypeError)
    expect(() => createMetrics({ ackLatencyBuckets: [0.1, -1] })).toThrow(TypeError)
  })
})
