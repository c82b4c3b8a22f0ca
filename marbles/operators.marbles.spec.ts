import { map } from 'rxjs'
import { describe, expect, it } from 'vitest'
import {
  batchQuiet,
  createDatasync,
  filterEvents,
  handleEvents,
  mapValues,
  revision,
  toViews,
  type Change,
  type ConsumerEvent,
  type KeyValue,
} from '../src/index.js'
import { changesOf, scriptedStore, snapshotOf } from '../src/testing/index.js'
import { testScheduler } from './helpers.js'

const show = (error: unknown): string =>
  error instanceof Error ? `Error: ${error.message}` : typeof error === 'string' ? error : '?'

/** Acknowledgements as they happen: `a` (done) or `a!boom` (done(error)), with the frame. */
type Acks = string[]

function kv(key: string, value: number, rev = 1): KeyValue<number> {
  return { key, value, revision: revision(rev) }
}

/** A change event named `name` whose done() is recorded in `acks` at the frame it is called. */
function change(
  name: string,
  acks: Acks,
  now: () => number,
  changes: readonly Change<number>[],
  rev = 1,
): ConsumerEvent<number> {
  return {
    kind: 'change',
    consumer: 'c',
    reason: 'live',
    revision: revision(rev),
    changes,
    done: (error?: unknown) => {
      acks.push(`${now()}:${name}${error === undefined ? '' : `!${show(error)}`}`)
    },
  }
}

function resync(
  name: string,
  acks: Acks,
  now: () => number,
  items: readonly KeyValue<number>[],
  rev = 1,
): ConsumerEvent<number> {
  return {
    kind: 'resync',
    consumer: 'c',
    reason: 'startup',
    revision: revision(rev),
    items,
    done: (error?: unknown) => {
      acks.push(`${now()}:${name}${error === undefined ? '' : `!${show(error)}`}`)
    },
  }
}

const put = (key: string, value: number, prev?: number, rev = 1): Change<number> =>
  prev === undefined
    ? { op: 'put', key, value, revision: revision(rev) }
    : { op: 'put', key, value, prev, revision: revision(rev) }
const del = (key: string, prev?: number, rev = 1): Change<number> =>
  prev === undefined
    ? { op: 'delete', key, revision: revision(rev) }
    : { op: 'delete', key, prev, revision: revision(rev) }

/** A readable line per event: `C a=1 b-` or `R a=1 b=2`. */
function brief(event: ConsumerEvent<number>): string {
  if (event.kind === 'resync') return `R ${event.items.map((i) => `${i.key}=${i.value}`).join(' ')}`
  const parts = event.changes.map((c) => {
    const prev = c.prev === undefined ? '' : `${c.prev}>`
    return c.op === 'put' ? `${c.key}=${prev}${c.value}` : `${c.key}-${prev}`
  })
  return `C ${parts.join(' ')}`
}

describe('handleEvents', () => {
  it('acknowledges each event when its handler finishes, one at a time by default', () => {
    const acks: Acks = []
    const ts = testScheduler()
    ts.run(({ cold, hot, expectObservable, expectSubscriptions, flush }) => {
      const now = () => ts.now()
      const a = change('a', acks, now, [put('k', 1)])
      const b = change('b', acks, now, [put('k', 2, 1)])
      const events = hot('   -a-b--------|', { a, b })
      const workA = cold('    ---|         ')
      const workB = cold('       --|       ')
      const handled = events.pipe(
        handleEvents((event) => (event === a ? workA : workB)),
        map(({ event, error }) => `${event === a ? 'A' : 'B'}${error === undefined ? '' : '!'}`),
      )
      expectObservable(handled).toBe('----A-B-----|')
      expectSubscriptions(workA.subscriptions).toBe('-^--!         ')
      // b arrived at 3 and waited for a's handler to finish at 4.
      expectSubscriptions(workB.subscriptions).toBe('----^-!       ')
      flush()
    })
    expect(acks).toEqual(['4:a', '6:b'])
  })

  it('acknowledges with the error when the handler throws, rejects or errors, and goes on', async () => {
    const acks: Acks = []
    const ts = testScheduler()
    ts.run(({ cold, hot, expectObservable }) => {
      const now = () => ts.now()
      const a = change('a', acks, now, [put('k', 1)])
      const b = change('b', acks, now, [put('k', 2)])
      const c = change('c', acks, now, [put('k', 3)])
      const events = hot('-a-b-c-|', { a, b, c })
      const failing = cold('  -#', undefined, 'boom')
      const handled = events.pipe(
        handleEvents((event) => {
          if (event === a) throw new Error('thrown')
          if (event === b) return failing
          return undefined
        }),
        map(({ error }) => (error === undefined ? 'ok' : show(error))),
      )
      expectObservable(handled).toBe('-a--bc-|', { a: 'Error: thrown', b: 'boom', c: 'ok' })
    })
    expect(acks).toEqual(['1:a!Error: thrown', '4:b!boom', '5:c'])

    const rejected: Acks = []
    const event = change('p', rejected, () => 0, [put('k', 1)])
    const { of, lastValueFrom } = await import('rxjs')
    const result = await lastValueFrom(
      of(event).pipe(handleEvents(() => Promise.reject(new Error('rejected')))),
    )
    expect(show(result.error)).toBe('Error: rejected')
    expect(rejected).toEqual(['0:p!Error: rejected'])
  })

  it('on unsubscribe cancels the handler in flight and leaves its event unacknowledged', () => {
    const acks: Acks = []
    const ts = testScheduler()
    ts.run(({ cold, hot, expectObservable, expectSubscriptions, flush }) => {
      const now = () => ts.now()
      const a = change('a', acks, now, [put('k', 1)])
      const events = hot('  -a------', { a })
      const work = cold('    -----|  ')
      const unsub = '       ---!     '
      expectObservable(events.pipe(handleEvents(() => work)), unsub).toBe('--------')
      expectSubscriptions(work.subscriptions).toBe('-^-!     ')
      expectSubscriptions(events.subscriptions).toBe('^--!     ')
      flush()
    })
    expect(acks).toEqual([])
  })

  it('runs handlers side by side up to its concurrency', () => {
    const acks: Acks = []
    const ts = testScheduler()
    ts.run(({ cold, hot, expectSubscriptions, flush }) => {
      const now = () => ts.now()
      const a = change('a', acks, now, [put('a', 1)])
      const b = change('b', acks, now, [put('b', 1)])
      const events = hot('-ab------', { a, b })
      const workA = cold(' ----|    ')
      const workB = cold('  -|      ')
      events
        .pipe(handleEvents((event) => (event === a ? workA : workB), { concurrency: 2 }))
        .subscribe()
      expectSubscriptions(workA.subscriptions).toBe('-^---!    ')
      expectSubscriptions(workB.subscriptions).toBe('--^!      ')
      flush()
    })
    expect(acks).toEqual(['3:b', '5:a'])
    expect(() => handleEvents(() => undefined, { concurrency: 0 })).toThrow(
      /expected concurrency to be a whole number from 1 up, got 0/,
    )
  })

  it('reports a failing handler as a ConsumerError of the orchestrator, and the next event flows', () => {
    const reported: string[] = []
    testScheduler().run(({ cold, expectObservable, expectSubscriptions, flush }) => {
      const watch = cold('s-a-b', {
        s: snapshotOf(1, { 'k/1': '1' }),
        a: changesOf(2, { 'k/1': '2' }),
        b: changesOf(3, { 'k/1': '3' }),
      })
      const sync = createDatasync(scriptedStore(watch), { ackTimeout: 100 })
      const k = sync.register('k', { prefixes: ['k/'] })
      sync.errors$.subscribe((error) => reported.push(`${error.name}: ${error.message}`))
      const handled = k.events$.pipe(
        handleEvents((event) => {
          const first = event.kind === 'change' ? event.changes[0] : undefined
          if (first?.op === 'put' && first.value === '2') throw new Error('no')
        }),
        map(({ event }) => (event.kind === 'resync' ? 'R' : 'C')),
      )
      expectObservable(handled).toBe('R-C-C')
      const run = sync.run$.subscribe()
      flush()
      run.unsubscribe()
      expectSubscriptions(watch.subscriptions).toBe('^---!')
    })
    expect(reported).toEqual([
      expect.stringMatching(/^ConsumerError: consumer 'k' .*no/) as unknown as string,
    ])
  })
})

describe('filterEvents and mapValues', () => {
  it('acknowledges the events it drops at once, and passes the others with their done', () => {
    const acks: Acks = []
    const ts = testScheduler()
    ts.run(({ hot, expectObservable, expectSubscriptions, flush }) => {
      const now = () => ts.now()
      const a = change('a', acks, now, [put('keep/1', 1)])
      const b = change('b', acks, now, [put('drop/1', 1)])
      const events = hot('-a-b-|', { a, b })
      const kept = events.pipe(filterEvents((e) => e.kind === 'change' && e === a))
      expectObservable(kept.pipe(map(brief))).toBe('-a---|', { a: 'C keep/1=1' })
      expectSubscriptions(events.subscriptions).toBe('^----!')
      flush()
    })
    expect(acks).toEqual(['3:b'])
  })

  it('maps every value (items, value and prev) and keeps the acknowledgement with the event', () => {
    const acks: Acks = []
    const ts = testScheduler()
    ts.run(({ hot, expectObservable, expectSubscriptions, flush }) => {
      const now = () => ts.now()
      const r = resync('r', acks, now, [kv('a', 1), kv('b', 2)])
      const c = change('c', acks, now, [put('a', 3, 1), del('b', 2)])
      const events = hot('-r-c-|', { r, c })
      const mapped = events.pipe(mapValues((v: number, key) => v * 10 + (key === 'a' ? 1 : 2)))
      expectObservable(
        mapped.pipe(
          map((event) => {
            event.done()
            return brief(event)
          }),
        ),
      ).toBe('-r-c-|', { r: 'R a=11 b=22', c: 'C a=11>31 b-22>' })
      expectSubscriptions(events.subscriptions).toBe('^----!')
      flush()
    })
    expect(acks).toEqual(['1:r', '3:c'])
  })
})

describe('batchQuiet', () => {
  it('emits a batch after the quiet period, or the longest wait under a steady stream', () => {
    const acks: Acks = []
    const ts = testScheduler()
    ts.run(({ hot, expectObservable, expectSubscriptions, flush }) => {
      const now = () => ts.now()
      const e = (name: string, value: number, prev?: number) =>
        change(name, acks, now, [put('k', value, prev)])
      const events = hot('-a-b--------c-d-e-f-g--h-|', {
        a: e('a', 1),
        b: e('b', 2, 1),
        c: e('c', 3, 2),
        d: e('d', 4, 3),
        e: e('e', 5, 4),
        f: e('f', 6, 5),
        g: e('g', 7, 6),
        h: e('h', 8, 7),
      })
      const batched = events.pipe(batchQuiet({ min: 5, max: 10 }))
      expectObservable(
        batched.pipe(
          map((event) => {
            event.done()
            return brief(event)
          }),
        ),
      ).toBe('--------x-------------y--(z|)', { x: 'C k=2', y: 'C k=2>7', z: 'C k=7>8' })
      expectSubscriptions(events.subscriptions).toBe('^------------------------!')
      flush()
    })
    // a and b merged (a put of a new key keeps no prev); c..g hit the 10-frame cap; h (at 23) flushed
    // at completion (25).
    expect(acks).toEqual(['8:a', '8:b', '22:c', '22:d', '22:e', '22:f', '22:g', '25:h'])
  })

  it('coalesces per key (latest value, earliest prev), drops a key made and deleted, and folds changes into a resync', () => {
    const acks: Acks = []
    const ts = testScheduler()
    ts.run(({ hot, expectObservable, flush }) => {
      const now = () => ts.now()
      const events = hot('-a-b-c----------r-s-----', {
        a: change('a', acks, now, [put('x', 2, 1), put('tmp', 1)]),
        b: change('b', acks, now, [put('x', 3, 2), del('tmp', 1), put('y', 1)]),
        c: change('c', acks, now, [del('y', 1)], 3),
        r: resync('r', acks, now, [kv('x', 3), kv('z', 1)]),
        s: change('s', acks, now, [put('z', 2, 1), put('w', 9)], 4),
      })
      const batched = events.pipe(batchQuiet({ min: 3 }))
      expectObservable(
        batched.pipe(
          map((event) => {
            event.done(event.kind === 'resync' ? 'bad' : undefined)
            return `${brief(event)} @${event.revision}`
          }),
        ),
      ).toBe('--------m------------n--', { m: 'C x=1>3 @3', n: 'R w=9 x=3 z=2 @4' })
      flush()
    })
    expect(acks).toEqual(['8:a', '8:b', '8:c', '21:r!bad', '21:s!bad'])
  })

  it('cancels its timer and holds nothing back on unsubscribe; passes errors on', () => {
    const acks: Acks = []
    const ts = testScheduler()
    ts.run(({ hot, expectObservable, expectSubscriptions, flush }) => {
      const now = () => ts.now()
      const events = hot('-a--------', { a: change('a', acks, now, [put('k', 1)]) })
      expectObservable(events.pipe(batchQuiet({ min: 5 })), '---!').toBe('------')
      expectSubscriptions(events.subscriptions).toBe('^--!      ')
      const failing = hot('-a-#', { a: change('b', acks, now, [put('k', 1)]) }, 'lost')
      expectObservable(failing.pipe(batchQuiet({ min: 5 }))).toBe('---#', undefined, 'lost')
      flush()
    })
    expect(acks).toEqual([])
    expect(() => batchQuiet({ min: 10, max: 5 })).toThrow(
      /expected max \(5 ms\) to be at least min/,
    )
  })
})

describe('toViews', () => {
  it('emits an immutable view per event, then acknowledges it; unchanged keys keep their identity', () => {
    const acks: Acks = []
    const views: ReadonlyMap<string, KeyValue<number>>[] = []
    const ts = testScheduler()
    ts.run(({ hot, expectObservable, expectSubscriptions, flush }) => {
      const now = () => ts.now()
      const events = hot('-r-c-s-|', {
        r: resync('r', acks, now, [kv('a', 1), kv('b', 2)]),
        c: change('c', acks, now, [put('b', 3, 2, 2)], 2),
        s: resync('s', acks, now, [kv('a', 1), kv('b', 4, 3)], 3),
      })
      const out = events.pipe(
        toViews<number>(),
        map((view) => {
          views.push(view)
          acks.push(
            `${now()}:view ${[...view.values()].map((i) => `${i.key}=${i.value}`).join(' ')}`,
          )
          return view.size
        }),
      )
      expectObservable(out).toBe('-x-x-x-|', { x: 2 })
      expectSubscriptions(events.subscriptions).toBe('^------!')
      flush()
    })
    // Each view is seen before its event is acknowledged.
    expect(acks).toEqual([
      '1:view a=1 b=2',
      '1:r',
      '3:view a=1 b=3',
      '3:c',
      '5:view a=1 b=4',
      '5:s',
    ])
    const [v1, v2, v3] = views
    expect(v2?.get('a')).toBe(v1?.get('a'))
    expect(v3?.get('a')).toBe(v1?.get('a'))
    expect(v3?.get('b')).not.toBe(v2?.get('b'))
    expect(Object.isFrozen(v2)).toBe(true)
    expect(v1?.get('b')?.value).toBe(2)
  })

  it('acknowledges with the error when a value cannot be read while building the view, and ends with it', () => {
    const acks: Acks = []
    const ts = testScheduler()
    ts.run(({ hot, expectObservable, expectSubscriptions, flush }) => {
      const now = () => ts.now()
      const unreadable: Change<number> = {
        op: 'put',
        key: 'a',
        revision: revision(2),
        get value(): number {
          throw new Error('cannot decode a')
        },
      }
      const events = hot('-r-c-', {
        r: resync('r', acks, now, [kv('a', 1)]),
        c: change('c', acks, now, [unreadable]),
      })
      expectObservable(
        events.pipe(
          toViews<number>(),
          map((view) => view.size),
        ),
      ).toBe('-x-#', { x: 1 }, new Error('cannot decode a'))
      expectSubscriptions(events.subscriptions).toBe('^--! ')
      flush()
    })
    expect(acks).toEqual(['1:r', '3:c!Error: cannot decode a'])
  })
})
