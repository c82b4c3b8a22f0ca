/**
 * FileDB: a fresh data directory per schedule, keys spread over a JSON file, a YAML file and a
 * YAML file in a subdirectory. The writer keeps the data as a model and writes the files it
 * touched atomically (a dot file renamed over the data file), one write at a time; the reader is
 * the model. Faults are the ways editors and tools write files: truncate and write in two steps,
 * delete and re-create, a half-written file finished later, a rewrite with the same content.
 * Each finishes well within the store's settle period, so consumers must never see the
 * intermediate states (no delete that no write made).
 */
import { mkdir, mkdtemp, open as openFile, rename, rm, unlink, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { Observable, from } from 'rxjs'
import { stringify } from 'yaml'
import { createFileStore } from '../../../src/backends/filedb/index.js'
import { revision, type KvStore, type TxnOp } from '../../../src/index.js'
import { hold, type Fault, type Target } from '../target.js'

const decoder = new TextDecoder()

/** The files of one schedule, written from a model, one change at a time. */
class Files {
  readonly model = new Map<string, string>()
  readonly files: readonly string[]
  private chain: Promise<unknown> = Promise.resolve()
  private temporaries = 0
  private writes = 0

  constructor(readonly dir: string) {
    this.files = [join(dir, 'a.json'), join(dir, 'b.yaml'), join(dir, 'sub', 'c.yml')]
  }

  fileOf(key: string): string {
    let hash = 0
    for (let i = 0; i < key.length; i++) hash = (hash * 31 + key.charCodeAt(i)) >>> 0
    return this.files[hash % this.files.length]!
  }

  content(file: string): string {
    const data = [...this.model]
      .filter(([key]) => this.fileOf(key) === file)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
      .map(([key, text]) => ({ key, text }))
    return file.endsWith('.json') ? JSON.stringify({ data }, null, 2) : stringify({ data })
  }

  /** Runs `work` after every write before it (the writer and the faults share the files). */
  serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.chain.then(work, work)
    this.chain = next.catch(() => undefined)
    return next
  }

  async replace(file: string): Promise<void> {
    await mkdir(dirname(file), { recursive: true })
    const temporary = join(dirname(file), `.chaos-${++this.temporaries}.tmp`)
    await writeFile(temporary, this.content(file))
    await rename(temporary, file)
  }

  /** Applies `mutate` to the model and rewrites the files it touched. */
  commit(mutate: () => Iterable<string>): Promise<number> {
    return this.serial(async () => {
      const touched = new Set([...mutate()].map((key) => this.fileOf(key)))
      for (const file of touched) await this.replace(file)
      return ++this.writes
    })
  }
}

function writerOf(files: Files, store: KvStore): KvStore {
  const done = <T>(work: () => Promise<T>): Observable<T> =>
    new Observable<T>((subscriber) => from(work()).subscribe(subscriber))
  const under = (prefix: string) => [...files.model.keys()].filter((key) => key.startsWith(prefix))
  return {
    name: 'filedb-chaos-writer',
    capabilities: { ...store.capabilities, write: true, txn: true, atomicPrefixDelete: false },
    status$: store.status$,
    watch: (prefixes) => store.watch(prefixes),
    get: (key) => store.get(key),
    list: (prefix) => store.list(prefix),
    listKeys: (prefix) => store.listKeys(prefix),
    put: (key, value) =>
      done(async () => {
        await files.commit(() => {
          files.model.set(key, decoder.decode(value))
          return [key]
        })
      }),
    delete: (key, options) =>
      done(async () => {
        const keys = options?.prefix === true ? under(key) : files.model.has(key) ? [key] : []
        await files.commit(() => {
          for (const k of keys) files.model.delete(k)
          return keys
        })
        return { deleted: keys.length }
      }),
    txn: (ops: readonly TxnOp<Uint8Array>[], options) =>
      done(async () => {
        const holds = (options?.conditions ?? []).every((condition) =>
          'exists' in condition ? files.model.has(condition.key) === condition.exists : false,
        )
        if (!holds) return { succeeded: false, revision: revision(0) }
        const n = await files.commit(() => {
          const touched: string[] = []
          for (const op of ops) {
            const keys = op.op === 'delete' && op.prefix === true ? under(op.key) : [op.key]
            for (const key of keys) {
              if (op.op === 'put') files.model.set(key, decoder.decode(op.value))
              else files.model.delete(key)
              touched.push(key)
            }
          }
          return touched
        })
        return { succeeded: true, revision: revision(n) }
      }),
    close: () => Promise.resolve(),
  }
}

export function fileDbTarget(): Target {
  let current: Files | undefined
  const files = () => {
    if (current === undefined) throw new Error('no filedb session is open')
    return current
  }
  const quick = (ms: number) => hold(Math.min(ms, 15))
  const faults: Fault[] = [
    {
      kind: 'two-step write',
      run: (context) =>
        files().serial(async () => {
          const file = context.random.pick(files().files)
          await mkdir(dirname(file), { recursive: true })
          const handle = await openFile(file, 'w') // truncated: empty for a moment
          try {
            await quick(context.random.int(15))
            await handle.writeFile(files().content(file))
          } finally {
            await handle.close()
          }
        }),
    },
    {
      kind: 'delete and re-create',
      run: (context) =>
        files().serial(async () => {
          const file = context.random.pick(files().files)
          await unlink(file).catch(() => undefined)
          await quick(context.random.int(15))
          await mkdir(dirname(file), { recursive: true })
          await writeFile(file, files().content(file))
        }),
    },
    {
      kind: 'half-written file',
      run: (context) =>
        files().serial(async () => {
          const file = context.random.pick(files().files)
          const content = files().content(file)
          await mkdir(dirname(file), { recursive: true })
          await writeFile(file, content.slice(0, Math.floor(content.length / 2)))
          await quick(context.random.int(15))
          await writeFile(file, content)
        }),
    },
    {
      kind: 'same-content rewrite',
      run: (context) => files().serial(() => files().replace(context.random.pick(files().files))),
    },
  ]
  return {
    name: 'filedb',
    faults,
    root: (id) => `${id}/`,
    start: () => Promise.resolve(),
    async open() {
      const dir = await mkdtemp(join(tmpdir(), 'chaos-filedb-'))
      const data = join(dir, 'data')
      await mkdir(data)
      const opened = new Files(data)
      current = opened
      const store = createFileStore({ paths: [data] })
      return {
        store,
        writer: writerOf(opened, store),
        read: (prefix) =>
          Promise.resolve(new Map([...opened.model].filter(([key]) => key.startsWith(prefix)))),
        close: async () => {
          current = undefined
          await opened.serial(() => Promise.resolve())
          await store.close()
          await rm(dir, { recursive: true, force: true })
        },
      }
    },
    heal: () => current?.serial(() => Promise.resolve()) ?? Promise.resolve(),
    stop: () => Promise.resolve(),
  }
}
