/**
 * The backend kit's status rule before the first answer (a store whose first contact may wait:
 * etcd with `allowDelayedStart`), and a probe that reports on the broker's part by itself.
 */
import { describe, expect, it } from 'vitest'
import { AuthError, DatasyncError, UnavailableError } from '../../src/core/errors.js'
import type { StoreStatus } from '../../src/core/store.js'
import { StoreEdge } from '../../src/internal/edge.js'
import type { Mapped } from '../../src/internal/errors.js'
import { StoreHealth } from '../../src/internal/store-health.js'

const down = (message: string) => new UnavailableError('test', message)

function statesOf(health: StoreHealth): string[] {
  const seen: string[] = []
  health.status$.subscribe((status: StoreStatus) => {
    seen.push(status.error ? `${status.state}:${status.error.message}` : status.state)
  })
  return seen
}

const mapper =
  (scope: 'operation' | 'store') =>
  (raw: unknown, what: string): Mapped => ({
    error:
      raw instanceof DatasyncError
        ? raw
        : new UnavailableError('test', `${what}: ${String(raw)}`, { cause: raw }),
    scope,
  })

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
