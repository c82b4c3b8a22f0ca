/**
 * The Consul watch's logic in virtual time, against scripted listings (no agent): how listings
 * become snapshots and changes, the index rules of Consul's blocking queries, the rate limit, the
 * backoff, and the status reports. The same code runs against real agents in consul*.test.ts.
 */
import { Observable, asyncScheduler, mergeMap, of, throwError, timer } from 'rxjs'
import { TestScheduler } from 'rxjs/testing'
import { describe, expect, it } from 'vitest'
import type { Blocking } from '../../src/backends/consul/client.js'
import { errorMapper } from '../../src/backends/consul/errors.js'
import { watchListing, watchRoot } from '../../src/backends/consul/watch.js'
import type { Listing, RawEntry } from '../../src/backends/consul/wire.js'
import { AuthError, UnavailableError, string, type StoreEvent } from '../../src/index.js'

const text = string()

type Step = { readonly after: number } & ({ readonly listing: Listing } | { readonly error: Error })

const entry = (key: string, value: string, modifyIndex: number): RawEntry => ({
  Key: key,
  ModifyIndex: modifyIndex,
  Value: Buffer.from(value),
})
const listing = (index: number, ...entries: RawEntry[]): Listing => ({
  index: BigInt(index),
  entries,
})

interface Run {
  readonly events: { readonly at: number; readonly event: string }[]
  readonly calls: { readonly at: number; readonly root: string; readonly blocking?: Blocking }[]
  readonly reports: string[]
  error?: unknown
}

/** Runs a watch over scripted answers for `until` virtual ms and says what happened when. */
function run(prefixes: readonly string[], script: Step[], until = 100_000): Run {
  const result: Run = { events: [], calls: [], reports: [] }
  const scheduler = new TestScheduler((a, b) => {
    expect(a).toEqual(b)
  })
  scheduler.run(() => {
    const list = (root: string, blocking?: Blocking): Observable<Listing> => {
      result.calls.push({ at: asyncScheduler.now(), root, ...(blocking ? { blocking } : {}) })
      const step = script.shift()
      // An exhausted script blocks forever, as a quiet agent would for its wait.
      if (step === undefined) return new Observable<Listing>(() => undefined)
      return timer(step.after).pipe(
        mergeMap(() => ('error' in step ? throwError(() => step.error) : of(step.listing))),
      )
    }
    const subscription = watchListing(prefixes, {
      list,
      waitMs: 30_000,
      minQueryIntervalMs: 100,
      backoff: { firstMs: 250, maxMs: 1_000 },
      scheduler: asyncScheduler,
      mapError: errorMapper('127.0.0.1:8500'),
      health: {
        up: () => result.reports.push(`ok@${asyncScheduler.now()}`),
        down: (error) => result.reports.push(`failed@${asyncScheduler.now()}: ${error.code}`),
        gone: () => result.reports.push(`ended@${asyncScheduler.now()}`),
      },
    }).subscribe({
      next: (event) => result.events.push({ at: asyncScheduler.now(), event: show(event) }),
      error: (error: unknown) => {
        result.error = error
      },
    })
    scheduler.schedule(() => {
      subscription.unsubscribe()
    }, until)
  })
  return result
}

function show(event: StoreEvent<Uint8Array>): string {
  if (event.type === 'snapshot') {
    const items = event.items.map(
      (item) => `${item.key}=${text.decode(item.value)}@${item.revision}`,
    )
    return `snapshot(${event.cause})@${event.revision} [${items.join(' ')}]`
  }
  const changes = event.changes.map((c) =>
    c.op === 'put'
      ? `put ${c.key}=${text.decode(c.value)}@${c.revision} prev=${c.prev ? text.decode(c.prev) : '-'}`
      : `delete ${c.key}@${c.revision} prev=${c.prev ? text.decode(c.prev) : '-'}`,
  )
  return `changes@${event.revision} [${changes.join(', ')}]`
}

const unavailable = () => new UnavailableError('consul', 'connect ECONNREFUSED')

describe('watchRoot', () => {
  it('lists the common root of the prefixes that are not covered by another', () => {
    expect(watchRoot(['config/routes/', 'config/interfaces/', 'config/routes/v4/'])).toEqual({
      root: 'config/',
      prefixes: ['config/interfaces/', 'config/routes/'],
    })
    expect(watchRoot(['a/', 'b/'])).toEqual({ root: '', prefixes: ['a/', 'b/'] })
    expect(watchRoot(['app/x', 'app/xy'])).toEqual({ root: 'app/x', prefixes: ['app/x'] })
    expect(watchRoot(['app/', ''])).toEqual({ root: '', prefixes: [''] })
  })
})

describe('watchListing', () => {
  it('turns listings into a snapshot, then one changes event per new listing, by ModifyIndex', () => {
    const result = run(
      ['a/'],
      [
        { after: 5, listing: listing(10, entry('a/1', 'x', 8), entry('a/2', 'y', 10)) },
        // Blocking from 10: a/1 rewritten, a/2 untouched, a/3 new.
        {
          after: 50,
          listing: listing(12, entry('a/1', 'z', 12), entry('a/2', 'y', 10), entry('a/3', 'n', 11)),
        },
        // a/2 deleted (its tombstone is the listing's index).
        { after: 50, listing: listing(13, entry('a/1', 'z', 12), entry('a/3', 'n', 11)) },
      ],
    )
    expect(result.events).toEqual([
      { at: 5, event: 'snapshot(startup)@10 [a/1=x@8 a/2=y@10]' },
      { at: 55, event: 'changes@12 [put a/3=n@11 prev=-, put a/1=z@12 prev=x]' },
      { at: 105, event: 'changes@13 [delete a/2@13 prev=y]' },
    ])
    expect(result.calls.map((c) => [c.at, c.blocking?.index])).toEqual([
      [0, undefined],
      [5, 10n],
      [55, 12n],
      [105, 13n],
    ])
    expect(result.calls[1]?.blocking?.waitMs).toBe(30_000)
  })

  it('filters the root listing to the prefixes; changes outside them are no event', () => {
    const result = run(
      ['r/a/', 'r/b/'],
      [
        { after: 1, listing: listing(5, entry('r/a/1', '1', 5), entry('r/c/1', 'no', 4)) },
        { after: 10, listing: listing(6, entry('r/a/1', '1', 5), entry('r/c/1', 'no!', 6)) },
        {
          after: 10,
          listing: listing(
            7,
            entry('r/a/1', '1', 5),
            entry('r/b/1', 'b', 7),
            entry('r/c/1', 'no!', 6),
          ),
        },
      ],
    )
    expect(result.calls[0]?.root).toBe('r/')
    expect(result.events.map((e) => e.event)).toEqual([
      'snapshot(startup)@5 [r/a/1=1@5]',
      'changes@7 [put r/b/1=b@7 prev=-]',
    ])
  })

  it('asks again at once after news, but not sooner than 100 ms after a query that brought none', () => {
    const result = run(
      ['a/'],
      [
        { after: 1, listing: listing(5) },
        // Consul's wait ran out: same index, no news.
        { after: 30_000, listing: listing(5) },
        // Woken by a change outside the prefix (the root's index moved): no news either.
        { after: 10, listing: listing(6) },
        { after: 10, listing: listing(7, entry('a/x', '1', 7)) },
      ],
    )
    expect(result.calls.map((c) => c.at)).toEqual([0, 1, 30_001, 30_101, 30_111])
    expect(result.events.map((e) => e.event)).toEqual([
      'snapshot(startup)@5 []',
      'changes@7 [put a/x=1@7 prev=-]',
    ])
  })

  it('relists with cause index-reset when the index goes backwards, and never blocks on index 0', () => {
    const result = run(
      ['a/'],
      [
        { after: 1, listing: listing(0) },
        { after: 10, listing: listing(20, entry('a/1', 'x', 20)) },
        // A snapshot restore: the index is lower, a/1 holds an older value.
        { after: 10, listing: listing(15, entry('a/1', 'old', 14)) },
        { after: 10, listing: listing(16, entry('a/1', 'old', 14), entry('a/2', 'n', 16)) },
      ],
    )
    expect(result.calls.map((c) => c.blocking?.index)).toEqual([undefined, 1n, 20n, 15n, 16n])
    expect(result.events.map((e) => e.event)).toEqual([
      'snapshot(startup)@0 []',
      'changes@20 [put a/1=x@20 prev=-]',
      'snapshot(index-reset)@15 [a/1=old@14]',
      'changes@16 [put a/2=n@16 prev=-]',
    ])
  })

  it('retries a failed query with doubling backoff, reports degraded, then relists with cause reconnect', () => {
    const result = run(
      ['a/'],
      [
        { after: 1, listing: listing(5, entry('a/1', 'x', 5)) },
        { after: 100, error: unavailable() },
        { after: 0, error: unavailable() },
        { after: 0, error: unavailable() },
        { after: 0, error: unavailable() },
        { after: 0, listing: listing(9, entry('a/1', 'y', 9)) },
        { after: 10, listing: listing(10, entry('a/1', 'y', 9), entry('a/2', 'z', 10)) },
      ],
    )
    // 250, 500, 1000 (capped), 1000 ms between the tries; the first retry lists afresh.
    expect(result.calls.map((c) => [c.at, c.blocking?.index])).toEqual([
      [0, undefined],
      [1, 5n],
      [351, undefined],
      [851, undefined],
      [1851, undefined],
      [2851, undefined],
      [2851, 9n],
      [2861, 10n],
    ])
    expect(result.events.map((e) => e.event)).toEqual([
      'snapshot(startup)@5 [a/1=x@5]',
      'snapshot(reconnect)@9 [a/1=y@9]',
      'changes@10 [put a/2=z@10 prev=-]',
    ])
    expect(result.reports.slice(0, 6)).toEqual([
      'ok@1',
      'failed@101: unavailable',
      'failed@351: unavailable',
      'failed@851: unavailable',
      'failed@1851: unavailable',
      'ok@2851',
    ])
  })

  it('a first listing that fails keeps the cause startup; a reset seen after a gap is index-reset', () => {
    const result = run(
      ['a/'],
      [
        { after: 1, error: unavailable() },
        { after: 1, listing: listing(50, entry('a/1', 'x', 50)) },
        { after: 1, error: unavailable() },
        // The agent came back without its data.
        { after: 1, listing: listing(3) },
      ],
    )
    expect(result.events.map((e) => e.event)).toEqual([
      'snapshot(startup)@50 [a/1=x@50]',
      'snapshot(index-reset)@3 []',
    ])
  })

  it('ends with the error of a fatal fault (a refused token), reporting the end', () => {
    const denied = new AuthError('consul', 'ACL not found')
    const result = run(
      ['a/'],
      [
        { after: 1, listing: listing(5) },
        { after: 5, error: denied },
      ],
    )
    expect(result.error).toBe(denied)
    expect(result.reports).toEqual(['ok@1', 'ended@6'])
  })
})
