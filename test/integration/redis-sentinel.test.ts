/**
 * The Redis store behind Sentinel (a master, two replicas, three sentinels): the master is paused
 * with SIGSTOP while a writer keeps writing; the sentinels fail over, the writes go on to the new
 * master, and every consumer ends with exactly the store's state and correct prev values.
 */
import { filter, firstValueFrom, lastValueFrom, type Subscription } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createDatasync,
  isRetryable,
  string,
  type ChangeEvent,
  type StoreEvent,
} from '../../src/index.js'
import {
  createRedisStore,
  type RedisStore,
  type RedisStoreOptions,
} from '../../src/backends/redis/index.js'
import { recordConsumer } from '../../src/testing/index.js'
import { pollUntil, startSentinelSetup, type SentinelSetup } from '../servers/index.js'
import { retried } from '../support/retry.js'

const text = string()
const enc = (value: string) => text.encode(value)
const dec = (raw: Uint8Array) => text.decode(raw)

let setup: SentinelSetup | undefined

beforeAll(async () => {
  setup = await startSentinelSetup()
})

afterAll(async () => {
  for (const node of setup?.nodes ?? []) if (node.isPaused) node.resume()
  await setup?.cleanup()
})

function options(): RedisStoreOptions {
  return {
    sentinel: { sentinels: setup!.sentinelAddresses, masterName: setup!.masterName },
    commandTimeout: '1s',
    heartbeatInterval: '500ms',
    maxReconnectDelay: '500ms',
  }
}

/** Writes until it succeeds, waiting out a failover (retryable errors only). */
async function put(store: RedisStore, key: string, value: string): Promise<void> {
  await retried(() => lastValueFrom(store.put(key, enc(value))), { retry: isRetryable })
}

describe('redis sentinel', () => {
  it('the master paused until failover, writes going on to the new master: consumers hold the store state', async () => {
    const p = `sentinel-${process.pid}/`
    const store = createRedisStore(options())
    const writer = createRedisStore(options())
    const events: StoreEvent<Uint8Array>[] = []
    const watching: Subscription = store.watch([p]).subscribe((event) => events.push(event))
    const instance = createDatasync(store, { ackTimeout: '10s' })
    try {
      const all = recordConsumer(instance.register('all', { prefixes: [p], codec: text }))
      const some = recordConsumer(
        instance.register('some', { prefixes: [`${p}1`, `${p}2`], codec: text }),
        { ackDelay: (event) => (event.kind === 'change' ? 2 : 0) },
      )
      for (let i = 0; i < 30; i++) await put(writer, `${p}${i}`, `before-${i}`)
      instance.start()
      await firstValueFrom(instance.status$.pipe(filter((status) => status.state === 'in-sync')))
      await pollUntil(() => events.length > 0, { description: 'the first snapshot' })

      const old = await setup!.currentMaster()
      const oldNode = setup!.nodes.find((node) => node.port === old.port)!
      let writing = true
      let afterFailover = 0
      let failedOver = false
      const writes = (async () => {
        for (let i = 0; writing; i++) {
          await put(writer, `${p}${i % 30}`, `w${i}`)
          if (failedOver) afterFailover++
        }
      })()
      await pollUntil(() => all.events.length > 3, { description: 'some live changes' })
      await oldNode.pause()
      const next = await pollUntil(
        async () => {
          const current = await setup!.currentMaster()
          return current.port !== old.port ? current : undefined
        },
        { timeoutMs: 60_000, description: 'the sentinels to fail over' },
      )
      failedOver = true
      await pollUntil(() => afterFailover >= 50, {
        timeoutMs: 60_000,
        description: 'writes to the new master',
      })
      writing = false
      await writes
      await put(writer, `${p}last`, 'after the failover')
      oldNode.resume()

      const expected = (await lastValueFrom(store.list(p))).map((item) => ({
        ...item,
        value: dec(item.value),
      }))
      expect(expected.find((item) => item.key === `${p}last`)?.value).toBe('after the failover')
      await all.untilEquals(expected, 60_000)
      await some.untilEquals(
        expected.filter((item) => item.key.startsWith(`${p}1`) || item.key.startsWith(`${p}2`)),
        60_000,
      )
      expect(all.violations).toEqual([])
      expect(some.violations).toEqual([])
      // Prev values: each change's prev is the value the consumer held (checked by the
      // recorder); the deltas after the failover came from the new master.
      const lastChange = all.events
        .filter((event): event is ChangeEvent<string> => event.kind === 'change')
        .flatMap((event) => event.changes)
        .find((change) => change.key === `${p}last`)
      expect(lastChange).toMatchObject({ op: 'put', value: 'after the failover' })
      const causes = () =>
        events.flatMap((event) => (event.type === 'snapshot' ? [event.cause] : []))
      await pollUntil(() => causes().includes('reconnect'), { description: 'the watch to relist' })
      expect(causes()[0]).toBe('startup')
      expect(next.port).not.toBe(old.port)
    } finally {
      watching.unsubscribe()
      instance.close()
      await Promise.all([store.close(), writer.close()])
    }
  })
})
