// The "application" of the persist restart tests, a process of its own: an etcd store, an
// orchestrator that keeps its snapshot in a file, and two consumers. It reports to the parent
// (IPC) every event (as a label), every status, every error and every save, and acknowledges
// every event at once. The parent kills it and starts it again.
import { createDatasync, string } from '../../../src/index.js'
import { createEtcdStore } from '../../../src/backends/etcd/index.js'
import { fileSnapshotPersistence } from '../../../src/snapshot-file/index.js'
import { describeEvent } from '../../../src/testing/index.js'

/** What the parent passes (JSON, first argument). */
export interface AppInput {
  readonly endpoints: readonly string[]
  readonly file: string
  readonly prefixes: Readonly<Record<string, readonly string[]>>
}

/** What the app tells the parent. */
export type AppMessage =
  | {
      readonly type: 'event'
      readonly consumer: string
      readonly label: string
      readonly at: number
    }
  | { readonly type: 'status'; readonly state: string; readonly at: number }
  | { readonly type: 'error'; readonly message: string; readonly name: string }
  | { readonly type: 'persisted'; readonly revision: string; readonly keys: number }

const input = JSON.parse(process.argv[2] ?? '{}') as AppInput
const started = performance.now()
const tell = (message: AppMessage) => process.send?.(message)

const store = createEtcdStore({
  endpoints: input.endpoints,
  allowDelayedStart: true,
  dialTimeout: '2s',
  reconnectInterval: '300ms',
})
const sync = createDatasync(store, {
  persist: { to: fileSnapshotPersistence(input.file), every: '20ms' },
})
for (const [name, prefixes] of Object.entries(input.prefixes)) {
  const consumer = sync.register(name, { prefixes, codec: string() })
  consumer.events$.subscribe((event) => {
    tell({
      type: 'event',
      consumer: name,
      label: describeEvent(event),
      at: performance.now() - started,
    })
    event.done()
  })
}
sync.status$.subscribe((status) => {
  tell({ type: 'status', state: status.state, at: performance.now() - started })
})
sync.errors$.subscribe((error) => {
  tell({ type: 'error', message: error.message, name: error.name })
})
sync.activity$.subscribe((step) => {
  if (step.type === 'persisted') {
    tell({ type: 'persisted', revision: step.revision.toString(), keys: step.keys })
  }
})
sync.start()
process.on('disconnect', () => {
  sync.close()
  void store.close().then(() => process.exit(0))
})
