import { NEVER, Subject, VirtualTimeScheduler, defer, finalize, of, throwError } from 'rxjs'
import { TestScheduler } from 'rxjs/testing'
import { describe, expect, it } from 'vitest'
import {
  AuthError,
  ClosedError,
  ConfigError,
  DatasyncError,
  UnavailableError,
} from '../../src/core/errors.js'
import type { StoreStatus } from '../../src/core/store.js'
import { backoffDelay, retryWithBackoff } from '../../src/internal/backoff.js'
import { StoreEdge } from '../../src/internal/edge.js'
import {
  asDatasyncError,
  forStore,
  inOperation,
  isConnectionFault,
  isFatalToWatch,
  type Mapped,
} from '../../src/internal/errors.js'
import { byKey, compareKeys } from '../../src/internal/order.js'
import { StoreHealth } from '../../src/internal/store-health.js'

const down = (message: string) => new UnavailableError('test', message)

function statesOf(health: StoreHealth): string[] {
  const seen: string[] = []
  health.status$.subscribe((status: StoreStatus) => {
    seen.push(status.error ? `${status.state}:${status.error.message}` : status.state)
  })
  return seen
}

describe('StoreHealth', () => {
  it('is connecting until a part has an answer, then ready', () => {
    const health = new StoreHealth()
    const seen = statesOf(health)
    const a = health.part()
    health.part()
    expect(seen).toEqual(['connecting'])
    a.up()
    expect(seen).toEqual(['connecting', 'ready'])
  })

  it('is degraded while any part is down, naming the part that went down last', () => {
    const health = new StoreHealth()
    const seen = statesOf(health)
    const a = health.part()
    const b = health.part()
    a.up()
    a.down(down('a lost'))
    b.down(down('b lost'))
    a.up()
    expect(health.current.state).toBe('degraded')
    b.up()
    expect(seen).toEqual([
      'connecting',
      'ready',
      'degraded:test: a lost',
      'degraded:test: b lost',
      'ready',
    ])
  })

  it('reports the same failure once, and a part that is gone no longer counts', () => {
    const health = new StoreHealth()
    const seen = statesOf(health)
    const broker = health.part()
    const watch = health.part()
    broker.up()
    watch.down(down('refused'))
    watch.down(down('refused'))
    watch.gone()
    watch.gone()
    expect(seen).toEqual(['connecting', 'ready', 'degraded:test: refused', 'ready'])
  })

  it('ends with closed (and the fatal error), replayed to late subscribers, and ignores parts after', () => {
    const health = new StoreHealth()
    const part = health.part()
    const fatal = new AuthError('test', 'wrong password')
    health.close(fatal)
    health.close()
    part.up()
    part.down(down('late'))
    const late: StoreStatus[] = []
    let completed = false
    health.status$.subscribe({ next: (s) => late.push(s), complete: () => (completed = true) })
    expect(late).toEqual([{ state: 'closed', error: fatal }])
    expect(completed).toBe(true)
    expect(health.closed).toBe(true)
  })
})

const mapper =
  (scope: 'operation' | 'store' = 'operation') =>
  (raw: unknown, what: string): Mapped => ({
    error:
      raw instanceof DatasyncError
        ? raw
        : new UnavailableError('test', `${what}: ${String(raw)}`, { cause: raw }),
    scope,
  })

describe('StoreEdge', () => {
  it('is cold: nothing runs until subscribed', () => {
    const edge = new StoreEdge({ name: 'test', mapError: mapper() })
    let calls = 0
    const op = edge.op('get', () => {
      calls++
      return Promise.resolve(1)
    })
    expect(calls).toBe(0)
    op.subscribe()
    expect(calls).toBe(1)
  })

  it('maps an asynchronous error once and marks the broker down; an answer marks it up', async () => {
    const edge = new StoreEdge({ name: 'test', mapError: mapper() })
    const seen = statesOf(edge.health)
    const error = await new Promise<unknown>((resolve) => {
      edge.op('get a', () => throwError(() => 'ECONNREFUSED')).subscribe({ error: resolve })
    })
    expect(error).toBeInstanceOf(UnavailableError)
    expect((error as Error).message).toBe('test: get a: ECONNREFUSED')
    edge.op('get b', () => of(2)).subscribe()
    expect(seen).toEqual(['connecting', 'connecting:test: get a: ECONNREFUSED', 'ready'])
  })

  it('lets a synchronous argument error pass through unmapped and leaves health alone', () => {
    const edge = new StoreEdge({ name: 'test', mapError: mapper() })
    const seen = statesOf(edge.health)
    let caught: unknown
    edge
      .op('put', () => {
        throw new TypeError('test put: expected a key')
      })
      .subscribe({ error: (e: unknown) => (caught = e) })
    expect(caught).toBeInstanceOf(TypeError)
    expect(seen).toEqual(['connecting'])
  })

  it('does not report health when the client reports it itself', () => {
    const edge = new StoreEdge({
      name: 'test',
      mapError: mapper(),
      operationsReportHealth: false,
    })
    const seen = statesOf(edge.health)
    edge.op('get', () => throwError(() => 'ECONNREFUSED')).subscribe({ error: () => undefined })
    edge.op('get', () => of(1)).subscribe()
    expect(seen).toEqual(['connecting'])
  })

  it('closes the store on a store-scoped error: later calls are refused with it', () => {
    const edge = new StoreEdge({ name: 'test', mapError: mapper('store') })
    const fatal = new AuthError('test', 'wrong password')
    const errors: unknown[] = []
    edge
      .op('get', () => throwError(() => fatal))
      .subscribe({ error: (e: unknown) => errors.push(e) })
    edge.op('get', () => of(1)).subscribe({ error: (e: unknown) => errors.push(e) })
    expect(errors).toEqual([fatal, fatal])
    expect(edge.closed).toBe(true)
    expect(edge.fatal).toBe(fatal)
    expect(edge.health.current).toEqual({ state: 'closed', error: fatal })
  })

  it('errors an operation in flight on close, completes a watch, and refuses after', () => {
    const edge = new StoreEdge({ name: 'test', mapError: mapper() })
    const events: string[] = []
    edge.op('get', () => NEVER).subscribe({ error: (e: unknown) => events.push(`op ${String(e)}`) })
    const values = new Subject<number>()
    let unsubscribed = false
    edge
      .watch(
        values.pipe(
          finalize(() => {
            unsubscribed = true
          }),
        ),
      )
      .subscribe({
        next: (v) => events.push(`watch ${v}`),
        complete: () => events.push('watch complete'),
      })
    values.next(1)
    expect(edge.close()).toBe(true)
    expect(edge.close()).toBe(false)
    values.next(2)
    expect(events).toEqual([
      'watch 1',
      'op ClosedError: the test store is closed',
      'watch complete',
    ])
    expect(unsubscribed).toBe(true)
    let refused: unknown
    edge.watch(of(1)).subscribe({ error: (e: unknown) => (refused = e) })
    expect(refused).toBeInstanceOf(ClosedError)
    expect(() => {
      edge.assertOpen()
    }).toThrow(ClosedError)
  })

  it('ends a watch with the fatal error when one closed the store', () => {
    const edge = new StoreEdge({ name: 'test', mapError: mapper() })
    const fatal = new ConfigError('test.yaml', 'endpoint', 'bad endpoint')
    let error: unknown
    edge.watch(NEVER).subscribe({ error: (e: unknown) => (error = e) })
    edge.close(fatal)
    expect(error).toBe(fatal)
  })
})

describe('errors', () => {
  it('stops a watch on a store-scoped or non-retryable error, retries the rest', () => {
    expect(isFatalToWatch(inOperation(down('lost')))).toBe(false)
    expect(isFatalToWatch(forStore(down('lost')))).toBe(true)
    expect(isFatalToWatch(inOperation(new AuthError('test', 'denied')))).toBe(true)
    expect(isFatalToWatch(inOperation(new DatasyncError('conflict', 'raced')))).toBe(false)
  })

  it('tells connection faults from other failures', () => {
    expect(isConnectionFault(down('lost'))).toBe(true)
    expect(isConnectionFault(new DatasyncError('timeout', 'slow'))).toBe(true)
    expect(isConnectionFault(new DatasyncError('conflict', 'raced'))).toBe(false)
    expect(isConnectionFault(new Error('raw'))).toBe(false)
  })

  it('wraps anything that is not a DatasyncError as internal, keeping the cause', () => {
    const known = down('lost')
    expect(asDatasyncError(known)).toBe(known)
    const raw = new Error('boom')
    const wrapped = asDatasyncError(raw)
    expect(wrapped.code).toBe('internal')
    expect(wrapped.message).toBe('boom')
    expect(wrapped.cause).toBe(raw)
    expect(asDatasyncError('text').message).toBe('text')
  })
})

describe('backoff', () => {
  it('doubles from the first delay up to the cap', () => {
    const bounds = { firstMs: 100, maxMs: 1_000 }
    expect([0, 1, 2, 3, 4, 5, 6].map((n) => backoffDelay(bounds, n))).toEqual([
      100, 100, 200, 400, 800, 1_000, 1_000,
    ])
  })

  it('retries what it should after the delays, in virtual time, and passes the rest on', () => {
    const testScheduler = new TestScheduler((actual, expected) => {
      expect(actual).toEqual(expected)
    })
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const source = cold('  --#                       ', undefined, down('lost'))
      const retried = source.pipe(
        retryWithBackoff({
          firstMs: 1,
          maxMs: 4,
          count: 3,
          scheduler: testScheduler,
          shouldRetry: () => true,
        }),
      )
      // Failures 2 frames after each subscription; retries after 1, 2 and 4 frames: at 3, 7 and 13.
      expectObservable(retried).toBe('---------------#  ', undefined, down('lost'))
      expectSubscriptions(source.subscriptions).toBe([
        '^-!              ',
        '---^-!           ',
        '-------^-!       ',
        '-------------^-! ',
      ])
    })
  })

  it('passes an error it should not retry on at once', () => {
    const testScheduler = new TestScheduler((actual, expected) => {
      expect(actual).toEqual(expected)
    })
    testScheduler.run(({ cold, expectObservable, expectSubscriptions }) => {
      const fatal = new ConfigError('test.yaml', undefined, 'bad')
      const source = cold('  --#  ', undefined, fatal)
      const retried = source.pipe(
        retryWithBackoff({
          firstMs: 1,
          maxMs: 4,
          scheduler: testScheduler,
          shouldRetry: (e) => !(e instanceof ConfigError),
        }),
      )
      expectObservable(retried).toBe('--#  ', undefined, fatal)
      expectSubscriptions(source.subscriptions).toBe('^-!  ')
    })
  })

  it('reports each retry to onRetry', () => {
    const scheduler = new VirtualTimeScheduler()
    const attempts: number[] = []
    let subscriptions = 0
    defer(() => {
      subscriptions++
      return subscriptions < 3 ? throwError(() => down('lost')) : of('ok')
    })
      .pipe(
        retryWithBackoff({
          firstMs: 10,
          maxMs: 10,
          scheduler,
          shouldRetry: () => true,
          onRetry: (_e, n) => attempts.push(n),
        }),
      )
      .subscribe()
    scheduler.flush()
    expect(attempts).toEqual([1, 2])
    expect(subscriptions).toBe(3)
  })
})

describe('key order', () => {
  it('sorts by UTF-16 code units, as sort() does with no comparator', () => {
    const keys = ['b', 'a/2', 'a/10', 'A', 'é', 'a', '']
    expect([...keys].sort(compareKeys)).toEqual([...keys].sort())
    expect([{ key: 'b' }, { key: 'a' }].sort(byKey)).toEqual([{ key: 'a' }, { key: 'b' }])
    expect(compareKeys('x', 'x')).toBe(0)
  })
})

// A store whose first contact may wait (etcd with allowDelayedStart), and a probe that reports on
// the broker's part by itself.
describe('StoreHealth before its first answer', () => {
  it('stays connecting, carrying the error, while parts fail before any answer; degraded after one', () => {
    const health = new StoreHealth()
    const seen = statesOf(health)
    const watch = health.part()
    const probe = health.part()
    watch.down(down('refused'))
    probe.down(down('no answer'))
    expect(health.contacted).toBe(false)
    watch.up()
    expect(health.contacted).toBe(true)
    probe.up()
    watch.down(down('stream broke'))
    expect(seen).toEqual([
      'connecting',
      'connecting:test: refused',
      'connecting:test: no answer',
      'degraded:test: no answer',
      'ready',
      'degraded:test: stream broke',
    ])
  })

  it('is connecting again, without the error, when the failing part is gone before any answer', () => {
    const health = new StoreHealth()
    const seen = statesOf(health)
    const watch = health.part()
    watch.down(down('refused'))
    watch.gone()
    expect(seen).toEqual(['connecting', 'connecting:test: refused', 'connecting'])
    expect(health.current).toEqual({ state: 'connecting' })
  })

  it('a failure that is itself an answer (a broken file was read) makes it degraded at once', () => {
    const health = new StoreHealth()
    const seen = statesOf(health)
    const scan = health.part()
    scan.down(down('a.yaml:3: bad indentation'), true)
    expect(health.contacted).toBe(true)
    scan.up()
    expect(seen).toEqual(['connecting', 'degraded:test: a.yaml:3: bad indentation', 'ready'])
  })
})

describe('StoreEdge for a probe and a watch that report by themselves', () => {
  it('gives the broker part to a call that reports itself', () => {
    const edge = new StoreEdge({ name: 'test', mapError: mapper('operation') })
    const seen = statesOf(edge.health)
    edge.fail('ECONNREFUSED', 'status probe')
    expect(edge.broker).toBeDefined()
    edge.broker?.up()
    edge.broker?.down(down('no raft leader'))
    expect(seen).toEqual([
      'connecting',
      'connecting:test: status probe: ECONNREFUSED',
      'ready',
      'degraded:test: no raft leader',
    ])
  })

  it('has no broker part when the client reports its health itself', () => {
    const edge = new StoreEdge({
      name: 'test',
      mapError: mapper('operation'),
      operationsReportHealth: false,
    })
    expect(edge.broker).toBeUndefined()
  })

  it('handle() returns the mapping with its scope, marks the given part down for a connection fault', () => {
    const edge = new StoreEdge({ name: 'test', mapError: mapper('operation') })
    const seen = statesOf(edge.health)
    const watch = edge.health.part()
    const mapped = edge.handle('ECONNRESET', 'watch a/', watch)
    expect(mapped).toMatchObject({ scope: 'operation', error: { code: 'unavailable' } })
    expect(mapped.error.message).toBe('test: watch a/: ECONNRESET')
    expect(seen).toEqual(['connecting', 'connecting:test: watch a/: ECONNRESET'])
    watch.up()
    edge.handle('ECONNRESET', 'watch a/', watch)
    expect(seen.at(-1)).toBe('degraded:test: watch a/: ECONNRESET')
    expect(edge.closed).toBe(false)
  })

  it('handle() closes the store for a store-scoped error and returns that very error', () => {
    const edge = new StoreEdge({ name: 'test', mapError: mapper('store') })
    const fatal = new AuthError('test', 'wrong password')
    const mapped = edge.handle(fatal, 'watch a/', edge.health.part())
    expect(mapped).toEqual({ scope: 'store', error: fatal })
    expect(edge.closed).toBe(true)
    expect(edge.refusal()).toBe(fatal)
    expect(edge.health.current).toEqual({ state: 'closed', error: fatal })
  })
})
