import { createMemoryStore } from '../../src/index.js'
import { createFaultStore } from '../../src/testing/index.js'
import { describeStore } from './suite.js'

// The memory store itself.
describeStore('memory', () => {
  const store = createMemoryStore()
  return Promise.resolve({ store, close: () => store.close() })
})

// The memory store behind the fault-injecting store: the writer is the inner store, so writes
// made while the fault store is disconnected are exactly what its watchers miss.
describeStore(
  'memory with faults',
  () => {
    const faulty = createFaultStore()
    return Promise.resolve({
      store: faulty,
      writer: faulty.inner,
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
