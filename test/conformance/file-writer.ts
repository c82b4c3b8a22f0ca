import { mkdir, rename, writeFile } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import {
  Observable,
  Subject,
  filter,
  firstValueFrom,
  from,
  startWith,
  take,
  timeout,
  type Subscription,
} from 'rxjs'
import { stringify } from 'yaml'
import type { FileStore } from '../../src/backends/filedb/index.js'
import {
  revision,
  type KvStore,
  type Revision,
  type StoreEvent,
  type TxnOp,
  type TxnResult,
} from '../../src/index.js'

const decoder = new TextDecoder()

/**
 * A writer for the suite over a FileDB store: every put, delete and transaction rewrites the data
 * files (atomically: a dot file renamed over the data file) and resolves once the store serves
 * the result. Keys are spread over a JSON file, a YAML file and a YAML file in a subdirectory.
 * A value whose bytes are canonical JSON is written as `value:`, any other as `text:`.
 *
 * Each write first waits for a watch of the store to have its snapshot, so a write is a change
 * the store sees happen (as a server's write is), not a state already there when it starts.
 */
export function fileWriter(store: FileStore, dir: string): KvStore {
  const model = new Map<string, string>()
  const files = [join(dir, 'a.json'), join(dir, 'b.yaml'), join(dir, 'sub', 'c.yml')]
  const fileOf = (key: string) => {
    let hash = 0
    for (let i = 0; i < key.length; i++) hash = (hash * 31 + key.charCodeAt(i)) >>> 0
    return files[hash % files.length]!
  }
  let temporaries = 0

  const writeData = async (file: string) => {
    const data = [...model]
      .filter(([key]) => fileOf(key) === file)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, text]) =>
        isCanonicalJson(text) ? { key, value: JSON.parse(text) as unknown } : { key, text },
      )
    const content = file.endsWith('.json') ? JSON.stringify({ data }, null, 2) : stringify({ data })
    await mkdir(dirname(file), { recursive: true })
    const temporary = join(dirname(file), `.writer-${++temporaries}.tmp`)
    await writeFile(temporary, content)
    await rename(temporary, file)
  }

  /** Applies `mutate` to the model, rewrites the files it touched, waits for the store. */
  const commit = async (mutate: () => Set<string>): Promise<Revision> => {
    const seen = new Map<string, string>()
    let last: Revision = revision(0)
    let snapshot = false
    const updates = new Subject<void>()
    const watching: Subscription = store.watch(['']).subscribe((event: StoreEvent<Uint8Array>) => {
      last = event.revision
      if (event.type === 'snapshot') {
        snapshot = true
        seen.clear()
        for (const item of event.items) seen.set(item.key, decoder.decode(item.value))
      } else {
        for (const change of event.changes) {
          if (change.op === 'put') seen.set(change.key, decoder.decode(change.value))
          else seen.delete(change.key)
        }
      }
      updates.next()
    })
    const until = (check: () => boolean, what: string) =>
      firstValueFrom(
        updates.pipe(
          startWith(undefined),
          filter(check),
          take(1),
          timeout({
            first: 20_000,
            with: () => {
              throw new Error(`filedb writer: timed out waiting for ${what}`)
            },
          }),
        ),
      )
    try {
      await until(() => snapshot, 'the store snapshot')
      const touched = mutate()
      for (const file of touched) await writeData(file)
      await until(
        () => seen.size === model.size && [...model].every(([key, text]) => seen.get(key) === text),
        'the store to serve the write',
      )
      return last
    } finally {
      watching.unsubscribe()
      updates.complete()
    }
  }

  const done = <T>(work: () => Promise<T>): Observable<T> =>
    new Observable<T>((subscriber) => from(work()).subscribe(subscriber))

  return {
    name: 'filedb-writer',
    capabilities: { ...store.capabilities, write: true },
    status$: store.status$,
    watch: (prefixes) => store.watch(prefixes),
    get: (key) => store.get(key),
    list: (prefix) => store.list(prefix),
    listKeys: (prefix) => store.listKeys(prefix),
    put: (key, value) =>
      done(async () => {
        await commit(() => {
          model.set(key, decoder.decode(value))
          return new Set([fileOf(key)])
        })
      }),
    delete: (key, options) =>
      done(async () => {
        const keys =
          options?.prefix === true
            ? [...model.keys()].filter((k) => k.startsWith(key))
            : model.has(key)
              ? [key]
              : []
        if (keys.length === 0) return { deleted: 0 }
        await commit(() => {
          for (const k of keys) model.delete(k)
          return new Set(keys.map(fileOf))
        })
        return { deleted: keys.length }
      }),
    txn: (ops: readonly TxnOp<Uint8Array>[]): Observable<TxnResult> =>
      done(async () => {
        const at = await commit(() => {
          const touched = new Set<string>()
          for (const op of ops) {
            const keys =
              op.op === 'delete' && op.prefix === true
                ? [...model.keys()].filter((k) => k.startsWith(op.key))
                : [op.key]
            for (const key of keys) {
              if (op.op === 'put') model.set(key, decoder.decode(op.value))
              else model.delete(key)
              touched.add(fileOf(key))
            }
          }
          return touched
        })
        return { succeeded: true, revision: at }
      }),
    close: () => Promise.resolve(),
  }
}

function isCanonicalJson(text: string): boolean {
  try {
    return JSON.stringify(JSON.parse(text)) === text
  } catch {
    return false
  }
}
