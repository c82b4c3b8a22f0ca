import { fileURLToPath } from 'node:url'
import protobuf from 'protobufjs'
import { lastValueFrom, take, toArray } from 'rxjs'
import { describe, expect, it } from 'vitest'
import {
  CodecError,
  bytes,
  createDatasync,
  createMemoryStore,
  withCodec,
  withPrefix,
  type KvStore,
  type StoreEvent,
} from 'rx-datasync'
import { protoCodec } from 'rx-datasync/proto'
import { createFaultStore, recordConsumer } from 'rx-datasync/testing'
import { describeStore } from '../conformance/suite.js'

const fixture = (name: string) =>
  fileURLToPath(new URL(`../fixtures/proto/${name}`, import.meta.url))
const root = protobuf.loadSync([fixture('types.proto'), fixture('other.proto')])

interface Point {
  x?: number
  y?: number
}
const pointType = root.lookupType('fixture.types.v1.Point')
const binary = protoCodec<Point>(pointType)
const jsonForm = protoCodec<Point>(pointType, { form: 'json' })
const WRONG = protoCodec(root.lookupType('fixture.other.v1.Interface')).encode({ name: 'eth0' })

const run = <T>(source: import('rxjs').Observable<T>) => lastValueFrom(source)
const keysOf = (store: KvStore<unknown>) => run(store.listKeys(''))

describe('rx-datasync/proto', () => {
  it('exports exactly the codec factories', async () => {
    const module = (await import('rx-datasync/proto')) as Record<string, unknown>
    expect(Object.keys(module).sort()).toEqual(['loadProtoCodec', 'protoCodec'])
  })
})

describe('withCodec and withPrefix with a protobuf codec', () => {
  it('compose in either order; the prefix keeps its trailing separator', async () => {
    for (const [name, make] of [
      ['codec over prefix', (raw: KvStore) => withCodec(withPrefix(raw, 'app/'), binary)],
      ['prefix over codec', (raw: KvStore) => withPrefix(withCodec(raw, binary), 'app/')],
    ] as const) {
      const raw = createMemoryStore()
      const typed = make(raw)
      await run(typed.put('routes/r1', { x: 1 }))
      await run(typed.txn([{ op: 'put', key: 'routes/r2', value: { y: 2 } }]))
      expect(await keysOf(raw), name).toEqual(['app/routes/r1', 'app/routes/r2'])
      expect(binary.decode((await run(raw.get('app/routes/r1')))!.value), name).toEqual({ x: 1 })
      expect(await keysOf(typed), name).toEqual(['routes/r1', 'routes/r2'])
      expect((await run(typed.get('routes/r2')))?.value, name).toEqual({ y: 2 })
      const [snapshot] = await run(typed.watch(['routes/']).pipe(take(1), toArray()))
      expect(snapshot, name).toMatchObject({
        type: 'snapshot',
        items: [
          { key: 'routes/r1', value: { x: 1 } },
          { key: 'routes/r2', value: { y: 2 } },
        ],
      })
    }
  })

  it('keeps a prefix exactly as given, nested ones included', async () => {
    const raw = createMemoryStore()
    await run(withPrefix(withPrefix(raw, 'a/'), 'b/').put('k', new Uint8Array([1])))
    await run(withPrefix(raw, 'app').put('-x', new Uint8Array([2])))
    expect(await keysOf(raw)).toEqual(['a/b/k', 'app-x'])
    expect(await keysOf(withPrefix(raw, 'a/'))).toEqual(['b/k'])
    expect(await keysOf(withPrefix(raw, 'a/b/'))).toEqual(['k'])
  })

  it('reports a value of the wrong message type with its key, and keeps watching', async () => {
    const raw = createMemoryStore()
    const typed = withCodec(withPrefix(raw, 'app/'), binary)
    const errors: CodecError[] = []
    typed.decodeErrors$.subscribe((error) => errors.push(error))
    const events: StoreEvent<Point>[] = []
    const watching = typed.watch(['pts/']).subscribe((event) => events.push(event))
    await run(raw.put('app/pts/bad', WRONG))
    await run(raw.put('app/pts/good', binary.encode({ x: 3 })))
    expect(errors).toHaveLength(1)
    expect(errors[0]?.key).toBe('pts/bad')
    expect(errors[0]?.message).toMatch(
      /^key 'pts\/bad'[^:]*: the proto:fixture\.types\.v1\.Point codec failed: not a valid fixture\.types\.v1\.Point \(binary\): /,
    )
    expect(events.at(-1)).toMatchObject({
      type: 'changes',
      changes: [{ op: 'put', key: 'pts/good', value: { x: 3 } }],
    })
    expect(watching.closed).toBe(false)
    watching.unsubscribe()
  })

  it('lets the form be chosen per store or per consumer', async () => {
    const raw = createMemoryStore({
      initial: { 'app/pts/a': jsonForm.encode({ x: 1, y: 2 }) },
    })
    expect(new TextDecoder().decode((await run(raw.get('app/pts/a')))!.value)).toBe('{"x":1,"y":2}')
    // Per store: the typed view decodes; its consumers take its values as they are.
    const perStore = createDatasync(withCodec(withPrefix(raw, 'app/'), jsonForm))
    const storeConsumer = recordConsumer(perStore.register('a', { prefixes: ['pts/'] }))
    // Per consumer: the orchestrator runs over bytes, the consumer decodes (lazily here).
    const perConsumer = createDatasync(withPrefix(raw, 'app/'))
    const ownCodec = recordConsumer(
      perConsumer.register('b', { prefixes: ['pts/'], codec: jsonForm, decode: 'lazy' }),
    )
    perStore.start()
    perConsumer.start()
    await storeConsumer.until((state) => state.size === 1)
    await ownCodec.until((state) => state.size === 1)
    expect(storeConsumer.state.get('pts/a')).toEqual({ x: 1, y: 2 })
    expect(ownCodec.state.get('pts/a')).toEqual({ x: 1, y: 2 })

    await run(withCodec(raw, jsonForm).put('app/pts/a', { x: 5 }))
    await storeConsumer.until((state) => state.get('pts/a')?.x === 5)
    await ownCodec.until((state) => state.get('pts/a')?.x === 5)
    expect([...storeConsumer.violations, ...ownCodec.violations]).toEqual([])
    perStore.close()
    perConsumer.close()
  })
})

// The whole conformance suite through the views: they keep every promise of the store under them.
describeStore('memory through withCodec(withPrefix(store, "app/"))', () => {
  const store = createMemoryStore()
  const view = withCodec(withPrefix(store, 'app/'), bytes())
  return Promise.resolve({
    store: view,
    writer: withPrefix(store, 'app/'),
    close: () => view.close(),
  })
})

describeStore(
  'memory with faults through withPrefix(withCodec(store), "app/")',
  () => {
    const faulty = createFaultStore()
    return Promise.resolve({
      store: withPrefix(withCodec(faulty, bytes()), 'app/'),
      writer: withPrefix(faulty.inner, 'app/'),
      fault: {
        interrupt: () => {
          faulty.disconnect()
          return Promise.resolve()
        },
        restore: () => {
          faulty.reconnect()
          return Promise.resolve()
        },
      },
      activeWatches: () => faulty.watchSubscriptions,
      close: () => faulty.close(),
    })
  },
  { faults: true },
)
