import { VirtualAction, VirtualTimeScheduler } from 'rxjs'
import { describe, expect, it } from 'vitest'
import {
  KeyFailedError,
  createDatasync,
  createMemoryStore,
  failedKeys,
  mergeEvents,
  string,
  type ChangeEvent,
  type ConsumerEvent,
  type DatasyncError,
} from '../../src/index.js'
import { describeEvent } from '../../src/testing/index.js'

const text = string()
const enc = (value: string) => text.encode(value)

function setup(decode: 'eager' | 'lazy' = 'eager') {
  // Virtual time ends at 5 s: a key that keeps failing is retried for ever.
  const scheduler = new VirtualTimeScheduler(VirtualAction, 5_000)
  const store = createMemoryStore({ initial: { 'k/a': enc('0'), 'k/b': enc('0') } })
  const sync = createDatasync(store, {
    scheduler,
    keyRetry: { base: 10, factor: 2, cap: 1_000, jitter: 0 },
  })
  const consumer = sync.register('k', { prefixes: ['k/'], codec: text, decode })
  const errors: DatasyncError[] = []
  sync.errors$.subscribe((error) => errors.push(error))
  return { scheduler, store, sync, consumer, errors }
}

describe('per-key retry', () => {
  it('shows the failing keys with their attempts and errors, and reports each failure', () => {
    const { scheduler, store, sync, consumer, errors } = setup()
    const seen: string[] = []
    const busy = new Error('device busy')
    consumer.events$.subscribe((event) => {
      seen.push(describeEvent(event))
      event.done(event.kind === 'change' ? failedKeys(new Map([['k/a', busy]])) : undefined)
    })
    sync.start()
    store.put('k/a', enc('1')).subscribe()
    scheduler.flush() // the retries run until the cap: the key stays failing, never dropped
    expect(seen.slice(0, 4)).toEqual([
      'R(startup) k/a=0 k/b=0',
      'C(live) k/a:0>1',
      'C(retry) k/a:0>1',
      'C(retry) k/a:0>1',
    ])
    const failing = consumer.failing().get('k/a')
    expect(failing?.error).toBe(busy)
    expect(failing?.attempts).toBe(seen.length - 1)
    const first = errors[0]
    expect(first).toBeInstanceOf(KeyFailedError)
    expect(first).toMatchObject({ consumer: 'k', key: 'k/a', attempts: 1, retryInMs: 10 })
    sync.close()
  })

  it('retries a lazy consumer with getters: the current value, prev the value it last applied', () => {
    const { scheduler, store, sync, consumer } = setup('lazy')
    const events: ConsumerEvent<string>[] = []
    let failures = 0
    consumer.events$.subscribe((event) => {
      events.push(event)
      const fail = event.kind === 'change' && failures++ === 0
      event.done(fail ? failedKeys({ 'k/b': 'busy' }) : undefined)
    })
    sync.start()
    store.put('k/b', enc('1')).subscribe()
    store.put('k/b', enc('2')).subscribe() // folded into the retry
    scheduler.flush()
    const retry = events.at(-1) as ChangeEvent<string>
    expect(retry.reason).toBe('retry')
    expect(retry.changes).toEqual([{ op: 'put', key: 'k/b', value: '2', prev: '0', revision: 3n }])
    expect(consumer.failing().size).toBe(0)
    sync.close()
  })

  it('takes the failed keys of a merged event (batchQuiet) back to each part it merged', () => {
    const { scheduler, store, sync, consumer, errors } = setup()
    const held: ConsumerEvent<string>[] = []
    const seen: string[] = []
    consumer.events$.subscribe((event) => {
      seen.push(describeEvent(event))
      if (event.kind === 'resync' || event.reason === 'retry') event.done()
      else held.push(event)
    })
    sync.start()
    store.put('k/a', enc('1')).subscribe()
    store.put('k/b', enc('1')).subscribe()
    // maxInFlight 1 holds k/b back until the first is acknowledged.
    const first = held.shift()
    first?.done()
    const second = held.shift()
    expect(second).toBeDefined()
    // A merge of what is held, acknowledged naming a key of one part only.
    const merged = mergeEvents([second as ConsumerEvent<string>])
    merged.done(failedKeys({ 'k/b': 'busy' }))
    scheduler.flush()
    expect(seen).toEqual([
      'R(startup) k/a=0 k/b=0',
      'C(live) k/a:0>1',
      'C(live) k/b:0>1',
      'C(retry) k/b:0>1',
    ])
    expect(errors.map((error) => error.name)).toEqual(['KeyFailedError'])
    sync.close()
  })
})
