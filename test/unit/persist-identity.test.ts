import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  BehaviorSubject,
  EMPTY,
  Subject,
  VirtualTimeScheduler,
  defer,
  filter,
  firstValueFrom,
  of,
  throwError,
  timeout,
  type Observable,
} from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  UnavailableError,
  createDatasync,
  createMemoryStore,
  type ConsumerEvent,
  type Datasync,
  type KvStore,
  type MemoryStore,
  type Revision,
  type StoreStatus,
  type WatchOptions,
  withCodec,
  withPrefix,
} from '../../src/index.js'
import { SnapshotPersistError, decodeSnapshot } from '../../src/sync/persist/format.js'
import { revision } from '../../src/core/revision.js'
import { StoreIdentity, type Restoring } from '../../src/sync/persist/identity.js'
import { fileSnapshotPersistence } from '../../src/snapshot-file/index.js'
import { describeEvent } from '../../src/testing/index.js'

const text = (value: string) => new TextEncoder().encode(value)
const utf8 = new TextDecoder()
let dir = ''
let files = 0
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'rx-datasync-persist-identity-'))
})
afterAll(async () => {
  await rm(dir, { recursive: true, force: true, maxRetries: 5 })
})
const freshPath = () => join(dir, `snapshot-${++files}.bin`)

/** A memory store with written (not initial) data: written data is history a watch resumes in. */
function memoryWith(data: Record<string, string>): MemoryStore {
  const store = createMemoryStore()
  for (const [key, value] of Object.entries(data)) store.put(key, text(value)).subscribe()
  return store
}

/**
 * `memory` as a store with an identity (`name`), answering while `up` is true (else an
 * UnavailableError, as a store that cannot be reached), its status following `up`; its watch
 * calls are recorded with their options.
 */
function identified(memory: MemoryStore, name: string, up = true) {
  const reachable = new BehaviorSubject(up)
  const status = new BehaviorSubject<StoreStatus>({ state: up ? 'ready' : 'connecting' })
  const watches: (WatchOptions | undefined)[] = []
  let asked = 0
  const store: KvStore = {
    ...memory,
    status$: status,
    identity: () =>
      defer(() => {
        asked++
        return reachable.value
          ? of(name)
          : throwError(() => new UnavailableError('memory', `${name} cannot be reached`))
      }),
    watch: (prefixes: readonly string[], options?: WatchOptions) => {
      watches.push(options)
      return memory.watch(prefixes, options)
    },
  }
  return {
    store,
    watches,
    asked: () => asked,
    comeUp: () => {
      reachable.next(true)
      status.next({ state: 'ready' })
    },
  }
}

/** Two string consumers (`a/`, `b/`) acknowledging every event, and their labels. */
function consumers(sync: Datasync<Uint8Array>) {
  const seen = { a: [] as string[], b: [] as string[] }
  const events = new Subject<void>()
  const codec = {
    name: 'utf8',
    decode: (raw: Uint8Array) => utf8.decode(raw),
    encode: (value: string) => text(value),
  }
  const register = (name: 'a' | 'b') => {
    const consumer = sync.register(name, { prefixes: [`${name}/`], codec })
    consumer.events$.subscribe((event: ConsumerEvent<string>) => {
      seen[name].push(describeEvent(event))
      event.done()
      events.next()
    })
    return consumer
  }
  const a = register('a')
  const b = register('b')
  /** Both views as `key=value` lines. */
  const views = () =>
    [...a.view().values(), ...b.view().values()].map((item) => `${item.key}=${item.value}`)
  /** Resolves once the consumers got `count` events between them. */
  const got = (count: number) =>
    waitFor(
      events,
      () => seen.a.length + seen.b.length >= count,
      `${count} events (so far ${JSON.stringify(seen)})`,
    )
  return { seen, views, got }
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

/** Runs an orchestrator on `store` until it saved the store's content at `at`. */
async function saveOnce(store: KvStore, path: string, at: Revision): Promise<void> {
  const sync = createDatasync(store, { persist: { to: fileSnapshotPersistence(path), every: 1 } })
  consumers(sync)
  const saved = waitFor(
    sync.activity$,
    (step) => step.type === 'persisted' && step.revision === at,
    `a save at ${at}`,
  )
  sync.start()
  await saved
  sync.close()
}

/** Starts an orchestrator on `store` with the snapshot at `path`, keeping its persist errors. */
function restart(store: KvStore, path: string) {
  const sync = createDatasync(store, { persist: { to: fileSnapshotPersistence(path), every: 1 } })
  const errors: SnapshotPersistError[] = []
  sync.errors$.subscribe((error) => {
    if (error instanceof SnapshotPersistError) errors.push(error)
  })
  return { sync, errors, ...consumers(sync) }
}

describe('persist: a snapshot is resumed only on the store it was saved from', () => {
  // Store A: the snapshot is saved from it. Store B: another store (another etcd cluster).
  const savedData = { 'a/1': 'one', 'a/2': 'two', 'b/1': 'bee' }
  const saveFromA = async () => {
    const a = memoryWith(savedData)
    const path = freshPath()
    await saveOnce(identified(a, 'store A').store, path, a.revision())
    return { a, path, savedAt: a.revision() }
  }
  // B has other data, and fewer revisions than A: its revision says nothing about A's.
  const otherData = { 'a/1': 'B-one', 'b/9': 'B-nine' }

  it('saves the identity in the file', async () => {
    const { path } = await saveFromA()
    const saved = await decodeSnapshot('test', new Uint8Array(await readFile(path)), ['a/', 'b/'])
    expect(saved.identity).toBe('store A')
  })

  it('the same store: restores, and resumes after the saved revision', async () => {
    const { a, path, savedAt } = await saveFromA()
    a.put('a/1', text('uno')).subscribe()
    const same = identified(a, 'store A')
    const run = restart(same.store, path)
    run.sync.start()
    await run.got(3)
    run.sync.close()
    expect(run.errors).toEqual([])
    expect(same.watches).toEqual([{ after: savedAt }])
    expect(run.seen.a).toEqual(['R(restored) a/1=one a/2=two', 'C(live) a/1:one>uno'])
    expect(run.seen.b).toEqual(['R(restored) b/1=bee'])
  })

  it('another store: reports it on errors$, restores nothing, and the normal resync runs', async () => {
    const { path } = await saveFromA()
    const b = memoryWith(otherData)
    const other = identified(b, 'store B')
    const run = restart(other.store, path)
    const saved = waitFor(
      run.sync.activity$,
      (step) => step.type === 'persisted' && step.revision === b.revision(),
      'a save of B',
    )
    run.sync.start()
    await run.got(2)
    await saved
    run.sync.close()
    expect(run.errors.map((error) => error.problem)).toEqual(['identity'])
    expect(run.errors[0]?.message).toContain(
      'identity: saved from store A, but the store is store B',
    )
    expect(run.errors[0]?.message).toMatch(/not applied; the consumers get the normal resync/)
    expect(other.watches).toEqual([{}])
    expect(run.seen.a).toEqual(['R(startup) a/1=B-one'])
    expect(run.seen.b).toEqual(['R(startup) b/9=B-nine'])
    // The file now holds B's data, saved with B's identity.
    const file = await decodeSnapshot<Uint8Array>('test', new Uint8Array(await readFile(path)), [
      'a/',
      'b/',
    ])
    expect(file.identity).toBe('store B')
    expect(file.items.map((item) => item.key)).toEqual(['a/1', 'b/9'])
  })

  it('another store, unreachable at start: the snapshot now, then a full resync replacing it', async () => {
    const { path } = await saveFromA()
    const b = memoryWith(otherData)
    const other = identified(b, 'store B', false)
    const run = restart(other.store, path)
    const states: string[] = []
    run.sync.status$.subscribe((s) => states.push(s.state))
    const restored = waitFor(run.sync.status$, (s) => s.state === 'restored', 'restored')
    run.sync.start()
    await restored
    expect(run.seen.a).toEqual(['R(restored) a/1=one a/2=two'])
    expect(run.seen.b).toEqual(['R(restored) b/1=bee'])
    // The watch waits for the store's answer: a revision of A means nothing to B.
    expect(other.watches).toEqual([])
    expect(run.errors).toEqual([])

    other.comeUp()
    await run.got(4)
    const inSync = waitFor(run.sync.status$, (s) => s.state === 'in-sync', 'in-sync')
    await inSync
    const views = run.views()
    run.sync.close()
    expect(run.errors.map((error) => error.problem)).toEqual(['identity'])
    expect(run.errors[0]?.message).toContain(
      "saved from store A, but the store is store B (its revisions say nothing about the other's); the data restored while the store could not be reached is replaced",
    )
    expect(other.watches).toEqual([{}])
    // A full resync: b/1 and a/2, which only A had, are gone.
    expect(run.seen.a).toEqual(['R(restored) a/1=one a/2=two', 'R(startup) a/1=B-one'])
    expect(run.seen.b).toEqual(['R(restored) b/1=bee', 'R(startup) b/9=B-nine'])
    expect(views).toEqual(['a/1=B-one', 'b/9=B-nine'])
    // Not in sync while it held the other store's data.
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

  it('the same store, unreachable at start: the snapshot now, then only what changed since', async () => {
    const { a, path, savedAt } = await saveFromA()
    a.put('a/1', text('uno')).subscribe()
    a.delete('b/1').subscribe()
    const same = identified(a, 'store A', false)
    const run = restart(same.store, path)
    const states: string[] = []
    run.sync.status$.subscribe((s) => states.push(s.state))
    const restored = waitFor(run.sync.status$, (s) => s.state === 'restored', 'restored')
    run.sync.start()
    await restored
    expect(same.watches).toEqual([])

    same.comeUp()
    await run.got(4)
    const views = run.views()
    run.sync.close()
    expect(run.errors).toEqual([])
    expect(same.watches).toEqual([{ after: savedAt }])
    expect(run.seen.a).toEqual(['R(restored) a/1=one a/2=two', 'C(live) a/1:one>uno'])
    expect(run.seen.b).toEqual(['R(restored) b/1=bee', 'C(live) b/1:bee>x'])
    expect(views).toEqual(['a/1=uno', 'a/2=two'])
    expect(states).toEqual(['idle', 'connecting', 'resyncing', 'restored', 'in-sync', 'stopped'])
  })
})

describe('identity through views', () => {
  const memory = createMemoryStore()
  const store: KvStore = { ...memory, identity: () => of('store A') }

  it('withCodec keeps the identity; withPrefix makes the prefix part of it', async () => {
    const typed = withCodec(store, { name: 'utf8', decode: utf8.decode.bind(utf8), encode: text })
    expect(await firstValueFrom(typed.identity?.() ?? of('none'))).toBe('store A')
    const scoped = withPrefix(store, 'tenant-1/')
    expect(await firstValueFrom(scoped.identity?.() ?? of('none'))).toBe(
      'store A under "tenant-1/"',
    )
  })

  it('a store without one stays without one', () => {
    expect('identity' in withPrefix(memory, 'tenant-1/')).toBe(false)
    expect(
      'identity' in withCodec(memory, { name: 'id', decode: (v) => v, encode: (v) => v }),
    ).toBe(false)
  })
})

describe('StoreIdentity', () => {
  it('asks again with a backoff while the store cannot be reached, and stops with the run', () => {
    const scheduler = new VirtualTimeScheduler(undefined, 2_000)
    let asked = 0
    const identity = new StoreIdentity(
      () =>
        defer(() => {
          asked++
          return throwError(() => new UnavailableError('test', 'down'))
        }),
      scheduler,
      1_000,
    )
    identity.ask()
    expect(asked).toBe(1)
    scheduler.flush()
    const within2s = asked
    // 100 ms, then doubling (with jitter): a few attempts in 2 s, not a busy loop.
    expect(within2s).toBeGreaterThanOrEqual(3)
    expect(within2s).toBeLessThanOrEqual(6)
    identity.stop()
    scheduler.maxFrames = 60_000
    scheduler.flush()
    expect(asked).toBe(within2s)
  })

  it('takes an identity() that completes without a value as no identity', async () => {
    const identity = new StoreIdentity(() => EMPTY, new VirtualTimeScheduler(), 1_000)
    await expect(firstValueFrom(identity.known())).resolves.toBeUndefined()
  })

  it('takes a lasting error (closed, no permission) as no identity: no retry', async () => {
    const scheduler = new VirtualTimeScheduler()
    let asked = 0
    const identity = new StoreIdentity(
      () =>
        defer(() => {
          asked++
          return throwError(() => new Error('permission denied'))
        }),
      scheduler,
      1_000,
    )
    const known = firstValueFrom(identity.known())
    expect(scheduler.actions).toEqual([])
    await expect(known).resolves.toBeUndefined()
    expect(asked).toBe(1)
  })

  const saved = {
    type: 'snapshot' as const,
    revision: revision(7),
    items: [{ key: 'a/1', value: 'one', revision: revision(7) }],
    cause: 'startup' as const,
    identity: 'store A',
  }

  it('a store that does not answer within waitMs: the snapshot now, the resume waits for the answer', () => {
    const scheduler = new VirtualTimeScheduler()
    const answer = new Subject<string>()
    const identity = new StoreIdentity(() => answer, scheduler, 1_000)
    identity.ask()
    const given: Restoring<string>[] = []
    identity.check(saved, 'file', () => undefined).subscribe((restoring) => given.push(restoring))
    scheduler.maxFrames = 999
    scheduler.flush()
    expect(given).toEqual([])
    scheduler.maxFrames = 1_000
    scheduler.flush()
    expect(given).toHaveLength(1)
    expect(given[0]?.snapshot?.items).toEqual(saved.items)
    const resumed: boolean[] = []
    given[0]?.resume?.subscribe((resume) => resumed.push(resume))
    expect(resumed).toEqual([])
    answer.next('store A')
    expect(resumed).toEqual([true])
  })

  it('a store that answers within waitMs decides at once: another one gets nothing restored', () => {
    const scheduler = new VirtualTimeScheduler()
    const answer = new Subject<string>()
    const identity = new StoreIdentity(() => answer, scheduler, 1_000)
    identity.ask()
    const reported: string[] = []
    const given: Restoring<string>[] = []
    identity
      .check(saved, 'file', (error) => reported.push(error.message))
      .subscribe((restoring) => given.push(restoring))
    scheduler.maxFrames = 999
    scheduler.flush()
    answer.next('store B')
    expect(given).toEqual([{}])
    expect(reported).toEqual([
      expect.stringMatching(/saved from store A, but the store is store B/),
    ])
    // The wait's timer is gone with the answer: nothing more comes.
    scheduler.maxFrames = 10_000
    scheduler.flush()
    expect(given).toHaveLength(1)
  })
})
