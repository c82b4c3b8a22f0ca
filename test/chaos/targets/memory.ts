/**
 * The memory store behind the fault store (`rx-datasync/testing`): the writer is the inner store,
 * so writes made during an outage are exactly what the watchers miss.
 */
import { createFaultStore, type FaultStore } from '../../../src/testing/index.js'
import { hold, readText, type Fault, type Session, type Target } from '../target.js'

export function memoryTarget(): Target {
  let current: FaultStore | undefined
  const store = () => {
    if (current === undefined) throw new Error('no memory session is open')
    return current
  }
  const faults: Fault[] = [
    {
      kind: 'disconnect',
      run: async (_, holdMs) => {
        store().disconnect()
        await hold(holdMs)
        store().reconnect()
      },
    },
    {
      kind: 'broken watch',
      run: (context) => {
        store().breakWatch(context.random.pick(['watch-error', 'compacted', 'index-reset']))
        return Promise.resolve()
      },
    },
    {
      kind: 'slow events',
      run: async (context, holdMs) => {
        store().delayEvents(10 + context.random.int(100))
        await hold(holdMs)
        store().delayEvents(0)
      },
    },
    {
      kind: 'lost events',
      run: async (context, holdMs) => {
        store().dropNextEvents(1 + context.random.int(3))
        await hold(holdMs)
        store().dropNextEvents(0)
        store().breakWatch('watch-error')
      },
    },
  ]
  return {
    name: 'memory',
    faults,
    root: (id) => `${id}/`,
    start: () => Promise.resolve(),
    open: (): Promise<Session> => {
      const faulty = createFaultStore()
      current = faulty
      return Promise.resolve({
        store: faulty,
        writer: faulty.inner,
        read: (prefix) => readText(faulty.inner, prefix),
        close: async () => {
          current = undefined
          await faulty.close()
        },
      })
    },
    heal: () => {
      current?.delayEvents(0)
      current?.dropNextEvents(0)
      current?.reconnect()
      return Promise.resolve()
    },
    stop: () => Promise.resolve(),
  }
}
