// ConsumerView keeps a resync's items as given and makes its map only when something reads the
// view (or the round ends: settle). Each test runs the same steps twice, settling the view right
// after each resync and leaving it as given, and expects the same events: prev values (P2), last
// good values (P6), fingerprints, cells kept, the diff after a restore.
import { describe, expect, it } from 'vitest'
import type { Codec } from '../../src/core/codec.js'
import type { CodecError } from '../../src/core/errors.js'
import type { Change, KeyValue } from '../../src/core/events.js'
import { json } from '../../src/core/codec.js'
import { ConsumerView } from '../../src/sync/consumer-view.js'
import { r, upperCodec } from './support.js'

const item = <R>(key: string, value: R, at: number): KeyValue<R> => ({
  key,
  value,
  revision: r(at),
})
const under = (key: string) => key.startsWith('k/')

/** A change as a label: `put k/1 A>B @3` (x: no prev or no value). Reads lazy getters. */
function show<T>(change: Change<T>): string {
  const value = change.op === 'put' ? String(change.value) : 'x'
  const prev = 'prev' in change ? String(change.prev) : 'x'
  return `${change.op} ${change.key} ${prev}>${value} @${change.revision}`
}
const items = <T>(list: readonly KeyValue<T>[]) =>
  list.map((kv) => `${kv.key}=${String(kv.value)}@${kv.revision}`)

function view<R, T>(codec: Codec<T, R>, decode: 'eager' | 'lazy') {
  const reported: CodecError[] = []
  const consumer = new ConsumerView<R, T>({
    name: 'c',
    codec,
    decode,
    report: (error) => reported.push(error),
    storeName: 'test',
  })
  return { consumer, reported }
}

/** Runs `steps` on a view settled after each resync and on one left as given: both must agree. */
function both<R, T>(
  make: () => { consumer: ConsumerView<R, T>; reported: CodecError[] },
  steps: (resync: (list: KeyValue<R>[]) => string[], c: ConsumerView<R, T>) => unknown,
): { result: unknown; reported: number } {
  const outcomes = [true, false].map((settle) => {
    const { consumer, reported } = make()
    const resync = (list: KeyValue<R>[]) => {
      const out = items(consumer.replace(list, under))
      if (settle) consumer.settle()
      return out
    }
    return { result: steps(resync, consumer), reported: reported.length }
  })
  expect(outcomes[1]).toEqual(outcomes[0])
  return outcomes[0] as { result: unknown; reported: number }
}

describe('ConsumerView: a resync kept as given until the view is read', () => {
  for (const decode of ['eager', 'lazy'] as const) {
    it(`${decode}: changes after a resync carry the prev values given by the resync (P2)`, () => {
      const { result } = both(
        () => view(upperCodec('upper'), decode),
        (resync, c) => [
          resync([item('k/1', 'a', 1), item('k/2', 'b', 2), item('x/1', 'no', 3)]),
          [c.holdsKey('k/1'), c.holdsKey('x/1'), c.keysUnder('k/')],
          [
            c.apply({ op: 'put', key: 'k/1', value: 'c', revision: r(4) }),
            c.apply({ op: 'delete', key: 'k/2', revision: r(5) }),
            c.apply({ op: 'delete', key: 'k/9', revision: r(6) }),
          ].map((change) => (change ? show(change) : 'none')),
          [...c.snapshot().values()].map((kv) => `${kv.key}=${kv.value}`),
        ],
      )
      expect(result).toEqual([
        ['k/1=A@1', 'k/2=B@2'],
        [true, false, ['k/1', 'k/2']],
        ['put k/1 A>C @4', 'delete k/2 B>x @5', 'none'],
        ['k/1=C'],
      ])
    })

    it(`${decode}: the diff after a resync (a restore, then the store) sends only what differs`, () => {
      const { result } = both(
        () => view(upperCodec('upper'), decode),
        (resync, c) => [
          resync([item('k/1', 'a', 1), item('k/2', 'b', 2), item('k/3', 'c', 3)]),
          c
            .diff([item('k/1', 'a', 1), item('k/2', 'B2', 7), item('k/4', 'd', 7)], r(7), under)
            .map(show),
        ],
      )
      expect(result).toEqual([
        ['k/1=A@1', 'k/2=B@2', 'k/3=C@3'],
        ['put k/2 B>B2 @7', 'put k/4 x>D @7', 'delete k/3 C>x @7'],
      ])
    })
  }

  it('eager: a resync over one still as given keeps the last good values (P6)', () => {
    const { result, reported } = both(
      () => view(upperCodec('upper'), 'eager'),
      (resync, c) => {
        const first = resync([item('k/1', 'a', 1), item('k/2', 'b', 2)])
        const second = resync([item('k/1', 'bad', 3), item('k/2', 'b', 2), item('k/3', 'bad', 3)])
        const held = [c.holdsKey('k/3'), c.holdsAt('k/1', r(5), 'a'), c.holdsAt('k/1', r(5), 'bad')]
        const kept = items([...c.snapshot().values()])
        const next = c.apply({ op: 'put', key: 'k/1', value: 'e', revision: r(4) })
        return [first, second, held, kept, next && show(next)]
      },
    )
    expect(result).toEqual([
      ['k/1=A@1', 'k/2=B@2'],
      ['k/1=A@1', 'k/2=B@2'],
      [false, true, false],
      ['k/1=A@1', 'k/2=B@2'],
      'put k/1 A>E @4',
    ])
    expect(reported).toBe(2)
  })

  it('lazy: a value the consumer holds keeps its cell across resyncs, as given or not', () => {
    const codec = upperCodec('upper')
    both(
      () => view(codec, 'lazy'),
      (resync) => {
        codec.decoded.length = 0
        const first = resync([item('k/1', 'a', 1), item('k/2', 'b', 2)])
        const second = resync([item('k/1', 'a', 1), item('k/2', 'c', 3)])
        return [first, second, [...codec.decoded]]
      },
    )
    // Read once each: the second resync's k/1 is the first one's cell, decoded once.
    expect(codec.decoded.filter((raw) => raw === 'a')).toHaveLength(1)
  })

  it('eager bytes: the fingerprints made from the items given tell the same values apart', () => {
    const encode = (value: unknown) => new TextEncoder().encode(JSON.stringify(value))
    const { result } = both(
      () => view(json<{ n: number }>(), 'eager'),
      (resync, c) => [
        resync([item('k/1', encode({ n: 1 }), 1), item('k/2', encode({ n: 2 }), 2)]).length,
        c.holdsAt('k/1', r(9), encode({ n: 1 })),
        c.holdsAt('k/1', r(9), encode({ n: 5 })),
        c.holdsAt('k/2', r(2), encode({ n: 5 })),
        c
          .diff([item('k/1', encode({ n: 1 }), 1), item('k/2', encode({ n: 3 }), 4)], r(4), under)
          .map((change) => `${change.key} ${JSON.stringify(change.op === 'put' && change.value)}`),
      ],
    )
    expect(result).toEqual([2, true, false, true, ['k/2 {"n":3}']])
  })

  it('lazy items: value is an own enumerable getter, read once, in the order key, value, revision', () => {
    const codec = upperCodec('upper')
    const { consumer } = view(codec, 'lazy')
    const [first] = consumer.replace([item('k/1', 'a', 1)], under)
    if (first === undefined) throw new Error('no item')
    expect(codec.decoded).toEqual([])
    expect(Object.keys(first)).toEqual(['key', 'value', 'revision'])
    expect(Object.getOwnPropertyDescriptor(first, 'value')).toMatchObject({
      enumerable: true,
      configurable: true,
    })
    expect({ ...first }).toEqual({ key: 'k/1', value: 'A', revision: r(1) })
    expect(JSON.stringify(first, (_, v: unknown) => (typeof v === 'bigint' ? `${v}` : v))).toBe(
      '{"key":"k/1","value":"A","revision":"1"}',
    )
    expect(first).toStrictEqual({ key: 'k/1', value: 'A', revision: r(1) })
    expect(codec.decoded).toEqual(['a'])
  })
})

describe('ConsumerView: lazy changes', () => {
  it('own enumerable getters in the order op, key, value, prev, revision; prev the cell given', () => {
    const codec = upperCodec('upper')
    const { consumer } = view(codec, 'lazy')
    const [given] = consumer.replace([item('k/1', 'a', 1)], under)
    expect(given?.value).toBe('A')
    const put = consumer.apply({ op: 'put', key: 'k/1', value: 'b', revision: r(2) })
    const fresh = consumer.apply({ op: 'put', key: 'k/2', value: 'c', revision: r(3) })
    const gone = consumer.apply({ op: 'delete', key: 'k/2', revision: r(4) })
    expect(codec.decoded).toEqual(['a'])
    expect(put && Object.keys(put)).toEqual(['op', 'key', 'value', 'prev', 'revision'])
    expect(fresh && Object.keys(fresh)).toEqual(['op', 'key', 'value', 'revision'])
    expect(fresh && 'prev' in fresh).toBe(false)
    expect(gone && Object.keys(gone)).toEqual(['op', 'key', 'prev', 'revision'])
    for (const change of [put, fresh, gone]) {
      const descriptor =
        change && Object.getOwnPropertyDescriptor(change, change.op === 'put' ? 'value' : 'prev')
      expect(descriptor).toMatchObject({ enumerable: true, configurable: true })
    }
    expect({ ...put }).toEqual({ op: 'put', key: 'k/1', value: 'B', prev: 'A', revision: r(2) })
    expect(fresh).toStrictEqual({ op: 'put', key: 'k/2', value: 'C', revision: r(3) })
    expect(gone).toStrictEqual({ op: 'delete', key: 'k/2', prev: 'C', revision: r(4) })
    expect(put).toStrictEqual({ op: 'put', key: 'k/1', value: 'B', prev: 'A', revision: r(2) })
    // Each value decoded once: A for the item and the put's prev, C for the put and the delete.
    expect(codec.decoded).toEqual(['a', 'b', 'c'])
  })
})
