import { spawn, type ChildProcess } from 'node:child_process'
import {
  chmod,
  mkdir,
  mkdtemp,
  open,
  readFile,
  readdir,
  rename,
  rm,
  symlink,
  writeFile,
} from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { createInterface } from 'node:readline'
import {
  Subject,
  filter,
  firstValueFrom,
  lastValueFrom,
  startWith,
  take,
  timeout,
  type Observable,
} from 'rxjs'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { parse as parseYaml, stringify as toYaml } from 'yaml'
import {
  CapabilityError,
  ClosedError,
  ConfigError,
  UnavailableError,
  createDatasync,
  json,
  type Change,
  type ChangeEvent,
  type Datasync,
  type DatasyncError,
  type KeyValue,
  type StoreEvent,
  type StoreStatus,
} from '../../src/index.js'
import {
  createFileStore,
  loadFileDbConfig,
  type FileStore,
  type FileStoreOptions,
} from '../../src/backends/filedb/index.js'
import { recordConsumer, type ConsumerRecorder } from '../../src/testing/index.js'
import { pollUntil } from '../servers/index.js'

const WAIT = 20_000
const decoder = new TextDecoder()
const text = (value: Uint8Array) => decoder.decode(value)

// ---- helpers ------------------------------------------------------------------------------------

let base: string
const stores: FileStore[] = []
const syncs: Datasync<Uint8Array>[] = []

beforeAll(async () => {
  base = await mkdtemp(join(tmpdir(), 'filedb-it-'))
})

afterEach(async () => {
  for (const sync of syncs.splice(0)) sync.close()
  for (const store of stores.splice(0)) await store.close()
})

afterAll(async () => {
  await rm(base, { recursive: true, force: true })
})

let dirCounter = 0
/** A fresh directory for one test. */
async function freshDir(): Promise<string> {
  const dir = join(base, `t${++dirCounter}`)
  await mkdir(dir, { recursive: true })
  return dir
}

function fileStore(options: FileStoreOptions): FileStore {
  const store = createFileStore(options)
  stores.push(store)
  return store
}

type Entries = Readonly<Record<string, unknown>>

function dataText(file: string, entries: Entries): string {
  const data = Object.entries(entries).map(([key, value]) => ({ key, value }))
  return file.endsWith('.json') ? JSON.stringify({ data }, null, 2) : toYaml({ data })
}

/** Writes a data file in place (truncate, then write). */
async function writeData(file: string, entries: Entries): Promise<void> {
  await mkdir(dirname(file), { recursive: true })
  await writeFile(file, dataText(file, entries))
}

let temporaries = 0
/** Writes a data file as an editor's atomic save does: a temporary file renamed over it. */
async function saveAtomically(file: string, content: string): Promise<void> {
  const temporary = join(dirname(file), `.${++temporaries}.swp`)
  await writeFile(temporary, content)
  await rename(temporary, file)
}

/** A store watch, recorded: its events, the state they build, and a way to wait on them. */
interface WatchLog {
  readonly events: StoreEvent<Uint8Array>[]
  readonly state: Map<string, string>
  /** The watch completed (the store was closed). */
  completed(): boolean
  /** The changes received so far, as `op key prev -> value` lines. */
  changes(from?: number): string[]
  until(check: () => boolean, what: string): Promise<void>
  stop(): void
}

function watchLog(store: FileStore, prefixes: readonly string[] = ['']): WatchLog {
  const events: StoreEvent<Uint8Array>[] = []
  const state = new Map<string, string>()
  const updates = new Subject<void>()
  let completed = false
  const subscription = store.watch(prefixes).subscribe({
    complete: () => {
      completed = true
    },
    next: (event) => {
      events.push(event)
      if (event.type === 'snapshot') {
        state.clear()
        for (const item of event.items) state.set(item.key, text(item.value))
      } else {
        for (const change of event.changes) {
          if (change.op === 'put') state.set(change.key, text(change.value))
          else state.delete(change.key)
        }
      }
      updates.next()
    },
    error: (error: unknown) => {
      updates.error(error)
    },
  })
  return {
    events,
    state,
    completed: () => completed,
    changes: (from = 0) =>
      events
        .slice(from)
        .flatMap((event) => (event.type === 'changes' ? event.changes.map(describeChange) : [])),
    until: (check, what) =>
      waitOn(updates, check, () => `${what}; events: ${JSON.stringify(events.map(describeEvent))}`),
    stop: () => {
      subscription.unsubscribe()
    },
  }
}

function describeChange(change: Change<Uint8Array>): string {
  const prev = change.prev === undefined ? '-' : text(change.prev)
  return change.op === 'put'
    ? `put ${change.key} ${prev} -> ${text(change.value)}`
    : `delete ${change.key} ${prev}`
}

function describeEvent(event: StoreEvent<Uint8Array>): string {
  return event.type === 'snapshot'
    ? `snapshot(${event.cause}) ${event.items.map((item) => `${item.key}=${text(item.value)}`).join(' ')}`
    : `changes ${event.changes.map(describeChange).join(', ')}`
}

function waitOn(updates: Observable<unknown>, check: () => boolean, what: () => string) {
  return firstValueFrom(
    updates.pipe(
      startWith(undefined),
      filter(() => check()),
      take(1),
      timeout({
        first: WAIT,
        with: () => {
          throw new Error(`timed out after ${WAIT} ms waiting for ${what()}`)
        },
      }),
    ),
  ).then(() => undefined)
}

/** Every error a store reports, and a way to wait for one. */
function errorLog(store: FileStore) {
  const errors: DatasyncError[] = []
  const updates = new Subject<void>()
  store.errors$.subscribe((error) => {
    errors.push(error)
    updates.next()
  })
  return {
    errors,
    until: (check: (error: DatasyncError) => boolean, what: string) =>
      waitOn(
        updates,
        () => errors.some(check),
        () => `${what}; errors: ${JSON.stringify(errors.map((e) => e.message))}`,
      ),
  }
}

function statusLog(store: FileStore) {
  const statuses: StoreStatus[] = []
  const updates = new Subject<void>()
  store.status$.subscribe((status) => {
    statuses.push(status)
    updates.next()
  })
  return {
    statuses,
    current: () => statuses.at(-1),
    until: (check: (status: StoreStatus) => boolean, what: string) =>
      waitOn(
        updates,
        () => {
          const now = statuses.at(-1)
          return now !== undefined && check(now)
        },
        () =>
          `${what}; statuses: ${JSON.stringify(statuses.map((s) => [s.state, s.error?.message]))}`,
      ),
  }
}

/**
 * Writes a marker key and waits for the watch to see it. Watch events keep the order of the
 * file-system events (one inotify queue) and batches are applied in order, so once the marker is
 * seen, everything done to the files before it has been applied.
 */
let markers = 0
async function mark(dir: string, log: WatchLog): Promise<void> {
  const value = ++markers
  await saveAtomically(join(dir, 'zz-marker.json'), dataText('m.json', { marker: value }))
  await log.until(() => log.state.get('marker') === String(value), `marker ${value}`)
}

function notMarker(line: string): boolean {
  return !line.startsWith('put marker ')
}

/** The store's listing with values as parsed JSON, for `untilEquals`. */
async function listing(store: FileStore, prefix = ''): Promise<KeyValue<unknown>[]> {
  const items = await lastValueFrom(store.list(prefix))
  return items.map((item) => ({ ...item, value: JSON.parse(text(item.value)) as unknown }))
}

function orchestrate(store: FileStore, ...consumers: [name: string, prefixes: string[]][]) {
  const sync = createDatasync(store, { ackTimeout: '10s' })
  syncs.push(sync)
  const errors: DatasyncError[] = []
  sync.errors$.subscribe((error) => errors.push(error))
  const recorders = consumers.map(([name, prefixes]) =>
    recordConsumer(sync.register(name, { prefixes, codec: json<unknown>() })),
  )
  sync.start()
  const inSync = () =>
    firstValueFrom(
      sync.status$.pipe(
        filter((status) => status.state === 'in-sync'),
        take(1),
        timeout(WAIT),
      ),
    )
  return { sync, recorders, errors, inSync }
}

function changesOf(recorder: ConsumerRecorder<unknown>): ChangeEvent<unknown>[] {
  return recorder.events.filter((event): event is ChangeEvent<unknown> => event.kind === 'change')
}

// ---- tests --------------------------------------------------------------------------------------

describe('filedb: reading and watching', () => {
  it('serves JSON and YAML values as JSON text, and text entries as they are', async () => {
    const dir = await freshDir()
    await writeFile(
      join(dir, 'a.json'),
      JSON.stringify({
        data: [
          { key: 'j/obj', value: { n: 1, list: [true, null] } },
          { key: 'j/str', value: 'hi' },
        ],
      }),
    )
    await writeFile(
      join(dir, 'b.yaml'),
      'data:\n  - key: y/num\n    value: 1.5\n  - key: y/map\n    value: { a: [1, 2] }\n  - key: y/plain\n    text: not json {\n',
    )
    await mkdir(join(dir, 'sub', 'deeper'), { recursive: true })
    await writeFile(join(dir, 'sub', 'deeper', 'c.yml'), 'data: [{ key: y/deep, value: yes }]\n')
    await writeFile(join(dir, 'ignored.txt'), 'data: [{ key: nope, value: 1 }]\n')
    await writeFile(join(dir, '.hidden.json'), '{"data":[{"key":"nope2","value":1}]}')
    const store = fileStore({ paths: [dir] })
    const items = await lastValueFrom(store.list(''))
    expect(items.map((item) => [item.key, text(item.value)])).toEqual([
      ['j/obj', '{"n":1,"list":[true,null]}'],
      ['j/str', '"hi"'],
      ['y/deep', '"yes"'],
      ['y/map', '{"a":[1,2]}'],
      ['y/num', '1.5'],
      ['y/plain', 'not json {'],
    ])
    expect(typeof items[0]!.revision).toBe('bigint')
    expect(await lastValueFrom(store.listKeys('y/'))).toEqual([
      'y/deep',
      'y/map',
      'y/num',
      'y/plain',
    ])
    const got = await lastValueFrom(store.get('j/obj'))
    expect(json<{ n: number }>().decode(got!.value)).toEqual({ n: 1, list: [true, null] })
    expect(await lastValueFrom(store.get('missing'))).toBeUndefined()
  })

  it('reads the files again on each read while no watch runs, and counts a revision per change', async () => {
    const dir = await freshDir()
    const file = join(dir, 'a.json')
    await writeData(file, { k: 1 })
    const store = fileStore({ paths: [dir] })
    const first = await lastValueFrom(store.get('k'))
    await writeData(file, { k: 2 })
    const second = await lastValueFrom(store.get('k'))
    expect(text(second!.value)).toBe('2')
    expect(second!.revision > first!.revision).toBe(true)
    const third = await lastValueFrom(store.get('k'))
    expect(third!.revision).toBe(second!.revision)
  })

  it('starts with a snapshot after the watcher is ready, then diffs per batch with prev values', async () => {
    const dir = await freshDir()
    const file = join(dir, 'a.yaml')
    await writeData(file, { 'k/1': 1, 'k/2': 2, 'other/1': 'x' })
    const store = fileStore({ paths: [dir] })
    const log = watchLog(store, ['k/'])
    await log.until(() => log.events.length > 0, 'the snapshot')
    expect(log.events.map(describeEvent)).toEqual(['snapshot(startup) k/1=1 k/2=2'])
    await writeData(file, { 'k/1': 1, 'k/2': 20, 'k/3': 3, 'other/1': 'y' })
    await log.until(() => log.state.get('k/3') === '3', 'k/3')
    await writeData(file, { 'k/2': 20, 'k/3': 3 })
    await log.until(() => !log.state.has('k/1'), 'k/1 deleted')
    expect(log.changes()).toEqual(['put k/2 2 -> 20', 'put k/3 - -> 3', 'delete k/1 1'])
    const revisions = log.events.map((event) => event.revision)
    expect(revisions).toEqual([...revisions].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)))
  })

  it('an atomic save (temporary file renamed over it, or a backup rename) is one change, not a delete and a put', async () => {
    const dir = await freshDir()
    const file = join(dir, 'a.json')
    await writeData(file, { a: 1, b: 2 })
    const store = fileStore({ paths: [dir] })
    const log = watchLog(store)
    await log.until(() => log.events.length > 0, 'the snapshot')
    await saveAtomically(file, dataText(file, { a: 1, b: 3 }))
    await log.until(() => log.state.get('b') === '3', 'b = 3')
    // Vim's way: the file is renamed to a backup, then written anew.
    await rename(file, `${file}~`)
    await writeData(file, { a: 1, b: 4 })
    await log.until(() => log.state.get('b') === '4', 'b = 4')
    await mark(dir, log)
    expect(log.changes().filter(notMarker)).toEqual(['put b 2 -> 3', 'put b 3 -> 4'])
  })

  it('a single configured file is watched through its directory: atomic saves, delete and re-create', async () => {
    const dir = await freshDir()
    const file = join(dir, 'only.yaml')
    await writeData(file, { s: 1 })
    await writeData(join(dir, 'sibling.json'), { sibling: 1 })
    const store = fileStore({ paths: [file] })
    const log = watchLog(store)
    await log.until(() => log.events.length > 0, 'the snapshot')
    expect(log.events.map(describeEvent)).toEqual(['snapshot(startup) s=1'])
    for (let i = 2; i <= 4; i++) {
      await saveAtomically(file, dataText(file, { s: i }))
      await log.until(() => log.state.get('s') === String(i), `s = ${i}`)
    }
    await rm(file)
    await log.until(() => !log.state.has('s'), 's deleted')
    await writeData(file, { s: 5 })
    await log.until(() => log.state.get('s') === '5', 's = 5')
    await writeData(join(dir, 'sibling.json'), { sibling: 2 })
    await saveAtomically(file, dataText(file, { s: 6 }))
    await log.until(() => log.state.get('s') === '6', 's = 6')
    expect(log.state.has('sibling')).toBe(false)
    expect(log.changes()).toEqual([
      'put s 1 -> 2',
      'put s 2 -> 3',
      'put s 3 -> 4',
      'delete s 4',
      'put s - -> 5',
      'put s 5 -> 6',
    ])
  })

  it('two consumers resync in order and then get the changes with prev values (orchestrator over files)', async () => {
    const dir = await freshDir()
    await writeData(join(dir, 'interfaces.yaml'), {
      'if/eth0': { mtu: 1500 },
      'if/eth1': { mtu: 9000 },
    })
    await writeData(join(dir, 'routes.json'), { 'route/default': { via: '10.0.0.1' } })
    const store = fileStore({ paths: [dir] })
    const { recorders, inSync } = orchestrate(
      store,
      ['interfaces', ['if/']],
      ['routes', ['route/']],
    )
    await inSync()
    const [interfaces, routes] = recorders as [ConsumerRecorder<unknown>, ConsumerRecorder<unknown>]
    expect(interfaces.events[0]?.kind).toBe('resync')
    expect(routes.events[0]?.kind).toBe('resync')
    await writeData(join(dir, 'routes.json'), { 'route/default': { via: '10.0.0.2' } })
    await routes.until(
      (state) => (state.get('route/default') as { via: string } | undefined)?.via === '10.0.0.2',
      WAIT,
    )
    await routes.untilEquals(await listing(store, 'route/'), WAIT)
    const change = changesOf(routes).at(-1)!
    expect(change.changes).toEqual([
      expect.objectContaining({
        op: 'put',
        key: 'route/default',
        prev: { via: '10.0.0.1' },
        value: { via: '10.0.0.2' },
      }),
    ])
    await interfaces.untilEquals(await listing(store, 'if/'), WAIT)
    expect(changesOf(interfaces)).toEqual([])
    expect(interfaces.violations).toEqual([])
    expect(routes.violations).toEqual([])
  })
})

describe('filedb: renames and moves', () => {
  it('a rename storm produces no events for keys that did not change', async () => {
    const dir = await freshDir()
    const names = ['a.json', 'b.json', 'c.yaml', 'd.yml']
    await writeData(join(dir, 'a.json'), { 'r/a1': 1, 'r/a2': 2 })
    await writeData(join(dir, 'p.yaml'), { 'r/p': 'p' })
    await mkdir(join(dir, 'sub'))
    // Long enough that no batch is forced while the storm lasts.
    const store = fileStore({ paths: [dir], maxDelay: '30s' })
    const log = watchLog(store)
    const { recorders, inSync } = orchestrate(store, ['all', ['r/']])
    await log.until(() => log.events.length > 0, 'the snapshot')
    await inSync()
    const before = log.events.length
    // 400 renames: a.json round the names (JSON content under YAML names parses too: JSON is
    // YAML), p.yaml in and out of a subdirectory.
    let at = 'a.json'
    for (let i = 1; i <= 400; i++) {
      const next = names[i % names.length]!
      await rename(join(dir, at), join(dir, next))
      at = next
      if (i % 2 === 1) await rename(join(dir, 'p.yaml'), join(dir, 'sub', 'p.yaml'))
      else await rename(join(dir, 'sub', 'p.yaml'), join(dir, 'p.yaml'))
    }
    await mark(dir, log)
    expect(log.changes(before).filter(notMarker)).toEqual([])
    expect(log.events.slice(before).every((event) => event.type === 'changes')).toBe(true)
    await recorders[0]!.untilEquals(await listing(store, 'r/'), WAIT)
    expect(changesOf(recorders[0]!)).toEqual([])
    expect(recorders[0]!.violations).toEqual([])
  })

  it('a file moved between two watched directories produces no events; moved out and in, deletes and puts', async () => {
    const one = await freshDir()
    const two = await freshDir()
    const outside = await freshDir()
    await writeData(join(one, 'moving.yaml'), { 'm/1': 1, 'm/2': 2 })
    await writeData(join(two, 'stays.json'), { 's/1': 1 })
    const store = fileStore({ paths: [one, two] })
    const log = watchLog(store)
    const { recorders, inSync } = orchestrate(store, ['all', ['']])
    await log.until(() => log.events.length > 0, 'the snapshot')
    await inSync()
    const before = log.events.length
    await rename(join(one, 'moving.yaml'), join(two, 'moving.yaml'))
    await mkdir(join(one, 'deep', 'er'), { recursive: true })
    await rename(join(two, 'moving.yaml'), join(one, 'deep', 'er', 'moved.yaml'))
    await mark(two, log)
    expect(log.changes(before).filter(notMarker)).toEqual([])
    // Out of every watched directory: its keys go; back in: they come back.
    await rename(join(one, 'deep', 'er', 'moved.yaml'), join(outside, 'moved.yaml'))
    await log.until(() => !log.state.has('m/1') && !log.state.has('m/2'), 'm/* deleted')
    await rename(join(outside, 'moved.yaml'), join(two, 'back.yaml'))
    await log.until(() => log.state.get('m/2') === '2', 'm/* back')
    // A whole directory moved in and out.
    await rename(join(one, 'deep'), join(outside, 'deep'))
    await writeData(join(outside, 'deep', 'x.json'), { 'x/1': 1 })
    await rename(join(outside, 'deep'), join(two, 'deep'))
    await log.until(() => log.state.get('x/1') === '1', 'x/1 moved in with its directory')
    expect(log.changes(before).filter(notMarker)).toEqual([
      'delete m/1 1',
      'delete m/2 2',
      'put m/1 - -> 1',
      'put m/2 - -> 2',
      'put x/1 - -> 1',
    ])
    await recorders[0]!.untilEquals(await listing(store), WAIT)
    expect(recorders[0]!.violations).toEqual([])
  })
})

describe('filedb: broken files', () => {
  it('bad YAML keeps the last good keys and reports the file and line; fixing it recovers', async () => {
    const dir = await freshDir()
    const file = join(dir, 'conf.yaml')
    await writeData(file, { 'c/x': 1, 'c/y': 2 })
    const store = fileStore({ paths: [dir] })
    const status = statusLog(store)
    const problems = errorLog(store)
    const { recorders, errors, inSync } = orchestrate(store, ['c', ['c/']])
    const consumer = recorders[0]!
    await inSync()
    expect(status.current()?.state).toBe('ready')
    await writeFile(
      file,
      'data:\n  - key: c/x\n    value: 1\n  - key: c/y\n    value: [2, 3\n  - key: c/z\n    value: 4\n',
    )
    await status.until((s) => s.state === 'degraded', 'degraded')
    const error = status.current()!.error!
    expect(error).toBeInstanceOf(ConfigError)
    expect(error.message).toContain(`${file}:6`)
    expect(error.message).toMatch(/not valid YAML/)
    await problems.until((e) => e.message.includes(`${file}:6`), 'the YAML error on errors$')
    // The orchestrator reports the store's problem too.
    expect(errors.some((e) => e.message.includes(`${file}:6`))).toBe(true)
    // The last good keys stay, for reads and for consumers.
    expect((await listing(store)).map((item) => [item.key, item.value])).toEqual([
      ['c/x', 1],
      ['c/y', 2],
    ])
    expect(Object.fromEntries(consumer.state)).toEqual({ 'c/x': 1, 'c/y': 2 })
    // A structure error names the field and its line.
    await writeFile(file, 'data:\n  - key: c/x\n    value: 1\n  - key: 7\n    value: 2\n')
    await status.until(
      (s) => s.error?.message.includes(`${file}:4: field 'data[1].key'`) === true,
      'the key error',
    )
    await writeData(file, { 'c/x': 1, 'c/y': 3, 'c/z': 4 })
    await status.until((s) => s.state === 'ready', 'ready again')
    await consumer.untilEquals(await listing(store, 'c/'), WAIT)
    expect(changesOf(consumer).flatMap((event) => event.changes)).toEqual([
      expect.objectContaining({ op: 'put', key: 'c/y', prev: 2, value: 3 }),
      expect.objectContaining({ op: 'put', key: 'c/z', value: 4 }),
    ])
    expect(consumer.violations).toEqual([])
  })

  it('bad JSON reports the file and line of the syntax error', async () => {
    const dir = await freshDir()
    const file = join(dir, 'conf.json')
    await writeFile(file, '{\n  "data": [\n    { "key": "a", "value": 1, }\n  ]\n}\n')
    const store = fileStore({ paths: [dir] })
    const status = statusLog(store)
    const log = watchLog(store)
    await log.until(() => log.events.length > 0, 'the snapshot')
    expect(status.current()?.state).toBe('degraded')
    expect(status.current()?.error?.message).toContain(`${file}:3: not valid JSON`)
    await writeFile(file, '{ "data": [ { "key": "a", "value": 1 } ] }')
    await log.until(() => log.state.get('a') === '1', 'a = 1')
    expect(status.current()?.state).toBe('ready')
  })

  it('a half-written file is not taken: the old keys stay until the whole file is there', async () => {
    const dir = await freshDir()
    const file = join(dir, 'big.json')
    const before: Record<string, unknown> = {}
    const after: Record<string, unknown> = {}
    for (let i = 0; i < 200; i++) {
      before[`h/${i}`] = { i, v: 'old' }
      after[`h/${i}`] = { i, v: 'new' }
    }
    await writeData(file, before)
    const store = fileStore({ paths: [dir] })
    const status = statusLog(store)
    const { recorders, inSync } = orchestrate(store, ['h', ['h/']])
    const consumer = recorders[0]!
    await inSync()
    const content = dataText(file, after)
    const half = Math.floor(content.length / 2)
    // Rewritten in place by a slow writer: truncated, half written, then (later) the rest.
    const handle = await open(file, 'w')
    try {
      await handle.write(content.slice(0, half))
      await handle.sync()
      await status.until(
        (s) => s.state === 'degraded' && s.error!.message.includes(file),
        'the half file seen',
      )
      expect(consumer.state.size).toBe(200)
      expect(changesOf(consumer)).toEqual([])
      await handle.write(content.slice(half))
    } finally {
      await handle.close()
    }
    await consumer.until(
      (state) =>
        state.size === 200 &&
        [...state.values()].every((value) => (value as { v: string }).v === 'new'),
      WAIT,
    )
    await consumer.untilEquals(await listing(store, 'h/'), WAIT)
    await status.until((s) => s.state === 'ready', 'ready again')
    const changes = changesOf(consumer).flatMap((event) => event.changes)
    expect(changes).toHaveLength(200)
    expect(
      changes.every((change) => change.op === 'put' && (change.prev as { v: string }).v === 'old'),
    ).toBe(true)
    expect(consumer.violations).toEqual([])
  })

  it('a file that cannot be read (permission denied) keeps its keys, is reported, and recovers', async () => {
    const dir = await freshDir()
    const file = join(dir, 'secret.json')
    await writeData(file, { 'p/1': 1, 'p/2': 2 })
    if (process.getuid?.() === 0) {
      // Root reads a file whatever its mode, so the store runs in a child process as 'nobody'.
      await permissionDeniedAsNobody(dir, file)
      return
    }
    const store = fileStore({ paths: [dir] })
    const status = statusLog(store)
    const log = watchLog(store)
    await log.until(() => log.events.length > 0, 'the snapshot')
    const before = log.events.length
    await chmod(file, 0)
    await writeData(file, { 'p/1': 1, 'p/2': 20 }).catch(() => undefined)
    await status.until((s) => s.state === 'degraded', 'degraded')
    expect(status.current()!.error).toBeInstanceOf(UnavailableError)
    expect(status.current()!.error!.message).toContain(`${file}: cannot read the file (EACCES)`)
    expect(log.state.get('p/1')).toBe('1')
    await chmod(file, 0o644)
    await writeData(file, { 'p/1': 1, 'p/2': 3 })
    await log.until(() => log.state.get('p/2') === '3', 'p/2 = 3')
    await status.until((s) => s.state === 'ready', 'ready')
    expect(log.changes(before)).toEqual(['put p/2 2 -> 3'])
  })

  it('a key in two files comes from the file whose path sorts first, with a warning naming both', async () => {
    const dir = await freshDir()
    await writeData(join(dir, 'a.json'), { dup: 'from a', onlyA: 1 })
    await writeData(join(dir, 'b.yaml'), { dup: 'from b', onlyB: 2 })
    const store = fileStore({ paths: [dir] })
    const problems = errorLog(store)
    const log = watchLog(store)
    await log.until(() => log.events.length > 0, 'the snapshot')
    expect(log.state.get('dup')).toBe('"from a"')
    await problems.until((e) => e.message.includes("key 'dup'"), 'the duplicate warning')
    const warning = problems.errors.find((e) => e.message.includes("key 'dup'"))!
    expect(warning).toBeInstanceOf(ConfigError)
    expect(warning.message).toContain(join(dir, 'a.json'))
    expect(warning.message).toContain(join(dir, 'b.yaml'))
    // The status is not degraded by a duplicate: the data is well defined.
    expect((await firstValueFrom(store.status$)).state).toBe('ready')
    // The winner changes its value: the served value follows; the loser changes: nothing.
    await writeData(join(dir, 'b.yaml'), { dup: 'from b, changed', onlyB: 2 })
    await writeData(join(dir, 'a.json'), { dup: 'from a, changed', onlyA: 1 })
    await log.until(() => log.state.get('dup') === '"from a, changed"', 'a changed')
    // The winner drops the key: the next file's definition takes over, as a put with prev.
    await writeData(join(dir, 'a.json'), { onlyA: 1 })
    await log.until(() => log.state.get('dup') === '"from b, changed"', 'b takes over')
    await rm(join(dir, 'b.yaml'))
    await log.until(() => !log.state.has('dup'), 'dup gone')
    expect(log.changes().filter((line) => line.includes(' dup '))).toEqual([
      'put dup "from a" -> "from a, changed"',
      'put dup "from a, changed" -> "from b, changed"',
      'delete dup "from b, changed"',
    ])
    // Twice in one file: the first definition wins, with a warning naming the file and line.
    await writeFile(
      join(dir, 'c.yaml'),
      'data:\n  - key: twice\n    value: 1\n  - key: twice\n    value: 2\n',
    )
    await log.until(() => log.state.get('twice') === '1', 'twice = 1')
    await problems.until(
      (e) => e.message.includes(`${join(dir, 'c.yaml')}:4`) && e.message.includes("'twice'"),
      'the in-file duplicate warning',
    )
  })
})

describe('filedb: directories appearing and disappearing', () => {
  it('a directory missing at start is picked up when it appears (rescan), nested levels included', async () => {
    const dir = await freshDir()
    const later = join(dir, 'later')
    const deep = join(dir, 'not', 'yet', 'there')
    const store = fileStore({ paths: [later, deep] })
    const problems = errorLog(store)
    const log = watchLog(store)
    const { recorders, inSync } = orchestrate(store, ['all', ['']])
    await log.until(() => log.events.length > 0, 'the snapshot')
    await inSync()
    expect(log.events.map(describeEvent)).toEqual(['snapshot(startup) '])
    await problems.until(
      (e) => e.message.includes(later) && e.message.includes('does not exist'),
      'the missing warning',
    )
    await mkdir(later)
    await writeData(join(later, 'a.json'), { 'l/1': 1 })
    await log.until(() => log.state.get('l/1') === '1', 'l/1')
    await mkdir(deep, { recursive: true })
    await writeData(join(deep, 'sub', 'b.yaml'), { 'd/1': 1 })
    await log.until(() => log.state.get('d/1') === '1', 'd/1')
    expect(
      log.events
        .filter((event) => event.type === 'snapshot')
        .map((event) => (event as { cause: string }).cause),
    ).toContain('rescan')
    await recorders[0]!.untilEquals(await listing(store), WAIT)
    expect(recorders[0]!.violations).toEqual([])
  })

  it('a directory removed and recreated is rescanned; consumers get the differences (P4)', async () => {
    const parent = await freshDir()
    const dir = join(parent, 'conf.d')
    await writeData(join(dir, 'a.json'), { 'g/keep': 'k', 'g/change': 'c1', 'g/drop': 'd' })
    const store = fileStore({ paths: [dir] })
    const log = watchLog(store)
    const { recorders, inSync } = orchestrate(store, ['g', ['g/']])
    await inSync()
    await rm(dir, { recursive: true })
    await log.until(() => log.state.size === 0, 'every key deleted')
    await writeData(join(dir, 'a.json'), { 'g/keep': 'k', 'g/change': 'c2', 'g/new': 'n' })
    await log.until(() => log.state.get('g/new') === '"n"', 'g/new')
    expect(log.events.at(-1)).toMatchObject({ type: 'snapshot', cause: 'rescan' })
    const consumer = recorders[0]!
    await consumer.untilEquals(await listing(store, 'g/'), WAIT)
    expect(consumer.violations).toEqual([])
    const changes = changesOf(consumer).flatMap((event) => event.changes)
    expect(changes.find((change) => change.key === 'g/drop')).toMatchObject({
      op: 'delete',
      prev: 'd',
    })
    // Removed and recreated in one batch (a directory swapped in by rename): a rescan too.
    const staged = join(parent, 'staged')
    await writeData(join(staged, 'a.json'), { 'g/keep': 'k', 'g/swapped': 's' })
    const snapshotsBefore = log.events.filter((event) => event.type === 'snapshot').length
    await rename(dir, join(parent, 'old'))
    await rename(staged, dir)
    await log.until(() => log.state.get('g/swapped') === '"s"', 'g/swapped')
    expect(log.events.filter((event) => event.type === 'snapshot').length).toBeGreaterThan(
      snapshotsBefore,
    )
    await consumer.untilEquals(await listing(store, 'g/'), WAIT)
    expect(consumer.violations).toEqual([])
  })
  it('a configured directory that is a symbolic link switched to another directory is followed', async () => {
    const dir = await freshDir()
    await writeData(join(dir, 'v1', 'a.json'), { k: 1, same: 's' })
    await writeData(join(dir, 'v2', 'a.json'), { k: 2, same: 's' })
    const current = join(dir, 'current')
    await symlink(join(dir, 'v1'), current)
    const store = fileStore({ paths: [current] })
    const log = watchLog(store)
    await log.until(() => log.state.get('k') === '1', 'k = 1')
    // A release switches the link atomically: a new link renamed over the old one.
    await symlink(join(dir, 'v2'), join(dir, 'next'))
    await rename(join(dir, 'next'), current)
    await log.until(() => log.state.get('k') === '2', 'k = 2 from v2')
    expect(log.events.at(-1)).toMatchObject({ type: 'snapshot', cause: 'rescan' })
    // The new target is the one watched now; the old one no longer counts.
    await writeData(join(dir, 'v2', 'a.json'), { k: 3, same: 's' })
    await log.until(() => log.state.get('k') === '3', 'k = 3 from v2')
    await writeData(join(dir, 'v1', 'a.json'), { k: 100, same: 's' })
    await mark(join(dir, 'v2'), log)
    expect(log.state.get('k')).toBe('3')
    expect(log.changes().filter(notMarker)).toEqual(['put k 2 -> 3'])
  })
})

describe('filedb: read-only, status file, lifecycle', () => {
  it('put, delete and transactions fail with a CapabilityError naming filedb and the capability', async () => {
    const dir = await freshDir()
    const store = fileStore({ paths: [dir] })
    expect(store.name).toBe('filedb')
    expect(store.capabilities).toEqual({
      write: false,
      txn: false,
      ttl: false,
      nativePrev: true,
      resumable: false,
      atomicPrefixDelete: false,
    })
    const failures = [
      [store.put('k', new Uint8Array([1])), 'write'],
      [store.delete('k', { prefix: true }), 'write'],
      [store.txn([{ op: 'put', key: 'k', value: new Uint8Array([1]) }]), 'txn'],
    ] as const
    for (const [operation, capability] of failures) {
      const error: unknown = await lastValueFrom(operation as Observable<unknown>).catch(
        (e: unknown) => e,
      )
      expect(error).toBeInstanceOf(CapabilityError)
      expect(error).toMatchObject({
        backend: 'filedb',
        capability,
        code: 'capability',
        retryable: false,
      })
      expect((error as Error).message).toMatch(
        new RegExp(`filedb store does not support ${capability}`),
      )
    }
    const log = watchLog(store)
    await log.until(() => log.events.length > 0, 'the snapshot')
    await store.close()
    expect(log.completed()).toBe(true)
    await expect(lastValueFrom(store.get('k'))).rejects.toBeInstanceOf(ClosedError)
    await expect(firstValueFrom(store.watch(['']))).rejects.toBeInstanceOf(ClosedError)
    expect(await lastValueFrom(store.status$)).toEqual({ state: 'closed' })
  })

  it('publishStatus writes the state atomically, as JSON or YAML by the extension, and is never read as data', async () => {
    const dir = await freshDir()
    const jsonStatus = join(dir, 'run', 'status.json')
    const store = fileStore({ paths: [dir], statusPath: jsonStatus })
    const log = watchLog(store)
    await log.until(() => log.events.length > 0, 'the snapshot')
    await lastValueFrom(store.publishStatus({ state: 'ok', plugins: { routes: 'ok' } }), {
      defaultValue: undefined,
    })
    expect(JSON.parse(await readFile(jsonStatus, 'utf8'))).toEqual({
      state: 'ok',
      plugins: { routes: 'ok' },
    })
    await Promise.all(
      [1, 2, 3].map((n) => lastValueFrom(store.publishStatus({ n }), { defaultValue: undefined })),
    )
    expect(JSON.parse(await readFile(jsonStatus, 'utf8'))).toEqual({ n: 3 })
    expect(await readdir(dirname(jsonStatus))).toEqual(['status.json'])
    await mark(dir, log)
    expect(log.changes().filter(notMarker)).toEqual([])

    const yamlStatus = join(await freshDir(), 'status.yml')
    const yamlStore = fileStore({ paths: [dir], statusPath: yamlStatus })
    await lastValueFrom(yamlStore.publishStatus({ state: 'error', reason: 'x' }), {
      defaultValue: undefined,
    })
    expect(parseYaml(await readFile(yamlStatus, 'utf8'))).toEqual({ state: 'error', reason: 'x' })

    const none = fileStore({ paths: [dir] })
    await expect(lastValueFrom(none.publishStatus({}))).rejects.toBeInstanceOf(ConfigError)
    await expect(lastValueFrom(store.publishStatus({ bad: Number.NaN }))).rejects.toBeInstanceOf(
      TypeError,
    )
    expect(() => createFileStore({ paths: [dir], statusPath: join(dir, 'status.txt') })).toThrow(
      TypeError,
    )
    expect(() => createFileStore({ paths: [] })).toThrow(TypeError)
  })

  it.runIf(process.platform === 'linux')(
    'is cold: nothing watched until subscribed; the last unsubscribe releases the inotify watches (P7)',
    async () => {
      const dir = await freshDir()
      await mkdir(join(dir, 'a', 'b'), { recursive: true })
      await writeData(join(dir, 'a', 'b', 'x.json'), { x: 1 })
      const baseline = await inotifyWatches()
      const store = fileStore({ paths: [dir] })
      const watch = store.watch([''])
      expect(await inotifyWatches()).toBe(baseline)
      const first = watchLog(store)
      const second = watchLog(store)
      await first.until(() => first.events.length > 0, 'the first snapshot')
      await second.until(() => second.events.length > 0, 'the second snapshot')
      expect(await inotifyWatches()).toBeGreaterThan(baseline)
      first.stop()
      expect(await inotifyWatches()).toBeGreaterThan(baseline)
      second.stop()
      // The file watcher stops a tick after the last watch left (a watch replaced at once keeps it).
      await releasedTo(baseline)
      // Watched again later: a fresh watcher, the same data.
      expect(await firstValueFrom(watch)).toMatchObject({ type: 'snapshot', cause: 'startup' })
      await releasedTo(baseline)
    },
  )
})

describe('filedb: configuration', () => {
  it('loads configuration-paths and status-path from --filedb-config or FILEDB_CONFIG, relative to the file', async () => {
    const dir = await freshDir()
    const file = join(dir, 'filedb.yaml')
    await writeFile(
      file,
      'configuration-paths:\n  - conf.d\n  - /abs/routes.yaml\nstatus-path: run/status.json\n',
    )
    const expected = {
      paths: [join(dir, 'conf.d'), '/abs/routes.yaml'],
      statusPath: join(dir, 'run', 'status.json'),
    }
    expect(await loadFileDbConfig({ argv: ['--filedb-config', file], env: {} })).toEqual(expected)
    expect(await loadFileDbConfig({ argv: [`--filedb-config=${file}`], env: {} })).toEqual(expected)
    expect(await loadFileDbConfig({ argv: [], env: { FILEDB_CONFIG: file } })).toEqual(expected)
    expect(await loadFileDbConfig({ argv: [], env: {} })).toBeUndefined()
    await writeFile(file, 'configuration-paths: [a]\nstatus-pth: x.json\n')
    const typo: unknown = await loadFileDbConfig({ argv: [], env: { FILEDB_CONFIG: file } }).catch(
      (e: unknown) => e,
    )
    expect(typo).toBeInstanceOf(ConfigError)
    expect((typo as Error).message).toContain(`${file}:2: field 'status-pth'`)
    await writeFile(file, 'configuration-paths: []\n')
    await expect(loadFileDbConfig({ argv: [], env: { FILEDB_CONFIG: file } })).rejects.toThrow(
      /configuration-paths/,
    )
    await expect(
      loadFileDbConfig({ argv: [], env: { FILEDB_CONFIG: join(dir, 'missing.yaml') } }),
    ).rejects.toThrow(/does not exist/)
  })
})

/** Waits until this process holds `count` inotify watches (bounded). */
async function releasedTo(count: number): Promise<void> {
  await pollUntil(async () => (await inotifyWatches()) === count, { timeoutMs: 5_000 }).catch(
    async () => {
      expect(await inotifyWatches()).toBe(count)
    },
  )
}

/** The inotify watches this process holds (Linux), i.e. chokidar's fs.watch handles. */
async function inotifyWatches(): Promise<number> {
  let count = 0
  for (const fd of await readdir('/proc/self/fdinfo')) {
    const info = await readFile(`/proc/self/fdinfo/${fd}`, 'utf8').catch(() => '')
    for (const line of info.split('\n')) if (line.startsWith('inotify wd:')) count++
  }
  return count
}

// ---- permission denied as root: the store runs as 'nobody' in a child process that drops root
// after loading its modules (so the project's own directory need not be open to 'nobody') ------

const CHILD = `
import { createFileStore } from ${JSON.stringify(join(process.cwd(), 'src/backends/filedb/index.ts'))}
// Every module is loaded (as root, from wherever the project lives); from here on the process
// is 'nobody', so the store's reads meet file permissions.
process.setgid(65534)
process.setuid(65534)
const decoder = new TextDecoder()
const store = createFileStore({ paths: [process.argv[2]] })
const print = (line) => process.stdout.write(JSON.stringify(line) + '\\n')
store.status$.subscribe((s) => print({ status: s.state, error: s.error?.message, name: s.error?.name }))
const watching = store.watch(['']).subscribe((event) => {
  if (event.type === 'snapshot') {
    print({ snapshot: Object.fromEntries(event.items.map((item) => [item.key, decoder.decode(item.value)])) })
  } else {
    for (const change of event.changes) {
      print({ change: change.op, key: change.key, prev: change.prev && decoder.decode(change.prev), value: change.op === 'put' ? decoder.decode(change.value) : undefined })
    }
  }
})
process.stdin.resume()
process.stdin.on('end', () => { watching.unsubscribe(); void store.close() })
`

async function permissionDeniedAsNobody(dir: string, file: string): Promise<void> {
  const script = join(dir, 'child.mjs')
  await writeFile(script, CHILD)
  // 'nobody' must reach the directory (mkdtemp makes it 0700).
  for (let path = dir; path !== dirname(path) && path.startsWith(base); path = dirname(path)) {
    await chmod(path, 0o755)
  }
  await chmod(base, 0o755)
  const child: ChildProcess = spawn(
    process.execPath,
    ['--conditions=source', '--import', 'tsx', script, dir],
    // Never left behind: killed if it is still running after 100 s, whatever the test did.
    {
      cwd: process.cwd(),
      stdio: ['pipe', 'pipe', 'pipe'],
      timeout: 100_000,
      killSignal: 'SIGKILL',
    },
  )
  const lines: Record<string, unknown>[] = []
  const updates = new Subject<void>()
  let stderr = ''
  child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()))
  createInterface({ input: child.stdout! }).on('line', (line) => {
    lines.push(JSON.parse(line) as Record<string, unknown>)
    updates.next()
  })
  const exited = new Promise<number | null>((resolve) => child.on('exit', resolve))
  const until = (check: (line: Record<string, unknown>) => boolean, what: string) =>
    waitOn(
      updates,
      () => lines.some(check),
      () => `${what}; child said ${JSON.stringify(lines)} ${stderr}`,
    )
  try {
    await until((line) => line.snapshot !== undefined, 'the snapshot')
    expect(lines.find((line) => line.snapshot !== undefined)!.snapshot).toEqual({
      'p/1': '1',
      'p/2': '2',
    })
    await chmod(file, 0)
    await until((line) => line.status === 'degraded', 'degraded')
    const degraded = lines.find((line) => line.status === 'degraded')!
    expect(degraded.name).toBe('UnavailableError')
    expect(degraded.error).toContain(`${file}: cannot read the file (EACCES): permission denied`)
    // Changed while unreadable: nothing reaches the consumer, the old keys stay.
    await writeData(file, { 'p/1': 1, 'p/2': 3 })
    await chmod(file, 0)
    await chmod(file, 0o644)
    await until(
      (line) => line.change === 'put' && line.key === 'p/2',
      'the change after access is back',
    )
    await until(
      (line) => line.status === 'ready' && lines.indexOf(line) > lines.indexOf(degraded),
      'ready again',
    )
    expect(lines.filter((line) => line.change !== undefined)).toEqual([
      { change: 'put', key: 'p/2', prev: '2', value: '3' },
    ])
  } finally {
    child.stdin!.end()
    await exited
  }
}
