import { Subject, lastValueFrom } from 'rxjs'
import { afterEach, describe, expect, it } from 'vitest'
import { createDatasync, createMemoryStore, type Done, type KvStore } from '../../src/index.js'
import { createEtcdStore } from '../../src/backends/etcd/index.js'
import {
  createHealth,
  createMetrics,
  serveHealth,
  type HealthReport,
  type HealthServer,
} from '../../src/health/index.js'
import { createFaultStore, recordConsumer } from '../../src/testing/index.js'
import { httpRequest, pollUntil, startEtcd, useServer } from '../servers/index.js'

const cleanups: (() => Promise<void> | void)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

async function serve(options: Parameters<typeof serveHealth>[0]): Promise<HealthServer> {
  const server = await serveHealth({ port: 0, host: '127.0.0.1', ...options })
  cleanups.push(() => server.close())
  return server
}

async function probe(server: HealthServer, path: string) {
  const response = await httpRequest(`${server.url}${path}`)
  return {
    status: response.status,
    type: response.headers['content-type'],
    body: response.body,
    report: () => JSON.parse(response.body) as HealthReport,
  }
}

/** Polls a probe until it answers `status`, and returns that answer. */
function probeUntil(server: HealthServer, path: string, status: number) {
  return pollUntil(
    async () => {
      const answer = await probe(server, path)
      return answer.status === status ? answer : undefined
    },
    { timeoutMs: 30_000, description: `${path} answering ${status}` },
  )
}

const put = (store: KvStore<string>, key: string, value: string) =>
  lastValueFrom(store.put(key, value))

describe('readiness and liveness over HTTP', () => {
  it('flips readiness to 503 while a store is degraded, and back to 200', async () => {
    const store = createFaultStore<string>({ initial: { 'cfg/a': '1' } })
    const sync = createDatasync(store)
    const recorder = recordConsumer(sync.register('cfg', { prefixes: ['cfg/'] }))
    cleanups.push(
      () => store.close(),
      () => {
        sync.close()
      },
    )
    const health = createHealth().addStore('store', store).addDatasync('sync', sync)
    const server = await serve({ health })

    expect((await probe(server, '/readiness')).status).toBe(503) // idle: not started yet
    sync.start()
    const ready = await probeUntil(server, '/readiness', 200)
    expect(ready.type).toBe('application/json')
    expect(ready.report()).toEqual({
      state: 'ok',
      ready: true,
      live: true,
      components: {
        store: { kind: 'store', state: 'ok', status: 'ready', critical: true },
        sync: { kind: 'datasync', state: 'ok', status: 'in-sync', critical: true },
      },
    })

    store.disconnect()
    const down = await probeUntil(server, '/readiness', 503)
    expect(down.report()).toMatchObject({ state: 'degraded', ready: false, live: true })
    expect(down.report().components.store).toMatchObject({
      state: 'degraded',
      status: 'degraded',
    })
    expect(down.report().components.store?.error).toMatch(/unavailable|disconnect/i)
    const live = await probe(server, '/liveness')
    expect(live.status).toBe(200) // degraded recovers by itself: no restart wanted

    await put(store.inner, 'cfg/b', '2') // missed while disconnected
    store.reconnect()
    const back = await probeUntil(server, '/readiness', 200)
    expect(back.report().state).toBe('ok')
    await recorder.untilEquals(await lastValueFrom(store.list('cfg/')))
    expect(recorder.violations).toEqual([])
  })

  it('fails liveness for a halted orchestrator and for a check that times out', async () => {
    const store = createMemoryStore<string>({ initial: { 'k/1': 'v' } })
    const sync = createDatasync(store, { onAckFailure: 'halt' })
    sync.register('picky', { prefixes: ['k/'] }).events$.subscribe((event) => {
      event.done(new Error('cannot apply'))
    })
    cleanups.push(
      () => store.close(),
      () => {
        sync.close()
      },
    )
    const hung = new Subject<boolean>()
    const health = createHealth()
      .addDatasync('sync', sync)
      .addCheck('db', () => hung, { timeout: 200, interval: 60_000 })
    const server = await serve({ health })

    sync.start()
    const dead = await probeUntil(server, '/liveness', 503)
    const report = dead.report()
    expect(report.live).toBe(false)
    expect(report.state).toBe('failed')
    expect(report.components.sync).toMatchObject({ state: 'failed', status: 'halted' })
    expect(report.components.sync?.error).toContain('cannot apply')
    const withTimeout = await pollUntil(
      async () => {
        const answer = (await probe(server, '/liveness')).report()
        return answer.components.db?.status === 'timeout' ? answer : undefined
      },
      { timeoutMs: 30_000, description: 'the check timing out' },
    )
    expect(withTimeout.components.db).toEqual({
      kind: 'check',
      state: 'failed',
      status: 'timeout',
      error: 'no answer within 200 ms',
      critical: true,
    })
    expect((await probe(server, '/readiness')).status).toBe(503)
  })

  it('answers only GET and HEAD on its paths', async () => {
    const server = await serve({ health: createHealth() })
    expect((await probe(server, '/readiness')).status).toBe(200)
    expect((await probe(server, '/liveness?verbose=1')).status).toBe(200)
    const head = await httpRequest(`${server.url}/readiness`, { method: 'HEAD' })
    expect(head.status).toBe(200)
    expect(head.body).toBe('')
    const post = await httpRequest(`${server.url}/readiness`, { method: 'POST', body: '{}' })
    expect(post.status).toBe(405)
    expect(post.headers.allow).toBe('GET, HEAD')
    const missing = await probe(server, '/nothing')
    expect(missing.status).toBe(404)
    expect(missing.body).toContain('/readiness, /readyz, /liveness, /livez')
    expect((await probe(server, '/metrics')).status).toBe(404) // no metrics given
  })
})

describe('/metrics over HTTP', () => {
  it('shows the events delivered and the lag of a real orchestrator run', async () => {
    const store = createMemoryStore<string>({ initial: { 'a/1': 'x' } })
    const sync = createDatasync(store)
    cleanups.push(
      () => store.close(),
      () => {
        sync.close()
      },
    )
    const metrics = createMetrics()
    metrics.track('app', sync)
    const held: Done[] = []
    sync.register('routes', { prefixes: ['a/'] }).events$.subscribe((event) => {
      if (event.kind === 'resync') event.done()
      else held.push(event.done)
    })
    const server = await serve({ metrics, health: createHealth().addDatasync('app', sync) })
    sync.start()
    await probeUntil(server, '/readiness', 200)
    await put(store, 'a/1', 'y') // delivered, not acknowledged
    await put(store, 'a/2', 'z') // waits behind it: lag 1
    await put(store, 'a/3', 'w') // lag 2

    const scrape = (pattern: RegExp) =>
      pollUntil(
        async () => {
          const answer = await probe(server, '/metrics')
          return pattern.test(answer.body) ? answer : undefined
        },
        { timeoutMs: 30_000, description: `/metrics matching ${String(pattern)}` },
      )
    const lagging = await scrape(
      /rx_datasync_consumer_lag_keys\{datasync="app",consumer="routes"\} 2/,
    )
    expect(lagging.status).toBe(200)
    expect(lagging.type).toMatch(/^text\/plain; version=0\.0\.4/)
    expect(lagging.body).toContain('# TYPE rx_datasync_events_delivered_total counter')
    expect(lagging.body).toMatch(
      /rx_datasync_events_delivered_total\{datasync="app",consumer="routes",kind="resync",reason="startup"\} 1\n/,
    )
    expect(lagging.body).toMatch(
      /rx_datasync_events_delivered_total\{datasync="app",consumer="routes",kind="change",reason="live"\} 1\n/,
    )

    held.splice(0).forEach((done) => {
      done()
    })
    const caughtUp = await scrape(
      /rx_datasync_events_delivered_total\{datasync="app",consumer="routes",kind="change",reason="live"\} 2\n/,
    )
    expect(caughtUp.body).toMatch(
      /rx_datasync_consumer_lag_keys\{datasync="app",consumer="routes"\} 0\n/,
    )
    expect(caughtUp.body).toMatch(
      /rx_datasync_keys_delivered_total\{datasync="app",consumer="routes",kind="change",reason="live"\} 3\n/,
    )
    expect(caughtUp.body).toMatch(
      /rx_datasync_ack_latency_seconds_count\{datasync="app",consumer="routes",kind="change"\} 1\n/,
    )
    held.splice(0).forEach((done) => {
      done()
    })
  })
})

describe('probes over a real etcd', () => {
  const etcd = useServer(() => startEtcd())

  it('goes 503 when etcd is killed and 200 when it is back', async () => {
    const store = createEtcdStore({
      endpoints: etcd().endpoints,
      statusInterval: '200ms',
      allowDelayedStart: true,
    })
    const sync = createDatasync(store)
    const recorder = recordConsumer(sync.register('all', { prefixes: ['probe/'] }))
    cleanups.push(
      () => store.close(),
      () => {
        sync.close()
      },
    )
    const server = await serve({
      health: createHealth().addStore('etcd', store).addDatasync('sync', sync),
    })
    sync.start()
    await probeUntil(server, '/readiness', 200)

    await etcd().kill()
    const down = await probeUntil(server, '/readiness', 503)
    expect(down.report().components.etcd?.state).toBe('degraded')
    expect((await probe(server, '/liveness')).status).toBe(200)

    await etcd().restart()
    const up = await probeUntil(server, '/readiness', 200)
    expect(up.report().components.etcd).toMatchObject({ state: 'ok', status: 'ready' })
    expect(recorder.violations).toEqual([])
  })
})
