// ConsumerState without an orchestrator: its queue (coalescing, prefixes, maxInFlight), its view
// (resync, diffs with prev), its lazy cells and the fingerprints an eager consumer of bytes keeps.
import { Subscription } from 'rxjs'
import { describe, expect, it } from 'vitest'
import type { Codec } from '../../src/core/codec.js'
import type { CodecError } from '../../src/core/errors.js'
import type { Change, KeyValue } from '../../src/core/events.js'
import { ConsumerState, type ConsumerStateOptions } from '../../src/sync/consumer-state.js'
import { r, upperCodec } from './support.js'

type Unstamped<R> = { op: 'put'; key: string; value: R } | { op: 'delete'; key: string }
const put = <R>(key: string, value: R): Unstamped<R> => ({ op: 'put', key, value })
const del = <R>(key: string): Unstamped<R> => ({ op: 'delete', key })
/** Queues the changes of one store commit at revision `at`. */
function commit<R, T>(state: ConsumerState<R, T>, at: number, ...changes: Unstamped<R>[]): void {
  state.enqueue(
    changes.map((change): Change<R> => ({ ...change, revision: r(at) })),
    r(at),
  )
}
const item = <R>(key: string, value: R, at: number): KeyValue<R> => ({
  key,
  value,
  revision: r(at),
})

/** A change as a label: `put k/1 1>2 @3` (x: no prev or no value). Reads lazy getters. */
function show<T>(change: Change<T>): string {
  const value = change.op === 'put' ? String(change.value) : 'x'
  const prev = 'prev' in change ? String(change.prev) : 'x'
  return `${change.op} ${change.key} ${prev}>${value} @${change.revision}`
}

function consumer<R, T>(
  codec: Codec<T, R>,
  options: Partial<ConsumerStateOptions<R, T>> = {},
): { state: ConsumerState<R, T>; reported: CodecError[]; listener: Subscription } {
  const reported: CodecError[] = []
  const state = new ConsumerState<R, T>({
    name: 'c',
    prefixes: ['k/'],
    codec,
    maxInFlight: 1,
    report: (error) => reported.push(error),
    storeName: 'test',
    ...options,
  })
  // A consumer is waited for only while someone listens to its events (see the listening tests).
  const listener = state.events$.subscribe()
  return { state, reported, listener }
}

/** A state whose view holds `k/1=1` and `k/2=2` (revision 1) and whose resync was paid. */
function synced(options: Partial<ConsumerStateOptions<string, string>> = {}) {
  const made = consumer<string, string>(upperCodec('counted'), { maxInFlight: 10, ...options })
  made.state.resetForRound(r(1))
  made.state.takeResync([item('k/1', '1', 1), item('k/2', '2', 1)])
  return made
}

/** Takes the next delivery as labels, and settles it. */
function deliver<R, T>(state: ConsumerState<R, T>): string[] | undefined {
  const changes = state.nextDelivery()
  if (changes === undefined) return undefined
  const delivery = new Subscription()
  state.track(delivery)
  state.settled(delivery)
  return changes.map(show)
}

describe('ConsumerState: the queue', () => {
  it('coalesces per key: the latest value, the prev the consumer last received', () => {
    const { state } = synced()
    commit(state, 2, put('k/1', '10'))
    commit(state, 3, put('k/1', '11'))
    commit(state, 4, put('k/1', '12'))
    expect(state.queued).toBe(1)
    expect(deliver(state)).toEqual(['put k/1 1>12 @4'])
  })

  it('put then delete of a held key: one delete carrying the last value delivered', () => {
    const { state } = synced()
    commit(state, 2, put('k/1', '10'))
    commit(state, 3, del('k/1'))
    expect(deliver(state)).toEqual(['delete k/1 1>x @3'])
    expect([...state.view.snapshot().keys()]).toEqual(['k/2'])
  })

  it('put then delete of a key the consumer never held: nothing to deliver', () => {
    const { state } = synced()
    commit(state, 2, put('k/9', 'new'))
    commit(state, 3, del('k/9'))
    expect(state.queued).toBe(1)
    expect(state.nextDelivery()).toBeUndefined()
    expect(state.inFlight).toBe(0)
    expect(state.queued).toBe(0)
  })

  it('delete then put: a put whose prev is the value held before the delete', () => {
    const { state } = synced()
    commit(state, 2, del('k/2'))
    commit(state, 3, put('k/2', '20'))
    commit(state, 4, del('k/9'), put('k/9', 'new'))
    expect(deliver(state)).toEqual(['put k/2 2>20 @3', 'put k/9 x>NEW @4'])
  })

  it('a key changed again moves behind the keys queued since', () => {
    const { state } = synced()
    commit(state, 2, put('k/1', 'a'), put('k/2', 'b'))
    commit(state, 3, put('k/1', 'c'))
    expect(deliver(state)).toEqual(['put k/2 2>B @2', 'put k/1 1>C @3'])
  })

  it('queues only the keys under its prefixes', () => {
    const { state } = synced({ prefixes: ['k/', 'j/'] })
    commit(state, 2, put('k/1', '10'), put('x/1', 'no'), put('j/1', 'yes'), put('kk/1', 'no'))
    expect(state.queued).toBe(2)
    expect(deliver(state)).toEqual(['put k/1 1>10 @2', 'put j/1 x>YES @2'])
  })

  it('ignores changes at or below the revision of the last round (already in the view)', () => {
    const { state } = synced()
    state.resetForRound(r(5))
    commit(state, 5, put('k/1', 'stale'))
    expect(state.queued).toBe(0)
    commit(state, 6, put('k/1', 'new'))
    commit(state, 6, put('k/2', 'older'))
    expect(deliver(state)).toEqual(['put k/1 1>NEW @6'])
  })

  it('publishes the number of waiting keys only when asked, and only when it changed', () => {
    const { state } = synced()
    const lags: number[] = []
    state.lag$.subscribe((lag) => lags.push(lag))
    commit(state, 2, put('k/1', '10'), put('k/2', '20'))
    expect(lags).toEqual([0])
    state.publishLag()
    state.publishLag()
    deliver(state)
    state.publishLag()
    expect(lags).toEqual([0, 2, 0])
  })
})

describe('ConsumerState: deliveries in flight', () => {
  it('gives at most maxInFlight deliveries before their acks; the rest waits and coalesces', () => {
    const { state } = synced({ maxInFlight: 2 })
    const first = new Subscription()
    const second = new Subscription()
    commit(state, 2, put('k/1', 'a'))
    expect(state.nextDelivery()?.map(show)).toEqual(['put k/1 1>A @2'])
    state.track(first)
    commit(state, 3, put('k/1', 'b'))
    expect(state.nextDelivery()?.map(show)).toEqual(['put k/1 A>B @3'])
    state.track(second)
    expect(state.inFlight).toBe(2)
    commit(state, 4, put('k/1', 'c'))
    commit(state, 5, put('k/1', 'd'))
    expect(state.nextDelivery()).toBeUndefined()
    expect(state.queued).toBe(1)
    state.settled(first)
    expect(state.inFlight).toBe(1)
    expect(state.nextDelivery()?.map(show)).toEqual(['put k/1 B>D @5'])
    expect(state.inFlight).toBe(2)
  })

  it('gives nothing while nothing waits', () => {
    const { state } = synced()
    expect(state.nextDelivery()).toBeUndefined()
    expect(state.inFlight).toBe(0)
  })

  it('a new round drops what is queued and in flight: the acks awaited are unsubscribed', () => {
    const { state } = synced({ maxInFlight: 1 })
    const delivery = new Subscription()
    commit(state, 2, put('k/1', 'a'))
    state.nextDelivery()
    state.track(delivery)
    commit(state, 3, put('k/2', 'b'))
    state.resetForRound(r(7))
    expect(delivery.closed).toBe(true)
    expect(state.inFlight).toBe(0)
    expect(state.queued).toBe(0)
    commit(state, 7, put('k/2', 'stale'))
    expect(state.queued).toBe(0)
  })

  it('cancel (the run ended) drops the deliveries but keeps the revision of the view', () => {
    const { state } = synced({ maxInFlight: 1 })
    const delivery = new Subscription()
    commit(state, 4, put('k/1', 'a'))
    state.nextDelivery()
    state.track(delivery)
    state.cancel()
    expect(delivery.closed).toBe(true)
    expect(state.inFlight).toBe(0)
    commit(state, 4, put('k/1', 'old'))
    expect(state.queued).toBe(0)
    commit(state, 5, put('k/1', 'b'))
    expect(deliver(state)).toEqual(['put k/1 A>B @5'])
  })
})

describe('ConsumerState: listening, closing and its prefixes', () => {
  it('while nobody listens it queues nothing, delivers nothing, and owes its resync', () => {
    const state = new ConsumerState<string, string>({
      name: 'c',
      prefixes: ['k/'],
      codec: upperCodec('counted'),
      maxInFlight: 1,
      report: () => undefined,
    })
    const seen: boolean[] = []
    state.listening$.subscribe((listening) => seen.push(listening))
    commit(state, 2, put('k/1', 'a'))
    expect(state.queued).toBe(0)
    expect(state.listening).toBe(false)
    state.skipRound()
    expect(state.missedRound).toBe(true)
    expect(state.pendingResync).toBe('startup')
    const subscription = state.events$.subscribe()
    const second = state.events$.subscribe()
    expect(seen).toEqual([false, true])
    subscription.unsubscribe()
    expect(state.listening).toBe(true)
    second.unsubscribe()
    expect(seen).toEqual([false, true, false])
  })

  it('when its last subscriber leaves, the deliveries in flight are cancelled and a resync is owed', () => {
    const { state, listener } = synced()
    expect(state.missedRound).toBe(false)
    expect(state.pendingResync).toBeUndefined()
    const away: string[] = []
    state.away$.subscribe(() => away.push('away'))
    const delivery = new Subscription()
    commit(state, 2, put('k/1', 'a'))
    state.nextDelivery()
    state.track(delivery)
    const extra = state.events$.subscribe()
    extra.unsubscribe()
    expect(away).toEqual([])
    expect(delivery.closed).toBe(false)
    listener.unsubscribe()
    expect(away).toEqual(['away'])
    expect(delivery.closed).toBe(true)
    expect(state.inFlight).toBe(0)
    expect(state.pendingResync).toBe('register')
    expect(state.missedRound).toBe(true)
    commit(state, 3, put('k/2', 'b'))
    expect(state.queued).toBe(0)
  })

  it('closing cancels what is in flight, signals away$ and completes its streams', () => {
    const { state } = synced({ maxInFlight: 1 })
    const delivery = new Subscription()
    commit(state, 2, put('k/1', 'a'))
    state.nextDelivery()
    state.track(delivery)
    const ends: string[] = []
    state.away$.subscribe({ next: () => ends.push('away'), complete: () => ends.push('away|') })
    state.events$.subscribe({ complete: () => ends.push('events|') })
    state.lag$.subscribe({ complete: () => ends.push('lag|') })
    state.close()
    state.close()
    expect(delivery.closed).toBe(true)
    expect(state.closed).toBe(true)
    expect(state.inFlight).toBe(0)
    expect(ends).toEqual(['away', 'away|', 'events|', 'lag|'])
  })

  it('new prefixes: the next diff brings the keys that entered and those that left (with their last value)', () => {
    const { state } = synced()
    expect(state.takeRescoped()).toBe(false)
    state.setPrefixes(['j/', 'k/2'])
    expect(state.prefixes).toEqual(['j/', 'k/2'])
    expect(state.takeRescoped()).toBe(true)
    expect(state.takeRescoped()).toBe(false)
    const changes = state.diffTo(
      [item('j/1', 'j', 3), item('k/1', '1', 1), item('k/2', '2', 1)],
      r(3),
    )
    expect(changes.map(show)).toEqual(['put j/1 x>J @3', 'delete k/1 1>x @3'])
  })
})

describe('ConsumerState: resync and the diff after a gap', () => {
  it('owes a first resync (its reason from the options) until it takes one', () => {
    expect(consumer(upperCodec('counted')).state.pendingResync).toBe('startup')
    const { state } = consumer(upperCodec('counted'), { firstReason: 'register' })
    expect(state.pendingResync).toBe('register')
    state.takeResync([])
    expect(state.pendingResync).toBeUndefined()
  })

  it('a resync gives the items under its prefixes, decoded, and becomes the view', () => {
    const { state } = consumer(upperCodec('counted'), { prefixes: ['k/'] })
    const items = state.takeResync([item('j/1', 'no', 1), item('k/1', 'a', 2), item('k/2', 'b', 3)])
    expect(items).toEqual([item('k/1', 'A', 2), item('k/2', 'B', 3)])
    expect([...state.view.snapshot().values()]).toEqual(items)
  })

  it('a resync keeps the last good value of a key that no longer decodes (P6), reported', () => {
    const { state, reported } = synced()
    const items = state.takeResync([item('k/1', 'bad', 5), item('k/2', 'two', 5)])
    expect(items).toEqual([item('k/1', '1', 1), item('k/2', 'TWO', 5)])
    expect([...state.view.snapshot().values()]).toEqual(items)
    expect(reported.map((error) => [error.key, error.consumer, error.codec, error.store])).toEqual([
      ['k/1', 'c', 'counted', 'test'],
    ])
  })

  it('the diff: puts with prev, new keys without, deletes carrying the last value; nothing for the unchanged', () => {
    const { state } = synced({ prefixes: ['k/'] })
    commit(state, 2, put('k/3', '3'))
    deliver(state)
    const changes = state.diffTo(
      [item('k/1', '1', 1), item('k/2', '20', 8), item('k/4', '4', 8), item('x/1', 'no', 8)],
      r(9),
    )
    expect(changes.map(show)).toEqual(['put k/2 2>20 @8', 'put k/4 x>4 @8', 'delete k/3 3>x @9'])
    expect([...state.view.snapshot().keys()]).toEqual(['k/1', 'k/2', 'k/4'])
    expect(
      state.diffTo([item('k/1', '1', 1), item('k/2', '20', 8), item('k/4', '4', 8)], r(9)),
    ).toEqual([])
  })
})

describe('ConsumerState: lazy cells', () => {
  it('decodes nothing at resync; a value is decoded at its first read, once', () => {
    const codec = upperCodec('counted')
    const { state } = consumer(codec, { decode: 'lazy' })
    const items = state.takeResync([item('k/1', 'a', 1), item('k/2', 'b', 1)])
    expect(codec.decoded).toEqual([])
    expect(items[0]?.value).toBe('A')
    expect(items[0]?.value).toBe('A')
    expect(state.view.snapshot().get('k/1')?.value).toBe('A')
    expect(codec.decoded).toEqual(['a'])
  })

  it('a change decodes at first read, and its prev is the cell read before (no second decode)', () => {
    const codec = upperCodec('counted')
    const { state } = consumer(codec, { decode: 'lazy', maxInFlight: 10 })
    const [held] = state.takeResync([item('k/1', 'a', 1)])
    expect(held?.value).toBe('A')
    commit(state, 2, put('k/1', 'b'))
    const [first] = state.nextDelivery() ?? []
    expect(codec.decoded).toEqual(['a'])
    expect(first?.op === 'put' ? first.value : undefined).toBe('B')
    expect(first?.prev).toBe('A')
    commit(state, 3, del('k/1'))
    const [gone] = state.nextDelivery() ?? []
    expect(gone?.prev).toBe('B')
    expect(codec.decoded).toEqual(['a', 'b'])
  })

  it('a resync with the same bytes keeps the cell: a value read before is not decoded again', () => {
    const codec = upperCodec('counted')
    const { state } = consumer(codec, { decode: 'lazy' })
    const [held] = state.takeResync([item('k/1', 'a', 1), item('k/2', 'b', 1)])
    expect(held?.value).toBe('A')
    const again = state.takeResync([item('k/1', 'a', 4), item('k/2', 'c', 4)])
    expect(again.map((kv) => kv.value)).toEqual(['A', 'C'])
    expect(codec.decoded).toEqual(['a', 'c'])
  })

  it('a value that does not decode throws its CodecError at each read, reported once', () => {
    const { state, reported } = consumer(upperCodec('counted'), { decode: 'lazy' })
    const [bad] = state.takeResync([item('k/1', 'bad', 1)])
    expect(reported).toEqual([])
    expect(() => bad?.value).toThrow(/k\/1/)
    expect(() => state.view.snapshot().get('k/1')?.value).toThrow(/k\/1/)
    expect(reported).toHaveLength(1)
    expect(reported[0]?.key).toBe('k/1')
  })
})

describe('ConsumerState: an eager consumer of bytes compares fingerprints', () => {
  const enc = (text: string) => new TextEncoder().encode(text)
  const dec = new TextDecoder()
  /** Bytes as text, recording each decode; '!' fails, and so does every value once `refuse` is set. */
  function text(): Codec<string> & { readonly decoded: string[]; refuse: boolean } {
    const decoded: string[] = []
    const codec = {
      name: 'text',
      decoded,
      refuse: false,
      encode: enc,
      decode: (raw: Uint8Array) => {
        const value = dec.decode(raw)
        decoded.push(value)
        if (value === '!' || codec.refuse) throw new Error('not text')
        return value
      },
    }
    return codec
  }
  function bytesConsumer() {
    const codec = text()
    const { state, reported } = consumer(codec, { maxInFlight: 10 })
    state.takeResync([item('k/1', enc('one'), 3), item('k/2', enc('two'), 3)])
    codec.decoded.length = 0
    return { state, reported, codec }
  }

  it('the same fingerprint and revision: unchanged, without decoding', () => {
    const { state, codec } = bytesConsumer()
    expect(state.diffTo([item('k/1', enc('one'), 3), item('k/2', enc('two'), 3)], r(9))).toEqual([])
    expect(codec.decoded).toEqual([])
  })

  it('the same fingerprint at another revision: decoded and compared, unchanged', () => {
    const { state, codec } = bytesConsumer()
    expect(state.diffTo([item('k/1', enc('one'), 8), item('k/2', enc('two'), 3)], r(9))).toEqual([])
    expect(codec.decoded).toEqual(['one'])
  })

  it('another fingerprint: a change with the value held as prev', () => {
    const { state, codec } = bytesConsumer()
    const changes = state.diffTo([item('k/1', enc('ONE'), 8), item('k/2', enc('two'), 3)], r(9))
    expect(changes.map(show)).toEqual(['put k/1 one>ONE @8'])
    expect(codec.decoded).toEqual(['ONE'])
  })

  it('other bytes at the same revision (a history reset): a change', () => {
    const { state } = bytesConsumer()
    const changes = state.diffTo([item('k/1', enc('uno'), 3), item('k/2', enc('two'), 3)], r(3))
    expect(changes.map(show)).toEqual(['put k/1 one>uno @3'])
  })

  it('undecodable bytes after a gap: reported, no change, the last good value stays', () => {
    const { state, reported } = bytesConsumer()
    expect(state.diffTo([item('k/1', enc('!'), 8), item('k/2', enc('two'), 3)], r(9))).toEqual([])
    expect(reported.map((error) => error.key)).toEqual(['k/1'])
    expect(state.view.snapshot().get('k/1')?.value).toBe('one')
  })

  it('the same bytes at another revision that no longer decode: reported once, unchanged', () => {
    const { state, reported, codec } = bytesConsumer()
    codec.refuse = true
    expect(state.diffTo([item('k/1', enc('one'), 8), item('k/2', enc('two'), 3)], r(9))).toEqual([])
    expect(reported.map((error) => error.key)).toEqual(['k/1'])
    expect(state.view.snapshot().get('k/1')?.value).toBe('one')
  })

  it('a change is decoded once at delivery, and its value becomes the next prev', () => {
    const { state, codec } = bytesConsumer()
    commit(state, 4, put('k/1', enc('a')))
    commit(state, 5, put('k/1', enc('b')))
    expect(codec.decoded).toEqual([])
    expect(deliver(state)).toEqual(['put k/1 one>b @5'])
    expect(codec.decoded).toEqual(['b'])
    commit(state, 6, del('k/1'))
    expect(deliver(state)).toEqual(['delete k/1 b>x @6'])
  })
})
