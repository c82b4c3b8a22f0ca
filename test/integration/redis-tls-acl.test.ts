/**
 * Issue 16: what the Redis configuration parses (TLS, an ACL user, a database other than 0, a
 * password on Sentinel and Cluster) tried against real servers started by the harness: TLS with
 * generated certificates (and a client certificate), a user limited to the watched key pattern
 * and channels, `db: 2` with keyspace events on that database, and Sentinel and Cluster with a
 * password. Each store is made from a configuration file through `loadRedisConfig`, as a user of
 * the Go original's files would, except the ACL user (the Go files have no user name).
 */
import { rm } from 'node:fs/promises'
import { Redis } from 'ioredis'
import { Subject, filter, firstValueFrom, lastValueFrom, map, startWith, timeout } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createRedisStore,
  loadRedisConfig,
  type RedisStore,
  type RedisStoreOptions,
} from '../../src/backends/redis/index.js'
import { AuthError, DatasyncError, string, type StoreEvent } from '../../src/index.js'
import {
  startRedis,
  startRedisCluster,
  startSentinelSetup,
  type RedisCluster,
  type RedisServer,
  type SentinelSetup,
} from '../servers/index.js'
import { makeTestCertificates, type TestCertificates } from '../support/tls.js'
import { useTempDir } from '../unit/support.js'

const text = string()
const enc = (value: string) => text.encode(value)
const WAIT = 30_000

const dir = useTempDir('rx-datasync-redis-tls-acl-')
const stores: RedisStore[] = []

afterAll(async () => {
  await Promise.all(stores.map((store) => store.close()))
})

async function fromConfig(
  name: string,
  yaml: string,
  extra: Partial<RedisStoreOptions> = {},
): Promise<RedisStore> {
  const file = await dir.file(name, yaml)
  const options = await loadRedisConfig({ file, env: {} })
  if (options === undefined) throw new Error('no options')
  const store = createRedisStore({ commandTimeout: '3s', ...options, ...extra })
  stores.push(store)
  return store
}

/** A watch of `prefix` recording its events, resolved once its snapshot arrived. */
async function watching(store: RedisStore, prefix: string) {
  const events: StoreEvent<Uint8Array>[] = []
  const updates = new Subject<void>()
  let failed: Error | undefined
  store.watch([prefix]).subscribe({
    next: (event) => {
      events.push(event)
      updates.next()
    },
    error: (error: unknown) => {
      failed = error instanceof Error ? error : new Error('the watch failed', { cause: error })
      updates.next()
    },
  })
  const until = <T>(check: () => T | undefined, what: string): Promise<T> =>
    firstValueFrom(
      updates.pipe(
        startWith(undefined),
        map(() => {
          if (failed !== undefined) throw failed
          return check()
        }),
        filter((found): found is T => found !== undefined),
        timeout({
          first: WAIT,
          with: () => {
            throw new Error(`timed out waiting for ${what}`)
          },
        }),
      ),
    )
  const snapshot = await until(
    () => events.find((event) => event.type === 'snapshot'),
    'the first snapshot',
  )
  /** The value of the first change of `key` (or 'deleted'). */
  const changeOf = (key: string) =>
    until(() => {
      for (const event of events) {
        if (event.type !== 'changes') continue
        const change = event.changes.find((c) => c.key === key)
        if (change) return change.op === 'put' ? text.decode(change.value) : 'deleted'
      }
      return undefined
    }, `the change of ${key}`)
  return { events, snapshot, changeOf }
}

/** Watches `prefix`, waits for the snapshot, writes `key` and waits for its change. */
async function roundTrip(store: RedisStore, prefix: string, key: string, value: string) {
  const watch = await watching(store, prefix)
  await lastValueFrom(store.put(key, enc(value)), { defaultValue: undefined })
  expect(await watch.changeOf(key)).toBe(value)
  expect(text.decode((await lastValueFrom(store.get(key)))?.value ?? new Uint8Array())).toBe(value)
  return watch
}

describe('Redis over TLS', () => {
  let certs: TestCertificates
  let server: RedisServer
  let mutual: RedisServer

  beforeAll(async () => {
    certs = await makeTestCertificates()
    const files = {
      certFile: certs.serverCertFile,
      keyFile: certs.serverKeyFile,
      caFile: certs.caFile,
    }
    ;[server, mutual] = await Promise.all([
      startRedis({ name: 'redis-tls', tls: files }),
      startRedis({ name: 'redis-mtls', tls: { ...files, authClients: true } }),
    ])
  }, 120_000)
  afterAll(async () => {
    await Promise.all([server.cleanup(), mutual.cleanup()])
    await rm(certs.dir, { recursive: true, force: true })
  })

  it('watches and writes with the server verified against ca-file', async () => {
    const store = await fromConfig(
      'tls.yaml',
      `endpoint: 127.0.0.1:${server.tlsPort}\ntls:\n  enabled: true\n  ca-file: ${certs.caFile}\n`,
    )
    await roundTrip(store, 'tls/', 'tls/a', 'over tls')
  })

  it('presents a client certificate where the server requires one', async () => {
    const store = await fromConfig(
      'mtls.yaml',
      [
        `endpoint: 127.0.0.1:${mutual.tlsPort}`,
        'tls:',
        '  enabled: true',
        `  ca-file: ${certs.caFile}`,
        `  cert-file: ${certs.clientCertFile}`,
        `  key-file: ${certs.clientKeyFile}`,
        '',
      ].join('\n'),
    )
    await roundTrip(store, 'mtls/', 'mtls/a', 'mutual')
  })

  it('refuses a server its ca-file did not sign, as a configuration error', async () => {
    const store = await fromConfig(
      'wrong-ca.yaml',
      `endpoint: 127.0.0.1:${server.tlsPort}\ntls:\n  enabled: true\n  ca-file: ${certs.otherCaFile}\n`,
      { connectTimeout: '2s' },
    )
    const error: unknown = await lastValueFrom(store.get('tls/a')).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(DatasyncError)
    expect((error as Error).message).toMatch(/certificate|tls/i)
  })
})

describe('Redis with an ACL user limited to the watched keys and channels', () => {
  let server: RedisServer

  beforeAll(async () => {
    server = await startRedis({ name: 'redis-acl', notifyKeyspaceEvents: 'KEA' })
    await server.command(
      'ACL',
      'SETUSER',
      'app',
      'on',
      '>app-secret',
      'resetkeys',
      '~app/*',
      'resetchannels',
      '&__keyspace@0__:app/*',
      '&__rx-datasync__:writes@0',
      '+@all',
      '-@admin',
      '-@dangerous',
      // The watch checks that its two connections reach one server (INFO server's run_id).
      '+info',
    )
  }, 60_000)
  afterAll(async () => {
    await server.cleanup()
  })

  const options = (): RedisStoreOptions => ({
    node: { host: server.host, port: server.port },
    username: 'app',
    password: 'app-secret',
    keyspaceEvents: 'assume',
    commandTimeout: '3s',
  })

  it('watches and writes its own keys', async () => {
    const store = createRedisStore(options())
    stores.push(store)
    const watch = await roundTrip(store, 'app/', 'app/a', 'allowed')
    // A write by another client is seen through the keyspace notification.
    await server.command('SET', 'app/b', 'by admin')
    expect(await watch.changeOf('app/b')).toBe('by admin')
  })

  it('gets an AuthError, naming the user, for a key outside its pattern', async () => {
    const store = createRedisStore(options())
    stores.push(store)
    const error: unknown = await lastValueFrom(store.put('other/x', enc('no'))).catch(
      (e: unknown) => e,
    )
    expect(error).toBeInstanceOf(AuthError)
    expect((error as Error).message).toMatch(/NOPERM/)
  })

  it('refuses a wrong password as an AuthError', async () => {
    const store = createRedisStore({ ...options(), password: 'wrong' })
    stores.push(store)
    const error: unknown = await lastValueFrom(store.get('app/a')).catch((e: unknown) => e)
    expect(error).toBeInstanceOf(AuthError)
  })
})

describe('Redis database 2', () => {
  let server: RedisServer
  let raw0: Redis
  let raw2: Redis

  beforeAll(async () => {
    // No notify-keyspace-events: the store turns on what it needs (they apply to every database).
    server = await startRedis({ name: 'redis-db2' })
    raw0 = new Redis({ port: server.port, host: server.host, db: 0, lazyConnect: true })
    raw2 = new Redis({ port: server.port, host: server.host, db: 2, lazyConnect: true })
  }, 60_000)
  afterAll(async () => {
    raw0.disconnect()
    raw2.disconnect()
    await server.cleanup()
  })

  it('lists, watches and writes database 2 only', async () => {
    await raw0.set('d/zero', 'in db 0')
    await raw2.set('d/two', 'in db 2')
    const store = await fromConfig('db2.yaml', `endpoint: 127.0.0.1:${server.port}\ndb: 2\n`)
    const watch = await watching(store, 'd/')
    expect(watch.snapshot.type === 'snapshot' && watch.snapshot.items.map((i) => i.key)).toEqual([
      'd/two',
    ])
    // A write in database 0 first: it must not arrive; the later write in database 2 must.
    await raw0.set('d/other-client', 'db 0')
    await raw2.set('d/other-client', 'db 2')
    expect(await watch.changeOf('d/other-client')).toBe('db 2')
    await lastValueFrom(store.put('d/own', enc('mine')), { defaultValue: undefined })
    expect(await watch.changeOf('d/own')).toBe('mine')
    expect(await raw2.get('d/own')).toBe('mine')
    expect(await raw0.get('d/own')).toBeNull()
    const values = watch.events.flatMap((event) =>
      event.type === 'changes'
        ? event.changes.map((c) => `${c.key}=${c.op === 'put' ? text.decode(c.value) : '-'}`)
        : [],
    )
    expect(values).toEqual(['d/other-client=db 2', 'd/own=mine'])
  })
})

describe('Redis Sentinel with a password', () => {
  let setup: SentinelSetup

  beforeAll(async () => {
    setup = await startSentinelSetup({ password: 'sentinel-secret', replicas: 1, sentinels: 3 })
  }, 120_000)
  afterAll(async () => {
    await setup.cleanup()
  })

  it('finds the master through the sentinels and watches and writes with the password', async () => {
    const sentinels = setup.sentinelAddresses.map((s) => `${s.host}:${s.port}`)
    const store = await fromConfig(
      'sentinel.yaml',
      [
        'endpoints:',
        ...sentinels.map((s) => `  - ${s}`),
        `master-name: ${setup.masterName}`,
        'password: sentinel-secret',
        '',
      ].join('\n'),
    )
    await roundTrip(store, 'sent/', 'sent/a', 'through sentinel')
  })
})

describe('Redis Cluster with a password', () => {
  let cluster: RedisCluster

  beforeAll(async () => {
    cluster = await startRedisCluster({ password: 'cluster-secret', replicasPerMaster: 0 })
  }, 120_000)
  afterAll(async () => {
    await cluster.cleanup()
  })

  it('watches and writes every master with the password', async () => {
    const nodes = cluster.startupNodes.map((n) => `${n.host}:${n.port}`)
    const store = await fromConfig(
      'cluster.yaml',
      ['endpoints:', ...nodes.map((n) => `  - ${n}`), 'password: cluster-secret', ''].join('\n'),
    )
    // Keys in different slots, so more than one master is involved.
    for (const key of ['clu/a', 'clu/b', 'clu/c']) await roundTrip(store, 'clu/', key, key)
  })
})
