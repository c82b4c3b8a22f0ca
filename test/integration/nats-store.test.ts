/**
 * What the NATS store does beyond the conformance suite, on a real nats-server: the key mapping
 * (keys with any characters round-trip, a prefix is a subject filter), the one-key conditional
 * transactions nats-server 2.9 can make atomic and the CapabilityErrors for the rest, a missing
 * bucket, and `watch(prefixes, { after })` (no snapshot while the history holds, a snapshot
 * when it does not).
 */
import { jetstreamManager } from '@nats-io/jetstream'
import { firstValueFrom, lastValueFrom, take, toArray, type Observable } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createNatsStore, type NatsStore } from '../../src/backends/nats/index.js'
import { encodeKey, decodeKey, filterFor } from '../../src/backends/nats/keys.js'
import { CapabilityError, ConfigError, revision, string } from '../../src/index.js'
import {
  NATS_TEST_TIMINGS,
  createNatsBucket,
  natsConnect,
  startNats,
  type NatsServer,
} from '../servers/nats.js'

const text = string()
const enc = (value: string) => text.encode(value)

describe('nats store on a real server', { timeout: 120_000 }, () => {
  let server: NatsServer | undefined
  let store: NatsStore
  beforeAll(async () => {
    server = await startNats()
    await createNatsBucket([server.url], 'store')
    store = createNatsStore({ servers: server.url, bucket: 'store', ...NATS_TEST_TIMINGS })
  }, 180_000)
  afterAll(async () => {
    await store.close()
    await server?.cleanup()
  })

  it('maps any key to a NATS key and back; a prefix ending in / is a subject filter', async () => {
    const keys = ['a/b/c', 'a/b.c', 'a//x', '/lead', 'trail/', 'sp ace/é/*>/=', 'a/bc']
    for (const key of keys) {
      expect(decodeKey(encodeKey(key))).toBe(key)
      expect(encodeKey(key)).toMatch(/^[-/_=.a-zA-Z0-9]+$/)
    }
    expect(encodeKey('a/b.c')).toBe('a.b=2Ec')
    expect(filterFor('a/b/')).toEqual({ subject: 'a.b.>', exact: true })
    expect(filterFor('a/b')).toEqual({ subject: 'a.>', exact: false })
    for (const [i, key] of keys.entries()) {
      await lastValueFrom(store.put(key, enc(String(i))), { defaultValue: undefined })
    }
    expect(await lastValueFrom(store.listKeys('a/b'))).toEqual(['a/b.c', 'a/b/c', 'a/bc'])
    expect(await lastValueFrom(store.listKeys('a/b/'))).toEqual(['a/b/c'])
    const odd = await lastValueFrom(store.get('sp ace/é/*>/='))
    expect(odd && text.decode(odd.value)).toBe('5')
    expect(await lastValueFrom(store.delete('a/', { prefix: true }))).toEqual({ deleted: 4 })
  })

  it('runs one-key conditional writes atomically and refuses what 2.9 cannot do', async () => {
    const created = await lastValueFrom(
      store.txn([{ op: 'put', key: 't/1', value: enc('a') }], {
        conditions: [{ key: 't/1', exists: false }],
      }),
    )
    expect(created.succeeded).toBe(true)
    const again = await lastValueFrom(
      store.txn([{ op: 'put', key: 't/1', value: enc('b') }], {
        conditions: [{ key: 't/1', exists: false }],
      }),
    )
    expect(again.succeeded).toBe(false)
    const byRevision = await lastValueFrom(
      store.txn([{ op: 'put', key: 't/1', value: enc('c') }], {
        conditions: [{ key: 't/1', revision: created.revision }],
      }),
    )
    expect(byRevision.succeeded).toBe(true)
    expect(byRevision.revision > created.revision).toBe(true)
    const byValue = await lastValueFrom(
      store.txn([{ op: 'delete', key: 't/1' }], { conditions: [{ key: 't/1', value: enc('c') }] }),
    )
    expect(byValue.succeeded).toBe(true)
    expect(await lastValueFrom(store.get('t/1'))).toBeUndefined()
    const refusals: Observable<unknown>[] = [
      store.txn([
        { op: 'put', key: 't/1', value: enc('x') },
        { op: 'put', key: 't/2', value: enc('y') },
      ]),
      store.txn([{ op: 'put', key: 't/1', value: enc('x') }], {
        conditions: [{ key: 't/2', exists: false }],
      }),
      store.txn([{ op: 'delete', key: 't/', prefix: true }]),
      store.put('t/3', enc('x'), { ttl: '1s' }),
    ]
    for (const refused of refusals) {
      const error: unknown = await lastValueFrom(refused).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(CapabilityError)
      expect((error as CapabilityError).message).toMatch(/nats-server 2\.9|nats/)
    }
    expect(await lastValueFrom(store.listKeys('t/'))).toEqual([])
  })

  it('a missing bucket fails operations with a ConfigError naming it', async () => {
    const other = createNatsStore({ servers: server!.url, bucket: 'nope', ...NATS_TEST_TIMINGS })
    try {
      const error: unknown = await lastValueFrom(other.get('a')).catch((e: unknown) => e)
      expect(error).toBeInstanceOf(ConfigError)
      expect((error as ConfigError).message).toMatch(/bucket 'nope' does not exist/)
    } finally {
      await other.close()
    }
  })

  it('a snapshot and a listing taken while every key is being rewritten hold every key', async () => {
    // Found by the chaos run (issue 16, NATS): a snapshot that counted messages ended with a key
    // still to come when the key had been rewritten during it, and nats-server 2.9 redelivers
    // the start set's last message once and counts it off its pending count. Before the fix, about
    // one snapshot in six of this loop missed a key (a phantom delete for the orchestrator).
    const keys = Array.from({ length: 40 }, (_, i) => `rw/${i}`)
    for (const key of keys) {
      await lastValueFrom(store.put(key, enc('0')), { defaultValue: undefined })
    }
    let writing = true
    let version = 0
    const writer = (async () => {
      while (writing) {
        const key = keys[version % keys.length]!
        await lastValueFrom(store.put(key, enc(String(++version))), { defaultValue: undefined })
      }
    })()
    const short: string[] = []
    try {
      for (let round = 0; round < 60; round++) {
        const snapshot = await firstValueFrom(store.watch(['rw/']))
        const items = snapshot.type === 'snapshot' ? snapshot.items : []
        if (items.length !== keys.length) short.push(`snapshot ${round}: ${items.length} keys`)
        const listed = await lastValueFrom(store.list('rw/'))
        if (listed.length !== keys.length) short.push(`list ${round}: ${listed.length} keys`)
      }
    } finally {
      writing = false
      await writer
    }
    expect(version).toBeGreaterThan(60)
    expect(short).toEqual([])
  })

  it('watch with after: only what follows while the history holds, a snapshot when it does not', async () => {
    await lastValueFrom(store.put('w/1', enc('1')), { defaultValue: undefined })
    const first = await firstValueFrom(store.watch(['w/']))
    expect(first.type).toBe('snapshot')
    const after = first.revision
    await lastValueFrom(store.put('w/2', enc('2')), { defaultValue: undefined })
    await lastValueFrom(store.delete('w/1'))
    const resumed = await firstValueFrom(store.watch(['w/'], { after }).pipe(take(2), toArray()))
    expect(resumed.map((event) => event.type)).toEqual(['changes', 'changes'])
    expect(
      resumed
        .flatMap((event) => (event.type === 'changes' ? event.changes : []))
        .map((c) => `${c.op} ${c.key}`),
    ).toEqual(['put w/2', 'delete w/1'])
    // History gone: everything before the last message is purged.
    const admin = await natsConnect([server!.url])
    try {
      const jsm = await jetstreamManager(admin)
      const last = (await jsm.streams.info('KV_store')).state.last_seq
      await jsm.streams.purge('KV_store', { seq: last })
    } finally {
      await admin.close()
    }
    const relisted = await firstValueFrom(store.watch(['w/'], { after }))
    expect(relisted).toMatchObject({ type: 'snapshot', cause: 'startup' })
    expect(relisted.revision > revision(after)).toBe(true)
  })
})
