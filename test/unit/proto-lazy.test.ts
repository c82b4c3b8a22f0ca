import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'
import { ReplaySubject, filter, firstValueFrom, lastValueFrom, skip, take, timeout } from 'rxjs'
import { afterEach, describe, expect, it } from 'vitest'
import {
  CodecError,
  createDatasync,
  createMemoryStore,
  json,
  withCodec,
  type Change,
  type Codec,
  type Consumer,
  type ConsumerEvent,
  type Datasync,
  type DatasyncError,
  type KvStore,
} from 'rx-datasync'
import { protoCodec } from 'rx-datasync/proto'
import { createFaultStore, recordConsumer } from 'rx-datasync/testing'

const fixture = (name: string) =>
  fileURLToPath(new URL(`../fixtures/proto/${name}`, import.meta.url))
const root = protobuf.loadSync([fixture('types.proto'), fixture('other.proto')])

interface Point {
  x?: number
  y?: number
}
const point = protoCodec<Point>(root.lookupType('fixture.types.v1.Point'))
const iface = protoCodec(root.lookupType('fixture.other.v1.Interface'))
/** Bytes of another message type: they do not decode as a Point. */
const WRONG = iface.encode({ name: 'eth0', mtu: 1500, enabled: true })

/** Wraps a codec and counts its decodes. */
function counting<T>(codec: Codec<T>): Codec<T> & { decodes: number } {
  const counted = {
    name: codec.name,
    decodes: 0,
    encode: (value: T) => codec.encode(value),
    decode: (raw: Uint8Array) => {
      counted.decodes++
      return codec.decode(raw)
    },
  }
  return counted
}

/** A consumer's events, acknowledged at once, awaitable one by one. */
function follow<T>(consumer: Consumer<T>) {
  const events = new ReplaySubject<ConsumerEvent<T>>()
  consumer.events$.subscribe((event) => {
    events.next(event)
    event.done()
  })
  let seen = 0
  const next = () => firstValueFrom(events.pipe(skip(seen++), take(1), timeout({ first: 10_000 })))
  return {
    resync: async () => {
      const event = await next()
      if (event.kind !== 'resync') throw new Error(`expected a resync, got ${event.kind}`)
      return event
    },
    change: async () => {
      const event = await next()
      if (event.kind !== 'change') throw new Error(`expected a change, got ${event.kind}`)
      return event
    },
  }
}

function thrown(read: () => unknown): unknown {
  try {
    read()
  } catch (error) {
    return error
  }
  throw new Error('the read did not throw')
}

const running: Datasync<Uint8Array>[] = []
function sync(store: KvStore) {
  const instance = createDatasync(store, { ackTimeout: '10s' })
  running.push(instance)
  const errors: DatasyncError[] = []
  instance.errors$.subscribe((error) => errors.push(error))
  return { sync: instance, errors }
}
afterEach(() => {
  for (const instance of running.splice(0)) instance.close()
})

const put = (store: KvStore, key: string, value: Uint8Array) =>
  lastValueFrom(store.put(key, value), { defaultValue: undefined })

function only<T>(changes: readonly Change<T>[]): Change<T> {
  expect(changes).toHaveLength(1)
  return changes[0]!
}

describe("consumer option decode: 'lazy'", () => {
  it('decodes nothing at delivery; a read decodes once, shared by the view and later prev values', async () => {
    const initial: Record<string, Uint8Array> = {}
    for (let i = 0; i < 1000; i++)
      initial[`pts/${String(i).padStart(4, '0')}`] = point.encode({ x: i })
    const store = createMemoryStore({ initial })
    const codec = counting(point)
    const { sync: s } = sync(store)
    const consumer = s.register('lazy', { prefixes: ['pts/'], codec, decode: 'lazy' })
    const events = follow(consumer)
    s.start()

    const resync = await events.resync()
    expect(resync.items).toHaveLength(1000)
    expect(codec.decodes).toBe(0)

    const item = resync.items[7]!
    const value = item.value
    expect(value.x).toBe(7)
    expect(item.value).toBe(value)
    expect(consumer.view().get('pts/0007')?.value).toBe(value)
    expect(codec.decodes).toBe(1)

    await put(store, 'pts/0007', point.encode({ x: 70 }))
    const update = only((await events.change()).changes)
    expect(codec.decodes).toBe(1)
    expect(update.prev).toBe(value)
    expect(update.op === 'put' && update.value.x).toBe(70)
    expect(update.op === 'put' && update.value).toBe(consumer.view().get('pts/0007')?.value)
    expect(codec.decodes).toBe(2)

    await lastValueFrom(store.delete('pts/0007'))
    const removal = only((await events.change()).changes)
    expect(removal).toMatchObject({ op: 'delete', key: 'pts/0007', prev: { x: 70 } })
    expect(codec.decodes).toBe(2)
  })

  it('decodes per consumer: each has its own values; an eager consumer decodes everything', async () => {
    const store = createMemoryStore({
      initial: { 'pts/a': point.encode({ x: 1 }), 'pts/b': point.encode({ x: 2 }) },
    })
    const codecs = { one: counting(point), two: counting(point), eager: counting(point) }
    const { sync: s } = sync(store)
    const one = follow(s.register('one', { prefixes: ['pts/'], codec: codecs.one, decode: 'lazy' }))
    const two = follow(
      s.register('two', { prefixes: ['pts/a'], codec: codecs.two, decode: 'lazy' }),
    )
    const eager = follow(s.register('eager', { prefixes: ['pts/'], codec: codecs.eager }))
    s.start()
    const [r1, r2, r3] = [await one.resync(), await two.resync(), await eager.resync()]
    expect(r3.items.map((item) => item.value)).toEqual([{ x: 1 }, { x: 2 }])
    expect(codecs.eager.decodes).toBe(2)
    expect(codecs.one.decodes + codecs.two.decodes).toBe(0)
    expect(r1.items[0]!.value).not.toBe(r2.items[0]!.value)
    expect(r1.items[0]!.value).toEqual(r2.items[0]!.value)
    expect([codecs.one.decodes, codecs.two.decodes]).toEqual([1, 1])
  })

  it('spreading, JSON and deep equality read lazy values like plain ones', async () => {
    const store = createMemoryStore({ initial: { 'pts/a': point.encode({ x: 1, y: 2 }) } })
    const codec = counting(point)
    const { sync: s } = sync(store)
    const events = follow(s.register('lazy', { prefixes: ['pts/'], codec, decode: 'lazy' }))
    s.start()
    const [item] = (await events.resync()).items
    expect(Object.keys(item!)).toEqual(['key', 'value', 'revision'])
    expect({ ...item }.value).toEqual({ x: 1, y: 2 })
    expect(JSON.parse(JSON.stringify({ key: item!.key, value: item!.value }))).toEqual({
      key: 'pts/a',
      value: { x: 1, y: 2 },
    })
    expect(item).toEqual({ key: 'pts/a', value: { x: 1, y: 2 }, revision: item!.revision })
    expect(codec.decodes).toBe(1)
  })

  it('delivers an undecodable value; each read throws its CodecError, reported once', async () => {
    const store = createMemoryStore({
      initial: { 'pts/bad': WRONG, 'pts/good': point.encode({ x: 1 }) },
    })
    const { sync: s, errors } = sync(store)
    const lazy = s.register('lazy', { prefixes: ['pts/'], codec: point, decode: 'lazy' })
    const events = follow(lazy)
    s.start()

    const resync = await events.resync()
    expect(resync.items.map((item) => item.key)).toEqual(['pts/bad', 'pts/good'])
    expect(errors).toEqual([])

    const error = thrown(() => resync.items[0]!.value)
    if (!(error instanceof CodecError)) throw error
    expect(error.key).toBe('pts/bad')
    expect(error.consumer).toBe('lazy')
    expect(error.codec).toBe('proto:fixture.types.v1.Point')
    // (The part after the key may name the store too.)
    expect(error.message).toMatch(
      /^key 'pts\/bad'[^:]*: the proto:fixture\.types\.v1\.Point codec failed for consumer 'lazy': not a valid fixture\.types\.v1\.Point \(binary\): x \(field 1, int32\) came as length-delimited/,
    )
    expect(thrown(() => resync.items[0]!.value)).toBe(error)
    expect(thrown(() => lazy.view().get('pts/bad')?.value)).toBe(error)
    expect(resync.items[1]!.value).toEqual({ x: 1 })
    expect(errors).toEqual([error])

    // No last good value in lazy mode: the next change's prev is what the consumer was given.
    await put(store, 'pts/bad', point.encode({ x: 2 }))
    const fixed = only((await events.change()).changes)
    expect(fixed.op === 'put' && fixed.value).toEqual({ x: 2 })
    expect(thrown(() => fixed.prev)).toBe(error)
    expect(lazy.view().get('pts/bad')?.value).toEqual({ x: 2 })
    expect(errors).toEqual([error])
  })

  it('while an eager consumer of the same data leaves the value out and keeps the last good one', async () => {
    const store = createMemoryStore({ initial: { 'pts/a': point.encode({ x: 1 }) } })
    const { sync: s, errors } = sync(store)
    const eager = s.register('eager', { prefixes: ['pts/'], codec: point })
    const events = follow(eager)
    s.start()
    expect((await events.resync()).items).toHaveLength(1)
    const next = firstValueFrom(s.errors$.pipe(filter((e) => e instanceof CodecError)))
    await put(store, 'pts/a', WRONG)
    expect((await next).message).toContain("key 'pts/a'")
    expect(eager.view().get('pts/a')?.value).toEqual({ x: 1 })
    expect(errors).toHaveLength(1)
  })

  it('does not decode again a value it holds when a resync brings the same bytes', async () => {
    const store = createMemoryStore({
      initial: { 'pts/a': point.encode({ x: 1 }), 'pts/b': point.encode({ x: 2 }) },
    })
    const codec = counting(point)
    const { sync: s } = sync(store)
    const events = follow(s.register('lazy', { prefixes: ['pts/'], codec, decode: 'lazy' }))
    s.start()
    const first = await events.resync()
    const a = first.items[0]!.value
    expect(codec.decodes).toBe(1)

    await put(store, 'pts/b', point.encode({ x: 3 }))
    await events.change()
    s.resync()
    const second = await events.resync()
    expect(second.reason).toBe('manual')
    expect(second.items[0]!.value).toBe(a)
    expect(second.items[1]!.value).toEqual({ x: 3 })
    expect(codec.decodes).toBe(2)
  })

  it('after a gap, the differences carry the held values as prev, deletes included (P4, P2)', async () => {
    const faulty = createFaultStore({
      initial: { 'pts/a': point.encode({ x: 1 }), 'pts/b': point.encode({ x: 2 }) },
    })
    const codec = counting(point)
    const { sync: s } = sync(faulty)
    const events = follow(s.register('lazy', { prefixes: ['pts/'], codec, decode: 'lazy' }))
    s.start()
    const a = (await events.resync()).items[0]!.value

    faulty.disconnect()
    await put(faulty.inner, 'pts/a', point.encode({ x: 10 }))
    await lastValueFrom(faulty.inner.delete('pts/b'))
    faulty.reconnect()

    const gap = await events.change()
    expect(gap.reason).toBe('reconnect')
    expect(codec.decodes).toBe(1)
    const [putA, deleteB] = gap.changes
    expect(putA?.prev).toBe(a)
    expect(putA).toMatchObject({ op: 'put', key: 'pts/a', value: { x: 10 } })
    expect(deleteB).toMatchObject({ op: 'delete', key: 'pts/b', prev: { x: 2 } })
    expect(codec.decodes).toBe(3)
    await faulty.close()
  })

  it('keeps every promise of a consumer under coalescing: the recorder sees no violation', async () => {
    type N = { readonly n: number }
    const codec = json<N>()
    const store = createMemoryStore()
    const { sync: s } = sync(store)
    const recorder = recordConsumer(
      s.register('lazy', { prefixes: ['k/'], codec, decode: 'lazy', maxInFlight: 1 }),
      { ackDelay: (event) => (event.kind === 'change' ? 2 : 0) },
    )
    s.start()
    await recorder.until(() => recorder.events.length > 0)
    for (let i = 0; i < 200; i++) {
      const key = `k/${i % 7}`
      if (i % 11 === 10) await lastValueFrom(store.delete(key))
      else await put(store, key, codec.encode({ n: i }))
    }
    const listing = await lastValueFrom(withCodec(store, codec).list('k/'))
    await recorder.untilEquals(listing, '20s')
    expect(recorder.violations).toEqual([])
    recorder.stop()
  })

  it('refuses a decode mode it does not know', () => {
    const { sync: s } = sync(createMemoryStore())
    expect(() => s.register('x', { prefixes: ['a/'], decode: 'sometimes' as 'lazy' })).toThrow(
      new TypeError(`register 'x': decode: expected 'eager' or 'lazy', got "sometimes"`),
    )
  })
})
