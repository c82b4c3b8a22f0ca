import {
  VirtualTimeScheduler,
  concatMap,
  defer,
  finalize,
  from,
  map,
  tap,
  timer,
  type Observable,
  type Subscription,
} from 'rxjs'
import { TestScheduler } from 'rxjs/testing'
import { describe, expect, it } from 'vitest'
import {
  CodecError,
  DatasyncError,
  UnavailableError,
  createMemoryStore,
  json,
  publishTo,
  revision,
  type KvStore,
  type MemoryStore,
  type Publication,
  type PublishOptions,
  type PublishResult,
} from '../../src/index.js'
import { createFaultStore } from '../../src/testing/index.js'

type Pub = Publication<string>
type Result = PublishResult<string>

const put = (key: string, value: string): Pub => ({ op: 'put', key, value })
const del = (key: string, prefix?: boolean): Pub =>
  prefix === undefined ? { op: 'delete', key } : { op: 'delete', key, prefix }

function contents(store: MemoryStore<string>): Record<string, string> {
  return Object.fromEntries([...store.dump()].map(([key, item]) => [key, item.value]))
}

function collect<T>(source: Observable<T>): {
  values: T[]
  completed: () => boolean
  errors: unknown[]
  subscription: Subscription
} {
  const values: T[] = []
  const errors: unknown[] = []
  let completed = false
  const subscription = source.subscribe({
    next: (value) => values.push(value),
    error: (error: unknown) => errors.push(error),
    complete: () => {
      completed = true
    },
  })
  return { values, errors, subscription, completed: () => completed }
}

function advanceTo(scheduler: VirtualTimeScheduler, time: number): void {
  scheduler.maxFrames = time
  scheduler.flush()
  scheduler.frame = time
  // So that a later flush() runs everything left.
  scheduler.maxFrames = Infinity
}

function describeResult(result: Result): string {
  const p = result.publication
  const what = p.op === 'put' ? `put ${p.key}=${p.value}` : `del ${p.key}`
  return `${what} ${result.ok ? 'ok' : `failed(${result.error.code})`} x${result.attempts}`
}

/**
 * A memory store whose writes take `delayOf(key, value)` of virtual time each (0: synchronous). It logs when each
 * write starts and when it lands, and counts writes in flight.
 */
function slowStore(
  scheduler: VirtualTimeScheduler | TestScheduler,
  delayOf: (key: string, value: string | undefined) => number,
  initial: Record<string, string> = {},
) {
  const inner = createMemoryStore<string>({ initial })
  const log: string[] = []
  let inFlight = 0
  let maxInFlight = 0
  const slow = <T>(
    what: string,
    key: string,
    value: string | undefined,
    write: () => Observable<T>,
  ) =>
    defer(() => {
      inFlight++
      maxInFlight = Math.max(maxInFlight, inFlight)
      log.push(`${scheduler.now()} start ${what}`)
      let landed = false
      const delay = delayOf(key, value)
      // A delay of 0 writes synchronously, as the memory store does.
      return (delay === 0 ? write() : timer(delay, scheduler).pipe(concatMap(write))).pipe(
        tap(() => {
          landed = true
          log.push(`${scheduler.now()} land ${what}`)
        }),
        finalize(() => {
          inFlight--
          if (!landed) log.push(`${scheduler.now()} cancel ${what}`)
        }),
      )
    })
  const store: KvStore<string> = {
    name: inner.name,
    capabilities: inner.capabilities,
    status$: inner.status$,
    watch: (prefixes) => inner.watch(prefixes),
    get: (key) => inner.get(key),
    list: (prefix) => inner.list(prefix),
    listKeys: (prefix) => inner.listKeys(prefix),
    txn: (ops, options) => inner.txn(ops, options),
    close: () => inner.close(),
    put: (key, value, options) =>
      slow(`${key}=${value}`, key, value, () => inner.put(key, value, options)),
    delete: (key, options) =>
      slow(`del ${key}${options?.prefix === true ? '*' : ''}`, key, undefined, () =>
        inner.delete(key, options),
      ),
  }
  return {
    inner,
    store,
    log,
    inFlight: () => inFlight,
    maxInFlight: () => maxInFlight,
  }
}

/** A store that logs each write attempt's virtual time, around a fault store. */
function countingFaultStore(scheduler: VirtualTimeScheduler) {
  const faults = createFaultStore<string>({ scheduler })
  const attempts: number[] = []
  const store: KvStore<string> = {
    ...faults,
    put: (key, value, options) =>
      defer(() => {
        attempts.push(scheduler.now())
        return faults.put(key, value, options)
      }),
  }
  return { faults, store, attempts }
}

function publish(
  store: KvStore<string>,
  publications: readonly Pub[],
  options: PublishOptions<string, string> = {},
) {
  // No jitter unless a test asks for it: the delays below are exact.
  return collect(
    from(publications).pipe(publishTo<string, string>(store, { jitter: 0, ...options })),
  )
}

describe('publishTo', () => {
  it('writes every publication and reports each one', () => {
    const store = createMemoryStore<string>({ initial: { old: 'o', 'dir/1': 'x', 'dir/2': 'y' } })
    const run = publish(store, [put('a', '1'), put('b', '2'), del('old'), del('dir/', true)])
    expect(run.completed()).toBe(true)
    expect(run.errors).toEqual([])
    expect(run.values.map(describeResult)).toEqual([
      'put a=1 ok x1',
      'put b=2 ok x1',
      'del old ok x1',
      'del dir/ ok x1',
    ])
    expect(contents(store)).toEqual({ a: '1', b: '2' })
  })

  it('passes the publication itself in its result', () => {
    const store = createMemoryStore<string>()
    const publication = put('a', '1')
    const run = publish(store, [publication])
    expect(run.values).toEqual([{ ok: true, publication, attempts: 1 }])
    expect(run.values[0]?.publication).toBe(publication)
  })

  it('completes with no results for an empty source', () => {
    const run = publish(createMemoryStore<string>(), [])
    expect(run.values).toEqual([])
    expect(run.completed()).toBe(true)
  })

  it('is cold: nothing is written before subscribe', () => {
    const store = createMemoryStore<string>()
    const results = from([put('a', '1')]).pipe(publishTo<string, string>(store))
    expect(store.revision()).toBe(revision(0))
    collect(results)
    expect(contents(store)).toEqual({ a: '1' })
  })

  it('keeps per-key order when later writes of a key are faster', () => {
    const scheduler = new VirtualTimeScheduler()
    const delays: Record<string, number> = { 'a=1': 30, 'b=1': 5, 'a=2': 10, 'a=3': 0, 'b=2': 1 }
    const { inner, store, log } = slowStore(
      scheduler,
      (key, value) => delays[`${key}=${value}`] ?? 0,
    )
    const run = publish(
      store,
      [put('a', '1'), put('b', '1'), put('a', '2'), put('a', '3'), put('b', '2')],
      {
        concurrency: 8,
      },
    )
    scheduler.flush()
    expect(contents(inner)).toEqual({ a: '3', b: '2' })
    expect(log).toEqual([
      '0 start a=1',
      '0 start b=1',
      '5 land b=1',
      '5 start b=2',
      '6 land b=2',
      '30 land a=1',
      '30 start a=2',
      '40 land a=2',
      '40 start a=3',
      '40 land a=3',
    ])
    // Results come in completion order.
    expect(run.values.map(describeResult)).toEqual([
      'put b=1 ok x1',
      'put b=2 ok x1',
      'put a=1 ok x1',
      'put a=2 ok x1',
      'put a=3 ok x1',
    ])
    expect(run.completed()).toBe(true)
  })

  it('keeps per-key order on a TestScheduler', () => {
    const testScheduler = new TestScheduler((actual, expected) => {
      expect(actual).toEqual(expected)
    })
    testScheduler.run(({ cold, expectObservable }) => {
      // a1 takes 5 frames, b1 and a2 take 1: a2 must wait for a1.
      const delays: Record<string, number> = { a1: 5, b1: 1, a2: 1 }
      const { store } = slowStore(testScheduler, (key, value) => delays[`${key}${value}`] ?? 0)
      const source = cold<Pub>('-x-y-z|', { x: put('a', '1'), y: put('b', '1'), z: put('a', '2') })
      const results = source.pipe(
        publishTo<string, string>(store, { concurrency: 4 }),
        map(describeResult),
      )
      // b1 lands at 4, a1 at 6; a2 arrives at 5 but starts only at 6 and lands at 7.
      expectObservable(results).toBe('----y-x(z|)', {
        x: 'put a=1 ok x1',
        y: 'put b=1 ok x1',
        z: 'put a=2 ok x1',
      })
    })
  })

  it('keeps the order of a key when a write of it fails', () => {
    const scheduler = new VirtualTimeScheduler()
    const faults = createFaultStore<string>({ scheduler })
    faults.failWrites(1, new DatasyncError('invalid-argument', 'refused'))
    const run = publish(faults, [put('a', '1'), put('a', '2'), put('a', '3')])
    scheduler.flush()
    expect(run.values.map(describeResult)).toEqual([
      'put a=1 failed(invalid-argument) x1',
      'put a=2 ok x1',
      'put a=3 ok x1',
    ])
    expect(contents(faults.inner)).toEqual({ a: '3' })
  })

  it('never has more than `concurrency` writes in flight, and uses them all', () => {
    const scheduler = new VirtualTimeScheduler()
    const { inner, store, maxInFlight, inFlight } = slowStore(scheduler, () => 10)
    const keys = Array.from({ length: 10 }, (_, i) => `k${i}`)
    const run = publish(
      store,
      keys.map((key) => put(key, 'v')),
      { concurrency: 3 },
    )
    expect(inFlight()).toBe(3)
    advanceTo(scheduler, 10)
    expect(run.values).toHaveLength(3)
    expect(inFlight()).toBe(3)
    scheduler.flush()
    expect(maxInFlight()).toBe(3)
    expect(inFlight()).toBe(0)
    // ceil(10 / 3) rounds of 10 ms.
    expect(scheduler.now()).toBe(40)
    expect(run.values).toHaveLength(10)
    expect(Object.keys(contents(inner)).sort()).toEqual(keys.sort())
  })

  it('writes one at a time with concurrency 1, in source order', () => {
    const scheduler = new VirtualTimeScheduler()
    const { store, log, maxInFlight } = slowStore(scheduler, () => 2)
    publish(store, [put('x', '1'), put('y', '1'), put('z', '1')], { concurrency: 1 })
    scheduler.flush()
    expect(maxInFlight()).toBe(1)
    expect(log).toEqual([
      '0 start x=1',
      '2 land x=1',
      '2 start y=1',
      '4 land y=1',
      '4 start z=1',
      '6 land z=1',
    ])
  })

  it('has 16 writes in flight by default', () => {
    const scheduler = new VirtualTimeScheduler()
    const { store, maxInFlight } = slowStore(scheduler, () => 1)
    const run = publish(
      store,
      Array.from({ length: 40 }, (_, i) => put(`k${i}`, 'v')),
    )
    scheduler.flush()
    expect(maxInFlight()).toBe(16)
    expect(run.values.every((result) => result.ok)).toBe(true)
    expect(run.values).toHaveLength(40)
  })

  it('refuses a concurrency that is not a positive integer', () => {
    const store = createMemoryStore<string>()
    for (const concurrency of [0, -1, 1.5, NaN]) {
      expect(() => publishTo(store, { concurrency })).toThrow(TypeError)
      expect(() => publishTo(store, { concurrency })).toThrow(/concurrency/)
    }
  })

  it('refuses a retryDelay that is not a duration, naming it', () => {
    const store = createMemoryStore<string>()
    expect(() => publishTo(store, { retryDelay: -5 })).toThrow(/^retryDelay: /)
  })

  it('retries transient failures with backoff on the given scheduler', () => {
    const scheduler = new VirtualTimeScheduler()
    const { faults, store, attempts } = countingFaultStore(scheduler)
    faults.failWrites(2)
    const run = publish(store, [put('a', '1')], { scheduler })
    expect(attempts).toEqual([0])
    advanceTo(scheduler, 99)
    expect(attempts).toEqual([0])
    advanceTo(scheduler, 100)
    expect(attempts).toEqual([0, 100])
    advanceTo(scheduler, 299)
    expect(run.values).toEqual([])
    advanceTo(scheduler, 300)
    // 100 ms, then twice that.
    expect(attempts).toEqual([0, 100, 300])
    expect(run.values.map(describeResult)).toEqual(['put a=1 ok x3'])
    expect(run.completed()).toBe(true)
    expect(contents(faults.inner)).toEqual({ a: '1' })
  })

  it('takes the first retry delay from retryDelay', () => {
    const scheduler = new VirtualTimeScheduler()
    const { faults, store, attempts } = countingFaultStore(scheduler)
    faults.failWrites(3)
    const run = publish(store, [put('a', '1')], { scheduler, retryDelay: '1s' })
    scheduler.flush()
    expect(attempts).toEqual([0, 1_000, 3_000, 7_000])
    expect(run.values.map(describeResult)).toEqual(['put a=1 ok x4'])
  })

  it('shortens each retry delay by up to its jitter share, from the random source', () => {
    const scheduler = new VirtualTimeScheduler()
    const { faults, store, attempts } = countingFaultStore(scheduler)
    faults.failWrites(2)
    const random = [0.5, 1]
    publish(store, [put('a', '1')], {
      scheduler,
      retryDelay: '1s',
      jitter: 0.2,
      random: () => random.shift() ?? 0,
    })
    scheduler.flush()
    // 1000 * (1 - 0.2 * 0.5) = 900, then 2000 * (1 - 0.2) = 1600.
    expect(attempts).toEqual([0, 900, 2_500])
  })

  it('caps the retry delay at 30 s', () => {
    const scheduler = new VirtualTimeScheduler()
    const { faults, store, attempts } = countingFaultStore(scheduler)
    faults.failWrites(3)
    publish(store, [put('a', '1')], { scheduler, retryDelay: '20s' })
    scheduler.flush()
    expect(attempts).toEqual([0, 20_000, 50_000, 80_000])
  })

  it('gives up after `retries` retries with an ok: false result', () => {
    const scheduler = new VirtualTimeScheduler()
    const { faults, store, attempts } = countingFaultStore(scheduler)
    faults.failWrites(Infinity)
    const run = publish(store, [put('a', '1')], { scheduler, retries: 2, retryDelay: 10 })
    scheduler.flush()
    expect(attempts).toEqual([0, 10, 30])
    expect(run.values).toHaveLength(1)
    const [result] = run.values
    expect(result?.ok).toBe(false)
    expect(result?.attempts).toBe(3)
    expect(result?.ok === false && result.error).toBeInstanceOf(UnavailableError)
    expect(run.completed()).toBe(true)
  })

  it('retries five times by default', () => {
    const scheduler = new VirtualTimeScheduler()
    const { faults, store, attempts } = countingFaultStore(scheduler)
    faults.failWrites(Infinity)
    const run = publish(store, [put('a', '1')], { scheduler })
    scheduler.flush()
    expect(attempts).toEqual([0, 100, 300, 700, 1_500, 3_100])
    expect(run.values.map(describeResult)).toEqual(['put a=1 failed(unavailable) x6'])
  })

  it('does not retry with retries: 0', () => {
    const scheduler = new VirtualTimeScheduler()
    const { faults, store, attempts } = countingFaultStore(scheduler)
    faults.failWrites(1)
    const run = publish(store, [put('a', '1')], { scheduler, retries: 0 })
    scheduler.flush()
    expect(attempts).toEqual([0])
    expect(run.values.map(describeResult)).toEqual(['put a=1 failed(unavailable) x1'])
  })

  it('retries deletes too', () => {
    const scheduler = new VirtualTimeScheduler()
    const faults = createFaultStore<string>({ scheduler, initial: { a: '1' } })
    faults.failWrites(1)
    const run = publish(faults, [del('a')], { scheduler })
    scheduler.flush()
    expect(run.values.map(describeResult)).toEqual(['del a ok x2'])
    expect(contents(faults.inner)).toEqual({})
  })

  it('reports a non-retryable failure naming the key, and goes on', () => {
    const scheduler = new VirtualTimeScheduler()
    const { faults, store, attempts } = countingFaultStore(scheduler)
    const refusal = new DatasyncError('invalid-argument', 'value too large')
    faults.failWrites(1, refusal)
    const run = publish(store, [put('big', 'x'), put('small', 'y')], { scheduler })
    scheduler.flush()
    expect(attempts).toEqual([0, 0])
    const [failed, next] = run.values
    expect(failed).toEqual({ ok: false, publication: put('big', 'x'), attempts: 1, error: refusal })
    expect(failed?.publication.key).toBe('big')
    expect(next).toEqual({ ok: true, publication: put('small', 'y'), attempts: 1 })
    expect(run.errors).toEqual([])
    expect(run.completed()).toBe(true)
    expect(contents(faults.inner)).toEqual({ small: 'y' })
  })

  it('wraps a failure that is not a DatasyncError as an internal one, keeping the cause', () => {
    const scheduler = new VirtualTimeScheduler()
    const faults = createFaultStore<string>({ scheduler })
    const raw = new Error('socket hang up')
    faults.failWrites(1, raw)
    const run = publish(faults, [put('a', '1'), put('b', '2')], { scheduler })
    scheduler.flush()
    const [result] = run.values
    expect(result?.ok).toBe(false)
    if (result?.ok !== false) return
    expect(result.attempts).toBe(1)
    expect(result.error).toBeInstanceOf(DatasyncError)
    expect(result.error.code).toBe('internal')
    expect(result.error.message).toBe('socket hang up')
    expect(result.error.cause).toBe(raw)
    expect(run.values[1]?.ok).toBe(true)
  })

  it('reports a value that cannot be encoded as a CodecError naming the key, and goes on', () => {
    const store = createMemoryStore()
    const results: PublishResult<unknown>[] = []
    from<Publication<unknown>[]>([
      { op: 'put', key: 'cfg/bad', value: undefined },
      { op: 'put', key: 'cfg/good', value: { on: true } },
    ])
      .pipe(publishTo(store, { codec: json<unknown>() }))
      .subscribe((result) => results.push(result))
    const [bad, good] = results
    expect(bad?.ok).toBe(false)
    expect(bad?.attempts).toBe(1)
    expect(bad?.publication.key).toBe('cfg/bad')
    const error = bad?.ok === false ? bad.error : undefined
    expect(error).toBeInstanceOf(CodecError)
    expect(error).toMatchObject({ key: 'cfg/bad', codec: 'json', code: 'codec' })
    expect(error?.message).toContain(`key 'cfg/bad'`)
    expect(good?.ok).toBe(true)
    expect(store.dump().has('cfg/bad')).toBe(false)
    const written = store.dump().get('cfg/good')?.value
    expect(new TextDecoder().decode(written)).toBe('{"on":true}')
  })

  it('does not retry an encoding failure', () => {
    const scheduler = new VirtualTimeScheduler()
    let encodes = 0
    const store = createMemoryStore<string>()
    const run = collect(
      from([put('a', '1')]).pipe(
        publishTo(store, {
          scheduler,
          codec: {
            name: 'failing',
            encode: () => {
              encodes++
              throw new Error('nope')
            },
            decode: (raw: string) => raw,
          },
        }),
      ),
    )
    scheduler.flush()
    expect(encodes).toBe(1)
    expect(run.values[0]?.ok === false && run.values[0].error).toBeInstanceOf(CodecError)
  })

  it('deletes a key, and only that key without prefix', () => {
    const store = createMemoryStore<string>({ initial: { p: '0', 'p/1': '1', 'p/2': '2' } })
    publish(store, [del('p')])
    expect(contents(store)).toEqual({ 'p/1': '1', 'p/2': '2' })
    publish(store, [del('p/1', false)])
    expect(contents(store)).toEqual({ 'p/2': '2' })
  })

  it('deletes every key under a prefix', () => {
    const store = createMemoryStore<string>({ initial: { 'p/1': '1', 'p/2': '2', q: '3' } })
    const run = publish(store, [del('p/', true)])
    expect(run.values.map(describeResult)).toEqual(['del p/ ok x1'])
    expect(contents(store)).toEqual({ q: '3' })
  })

  it('reports a delete of a missing key as ok', () => {
    const store = createMemoryStore<string>()
    expect(publish(store, [del('none')]).values.map(describeResult)).toEqual(['del none ok x1'])
  })

  it('passes the TTL of a put to the store', () => {
    const scheduler = new VirtualTimeScheduler()
    const store = createMemoryStore<string>({ scheduler })
    collect(
      from<Pub[]>([{ op: 'put', key: 'lease', value: 'v', ttl: '5s' }]).pipe(publishTo(store)),
    )
    expect(contents(store)).toEqual({ lease: 'v' })
    advanceTo(scheduler, 4_999)
    expect(contents(store)).toEqual({ lease: 'v' })
    advanceTo(scheduler, 5_000)
    expect(contents(store)).toEqual({})
  })

  it('cancels a write in flight on unsubscribe', () => {
    const scheduler = new VirtualTimeScheduler()
    const { inner, store, log } = slowStore(scheduler, () => 10)
    const run = publish(store, [put('a', '1'), put('b', '1')])
    advanceTo(scheduler, 5)
    run.subscription.unsubscribe()
    scheduler.flush()
    expect(log).toEqual(['0 start a=1', '0 start b=1', '5 cancel a=1', '5 cancel b=1'])
    expect(contents(inner)).toEqual({})
    expect(run.values).toEqual([])
  })

  it('cancels a pending retry on unsubscribe', () => {
    const scheduler = new VirtualTimeScheduler()
    const { faults, store, attempts } = countingFaultStore(scheduler)
    faults.failWrites(Infinity)
    const run = publish(store, [put('b', '1')], { scheduler })
    advanceTo(scheduler, 50)
    run.subscription.unsubscribe()
    faults.failWrites(0)
    scheduler.flush()
    expect(attempts).toEqual([0])
    expect(contents(faults.inner)).toEqual({})
  })

  // BUG (src/sync/publish.ts:143-148): `finalize` completes the key's tail on unsubscribe as well
  // as on completion, so tearing down the in-flight write of 'a' releases the queued write of 'a',
  // which subscribes (starts) its write during the teardown. With a synchronous store the write
  // lands after the caller unsubscribed: here a=2 is written although the publisher was cancelled
  // while a=1 was still in flight.
  it('starts no queued write of a key on unsubscribe', () => {
    const scheduler = new VirtualTimeScheduler()
    const { inner, store, log } = slowStore(scheduler, (_, value) => (value === '1' ? 10 : 0))
    const run = publish(store, [put('a', '1'), put('a', '2')])
    advanceTo(scheduler, 5)
    run.subscription.unsubscribe()
    scheduler.flush()
    expect(log).toEqual(['0 start a=1', '5 cancel a=1'])
    expect(contents(inner)).toEqual({})
  })

  // BUG (src/sync/publish.ts:118-120): writes are ordered per exact key string only, so a prefix
  // delete does not wait for earlier puts of keys under the prefix (nor later puts for it). Here
  // the put of 'a/x' is still in flight when the delete of 'a/' runs, so 'a/x' survives a delete
  // that came after it in the stream.
  it('orders a prefix delete after earlier puts of keys under the prefix', () => {
    const scheduler = new VirtualTimeScheduler()
    const { inner, store } = slowStore(scheduler, (key) => (key === 'a/x' ? 20 : 0))
    publish(store, [put('a/x', '1'), del('a/', true)])
    scheduler.flush()
    expect(contents(inner)).toEqual({})
  })

  it('orders a put after an earlier prefix delete that covers its key', () => {
    const scheduler = new VirtualTimeScheduler()
    const { inner, store } = slowStore(scheduler, (key) => (key === 'a/' ? 20 : 0))
    inner.put('a/x', '0').subscribe()
    publish(store, [del('a/', true), put('a/x', '1'), put('b/y', '2')])
    scheduler.flush()
    expect(contents(inner)).toEqual({ 'a/x': '1', 'b/y': '2' })
  })

  it('orders writes around nested prefix deletes, whichever is slower', () => {
    const scheduler = new VirtualTimeScheduler()
    const { inner, store } = slowStore(scheduler, (key) =>
      key === 'a/b/' ? 30 : key === 'a/b/x' ? 10 : 0,
    )
    publish(store, [
      del('a/b/', true),
      put('a/b/x', '1'),
      del('a/', true),
      put('a/b/x', '2'),
      put('a/c', '3'),
    ])
    scheduler.flush()
    expect(contents(inner)).toEqual({ 'a/b/x': '2', 'a/c': '3' })
  })

  it('does not hold a write back for a pending write of another key', () => {
    const scheduler = new VirtualTimeScheduler()
    const { inner, store } = slowStore(scheduler, (key) => (key === 'a/1' ? 50 : 0))
    const results: string[] = []
    from([put('a/1', '1'), put('a/10', '2'), del('a/2'), put('b', '3')])
      .pipe(publishTo(store, { concurrency: 4 }))
      .subscribe((result) => results.push(result.publication.key))
    scheduler.flush()
    expect(results).toEqual(['a/10', 'a/2', 'b', 'a/1'])
    expect(contents(inner)).toEqual({ 'a/1': '1', 'a/10': '2', b: '3' })
  })
})
