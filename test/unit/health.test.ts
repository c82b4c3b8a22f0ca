import { BehaviorSubject, EMPTY, Subject, asyncScheduler, map, of, throwError, timer } from 'rxjs'
import { TestScheduler } from 'rxjs/testing'
import { describe, expect, it } from 'vitest'
import {
  DatasyncError,
  UnavailableError,
  createDatasync,
  createMemoryStore,
  createRoutedStore,
  type StoreStatus,
  type SyncStatus,
} from '../../src/index.js'
import { createHealth, type HealthReport } from '../../src/health/index.js'
import { createFaultStore, recordConsumer } from '../../src/testing/index.js'

function testScheduler(): TestScheduler {
  return new TestScheduler((actual, expected) => {
    expect(actual).toEqual(expected)
  })
}

/** A store-like status stream the test drives. */
function fakeStore(initial: StoreStatus['state'] = 'ready') {
  const status$ = new BehaviorSubject<StoreStatus>({ state: initial })
  return {
    status$,
    set: (status: StoreStatus) => {
      status$.next(status)
    },
  }
}

function fakeSync(initial: SyncStatus['state'] = 'in-sync') {
  const status$ = new BehaviorSubject<SyncStatus>({ state: initial })
  return {
    status$,
    set: (status: SyncStatus) => {
      status$.next(status)
    },
  }
}

/** The latest report of a health, followed while the test runs. */
function follow(health: ReturnType<typeof createHealth>) {
  let latest: HealthReport | undefined
  const subscription = health.report$.subscribe((report) => {
    latest = report
  })
  return {
    get report(): HealthReport {
      if (latest === undefined) throw new Error('no report yet')
      return latest
    },
    stop: () => {
      subscription.unsubscribe()
    },
  }
}

describe('createHealth: aggregation (the worst component wins)', () => {
  it('is ok, ready and live with no components', async () => {
    const report = await createHealth().report()
    expect(report).toEqual({ state: 'ok', ready: true, live: true, components: {} })
  })

  it('maps every store state', () => {
    const store = fakeStore('connecting')
    const watched = follow(createHealth().addStore('etcd', store))
    const seen: [string, boolean, boolean][] = []
    const record = () => {
      const { state, ready, live } = watched.report
      seen.push([state, ready, live])
    }
    record()
    store.set({ state: 'ready' })
    record()
    store.set({ state: 'degraded', error: new UnavailableError('etcd', 'connection refused') })
    record()
    store.set({ state: 'closed' })
    record()
    store.set({ state: 'closed', error: new DatasyncError('auth', 'etcd: wrong password') })
    record()
    expect(seen).toEqual([
      ['starting', false, true],
      ['ok', true, true],
      ['degraded', false, true],
      ['stopped', false, true],
      ['failed', false, false],
    ])
    expect(watched.report.components.etcd).toEqual({
      kind: 'store',
      state: 'failed',
      status: 'closed',
      error: 'etcd: wrong password',
      critical: true,
    })
    watched.stop()
  })

  it('maps every orchestrator state', () => {
    const sync = fakeSync('idle')
    const watched = follow(createHealth().addDatasync('sync', sync))
    const states: string[] = []
    for (const state of [
      'idle',
      'connecting',
      'resyncing',
      'in-sync',
      'degraded',
      'stopped',
      'halted',
    ] as const) {
      sync.set({ state })
      const report = watched.report
      states.push(
        `${state}:${report.state}:${report.ready ? 'ready' : '-'}:${report.live ? 'live' : 'dead'}`,
      )
    }
    expect(states).toEqual([
      'idle:starting:-:live',
      'connecting:starting:-:live',
      'resyncing:starting:-:live',
      'in-sync:ok:ready:live',
      'degraded:degraded:-:live',
      'stopped:stopped:-:live',
      'halted:failed:-:dead',
    ])
    watched.stop()
  })

  it('keeps the worst state whichever component changed last (unlike the Go original)', () => {
    const etcd = fakeStore('ready')
    const redis = fakeStore('ready')
    const watched = follow(createHealth().addStore('etcd', etcd).addStore('redis', redis))
    etcd.set({ state: 'degraded' })
    redis.set({ state: 'connecting' })
    redis.set({ state: 'ready' }) // the last change is good news: the aggregate stays degraded
    expect(watched.report.state).toBe('degraded')
    expect(watched.report.ready).toBe(false)
    redis.set({ state: 'closed', error: new DatasyncError('auth', 'redis: NOAUTH') })
    expect(watched.report.state).toBe('failed')
    etcd.set({ state: 'ready' })
    expect(watched.report.state).toBe('failed')
    expect(watched.report.live).toBe(false)
    redis.set({ state: 'ready' })
    expect(watched.report).toMatchObject({ state: 'ok', ready: true, live: true })
    watched.stop()
  })

  it('lists a non-critical component without letting it decide', () => {
    const cache = fakeStore('ready')
    const watched = follow(
      createHealth()
        .addStore('main', fakeStore('ready'))
        .addStore('cache', cache, { critical: false }),
    )
    cache.set({ state: 'closed', error: new UnavailableError('redis', 'gone') })
    expect(watched.report).toMatchObject({ state: 'ok', ready: true, live: true })
    expect(watched.report.components.cache).toMatchObject({ state: 'failed', critical: false })
    watched.stop()
  })

  it('reports a status stream that errors as failed', async () => {
    const report = await createHealth()
      .addStore('broken', { status$: throwError(() => new Error('boom')) })
      .report()
    expect(report.live).toBe(false)
    expect(report.components.broken).toMatchObject({ state: 'failed', status: 'error' })
    expect(report.components.broken?.error).toContain('boom')
  })

  it('refuses empty and duplicate names', () => {
    const health = createHealth().addStore('a', fakeStore())
    expect(() => health.addStore('a', fakeStore())).toThrow(/already added/)
    expect(() => health.addCheck('', () => true)).toThrow(TypeError)
  })

  it('follows a real store and orchestrator: degraded on disconnect, ok again after', async () => {
    const store = createFaultStore()
    const sync = createDatasync(store)
    const recorder = recordConsumer(sync.register('all', { prefixes: [''] }))
    const health = createHealth().addStore('store', store).addDatasync('sync', sync)
    const watched = follow(health)
    sync.start()
    await recorder.until(() => recorder.events.length > 0)
    expect((await health.report()).ready).toBe(true)
    store.disconnect()
    expect(watched.report.components.store?.state).toBe('degraded')
    expect(watched.report.components.sync?.state).toBe('degraded')
    expect(watched.report).toMatchObject({ state: 'degraded', ready: false, live: true })
    store.reconnect()
    await recorder.until(() => recorder.events.length > 0 && watched.report.ready)
    expect(watched.report.state).toBe('ok')
    expect(recorder.violations).toEqual([])
    watched.stop()
    sync.close()
    await store.close()
  })
})

describe('createHealth: checks', () => {
  it('reads every form of answer', async () => {
    const report = await createHealth()
      .addCheck('true', () => true)
      .addCheck('false', () => false)
      .addCheck('promise', () => Promise.resolve('degraded' as const))
      .addCheck('observable', () => of({ state: 'failed' as const, error: 'disk full' }))
      .addCheck('throws', () => {
        throw new Error('no database')
      })
      .addCheck('rejects', () => Promise.reject(new Error('refused')))
      .addCheck('empty', () => EMPTY)
      .report()
    const summary = Object.fromEntries(
      Object.entries(report.components).map(([name, c]) => [name, [c.state, c.error]]),
    )
    expect(summary).toEqual({
      true: ['ok', undefined],
      false: ['failed', undefined],
      promise: ['degraded', undefined],
      observable: ['failed', 'disk full'],
      throws: ['failed', 'no database'],
      rejects: ['failed', 'refused'],
      empty: ['failed', 'the check completed without an answer'],
    })
    expect(report).toMatchObject({ state: 'failed', ready: false, live: false })
  })

  it('fails a check that does not answer within its timeout, and unsubscribes it', () => {
    testScheduler().run(({ cold, expectObservable, expectSubscriptions }) => {
      const hanging = cold<boolean>('-')
      const health = createHealth({ checkInterval: 100 }).addCheck('db', () => hanging, {
        timeout: 5,
      })
      expectObservable(
        health.report$.pipe(map((r) => `${r.components.db?.status}:${r.live ? 'live' : 'dead'}`)),
        '^ 20ms !',
      ).toBe('p 4ms t', { p: 'pending:live', t: 'timeout:dead' })
      expectSubscriptions(hanging.subscriptions).toBe('^ 4ms !')
    })
  })

  it('runs a check again on its interval and recovers', () => {
    testScheduler().run(({ expectObservable }) => {
      let calls = 0
      const health = createHealth().addCheck(
        'flaky',
        () => {
          calls++
          return timer(2).pipe(map(() => calls !== 2))
        },
        { timeout: 5, interval: 10 },
      )
      expectObservable(health.report$.pipe(map((r) => r.state)), '^ 30ms !').toBe(
        's 1ms o 9ms f 9ms o',
        { s: 'starting', o: 'ok', f: 'failed' },
      )
    })
  })

  it('report() waits for the checks, at most for the longest timeout', async () => {
    const health = createHealth()
      .addCheck('slow', () => timer(30, asyncScheduler).pipe(map(() => true)), { timeout: '5s' })
      .addCheck('hung', () => new Subject<boolean>(), { timeout: 50 })
    const report = await health.report()
    expect(report.components.slow).toMatchObject({ state: 'ok', status: 'ok' })
    expect(report.components.hung).toMatchObject({ state: 'failed', status: 'timeout' })
    expect(report.components.hung?.error).toBe('no answer within 50 ms')
    expect(report.live).toBe(false)
  })

  it('refuses a check that is not a function and a bad timeout', () => {
    const health = createHealth()
    expect(() => health.addCheck('x', 'yes' as never)).toThrow(/expected a function/)
    expect(() => health.addCheck('y', () => true, { timeout: -1 })).toThrow(/timeout/)
  })
})

describe('createHealth: a combined store', () => {
  it('reports each source of a combined store as its own component', () => {
    const faulty = createFaultStore<string>()
    const local = createMemoryStore<string>()
    const store = createRoutedStore({
      'config/': { name: 'live', store: faulty },
      'local/': { name: 'local', store: local },
    })
    const health = createHealth().addStore('config', store)
    const followed = follow(health)
    expect(Object.keys(followed.report.components)).toEqual([
      'config',
      'config/live',
      'config/local',
    ])
    expect(followed.report.state).toBe('ok')
    faulty.disconnect(new UnavailableError('etcd', 'connection refused'))
    const report = followed.report
    expect(report.state).toBe('degraded')
    expect(report.components['config/live']).toMatchObject({
      kind: 'store',
      state: 'degraded',
      error: 'etcd: connection refused',
    })
    expect(report.components['config/local']).toMatchObject({ state: 'ok' })
    expect(report.components['config']).toMatchObject({ state: 'degraded' })
    faulty.reconnect()
    expect(followed.report.state).toBe('ok')
    expect(() => health.addStore('config/live', local)).toThrow(/already added/)
    followed.stop()
  })
})
