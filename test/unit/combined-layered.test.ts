/**
 * Layered precedence, checked against a model computed here independently: one plain Map per
 * layer, and for each key the value of the highest layer that holds it. While the lowest layer's
 * connection is cut, the model keeps that layer as the store last saw it; on reconnection it
 * takes the layer's real content (the relist), and what readers see changes only where the
 * visible value changed.
 */
import { describe, expect, it } from 'vitest'
import {
  ZERO_REVISION,
  createDatasync,
  createLayeredStore,
  createMemoryStore,
  type Change,
  type StoreEvent,
} from '../../src/index.js'
import { createFaultStore, recordConsumer, type ConsumerRecorder } from '../../src/testing/index.js'
import { Random, runSeed } from '../conformance/random.js'
import { record, run } from './support.js'

/** A change as `put k prev>value` or `delete k prev`, for comparing lists. */
function describeChange(change: Change<string>): string {
  return change.op === 'put'
    ? `put ${change.key} ${change.prev ?? '-'}>${change.value}`
    : `delete ${change.key} ${change.prev ?? '-'}`
}

/** The value of each key in the highest layer that holds it. */
function visible(layers: readonly ReadonlyMap<string, string>[]): Map<string, string> {
  const out = new Map<string, string>()
  for (const layer of layers) for (const [key, value] of layer) out.set(key, value)
  return out
}

/** What a reader sees change from `before` to `after`, by key. */
function differences(before: Map<string, string>, after: Map<string, string>): string[] {
  const keys = [...new Set([...before.keys(), ...after.keys()])].sort()
  return keys.flatMap((key) => {
    const was = before.get(key)
    const is = after.get(key)
    if (was === is) return []
    if (is === undefined) return [`delete ${key} ${was}`]
    return [`put ${key} ${was ?? '-'}>${is}`]
  })
}

function changesOf(events: readonly StoreEvent<string>[]): string[][] {
  return events.flatMap((event) =>
    event.type === 'changes' ? [event.changes.map(describeChange)] : [],
  )
}

function consumerChanges(recorder: ConsumerRecorder<string>): string[] {
  return recorder.events.flatMap((event) =>
    event.kind === 'change' ? event.changes.map(describeChange) : [],
  )
}

describe('layered store: precedence', () => {
  it('a key in two layers, deleted from the top, changed below while hidden, and a relist of the lower layer', async () => {
    const bottom = createFaultStore<string>({ initial: { k: 'b1', 'only/bottom': 'ob' } })
    const top = createMemoryStore<string>({ initial: { k: 't1' } })
    const store = createLayeredStore([
      { name: 'files', store: bottom },
      { name: 'local', store: top },
    ])
    const sync = createDatasync(store)
    const reader = recordConsumer(sync.register('reader', { prefixes: [''] }))
    sync.start()
    await reader.until((state) => state.size === 2)
    expect(reader.state).toEqual(
      new Map([
        ['k', 't1'],
        ['only/bottom', 'ob'],
      ]),
    )

    run(top.delete('k')) // reveals the lower value: a put for the reader
    run(bottom.inner.put('k', 'b2')) // visible now
    run(top.put('k', 't2')) // hides it again
    run(bottom.inner.put('k', 'b3')) // hidden: no change for the reader
    run(top.delete('k')) // reveals b3
    bottom.disconnect()
    run(bottom.inner.delete('only/bottom'))
    run(bottom.inner.put('k', 'b4'))
    run(bottom.inner.put('n', '1'))
    run(top.put('t', 'during')) // the top layer keeps flowing
    bottom.reconnect() // the lower layer relists: only its differences
    await reader.until((state) => state.get('n') === '1')

    expect(consumerChanges(reader)).toEqual([
      'put k t1>b1',
      'put k b1>b2',
      'put k b2>t2',
      'put k t2>b3',
      'put t ->during',
      'put k b3>b4',
      'put n ->1',
      'delete only/bottom ob',
    ])
    expect(reader.violations).toEqual([])
    expect(run(store.get('k'))?.value).toBe('b4')
    sync.close()
    await store.close()
  })

  it('writes go to the writeTo layer; deleting there reveals the lower value', () => {
    const defaults = createMemoryStore<string>({ initial: { mtu: '1500' } })
    const local = createMemoryStore<string>()
    const live = createMemoryStore<string>()
    const store = createLayeredStore(
      [
        { name: 'defaults', store: defaults },
        { name: 'local', store: local },
        { name: 'live', store: live },
      ],
      { writeTo: 'local' },
    )
    const watched = record(store.watch(['']))
    run(store.put('mtu', '9000'))
    expect(run(local.get('mtu'))?.value).toBe('9000')
    run(live.put('mtu', '1400')) // a higher layer than writeTo hides the write
    run(store.delete('mtu')) // deletes local's value: still hidden by live
    run(live.delete('mtu'))
    expect(changesOf(watched.values)).toEqual([
      ['put mtu 1500>9000'],
      ['put mtu 9000>1400'],
      ['put mtu 1400>1500'],
    ])
    expect(() => createLayeredStore([defaults, local], { writeTo: 'nowhere' })).toThrow(
      /writeTo: expected the name of a layer \('memory', 'memory#2'\)/,
    )
  })

  it('random writes in three layers and outages of the lowest: the watch and every consumer see what the model says', async () => {
    const seed = runSeed()
    const random = new Random(seed)
    const bottom = createFaultStore<string>()
    const layers = [bottom.inner, createMemoryStore<string>(), createMemoryStore<string>()]
    const store = createLayeredStore([bottom, layers[1]!, layers[2]!])
    const watched = record(store.watch(['']))
    const sync = createDatasync(store)
    const all = recordConsumer(sync.register('all', { prefixes: [''] }))
    const some = recordConsumer(sync.register('some', { prefixes: ['a/'] }))
    sync.start()
    await all.until(() => all.events.length > 0)

    // The model: each layer's content, and the lowest one as the store last saw it.
    const real = [new Map<string, string>(), new Map<string, string>(), new Map<string, string>()]
    let seenBottom = new Map<string, string>()
    let cut = false
    const seen = () => visible([seenBottom, real[1]!, real[2]!])
    const expected: string[][] = []
    const keys = ['a/1', 'a/2', 'a/3', 'b/1', 'b/2']
    for (let i = 0; i < 300; i++) {
      const before = seen()
      const roll = random.next()
      if (roll < 0.08) {
        if (cut) bottom.reconnect()
        else bottom.disconnect()
        cut = !cut
        if (!cut) seenBottom = new Map(real[0])
      } else {
        const layer = random.int(3)
        const key = random.pick(keys)
        if (roll < 0.65) {
          run(layers[layer]!.put(key, `v${i}`))
          real[layer]!.set(key, `v${i}`)
        } else {
          run(layers[layer]!.delete(key))
          real[layer]!.delete(key)
        }
        if (layer === 0 && !cut) seenBottom = new Map(real[0])
      }
      const diff = differences(before, seen())
      if (diff.length > 0) expected.push(diff)
    }
    if (cut) {
      const before = seen()
      bottom.reconnect()
      seenBottom = new Map(real[0])
      const diff = differences(before, seen())
      if (diff.length > 0) expected.push(diff)
    }
    const final = visible(real)
    const label = `seed=${seed} (replay with CONFORMANCE_SEED=${seed})`
    expect(changesOf(watched.values), label).toEqual(expected)
    const items = (prefix: string) =>
      [...final]
        .filter(([key]) => key.startsWith(prefix))
        .map(([key, value]) => ({ key, value, revision: ZERO_REVISION }))
    await all.untilEquals(items(''))
    await some.untilEquals(items('a/'))
    expect(consumerChanges(all), label).toEqual(expected.flat())
    expect(consumerChanges(some), label).toEqual(
      expected.flat().filter((change) => change.split(' ')[1]?.startsWith('a/')),
    )
    expect(all.violations, label).toEqual([])
    expect(some.violations, label).toEqual([])
    sync.close()
    await store.close()
  })
})
