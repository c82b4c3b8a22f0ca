/**
 * The conformance suite on combined stores over memory stores: routed (keys of every test area
 * split between two sources) and layered (a memory layer over another). One source is a fault
 * store, so the gap tests (P4) run with one source cut while the other keeps going. The writer is
 * a routed store over the same sources (the fault store's inner store in its place), so writes
 * land in the source (or layer) the routes say, whatever the fault.
 */
import {
  createLayeredStore,
  createMemoryStore,
  createRoutedStore,
  type KvStore,
} from '../../src/index.js'
import { createFaultStore, type FaultStore } from '../../src/testing/index.js'
import { describeStore, type StoreFixture } from './suite.js'

/** The keys under the test prefix that go to the second source, in every test area. */
const SPLIT = ['b/', 'k/1', 's/1', 'a/2', 'q/', 'j/2', 'y/1', 'ttl/', 'f/', 'z/']

function faults(faulty: FaultStore): NonNullable<StoreFixture['fault']> {
  return {
    interrupt: () => {
      faulty.disconnect()
      return Promise.resolve()
    },
    restore: () => {
      faulty.reconnect()
      return Promise.resolve()
    },
  }
}

/** A routed store over `first` (the test prefix) and `second` (the keys of `split`). */
function routes(p: string, first: KvStore, second: KvStore, split: readonly string[]) {
  return Object.fromEntries([
    [p, first] as const,
    ...split.map((key) => [p + key, second] as const),
  ])
}

// Keys of every test area split between a fault store and a memory store. Transactions name
// keys in both, so the suite checks that they are refused (as on a Redis Cluster).
describeStore(
  'routed: fault store + memory, keys split',
  (p) => {
    const faulty = createFaultStore()
    const other = createMemoryStore()
    const split = [...SPLIT, 't/b/']
    const store = createRoutedStore(routes(p, faulty, other, split))
    const writer = createRoutedStore(routes(p, faulty.inner, other, split))
    return Promise.resolve({
      store,
      writer,
      fault: faults(faulty),
      activeWatches: () => faulty.watchSubscriptions,
      close: async () => {
        await store.close()
        await writer.close()
      },
    })
  },
  { faults: true, txnAcrossKeys: false },
)

// The same split but for the keys the suite's transactions name (t/, x/, y/ and the broker's x
// and y stay in the first source): transactions run through the routed store, conditions
// included.
describeStore('routed: memory + memory, transactions in one source', (p) => {
  const first = createMemoryStore()
  const second = createMemoryStore()
  const store = createRoutedStore(
    routes(
      p,
      first,
      second,
      SPLIT.filter((key) => key !== 'y/1'),
    ),
  )
  return Promise.resolve({ store, close: () => store.close() })
})

// A memory layer over a fault store. The store's own writes go to the top layer; the writer puts
// the keys of the gap tests and of the suite's transactions (g/, h/, t/, x/, y/) in the bottom
// layer, the rest in the top one.
describeStore(
  'layered: memory over a fault store',
  (p) => {
    const bottom = createFaultStore()
    const top = createMemoryStore()
    const store = createLayeredStore([
      { name: 'bottom', store: bottom },
      { name: 'top', store: top },
    ])
    const writer = createRoutedStore(
      routes(p, top, bottom.inner, ['g/', 'h/', 't/', 'x/', 'y/', 'k/1', 's/1', 'q/']),
    )
    return Promise.resolve({
      store,
      writer,
      fault: faults(bottom),
      activeWatches: () => bottom.watchSubscriptions,
      close: async () => {
        await store.close()
        await writer.close()
      },
    })
  },
  { faults: true },
)
