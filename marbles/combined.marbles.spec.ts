import { map, type Observable } from 'rxjs'
import { describe, it } from 'vitest'
import {
  createDatasync,
  createLayeredStore,
  createRoutedStore,
  type StoreEvent,
} from '../src/index.js'
import { ackAfter, changesOf, scriptedStore, snapshotOf } from '../src/testing/index.js'
import { labels, testScheduler } from './helpers.js'

/** A combined watch's events as `S a=1 b=2` and `C a:1>2 b:x>3` labels. */
function storeLabels(events$: Observable<StoreEvent<string>>): Observable<string> {
  return events$.pipe(
    map((event) =>
      event.type === 'snapshot'
        ? ['S', ...event.items.map((item) => `${item.key}=${item.value}`)].join(' ')
        : [
            'C',
            ...event.changes.map(
              (c) => `${c.key}:${c.prev ?? 'x'}>${c.op === 'put' ? c.value : 'x'}`,
            ),
          ].join(' '),
    ),
  )
}

const RUNNING = { c: { state: 'connecting' }, r: { state: 'resyncing' }, s: { state: 'in-sync' } }

describe('combined stores: merging sources', () => {
  it('the first snapshot waits for every source; then each source flows on its own', () => {
    testScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const a = cold('  s--c---', {
        s: snapshotOf(1, { 'a/1': '1' }),
        c: changesOf(2, { 'a/1': '2' }),
      })
      const b = cold('  --s--c-', {
        s: snapshotOf(7, { 'b/1': '1' }),
        c: changesOf<string>(8, { 'b/1': null }),
      })
      const subs = '    ^-----!'
      const watched = ' --sc-d-'

      const store = createRoutedStore({ 'a/': scriptedStore(a), 'b/': scriptedStore(b) })
      expectObservable(storeLabels(store.watch([''])), subs).toBe(watched, {
        s: 'S a/1=1 b/1=1',
        c: 'C a/1:1>2',
        d: 'C b/1:1>x',
      })
      expectSubscriptions(a.subscriptions).toBe(subs)
      expectSubscriptions(b.subscriptions).toBe(subs)
    })
  })

  it('a gap in one source during a resync round does not restart the round: its differences follow it', () => {
    testScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const a = cold('  s---g-----', {
        s: snapshotOf(1, { 'a/1': '1', 'a/2': '2' }),
        g: snapshotOf(9, { 'a/1': '10', 'a/3': '3' }, 'reconnect'),
      })
      const b = cold('  s---------', { s: snapshotOf(4, { 'b/1': '1' }) })
      const runSubs = ' ^--------!'
      const status = '  (cr)---s--'
      const allSeen = ' r------c--'
      const bEvents = ' ------r---'

      const store = createRoutedStore({ 'a/': scriptedStore(a), 'b/': scriptedStore(b) })
      const sync = createDatasync(store)
      const all = sync.register('all', { prefixes: [''] })
      const onlyB = sync.register('b', { prefixes: ['b/'] })
      // 'all' holds its resync until frame 6: the gap at 4 comes in the middle of the round.
      ackAfter(all.events$, (event) => (event.kind === 'resync' ? 6 : 0))
      ackAfter(onlyB.events$, 1)
      expectObservable(sync.run$, runSubs).toBe(status, RUNNING)
      expectObservable(labels(all.events$)).toBe(allSeen, {
        r: 'R(startup) a/1=1 a/2=2 b/1=1',
        c: 'C(live) a/1:1>10 a/2:2>x a/3:x>3',
      })
      expectObservable(labels(onlyB.events$)).toBe(bEvents, { r: 'R(startup) b/1=1' })
      expectSubscriptions(a.subscriptions).toBe(runSubs)
      expectSubscriptions(b.subscriptions).toBe(runSubs)
    })
  })

  it('changes from one source keep flowing while another relists', () => {
    testScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const a = cold('  s--g-----', {
        s: snapshotOf(1, { 'a/1': '1' }),
        g: snapshotOf(5, { 'a/1': '1', 'a/2': '2' }, 'watch-error'),
      })
      const b = cold('  s-c-d-e--', {
        s: snapshotOf(1, { 'b/1': '1' }),
        c: changesOf(2, { 'b/1': '2' }),
        d: changesOf(3, { 'b/1': '3' }),
        e: changesOf(4, { 'b/2': 'new' }),
      })
      const runSubs = ' ^-------!'
      const allSeen = ' r-cgd-e--'

      const store = createRoutedStore({ 'a/': scriptedStore(a), 'b/': scriptedStore(b) })
      const sync = createDatasync(store)
      const all = sync.register('all', { prefixes: [''] })
      ackAfter(all.events$, 0)
      expectObservable(sync.run$, runSubs).toBe('(crs)----', RUNNING)
      expectObservable(labels(all.events$)).toBe(allSeen, {
        r: 'R(startup) a/1=1 b/1=1',
        c: 'C(live) b/1:1>2',
        g: 'C(live) a/2:x>2',
        d: 'C(live) b/1:2>3',
        e: 'C(live) b/2:x>new',
      })
      expectSubscriptions(a.subscriptions).toBe(runSubs)
      expectSubscriptions(b.subscriptions).toBe(runSubs)
    })
  })

  it('a source that misses the start timeout: the others resync at the deadline, its keys come later as changes', () => {
    testScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const a = cold('  s---------', { s: snapshotOf(1, { 'a/1': '1' }) })
      const b = cold('  ------s---', { s: snapshotOf(3, { 'b/1': '1' }) })
      const subs = '    ^--------!'
      const watched = ' ----s-c---'

      const store = createRoutedStore(
        { 'a/': scriptedStore(a), 'b/': scriptedStore(b) },
        { startTimeout: 4 },
      )
      expectObservable(storeLabels(store.watch([''])), subs).toBe(watched, {
        s: 'S a/1=1',
        c: 'C b/1:x>1',
      })
      expectSubscriptions(a.subscriptions).toBe(subs)
      expectSubscriptions(b.subscriptions).toBe(subs)
    })
  })

  it('layered: a delete in the top layer reveals the lower value; a hidden change is no change', () => {
    testScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const low = cold('s---c---', {
        s: snapshotOf(1, { k: 'low' }),
        c: changesOf(2, { k: 'low2' }),
      })
      const top = cold('s-d---p-', {
        s: snapshotOf(1, { k: 'top' }),
        d: changesOf<string>(2, { k: null }),
        p: changesOf(3, { k: 'top2' }),
      })
      const subs = '    ^------!'
      const watched = ' s-d-c-p'

      const store = createLayeredStore([scriptedStore(low), scriptedStore(top)])
      expectObservable(storeLabels(store.watch([''])), subs).toBe(watched, {
        s: 'S k=top',
        d: 'C k:top>low',
        c: 'C k:low>low2',
        p: 'C k:low2>top2',
      })
      expectSubscriptions(low.subscriptions).toBe(subs)
      expectSubscriptions(top.subscriptions).toBe(subs)
    })
  })
})
