import { readFileSync } from 'node:fs'
import { VirtualTimeScheduler } from 'rxjs'
import { describe, expect, it } from 'vitest'
import type { StoreEvent } from '../../src/index.js'
import { createMetrics } from '../../src/health/index.js'
import { createFaultStore } from '../../src/testing/index.js'

const VERSION = (
  JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
    version: string
  }
).version

/** The value of the one sample line of `name` with exactly `labels`. */
function sample(text: string, name: string, labels: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}} `))
  return line === undefined ? undefined : Number(line.slice(line.lastIndexOf(' ') + 1))
}

describe('metrics.instrument', () => {
  it('counts reconnects, watch restarts, snapshot time, size and the revision of a store', async () => {
    const scheduler = new VirtualTimeScheduler()
    const store = createFaultStore<string>({
      initial: { 'a/1': 'xy', 'a/2': 'abc' },
      scheduler,
    })
    const metrics = createMetrics({ scheduler })
    const measured = metrics.instrument('config', store)
    // The store's own members pass through.
    expect(measured.inner).toBe(store.inner)
    expect(measured.name).toBe(store.name)

    const events: StoreEvent<string>[] = []
    const first = measured.watch(['a/']).subscribe((event) => events.push(event))
    scheduler.flush()
    expect(metrics.snapshot().stores).toEqual([
      {
        store: 'config',
        backend: store.name,
        reconnects: 0,
        watchRestarts: 0,
        snapshots: 1,
        lastSnapshotSeconds: 0,
        lastSnapshotKeys: 2,
        lastSnapshotBytes: 5,
        revision: BigInt(events[0]?.revision ?? -1),
      },
    ])

    // 2.5 s of outage: the relist after it is timed from the store leaving 'ready'.
    store.disconnect()
    scheduler.schedule(() => {
      store.inner.put('a/3', 'z').subscribe()
      store.reconnect()
    }, 2500)
    scheduler.flush()
    const [after] = metrics.snapshot().stores
    expect(after).toMatchObject({
      reconnects: 1,
      snapshots: 2,
      lastSnapshotSeconds: 2.5,
      lastSnapshotKeys: 3,
      lastSnapshotBytes: 6,
    })
    expect(after?.revision).toBe(BigInt(events.at(-1)?.revision ?? -1))

    first.unsubscribe()
    const second = measured.watch(['a/']).subscribe()
    scheduler.flush()
    expect(metrics.snapshot().stores[0]?.watchRestarts).toBe(1)
    second.unsubscribe()

    const text = await metrics.prometheus()
    expect(sample(text, 'rx_datasync_store_reconnects_total', 'store="config"')).toBe(1)
    expect(sample(text, 'rx_datasync_store_watch_restarts_total', 'store="config"')).toBe(1)
    expect(sample(text, 'rx_datasync_store_snapshot_keys', 'store="config"')).toBe(3)
    expect(sample(text, 'rx_datasync_store_snapshot_bytes', 'store="config"')).toBe(6)
    expect(
      sample(text, 'rx_datasync_store_snapshot_duration_seconds_count', 'store="config"'),
    ).toBe(3)
    expect(sample(text, 'rx_datasync_store_revision', 'store="config"')).toBe(
      Number(events.at(-1)?.revision),
    )
    expect(sample(text, 'rx_datasync_store_info', `store="config",backend="${store.name}"`)).toBe(1)
    expect(
      sample(text, 'rx_datasync_info', `version="${VERSION}",node_version="${process.version}"`),
    ).toBe(1)
    expect(() => metrics.instrument('config', store)).toThrow(/already instrumented/)
  })

  it('names every series by Prometheus conventions: a unit or _total, and one _info', async () => {
    const metrics = createMetrics()
    metrics.instrument('s', createFaultStore<string>())
    const text = await metrics.prometheus()
    const names = [...text.matchAll(/^# TYPE (\S+) (\S+)$/gm)].map(([, name = '', type]) => ({
      name,
      type,
    }))
    expect(names.length).toBeGreaterThan(10)
    for (const { name, type } of names) {
      if (type === 'counter') expect(name, name).toMatch(/_total$/)
      else if (type === 'histogram') expect(name, name).toMatch(/_seconds$/)
      else {
        // Gauges: a unit, an _info, or a state enum (1 for the current state).
        expect(name, name).toMatch(/_(keys|bytes|info|revision)$|^rx_datasync_info$|_state$/)
      }
    }
  })
})
