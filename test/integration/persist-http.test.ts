/**
 * The HTTP client's `identity()`: the served store's (`GET /v1/identity`), since its revisions are
 * the served store's. On real etcd clusters behind `serveStore`: the same as the etcd store's own,
 * another for another cluster, none for a store without one, a retryable error while the served
 * store cannot be reached; and `persist` through HTTP reports a snapshot saved from another
 * cluster (`identity`) and resumes one saved from the same.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { firstValueFrom, lastValueFrom, toArray } from 'rxjs'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createEtcdStore } from '../../src/backends/etcd/index.js'
import { createHttpStore } from '../../src/http/client/index.js'
import { serveStore } from '../../src/http/index.js'
import { createMemoryStore, isRetryable, type KvStore } from '../../src/index.js'
import { etcdPut, startEtcd, type EtcdServer } from '../servers/index.js'
import { isIdentityError, persistRun, type PersistRun } from '../support/persist-run.js'

let etcd: EtcdServer
/** Another etcd cluster (its own cluster id). */
let other: EtcdServer
let dir = ''
const closers: (() => unknown)[] = []
const runs: PersistRun[] = []
beforeAll(async () => {
  ;[etcd, other] = await Promise.all([startEtcd(), startEtcd()])
  dir = await mkdtemp(join(tmpdir(), 'rx-datasync-persist-http-'))
})
afterEach(async () => {
  for (const run of runs.splice(0)) run.close()
  for (const close of closers.splice(0).reverse()) await close()
  if (!etcd.running) await etcd.start()
})
afterAll(async () => {
  await etcd?.cleanup()
  await other?.cleanup()
  await rm(dir, { recursive: true, force: true, maxRetries: 5 })
})

/** An HTTP store in front of `upstream`, serving every key. */
async function served(upstream: KvStore): Promise<KvStore> {
  const server = await serveStore(upstream, { prefixes: [''] })
  const store = createHttpStore(server.url, { reconnectInterval: '300ms' })
  closers.push(
    () => upstream.close(),
    () => server.close(),
    () => store.close(),
  )
  return store
}

const etcdStore = (on: EtcdServer) =>
  createEtcdStore({ endpoints: [...on.endpoints], dialTimeout: '1s' })

describe('http identity()', () => {
  it("is the served store's: the same as etcd's own, another for another cluster", async () => {
    const direct = etcdStore(etcd)
    closers.push(() => direct.close())
    const own = await firstValueFrom(direct.identity!())
    const store = await served(etcdStore(etcd))
    expect(await lastValueFrom(store.identity!().pipe(toArray()))).toEqual([own])
    const elsewhere = await served(etcdStore(other))
    const theirs = await firstValueFrom(elsewhere.identity!())
    expect(theirs).toMatch(/^etcd cluster \d+$/)
    expect(theirs).not.toBe(own)
  })

  it('none for a served store without one: completes with no value', async () => {
    const store = await served(createMemoryStore())
    expect(await lastValueFrom(store.identity!().pipe(toArray()))).toEqual([])
  })

  it('none from a server without the route (its 404), and the store stays open', async () => {
    const server = await serveStore(createMemoryStore(), { prefixes: [''] })
    closers.push(() => server.close())
    // Every route under /old is unknown to the server: the answer of a server before /v1/identity.
    const store = createHttpStore(`${server.url}/old`)
    closers.push(() => store.close())
    expect(await lastValueFrom(store.identity!().pipe(toArray()))).toEqual([])
    const states: string[] = []
    store.status$.subscribe((status) => states.push(status.state)).unsubscribe()
    expect(states).not.toContain('closed')
  })

  it('a retryable error, in time, while the served store cannot be reached', async () => {
    const store = await served(etcdStore(etcd))
    await etcd.stop()
    const started = performance.now()
    const error = await firstValueFrom(store.identity!()).then(
      () => new Error('it answered'),
      (raised: unknown) => raised,
    )
    expect(isRetryable(error)).toBe(true)
    expect((error as Error).message).toMatch(/read the served store identity/)
    expect(performance.now() - started).toBeLessThan(5_000)
  })
})

describe('persist through http', () => {
  let files = 0
  const start = (store: KvStore, file: string) => {
    const run = persistRun(store, file, { a: [`${prefix}a/`] })
    runs.push(run)
    return run
  }
  let prefix = ''
  const isResync = (m: { type: string; label?: string }) => m.label?.startsWith('R(') === true

  /** Data on etcd and a snapshot of it saved through HTTP by a first orchestrator run. */
  async function saved(): Promise<{ file: string; revision: bigint }> {
    prefix = `persist-http-${process.pid}-${++files}/`
    const file = join(dir, `run-${files}.snapshot`)
    await etcdPut(etcd.clientUrl, `${prefix}a/1`, 'one')
    const revision = BigInt(await etcdPut(etcd.clientUrl, `${prefix}a/2`, 'two'))
    const first = start(await served(etcdStore(etcd)), file)
    await first.waitFor('the first resync', isResync)
    await first.saved(revision)
    first.close()
    return { file, revision }
  }

  it('saved from another cluster: reported (identity), the consumers hold its data', async () => {
    const { file, revision } = await saved()
    await etcdPut(other.clientUrl, `${prefix}a/1`, 'B-one')
    let at = await etcdPut(other.clientUrl, `${prefix}a/9`, 'B-nine')
    while (BigInt(at) <= revision + 1n) at = await etcdPut(other.clientUrl, `filler/${at}`, 'x')

    const run = start(await served(etcdStore(other)), file)
    await run.waitFor('the identity report', isIdentityError)
    await run.waitFor('the resync', isResync)
    expect(run.labels('a')).toEqual([`R(startup) ${prefix}a/1=B-one ${prefix}a/9=B-nine`])
    expect(run.errors()).toHaveLength(1)
  })

  it('the same cluster: restored and resumed, no identity error', async () => {
    const { file } = await saved()
    const three = BigInt(await etcdPut(etcd.clientUrl, `${prefix}a/3`, 'three'))

    const run = start(await served(etcdStore(etcd)), file)
    // The hub answers a resume from before its own watch began with a snapshot, which the
    // orchestrator turns into the difference (reason `reconnect`): no relist for the consumers.
    const change = `${prefix}a/3:x>three`
    await run.waitFor('the change', (m) => m.type === 'event' && m.label.endsWith(change))
    await run.saved(three)
    expect(run.labels('a')).toEqual([
      `R(restored) ${prefix}a/1=one ${prefix}a/2=two`,
      expect.stringMatching(/^C\((live|reconnect)\) /),
    ])
    expect(run.errors()).toEqual([])
  })
})
