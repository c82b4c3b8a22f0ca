/**
 * Issue 16: a value over a server's size limit is an `invalid-argument` error naming the key and
 * the limit, never retried, on real servers: etcd (2 MiB against its default 1.5 MiB, whether
 * the store's own check, etcd's request limit or gRPC's message limit refuses it), Redis
 * (proto-max-bulk-len) and Consul (kv_max_value_size, 512 KiB). Before the fix, etcd reported
 * the 2 MiB put as "cannot reach etcd" (unavailable, retryable) and publishTo tried it six times.
 */
import { firstValueFrom, from, lastValueFrom, toArray } from 'rxjs'
import { afterAll, describe, expect, it } from 'vitest'
import { createConsulStore } from '../../src/backends/consul/index.js'
import { createEtcdStore, type EtcdStore } from '../../src/backends/etcd/index.js'
import { createRedisStore, type RedisStore } from '../../src/backends/redis/index.js'
import { DatasyncError } from '../../src/core/errors.js'
import type { KvStore } from '../../src/core/store.js'
import { publishTo, type Publication } from '../../src/sync/publish.js'
import { startConsul } from '../servers/consul.js'
import { pollUntil, redisCommand, startEtcd, startRedis, useServer } from '../servers/index.js'
import { etcdMetric } from '../support/etcd.js'

const MiB = 1024 * 1024

async function failure(write: Promise<unknown>): Promise<DatasyncError> {
  const error: unknown = await write.then(
    () => undefined,
    (e: unknown) => e,
  )
  expect(error).toBeInstanceOf(DatasyncError)
  return error as DatasyncError
}

/** publishTo with five retries: a size refusal must take one attempt. */
async function publishOnce(store: KvStore, key: string, bytes: number) {
  const publications: Publication<Uint8Array>[] = [
    { op: 'put', key, value: new Uint8Array(bytes) },
    { op: 'put', key: `${key}-small`, value: new Uint8Array(8) },
  ]
  const results = await lastValueFrom(
    from(publications).pipe(publishTo(store, { retries: 5, retryDelay: '10ms' }), toArray()),
  )
  return new Map(results.map((result) => [result.publication.key, result]))
}

function expectNotRetried(error: DatasyncError, key: string, limit: RegExp) {
  expect(error.code).toBe('invalid-argument')
  expect(error.retryable).toBe(false)
  expect(error.message).toMatch(new RegExp(`["']${key}["']`))
  expect(error.message).toMatch(limit)
}

describe('etcd size limits', () => {
  const etcd = useServer(() => startEtcd({ name: 'etcd-size' }))
  const small = useServer(() =>
    startEtcd({ name: 'etcd-size-1mib', extraArgs: ['--max-request-bytes', String(MiB)] }),
  )
  const stores: EtcdStore[] = []
  const store = (url: string, maxRequestBytes?: number) => {
    const created = createEtcdStore({
      endpoints: [url],
      ...(maxRequestBytes === undefined ? {} : { maxRequestBytes }),
    })
    stores.push(created)
    return created
  }
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()))
  })

  it('refuses 2 MiB against the default 1.5 MiB before sending it, naming key and limit', async () => {
    const s = store(etcd().clientUrl)
    const error = await failure(firstValueFrom(s.put('size/two', new Uint8Array(2 * MiB))))
    expectNotRetried(error, 'size/two', /maxRequestBytes of 1572864 bytes/)
    await firstValueFrom(s.put('size/after', new Uint8Array(8)))
  })

  it("maps gRPC's message limit to invalid-argument, naming key and limit", async () => {
    // The store's own check set above the server's: gRPC's receive limit refuses it.
    const s = store(etcd().clientUrl, 8 * MiB)
    const error = await failure(firstValueFrom(s.put('size/grpc', new Uint8Array(2 * MiB))))
    expectNotRetried(error, 'size/grpc', /gRPC's message limit of 2097152 bytes/)
    await firstValueFrom(s.put('size/grpc-after', new Uint8Array(8)))
  })

  it("maps etcd's request limit to invalid-argument, and sends the put once", async () => {
    const s = store(small().clientUrl)
    const puts = () =>
      etcdMetric(small().clientUrl, 'grpc_server_handled_total', (labels) =>
        labels.includes('grpc_method="Put"'),
      )
    await firstValueFrom(s.put('size/warm', new Uint8Array(8)))
    const before = await puts()
    const error = await failure(
      firstValueFrom(s.put('size/over-member', new Uint8Array(1.2 * MiB))),
    )
    expectNotRetried(error, 'size/over-member', /--max-request-bytes/)
    expect(await puts()).toBe(before + 1)
  })

  it('publishTo does not retry it (one attempt), and writes the rest', async () => {
    for (const s of [store(etcd().clientUrl), store(etcd().clientUrl, 8 * MiB)]) {
      const results = await publishOnce(s, 'size/published', 2 * MiB)
      const big = results.get('size/published')
      expect(big).toMatchObject({ ok: false, attempts: 1 })
      if (big?.ok === false) expectNotRetried(big.error, 'size/published', /limit|maxRequest/)
      expect(results.get('size/published-small')).toMatchObject({ ok: true, attempts: 1 })
    }
  })
})

describe('Redis size limits (proto-max-bulk-len)', () => {
  const redis = useServer(() =>
    startRedis({ name: 'redis-size', extraArgs: ['--proto-max-bulk-len', '1mb'] }),
  )
  /** Redis's default limit (512 MiB), for the store's own maxValueBytes to be the smaller. */
  const roomy = useServer(() => startRedis({ name: 'redis-size-roomy' }))
  const stores: RedisStore[] = []
  const store = (
    maxValueBytes?: number,
    user?: { username: string; password: string },
    server = redis,
  ) => {
    const created = createRedisStore({
      node: { host: server().host, port: server().port },
      ...(maxValueBytes === undefined ? {} : { maxValueBytes }),
      ...(user ?? {}),
    })
    stores.push(created)
    return created
  }
  afterAll(async () => {
    await Promise.all(stores.map((s) => s.close()))
  })

  it('refuses a value over maxValueBytes before sending it, naming key and limit', async () => {
    const s = store(MiB)
    const error = await failure(firstValueFrom(s.put('size/two', new Uint8Array(2 * MiB))))
    expectNotRetried(error, 'size/two', /maxValueBytes of 1048576 bytes/)
    const txn = await failure(
      firstValueFrom(
        s.txn([
          { op: 'put', key: 'size/a', value: new Uint8Array(8) },
          { op: 'put', key: 'size/b', value: new Uint8Array(2 * MiB) },
        ]),
      ),
    )
    expectNotRetried(txn, 'size/b', /proto-max-bulk-len/)
    await firstValueFrom(s.put('size/after', new Uint8Array(8)))
    const results = await publishOnce(s, 'size/published', 2 * MiB)
    expect(results.get('size/published')).toMatchObject({ ok: false, attempts: 1 })
    expect(results.get('size/published-small')).toMatchObject({ ok: true })
  })

  // maxValueBytes left at its default (512 MiB) above the server's 1 MiB: the store reads the
  // server's proto-max-bulk-len and refuses before sending. Before, the value went out and Redis
  // replied with an error and dropped the connection mid-write (which of the two the client saw
  // first was a race: a clean-clone run once saw the reset, and an unavailable error).
  it("refuses a value over the server's proto-max-bulk-len before sending it", async () => {
    const s = store()
    const error = await failure(firstValueFrom(s.put('size/server', new Uint8Array(2 * MiB))))
    expectNotRetried(error, 'size/server', /proto-max-bulk-len of 1048576 bytes/)
    expect(error.message).toContain(`${2 * MiB} bytes`)
    const txn = await failure(
      firstValueFrom(
        s.txn([
          { op: 'put', key: 'size/c', value: new Uint8Array(8) },
          { op: 'put', key: 'size/d', value: new Uint8Array(MiB + 1) },
        ]),
      ),
    )
    expectNotRetried(txn, 'size/d', /proto-max-bulk-len of 1048576 bytes/)
    // Exactly the server's limit goes through, and the connection was never dropped.
    await firstValueFrom(s.put('size/limit', new Uint8Array(MiB)))
    const [value] = await Promise.all([firstValueFrom(s.get('size/limit'))])
    expect(value?.value.byteLength).toBe(MiB)
    const results = await publishOnce(s, 'size/server-published', 2 * MiB)
    expect(results.get('size/server-published')).toMatchObject({ ok: false, attempts: 1 })
    expect(results.get('size/server-published-small')).toMatchObject({ ok: true, attempts: 1 })
  })

  it('keeps the order of writes made while a large one waits for its check', async () => {
    const s = store()
    // The write script loaded first (a write's first EVALSHA may be answered NOSCRIPT and sent
    // again, after what came behind it: an ordering matter of its own, not of the size check).
    await firstValueFrom(s.delete('size/order-warm'))
    const writes = [
      firstValueFrom(s.put('size/order', new Uint8Array(MiB).fill(1))),
      firstValueFrom(s.put('size/order', new Uint8Array(8).fill(2))),
      firstValueFrom(s.delete('size/order-gone')),
      firstValueFrom(s.put('size/order-gone', new Uint8Array(8).fill(3))),
    ]
    await Promise.all(writes)
    expect((await firstValueFrom(s.get('size/order')))?.value).toEqual(new Uint8Array(8).fill(2))
    expect((await firstValueFrom(s.get('size/order-gone')))?.value).toEqual(
      new Uint8Array(8).fill(3),
    )
  })

  it('falls back to maxValueBytes, and says so, where the ACL refuses CONFIG', async () => {
    await redisCommand(
      roomy().port,
      'ACL',
      'SETUSER',
      'noconfig',
      'on',
      '>secret',
      '~*',
      '&*',
      '+@all',
      '-config',
    )
    const warnings: Error[] = []
    const onWarning = (warning: Error) => warnings.push(warning)
    process.on('warning', onWarning)
    try {
      const s = store(3 * MiB, { username: 'noconfig', password: 'secret' }, roomy)
      // Over maxValueBytes: refused at once, naming that limit.
      const error = await failure(firstValueFrom(s.put('size/acl', new Uint8Array(4 * MiB))))
      expectNotRetried(error, 'size/acl', /maxValueBytes of 3145728 bytes/)
      // Under maxValueBytes and within the server's limit: the check cannot read the server's
      // limit, warns once, and the write goes through.
      await firstValueFrom(s.put('size/acl-ok', new Uint8Array(2 * MiB)))
      await firstValueFrom(s.put('size/acl-ok', new Uint8Array(2 * MiB)))
      expect((await firstValueFrom(s.get('size/acl-ok')))?.value.byteLength).toBe(2 * MiB)
      await pollUntil(() => warnings.length > 0, { description: 'the fallback warning' })
      expect(warnings.map((w) => w.message)).toEqual([
        expect.stringMatching(
          /cannot read the server's proto-max-bulk-len \(.*NOPERM.*\); writes are checked against maxValueBytes \(3145728 bytes\) only/,
        ),
      ])
    } finally {
      process.off('warning', onWarning)
    }
  })
})

describe('Consul size limits (kv_max_value_size)', () => {
  const consul = useServer(() => startConsul({ node: 'size' }))

  it('refuses a value over 512 KiB as invalid-argument naming key and limit, never retried', async () => {
    const s = createConsulStore({ address: consul().address })
    try {
      const error = await failure(firstValueFrom(s.put('size/big', new Uint8Array(600 * 1024))))
      expectNotRetried(error, 'size/big', /kv_max_value_size \(512 KiB by default\)/)
      const results = await publishOnce(s, 'size/published', 600 * 1024)
      expect(results.get('size/published')).toMatchObject({ ok: false, attempts: 1 })
      expect(results.get('size/published-small')).toMatchObject({ ok: true })
    } finally {
      await s.close()
    }
  })
})
