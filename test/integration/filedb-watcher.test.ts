import { FSWatcher } from 'chokidar'
import { mkdtemp, rename, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Subject, filter, firstValueFrom, lastValueFrom, startWith, take, timeout } from 'rxjs'
import { afterAll, afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import {
  UnavailableError,
  createDatasync,
  json,
  type Datasync,
  type StoreEvent,
  type StoreStatus,
} from '../../src/index.js'
import { createFileStore, type FileStore } from '../../src/backends/filedb/index.js'
import { recordConsumer } from '../../src/testing/index.js'

// The real chokidar, with every watcher the store starts kept here, so a test can make one fail
// the way a broken inotify watch does: an 'error' event. The store loads chokidar through
// require (so a missing chokidar is a clear error), which vi.mock does not reach; require(esm)
// gives the same module instance as this import, so a spy on its prototype sees the store's.
const watchers: FSWatcher[] = []
const realAdd: (this: FSWatcher, ...args: Parameters<FSWatcher['add']>) => FSWatcher =
  FSWatcher.prototype.add // eslint-disable-line @typescript-eslint/unbound-method -- called with its watcher below
const addSpy = vi.spyOn(FSWatcher.prototype, 'add').mockImplementation(function (
  this: FSWatcher,
  ...args: Parameters<FSWatcher['add']>
) {
  if (!watchers.includes(this)) watchers.push(this)
  return realAdd.apply(this, args)
})
afterAll(() => {
  addSpy.mockRestore()
})

const WAIT = 20_000
const decoder = new TextDecoder()

let dir: string
let store: FileStore
let sync: Datasync<Uint8Array> | undefined

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'filedb-watcher-'))
  watchers.length = 0
})

afterEach(async () => {
  sync?.close()
  await store.close()
  await rm(dir, { recursive: true, force: true })
})

async function save(file: string, entries: Record<string, unknown>): Promise<void> {
  const data = Object.entries(entries).map(([key, value]) => ({ key, value }))
  await writeFile(`${file}.tmp`, JSON.stringify({ data }))
  await rename(`${file}.tmp`, file)
}

function until<T>(updates: Subject<void>, check: () => T | undefined, what: string): Promise<T> {
  return firstValueFrom(
    updates.pipe(
      startWith(undefined),
      filter(() => check() !== undefined),
      take(1),
      timeout({
        first: WAIT,
        with: () => {
          throw new Error(`timed out waiting for ${what}`)
        },
      }),
    ),
  ).then(() => check() as T)
}

describe('filedb: file watcher failure', () => {
  it('a watcher error degrades the status, restarts the watcher and relists (snapshot watch-error, P4)', async () => {
    const file = join(dir, 'a.json')
    await save(file, { 'w/keep': 'k', 'w/change': 'c1', 'w/drop': 'd' })
    store = createFileStore({ paths: [dir], retryDelay: '200ms' })
    const statuses: StoreStatus[] = []
    const events: StoreEvent<Uint8Array>[] = []
    const updates = new Subject<void>()
    store.status$.subscribe((status) => {
      statuses.push(status)
      updates.next()
    })
    store.watch(['w/']).subscribe((event) => {
      events.push(event)
      updates.next()
    })
    sync = createDatasync(store, { ackTimeout: '10s' })
    const consumer = recordConsumer(sync.register('w', { prefixes: ['w/'], codec: json<string>() }))
    sync.start()
    await firstValueFrom(
      sync.status$.pipe(
        filter((s) => s.state === 'in-sync'),
        take(1),
        timeout(WAIT),
      ),
    )
    expect(watchers).toHaveLength(1)
    const broken = watchers[0]!

    broken.emit('error', Object.assign(new Error('inotify broke'), { code: 'EIO' }))
    const degraded = await until(
      updates,
      () => statuses.find((s) => s.state === 'degraded'),
      'degraded',
    )
    expect(degraded.error).toBeInstanceOf(UnavailableError)
    expect(degraded.error!.message).toContain('the file watcher failed (inotify broke)')
    expect(broken.closed).toBe(true)
    // Changes while no watcher runs: found by the relist after the restart.
    await save(file, { 'w/keep': 'k', 'w/change': 'c2', 'w/new': 'n' })

    const relist = await until(
      updates,
      () => events.find((event) => event.type === 'snapshot' && event.cause === 'watch-error'),
      'the watch-error snapshot',
    )
    expect(
      relist.type === 'snapshot' &&
        relist.items.map((item) => [item.key, decoder.decode(item.value)]),
    ).toEqual([
      ['w/change', '"c2"'],
      ['w/keep', '"k"'],
      ['w/new', '"n"'],
    ])
    await until(
      updates,
      () => (statuses.at(-1)?.state === 'ready' ? true : undefined),
      'ready again',
    )
    expect(watchers).toHaveLength(2)
    await consumer.untilEquals(
      (await lastValueFrom(store.list('w/'))).map((item) => ({
        ...item,
        value: JSON.parse(decoder.decode(item.value)) as string,
      })),
      WAIT,
    )
    expect(consumer.violations).toEqual([])
    const changes = consumer.events.flatMap((event) =>
      event.kind === 'change' ? event.changes : [],
    )
    expect(changes.find((change) => change.key === 'w/drop')).toMatchObject({
      op: 'delete',
      prev: 'd',
    })
    expect(changes.find((change) => change.key === 'w/change')).toMatchObject({
      op: 'put',
      prev: 'c1',
      value: 'c2',
    })
    expect(
      consumer.events.filter((event) => event.kind === 'change').map((event) => event.reason),
    ).toEqual(['gap'])

    // The new watcher works.
    await save(file, { 'w/keep': 'k2' })
    await consumer.until((state) => state.get('w/keep') === 'k2' && state.size === 1, WAIT)
    expect(consumer.violations).toEqual([])
  })

  it('a watcher that fails again and again is retried until one holds, then every watch relists', async () => {
    const file = join(dir, 'a.json')
    await save(file, { 'x/1': 1 })
    store = createFileStore({ paths: [dir], retryDelay: 50 })
    const events: StoreEvent<Uint8Array>[] = []
    const updates = new Subject<void>()
    store.watch(['']).subscribe((event) => {
      events.push(event)
      updates.next()
    })
    await until(updates, () => events[0], 'the snapshot')
    for (let failures = 1; failures <= 3; failures++) {
      const current = await until(
        updates,
        () => (watchers.length === failures ? watchers[failures - 1] : undefined),
        `watcher ${failures}`,
      )
      current.emit('error', new Error(`failure ${failures}`))
      await save(file, { 'x/1': failures + 1 })
    }
    const state = () => {
      const values = new Map<string, string>()
      for (const event of events) {
        if (event.type === 'snapshot') values.clear()
        const items = event.type === 'snapshot' ? event.items : event.changes
        for (const item of items) {
          if ('op' in item && item.op === 'delete') values.delete(item.key)
          else if ('value' in item) values.set(item.key, decoder.decode(item.value))
        }
      }
      return values
    }
    await until(updates, () => (state().get('x/1') === '4' ? true : undefined), 'the last value')
    const causes = events.flatMap((event) => (event.type === 'snapshot' ? [event.cause] : []))
    expect(causes[0]).toBe('startup')
    expect(causes.slice(1).length).toBeGreaterThanOrEqual(1)
    expect(causes.slice(1).every((cause) => cause === 'watch-error')).toBe(true)
    expect(watchers.slice(0, 3).every((watcher) => watcher.closed)).toBe(true)
  })
})
