/**
 * The etcd store's `watch(prefixes, { after })` on a real member: no snapshot and no Range call
 * when the history after `after` is held, only the commits after it; a snapshot (cause `startup`)
 * when that history was compacted, or when etcd's revision is below `after` (another cluster, or
 * its data wiped).
 */
import { ReplaySubject, firstValueFrom, take, timeout, toArray } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEtcdStore, type EtcdStore } from '../../src/backends/etcd/index.js'
import { string } from '../../src/core/codec.js'
import { revision, type Revision } from '../../src/core/revision.js'
import type { StoreEvent } from '../../src/core/events.js'
import { startEtcd, type EtcdServer } from '../servers/index.js'
import { rangeCalls } from '../support/etcd.js'

const text = string()
let etcd: EtcdServer
let store: EtcdStore
let runs = 0
beforeAll(async () => {
  etcd = await startEtcd()
  store = createEtcdStore({ endpoints: etcd.endpoints })
})
afterAll(async () => {
  await store?.close()
  await etcd?.cleanup()
})

const fresh = () => `resume-${process.pid}-${++runs}/`
const put = async (key: string, value: string): Promise<Revision> => {
  await firstValueFrom(store.put(key, text.encode(value)))
  const item = await firstValueFrom(store.get(key))
  if (item === undefined) throw new Error(`${key} vanished`)
  return item.revision
}
/** The first `n` events of a watch after `after`. */
const firstEvents = (prefix: string, after: Revision, n: number) =>
  firstValueFrom(
    store.watch([prefix], { after }).pipe(take(n), toArray(), timeout({ first: 30_000 })),
  )
const describeEvents = (events: StoreEvent<Uint8Array>[]) =>
  events.map((event) =>
    event.type === 'snapshot'
      ? `S(${event.cause}) ${event.items.map((i) => `${i.key}=${text.decode(i.value)}`).join(' ')}`
      : `C ${event.changes.map((c) => `${c.key}=${c.op === 'put' ? text.decode(c.value) : 'x'}`).join(' ')}`,
  )

describe('etcd watch after a revision', () => {
  it('emits only the commits after it, with no Range call', async () => {
    const p = fresh()
    const after = await put(`${p}a`, '1')
    await put(`${p}a`, '2')
    await put(`${p}b`, '3')
    const ranges = await rangeCalls(etcd.clientUrl)
    const events = await firstEvents(p, after, 2)
    expect(describeEvents(events)).toEqual([`C ${p}a=2`, `C ${p}b=3`])
    expect(events[0]?.revision).toBe(revision(after + 1n))
    expect(await rangeCalls(etcd.clientUrl)).toBe(ranges)
  })

  it('starts with a snapshot (startup) when the history after it was compacted', async () => {
    const p = fresh()
    const after = await put(`${p}a`, '1')
    await put(`${p}a`, '2')
    const last = await put(`${p}b`, '3')
    await firstValueFrom(store.compact(last))
    const [first] = await firstEvents(p, after, 1)
    expect(describeEvents(first ? [first] : [])).toEqual([`S(startup) ${p}a=2 ${p}b=3`])
  })

  it('starts with a snapshot when etcd is behind it (its data is not where the revision came from)', async () => {
    const p = fresh()
    const current = await put(`${p}a`, '1')
    const events = new ReplaySubject<StoreEvent<Uint8Array>>()
    const watching = store.watch([p], { after: revision(current + 1_000n) }).subscribe(events)
    try {
      const first = await firstValueFrom(events.pipe(timeout({ first: 30_000 })))
      expect(describeEvents([first])).toEqual([`S(startup) ${p}a=1`])
      // Then the watch follows the real revisions.
      await put(`${p}a`, '2')
      const [, next] = await firstValueFrom(events.pipe(take(2), toArray(), timeout(30_000)))
      expect(describeEvents(next ? [next] : [])).toEqual([`C ${p}a=2`])
    } finally {
      watching.unsubscribe()
    }
  })
})
