import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  BehaviorSubject,
  NEVER,
  Subject,
  concat,
  filter,
  firstValueFrom,
  timeout,
  type Observable,
} from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createDatasync,
  createMemoryStore,
  revision,
  webStoragePersistence,
  type ConsumerEvent,
  type Datasync,
  type KvStore,
  type MemoryStore,
  type Revision,
  type StoreEvent,
  type StoreStatus,
  type WatchOptions,
} from '../../src/index.js'
import {
  SnapshotPersistError,
  decodeSnapshot,
  encodeSnapshot,
} from '../../src/sync/persist/format.js'
import { fileSnapshotPersistence } from '../../src/snapshot-file/index.js'
import { describeEvent, scriptedStore, snapshotOf } from '../../src/testing/index.js'

const text = (value: string) => new TextEncoder().encode(value)
let dir = ''
let files = 0
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rx-datasync-persist-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true, maxRetries: 5 })
})
const freshPath = () => join(dir, `snapshot-${++files}.json`)

/** A memory store whose watch calls are recorded with their options. */
function recorded(store: MemoryStore): { store: KvStore; watches: (WatchOptions | undefined)[] } {
  const watches: (WatchOptions | undefined)[] = []
  return {
    watches,
    store: {
      ...store,
      watch: (prefixes: readonly string[], options?: WatchOptions) => {
        watches.push(options)
        return store.watch(prefixes, options)
      },
    },
  }
}

/** Acknowledges every event of a consumer and keeps its labels. */
function follow(sync: Datasync<Uint8Array>, name: string, prefixes: string[]): string[] {
  const seen: string[] = []
  const consumer = sync.register(name, { prefixes, codec: stringCodec })
  consumer.events$.subscribe((event: ConsumerEvent<string>) => {
    seen.push(describeEvent(event))
    event.done()
  })
  return seen
}

const stringCodec = {
  name: 'utf8',
  decode: (raw: Uint8Array) => new TextDecoder().decode(raw),
  encode: (value: string) => text(value),
}

function waitFor<T>(source: Observable<T>, test: (value: T) => boolean, what: string): Promise<T> {
  return firstValueFrom(
    source.pipe(
      filter(test),
      timeout({
        first: 10_000,
        with: () => {
          throw new Error(`timed out waiting for ${what}`)
        },
      }),
    ),
  )
}

/** Runs an orchestrator until it saved the store's content at `at`. */
async function saveOnce(store: KvStore, path: string, at: Revision): Promise<void> {
  const sync = createDatasync(store, { persist: { to: fileSnapshotPersistence(path), every: 1 } })
  follow(sync, 'a', ['a/'])
  follow(sync, 'b', ['b/'])
  const saved = waitFor(
    sync.activity$,
    (step) => step.type === 'persisted' && step.revision === at,
    `a save at ${at}`,
  )
  sync.start()
  await saved
  sync.close()
}

describe('persist: save and restore', () => {
  it('restores the saved snapshot, resumes the watch after its revision, then only what changed', async () => {
    const memory = createMemoryStore({ initial: { 'a/1': text('one'), 'a/2': text('two') } })
    memory.put('b/1', new Uint8Array([0xff, 0x00, 0xfe])).subscribe()
    const path = freshPath()
    await saveOnce(memory, path, memory.revision())
    const saved = new Uint8Array(await readFile(path))
    // The magic, then format version 2.
    expect([...saved.subarray(0, 12)]).toEqual([0x89, ...text('RXDSNAP'), 2, 0, 0, 0])
    const decoded = await decodeSnapshot<Uint8Array>('test', saved, ['b/', 'a/'])
    expect(decoded.items.map((item) => [item.key, [...item.value], item.revision])).toEqual([
      ['a/1', [...text('one')], 1n],
      ['a/2', [...text('two')], 1n],
      ['b/1', [0xff, 0x00, 0xfe], 2n],
    ])
    expect(decoded).toMatchObject({ store: 'memory', prefixes: ['a/', 'b/'] })
    // The memory store has no identity.
    expect(decoded).not.toHaveProperty('identity')
    const savedAt = memory.revision()

    // While the application is down, the store changes.
    memory.put('a/1', text('uno')).subscribe()
    memory.delete('a/2').subscribe()

    const { store, watches } = recorded(memory)
    const sync = createDatasync(store, { persist: { to: fileSnapshotPersistence(path) } })
    const a = follow(sync, 'a', ['a/'])
    const b = follow(sync, 'b', ['b/'])
    const changes = waitFor(
      sync.activity$,
      (s) => s.type === 'delivered' && s.kind === 'change',
      'changes',
    )
    sync.start()
    await changes
    sync.close()
    expect(watches).toEqual([{ after: savedAt }])
    // Two commits after the saved revision: two change events, nothing relisted.
    expect(a).toEqual(['R(restored) a/1=one a/2=two', 'C(live) a/1:one>uno', 'C(live) a/2:two>x'])
    expect(b).toEqual([
      `R(restored) b/1=${new TextDecoder().decode(new Uint8Array([0xff, 0, 0xfe]))}`,
    ])
  })

  it('gives the restored snapshot at once while the store is down, then only the differences', async () => {
    const memory = createMemoryStore({ initial: { 'a/1': text('one'), 'a/2': text('two') } })
    const path = freshPath()
    await saveOnce(memory, path, memory.revision())

    // A store that has not answered yet: its watch emits when the test says so.
    const status = new BehaviorSubject<StoreStatus>({ state: 'connecting' })
    const events = new Subject<StoreEvent<Uint8Array>>()
    const afters: (Revision | undefined)[] = []
    const down = scriptedStore<Uint8Array>(
      (): Observable<StoreEvent<Uint8Array>> => concat(events, NEVER),
      { status$: status, capabilities: { resumable: true } },
    )
    const watch = down.watch.bind(down)
    const store: KvStore = {
      ...down,
      watch: (prefixes, options) => {
        afters.push(options?.after)
        return watch(prefixes, options)
      },
    }
    const sync = createDatasync(store, { persist: { to: fileSnapshotPersistence(path) } })
    const a = follow(sync, 'a', ['a/'])
    follow(sync, 'b', ['b/'])
    const states: string[] = []
    sync.status$.subscribe((s) => states.push(s.state))
    const restored = waitFor(sync.status$, (s) => s.state === 'restored', 'restored')
    sync.start()
    await restored
    expect(a).toEqual(['R(restored) a/1=one a/2=two'])
    expect(afters).toEqual([memory.revision()])

    // The store comes back without the history: a snapshot, and only its differences follow.
    const inSync = waitFor(sync.status$, (s) => s.state === 'in-sync', 'in-sync')
    events.next(snapshotOf(9, { 'a/1': text('one'), 'a/3': text('three') }))
    status.next({ state: 'ready' })
    await inSync
    sync.close()
    expect(a).toEqual(['R(restored) a/1=one a/2=two', 'C(reconnect) a/3:x>three a/2:two>x'])
    expect(states).toEqual([
      'idle',
      'connecting',
      'resyncing',
      'restored',
      'resyncing',
      'in-sync',
      'stopped',
    ])
  })
})

describe('persist: bad snapshots are reported, not applied, and the normal resync runs', () => {
  // Written, not `initial`: a store's initial data is not history, and the control case resumes.
  const memory = createMemoryStore()
  memory.put('a/1', text('one')).subscribe()
  memory.put('b/1', text('bee')).subscribe()
  let good: Uint8Array = new Uint8Array()
  beforeAll(async () => {
    good = await encodeSnapshot({
      store: 'memory',
      revision: revision(0),
      prefixes: ['a/', 'b/'],
      savedAt: 0,
      items: [{ key: 'a/1', value: text('OLD'), revision: revision(1) }],
    })
  })

  async function startWith(
    content: string | Uint8Array | undefined,
    setup?: (path: string) => Promise<void>,
  ): Promise<{ errors: SnapshotPersistError[]; a: string[] }> {
    const path = freshPath()
    if (content !== undefined) await writeFile(path, content)
    await setup?.(path)
    const sync = createDatasync(memory, { persist: { to: fileSnapshotPersistence(path) } })
    const errors: SnapshotPersistError[] = []
    sync.errors$.subscribe((error) => {
      if (error instanceof SnapshotPersistError) errors.push(error)
    })
    const a = follow(sync, 'a', ['a/'])
    follow(sync, 'b', ['b/'])
    const inSync = waitFor(sync.status$, (s) => s.state === 'in-sync', 'in-sync')
    sync.start()
    await inSync
    sync.close()
    return { errors, a }
  }

  it('a sound file is applied (the control case)', async () => {
    const { errors, a } = await startWith(good)
    expect(errors).toEqual([])
    // Saved at revision 0: the store resumes after it, and its revision 1 brings the news.
    expect(a).toEqual(['R(restored) a/1=OLD', 'C(live) a/1:OLD>one'])
  })

  /** The file with `bytes` written at `at` (from the end when negative). */
  const patched = (file: Uint8Array, at: number, bytes: Uint8Array) => {
    const copy = file.slice()
    copy.set(bytes, at < 0 ? file.length + at : at)
    return copy
  }
  it.each([
    [
      'truncated',
      (t: Uint8Array) => t.slice(0, -7),
      /truncated: the header says \d+ bytes of data, the file holds \d+/,
    ],
    [
      'truncated',
      (t: Uint8Array) => t.slice(0, 20),
      /truncated: 20 bytes, shorter than the 48-byte header/,
    ],
    [
      'checksum',
      // The value OLD is the last three bytes.
      (t: Uint8Array) => patched(t, -3, text('NEW')),
      /checksum: SHA-256 of the data is [0-9a-f]{64}, the header says [0-9a-f]{64}/,
    ],
    [
      'version',
      (t: Uint8Array) => patched(t, 8, new Uint8Array([3])),
      /version: written in format version 3, this library reads version 2/,
    ],
    [
      'version',
      // The text format of version 1.
      () => '{"format":"rx-datasync/snapshot","version":1,"bytes":2,"sha256":"00"}\n{}',
      /version: written in format version 1, this library reads version 2/,
    ],
    ['corrupt', () => 'hello\nworld', /corrupt: not an rx-datasync\/snapshot file/],
    [
      'corrupt',
      () => '{"hello":1}\n',
      /corrupt: not an rx-datasync\/snapshot file \(it starts as text\)/,
    ],
    ['truncated', () => '', /truncated: it is empty/],
  ])('%s', async (problem, spoil, message) => {
    const { errors, a } = await startWith(spoil(good))
    expect(errors.map((e) => e.problem)).toEqual([problem])
    expect(errors[0]?.message).toMatch(message)
    expect(errors[0]?.message).toMatch(/^snapshot file .*snapshot-\d+\.json: /)
    expect(errors[0]?.message).toMatch(
      /not applied; the consumers get the normal resync from the store$/,
    )
    expect(a).toEqual(['R(startup) a/1=one'])
  })

  it('another prefix set', async () => {
    const other = await encodeSnapshot({
      store: 'memory',
      revision: revision(1),
      prefixes: ['a/'],
      savedAt: 0,
      items: [{ key: 'a/1', value: text('OLD'), revision: revision(1) }],
    })
    const { errors, a } = await startWith(other)
    expect(errors.map((e) => e.problem)).toEqual(['prefixes'])
    expect(errors[0]?.message).toContain(
      'prefixes: saved for the prefixes ["a/"], the consumers follow ["a/","b/"]',
    )
    expect(a).toEqual(['R(startup) a/1=one'])
  })

  it('unreadable (a directory where the file should be)', async () => {
    const { errors, a } = await startWith(undefined, (path) => mkdir(path))
    expect(errors.map((e) => e.problem)).toEqual(['unreadable'])
    expect(errors[0]?.message).toMatch(/unreadable: EISDIR/)
    expect(a).toEqual(['R(startup) a/1=one'])
  })

  it('a missing file is no error: nothing was saved yet', async () => {
    const { errors, a } = await startWith(undefined)
    expect(errors).toEqual([])
    expect(a).toEqual(['R(startup) a/1=one'])
  })
})

describe('webStoragePersistence', () => {
  it('keeps the snapshot in a Web Storage item and restores it', async () => {
    const items = new Map<string, string>()
    const storage = {
      getItem: (key: string) => items.get(key) ?? null,
      setItem: (key: string, value: string) => void items.set(key, value),
    }
    const memory = createMemoryStore({ initial: { 'a/1': text('one') } })
    const to = webStoragePersistence('app', storage)
    const first = createDatasync(memory, { persist: { to, every: 1 } })
    follow(first, 'a', ['a/'])
    const saved = waitFor(first.activity$, (s) => s.type === 'persisted', 'a save')
    first.start()
    await saved
    first.close()
    // Base64 of the file's bytes: the magic, then version 2.
    expect(items.get('app')).toMatch(/^iVJYRFNOQVAC/)

    const second = createDatasync(memory, { persist: { to } })
    const a = follow(second, 'a', ['a/'])
    const inSync = waitFor(second.status$, (s) => s.state === 'in-sync', 'in-sync')
    second.start()
    await inSync
    second.close()
    expect(a).toEqual(['R(restored) a/1=one'])
  })

  it('says what to do where there is no localStorage', () => {
    expect(() => webStoragePersistence('app')).toThrow(
      'webStoragePersistence: there is no localStorage here (not a browser?)',
    )
  })
})
