import { filter, firstValueFrom, lastValueFrom } from 'rxjs'
import { describe, expect, it } from 'vitest'
import { createDatasync, string, type Consumer } from '../../src/index.js'
import { createFaultStore, recordConsumer, type ConsumerRecorder } from '../../src/testing/index.js'

const enc = (text: string) => new TextEncoder().encode(text)

describe('consumers registered and closed in a loop while writes flow', () => {
  it('leak nothing: the consumer count and the store watch count return to their start, live consumers hold the store', async () => {
    const store = createFaultStore()
    const sync = createDatasync(store, { ackTimeout: '10s' })
    const keeper = recordConsumer(sync.register('keeper', { prefixes: ['k/'], codec: string() }))
    sync.start()
    await firstValueFrom(sync.status$.pipe(filter((status) => status.state === 'in-sync')))
    const startConsumers = sync.consumers()
    const startWatches = store.watchSubscriptions
    expect(startConsumers).toEqual(['keeper'])
    expect(startWatches).toBe(1)

    const live: {
      consumer: Consumer<string>
      recorder: ConsumerRecorder<string>
      prefixes: string[]
    }[] = []
    for (let i = 0; i < 1000; i++) {
      const prefixes = i % 3 === 0 ? ['k/'] : [`k/${i % 10}`]
      const consumer = sync.register(`c${i}`, { prefixes, codec: string() })
      const recorder = recordConsumer(consumer)
      await lastValueFrom(store.put(`k/${i % 10}/${i % 7}`, enc(`v${i}`)))
      if (i % 2 === 0) await lastValueFrom(store.delete(`k/${(i + 5) % 10}/`, { prefix: true }))
      if (i >= 990) {
        live.push({ consumer, recorder, prefixes })
      } else {
        recorder.stop()
        consumer.close()
      }
    }

    const expected = (await lastValueFrom(store.list('k/'))).map((item) => ({
      ...item,
      value: new TextDecoder().decode(item.value),
    }))
    await keeper.untilEquals(expected, '20s')
    for (const { recorder, prefixes } of live) {
      await recorder.untilEquals(
        expected.filter((item) => prefixes.some((prefix) => item.key.startsWith(prefix))),
        '20s',
      )
      expect(recorder.violations).toEqual([])
    }
    expect(keeper.violations).toEqual([])
    expect(sync.consumers()).toEqual(['keeper', ...live.map(({ consumer }) => consumer.name)])
    for (const { consumer, recorder } of live) {
      recorder.stop()
      consumer.close()
    }
    expect(sync.consumers()).toEqual(startConsumers)
    expect(store.watchSubscriptions).toBe(startWatches)
    sync.close()
    expect(store.watchSubscriptions).toBe(0)
  })
})
