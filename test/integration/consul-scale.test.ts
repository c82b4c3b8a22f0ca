/**
 * The Consul watch on a prefix of 10 000 keys: every single-key change arrives once, with its prev,
 * and the figures of what a change costs are printed (never asserted: the machine is shared).
 *
 * A blocking query answers with the whole listing, so reading it (HTTP, JSON, base64) grows with
 * the prefix; what the watch adds per listing is one ModifyIndex comparison per key, and copies
 * and change objects only for the keys that changed. The figures below show both parts, and a
 * naive diff (decode every value, compare values) for comparison.
 */
import { NEVER, asyncScheduler, lastValueFrom, of, type Observable } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { ConsulHttp } from '../../src/backends/consul/client.js'
import { errorMapper } from '../../src/backends/consul/errors.js'
import { createConsulStore } from '../../src/backends/consul/index.js'
import { resolveOptions } from '../../src/backends/consul/options.js'
import { watchListing } from '../../src/backends/consul/watch.js'
import type { Listing, RawEntry } from '../../src/backends/consul/wire.js'
import {
  createSnapshot,
  diffSnapshots,
  revision,
  string,
  type KvStore,
  type StoreEvent,
} from '../../src/index.js'
import { CONSUL_BUILD_TIMEOUT_MS, ensureConsul } from '../servers/consul-install.js'
import { startConsul, type ConsulAgent } from '../servers/consul.js'
import { pollUntil } from '../servers/index.js'

const text = string()
const enc = (value: string) => text.encode(value)
const KEYS = 10_000
const CHANGES = 100

let agent: ConsulAgent
let store: KvStore

beforeAll(async () => {
  await ensureConsul()
  agent = await startConsul({ node: 'scale' })
  store = createConsulStore({ address: agent.address })
}, CONSUL_BUILD_TIMEOUT_MS)

afterAll(async () => {
  await store.close()
  await agent.cleanup()
})

async function load(prefix: string, count: number): Promise<void> {
  for (let start = 0; start < count; start += 64) {
    const ops = Array.from({ length: Math.min(64, count - start) }, (_, i) => ({
      op: 'put' as const,
      key: `${prefix}${String(start + i).padStart(5, '0')}`,
      value: enc(`{"value":${start + i},"pad":"................"}`),
    }))
    await lastValueFrom(store.txn(ops))
  }
}

const ms = (ns: bigint) => Number(ns) / 1e6
const percentile = (sorted: readonly number[], p: number) =>
  sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))] ?? NaN

/** Writes CHANGES single keys one after the other, each awaited on the watch; returns figures. */
async function measure(prefix: string, count: number) {
  const events: StoreEvent<Uint8Array>[] = []
  const started = process.hrtime.bigint()
  const watching = store.watch([prefix]).subscribe((event) => events.push(event))
  await pollUntil(() => events.length === 1, { timeoutMs: 60_000, intervalMs: 1, maxIntervalMs: 5 })
  const snapshotMs = ms(process.hrtime.bigint() - started)
  const latencies: number[] = []
  const cpuBefore = process.cpuUsage()
  const wallBefore = process.hrtime.bigint()
  try {
    for (let i = 0; i < CHANGES; i++) {
      const key = `${prefix}${String((i * 97) % count).padStart(5, '0')}`
      const put = process.hrtime.bigint()
      await lastValueFrom(store.put(key, enc(`changed ${i}`)), { defaultValue: undefined })
      await pollUntil(() => events.length === i + 2, {
        timeoutMs: 30_000,
        intervalMs: 1,
        maxIntervalMs: 2,
      })
      latencies.push(ms(process.hrtime.bigint() - put))
      const event = events[i + 1]!
      expect(event.type).toBe('changes')
      if (event.type === 'changes') {
        expect(event.changes).toHaveLength(1)
        expect(event.changes[0]).toMatchObject({ op: 'put', key })
        expect(text.decode((event.changes[0] as { value: Uint8Array }).value)).toBe(`changed ${i}`)
        expect(event.changes[0]!.prev).toBeDefined()
      }
    }
  } finally {
    watching.unsubscribe()
  }
  const cpu = process.cpuUsage(cpuBefore)
  const wall = ms(process.hrtime.bigint() - wallBefore)
  latencies.sort((a, b) => a - b)
  return {
    snapshotMs,
    cpuPerChangeMs: (cpu.user + cpu.system) / 1000 / CHANGES,
    wallPerChangeMs: wall / CHANGES,
    p50: percentile(latencies, 0.5),
    p95: percentile(latencies, 0.95),
  }
}

/** Listings of `count` keys where each step changes one key (by ModifyIndex and value). */
function syntheticListings(base: readonly RawEntry[], steps: number): Listing[] {
  const listings: Listing[] = []
  let entries = [...base]
  let index = Math.max(...base.map((e) => e.ModifyIndex))
  for (let i = 0; i < steps; i++) {
    index++
    const at = (i * 97) % entries.length
    entries = entries.slice()
    entries[at] = {
      Key: entries[at]!.Key,
      ModifyIndex: index,
      Value: Buffer.from(`synthetic ${i}`),
    }
    listings.push({ index: BigInt(index), entries })
  }
  return listings
}

describe(`a watch on ${KEYS} keys`, () => {
  it('delivers each single-key change once with its prev; prints what a change costs', async () => {
    const big = `scale-${process.pid}/big/`
    const small = `scale-${process.pid}/small/`
    await load(big, KEYS)
    await load(small, 100)
    const atSmall = await measure(small, 100)
    const atBig = await measure(big, KEYS)

    // The watch's own work per listing, on the real 10k listing, without HTTP: a scripted list.
    const mapError = errorMapper(agent.address)
    const http = new ConsulHttp(
      resolveOptions({ address: agent.address }),
      (raw, what) => mapError(raw, what).error,
    )
    const fetchStart = process.hrtime.bigint()
    const real = await lastValueFrom(http.list(big))
    const fetchMs = ms(process.hrtime.bigint() - fetchStart)
    http.close()
    expect(real.entries).toHaveLength(KEYS)
    const steps = 200
    const listings = [real, ...syntheticListings(real.entries, steps)]
    let served = 0
    let changes = 0
    const diffStart = process.hrtime.bigint()
    const subscription = watchListing([big], {
      // Answers at once, so the whole run is synchronous; then waits forever.
      list: (): Observable<Listing> => (served < listings.length ? of(listings[served++]!) : NEVER),
      waitMs: 1_000,
      minQueryIntervalMs: 0,
      backoff: { firstMs: 1, maxMs: 1 },
      scheduler: asyncScheduler,
      mapError,
      health: { up: () => undefined, down: () => undefined, gone: () => undefined },
    }).subscribe((event) => {
      if (event.type === 'changes') changes += event.changes.length
    })
    const watchDiffUs = (ms(process.hrtime.bigint() - diffStart) * 1000) / (steps + 1)
    subscription.unsubscribe()
    expect(changes).toBe(steps)

    // A naive diff for comparison: decode every value into a snapshot and compare by value.
    const toSnapshot = (listing: Listing) =>
      createSnapshot(
        listing.entries.map((e) => ({
          key: e.Key,
          value: new Uint8Array(e.Value ?? []),
          revision: revision(BigInt(e.ModifyIndex)),
        })),
      )
    const naiveStart = process.hrtime.bigint()
    let before = toSnapshot(listings[0]!)
    for (let i = 1; i <= 20; i++) {
      const after = toSnapshot(listings[i]!)
      expect(diffSnapshots(before, after, revision(listings[i]!.index))).toHaveLength(1)
      before = after
    }
    const naiveUs = (ms(process.hrtime.bigint() - naiveStart) * 1000) / 20

    const line = (label: string, f: typeof atBig) =>
      `${label}: first snapshot ${f.snapshotMs.toFixed(0)} ms; per change: wall ${f.wallPerChangeMs.toFixed(2)} ms, CPU ${f.cpuPerChangeMs.toFixed(2)} ms (this process: writer + watch), put-to-event p50 ${f.p50.toFixed(1)} ms, p95 ${f.p95.toFixed(1)} ms`
    console.log(
      [
        `[consul scale] ${line(`${KEYS} keys`, atBig)}`,
        `[consul scale] ${line('100 keys', atSmall)}`,
        `[consul scale] one non-blocking listing of ${KEYS} keys (HTTP, JSON, base64): ${fetchMs.toFixed(1)} ms`,
        `[consul scale] the watch's diff of a ${KEYS}-key listing with one change: ${watchDiffUs.toFixed(0)} µs per listing; a naive diff (decode all, compare values): ${naiveUs.toFixed(0)} µs`,
      ].join('\n'),
    )
  })
})
