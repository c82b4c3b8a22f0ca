/**
 * The NATS JetStream KV store's `identity()` on real servers: the same across store instances
 * and a restart of the server, another for another server's bucket of the same name and for a
 * bucket deleted and made again; an error (retryable, in time) while the server is down. And
 * `persist` with it: a snapshot saved from one bucket is reported (`identity`) and not applied on
 * another, whose data the consumers end holding; on the same bucket it is resumed.
 */
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { firstValueFrom, lastValueFrom, toArray } from 'rxjs'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { createNatsStore, type NatsStore } from '../../src/backends/nats/index.js'
import { isRetryable, type Revision } from '../../src/index.js'
import {
  NATS_TEST_TIMINGS,
  createNatsBucket,
  deleteNatsBucket,
  startNats,
  type NatsServer,
} from '../servers/nats.js'
import {
  identityFailure,
  identityOf,
  isIdentityError,
  persistRun,
  type PersistRun,
} from '../support/persist-run.js'

const encode = (text: string) => new TextEncoder().encode(text)

let server: NatsServer
/** Another server, with buckets of the same names. */
let other: NatsServer
let dir = ''
const closers: (() => unknown)[] = []
beforeAll(async () => {
  ;[server, other] = await Promise.all([startNats(), startNats()])
  dir = await mkdtemp(join(tmpdir(), 'rx-datasync-persist-nats-'))
})
afterEach(async () => {
  for (const close of closers.splice(0).reverse()) await close()
  if (!server.running) await server.start()
})
afterAll(async () => {
  await server?.cleanup()
  await other?.cleanup()
  await rm(dir, { recursive: true, force: true, maxRetries: 5 })
})

function storeOn(on: NatsServer, bucket: string): NatsStore {
  const store = createNatsStore({ servers: on.url, bucket, ...NATS_TEST_TIMINGS })
  closers.push(() => store.close())
  return store
}

async function put(store: NatsStore, key: string, value: string): Promise<Revision> {
  const result = await firstValueFrom(store.txn([{ op: 'put', key, value: encode(value) }]))
  return result.revision
}

describe('nats identity()', () => {
  it('is one string, then complete; the same on another store instance and after a restart', async () => {
    await createNatsBucket([server.url], 'ident_same')
    const store = storeOn(server, 'ident_same')
    const all = await lastValueFrom(store.identity!().pipe(toArray()))
    expect(all).toHaveLength(1)
    const first = all[0] ?? ''
    expect(first).toMatch(/^nats stream KV_ident_same created \d{4}-\d\d-\d\dT\S+$/)
    expect(await identityOf(storeOn(server, 'ident_same'))).toBe(first)

    await server.restart()
    expect(await identityOf(store)).toBe(first)
    expect(await identityOf(storeOn(server, 'ident_same'))).toBe(first)
  })

  it('differs for another server, another bucket, a bucket made again', async () => {
    await Promise.all([
      createNatsBucket([server.url], 'ident_diff'),
      createNatsBucket([server.url], 'ident_diff_2'),
      createNatsBucket([other.url], 'ident_diff'),
    ])
    const found = [
      await identityOf(storeOn(server, 'ident_diff')),
      await identityOf(storeOn(other, 'ident_diff')),
      await identityOf(storeOn(server, 'ident_diff_2')),
    ]
    await deleteNatsBucket([server.url], 'ident_diff')
    await createNatsBucket([server.url], 'ident_diff')
    found.push(await identityOf(storeOn(server, 'ident_diff')))
    expect(new Set(found).size).toBe(found.length)
  })

  it('fails, retryable, within the timeouts while the server hangs or is down', async () => {
    await createNatsBucket([server.url], 'ident_down')
    const store = storeOn(server, 'ident_down')
    const known = await identityOf(store)
    const failure = async (asked: NatsStore) => {
      const { error, ms } = await identityFailure(asked)
      expect(isRetryable(error)).toBe(true)
      expect((error as Error).message).toMatch(/read the bucket identity/)
      return ms
    }
    // SIGSTOP: the connection stays open, nothing answers; the request timeout (3 s) ends it.
    await server.pause()
    try {
      expect(await failure(store)).toBeLessThan(8_000)
    } finally {
      server.resume()
    }
    expect(await identityOf(store)).toBe(known)
    // Stopped: within the connect and request timeouts (2 s + 3 s), for both stores.
    await server.stop()
    expect(await failure(store)).toBeLessThan(8_000)
    expect(await failure(storeOn(server, 'ident_down'))).toBeLessThan(8_000)
  })
})

describe('persist on nats', () => {
  let runs = 0
  const runsToClose: PersistRun[] = []
  afterEach(() => {
    for (const run of runsToClose.splice(0)) run.close()
  })
  const start = (store: NatsStore, file: string) => {
    const run = persistRun(store, file, { a: ['a/'] })
    runsToClose.push(run)
    return run
  }
  const isResync = (m: { type: string; label?: string }) => m.label?.startsWith('R(') === true

  /** Bucket A with data, and a snapshot of it saved by a first orchestrator run. */
  async function saved(bucket: string): Promise<{ file: string; revision: Revision }> {
    const file = join(dir, `run-${++runs}.snapshot`)
    await createNatsBucket([server.url], bucket)
    const store = storeOn(server, bucket)
    await put(store, 'a/1', 'one')
    const revision = await put(store, 'a/2', 'two')
    const first = start(store, file)
    await first.waitFor('the first resync', isResync)
    expect(first.labels('a')).toEqual(['R(startup) a/1=one a/2=two'])
    await first.saved(revision)
    first.close()
    return { file, revision }
  }

  it('saved from another server: reported (identity), the consumers hold its data', async () => {
    const { file, revision } = await saved('persist_other')
    // B's bucket of the same name, its revision past the saved one: a resume would be accepted.
    await createNatsBucket([other.url], 'persist_other')
    const b = storeOn(other, 'persist_other')
    await put(b, 'a/1', 'B-one')
    let at = await put(b, 'a/9', 'B-nine')
    while (at <= revision + 1n) at = await put(b, 'filler', String(at))

    const run = start(b, file)
    const report = await run.waitFor('the identity report', isIdentityError)
    expect(report.type === 'error' && report.error.message).toMatch(
      /identity: saved from nats stream KV_persist_other created \S+, but the store is nats stream KV_persist_other created \S+ /,
    )
    await run.waitFor('the resync of B', isResync)
    expect(run.labels('a')).toEqual(['R(startup) a/1=B-one a/9=B-nine'])
    expect(run.errors()).toHaveLength(1)
  })

  it('saved from a bucket since deleted and made again: reported, the new data only', async () => {
    const { file } = await saved('persist_remade')
    await deleteNatsBucket([server.url], 'persist_remade')
    await createNatsBucket([server.url], 'persist_remade')
    const remade = storeOn(server, 'persist_remade')
    await put(remade, 'a/5', 'five')

    const run = start(remade, file)
    await run.waitFor('the identity report', isIdentityError)
    await run.waitFor('the resync', isResync)
    expect(run.labels('a')).toEqual(['R(startup) a/5=five'])
  })

  it('the same bucket: restored and resumed, no identity error', async () => {
    const { file } = await saved('persist_same')
    const store = storeOn(server, 'persist_same')
    const three = await put(store, 'a/3', 'three')

    const run = start(store, file)
    await run.waitFor('the change', (m) => m.type === 'event' && m.label === 'C(live) a/3:x>three')
    await run.saved(three)
    expect(run.labels('a')).toEqual(['R(restored) a/1=one a/2=two', 'C(live) a/3:x>three'])
    expect(run.errors()).toEqual([])
  })

  it('the same bucket, down at start: restored after identityWait (1 s), then resumed', async () => {
    const { file } = await saved('persist_down')
    const writer = storeOn(server, 'persist_down')
    const three = await put(writer, 'a/3', 'three')
    await server.stop()

    const started = performance.now()
    const run = start(storeOn(server, 'persist_down'), file)
    await run.waitFor('the restored resync', (m) => m.type === 'event' && m.label.startsWith('R('))
    const took = performance.now() - started
    console.log(`restored while the server is down: in ${Math.round(took)} ms`)
    // Not until the first identity attempt fails: the client keeps trying to connect until
    // connectTimeout + requestTimeout (2 s + 3 s here, 10 s with the defaults).
    expect(took).toBeLessThan(4_000)
    expect(run.labels('a')).toEqual(['R(restored) a/1=one a/2=two'])
    await server.start()
    await run.waitFor('the change', (m) => m.type === 'event' && m.label === 'C(live) a/3:x>three')
    await run.saved(three)
    expect(run.labels('a')).toEqual(['R(restored) a/1=one a/2=two', 'C(live) a/3:x>three'])
    // The first identity attempt's timeout degrades the store's status (reported, as any failed
    // operation's would be); nothing about the snapshot is.
    for (const error of run.errors()) {
      expect(error.message).toMatch(/^nats: read the bucket identity: no answer from .* in time$/)
      expect(isRetryable(error)).toBe(true)
    }
  })
})
