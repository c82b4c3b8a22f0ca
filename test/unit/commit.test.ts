import { VirtualTimeScheduler, lastValueFrom } from 'rxjs'
import { describe, expect, it } from 'vitest'
import { createDatasync, createMemoryStore, string, type CommitResult } from '../../src/index.js'

const enc = (text: string) => new TextEncoder().encode(text)

describe('Datasync.commit', () => {
  it('refuses to write while the orchestrator is not running, before start and after stop', async () => {
    const store = createMemoryStore()
    const sync = createDatasync(store)
    sync.register('a', { prefixes: ['a/'], codec: string() }).events$.subscribe((event) => {
      event.done()
    })
    const put = () => lastValueFrom(sync.commit([{ op: 'put', key: 'a/1', value: enc('x') }]))
    await expect(put()).rejects.toMatchObject({
      code: 'closed',
      message: expect.stringMatching(/the orchestrator is not running; start it/) as unknown,
    })
    sync.start()
    const result = await put()
    expect(result.consumers).toEqual([{ consumer: 'a' }])
    sync.stop()
    await expect(put()).rejects.toMatchObject({ code: 'closed' })
    expect((await lastValueFrom(store.list('a/'))).length).toBe(1)
    sync.close()
    await expect(put()).rejects.toMatchObject({ code: 'closed', name: 'ClosedError' })
  })

  it('gives a consumer that does not apply the write in time a timeout outcome, and the others theirs', () => {
    const scheduler = new VirtualTimeScheduler()
    const store = createMemoryStore({ scheduler })
    const sync = createDatasync(store, { scheduler, ackTimeout: 10_000 })
    sync.register('quick', { prefixes: ['k/'], codec: string() }).events$.subscribe((event) => {
      event.done()
    })
    sync.register('stuck', { prefixes: ['k/'], codec: string() }).events$.subscribe((event) => {
      if (event.kind === 'resync') event.done()
    })
    sync.start()
    scheduler.flush()
    let result: CommitResult | undefined
    sync
      .commit([{ op: 'put', key: 'k/1', value: enc('v') }], { timeout: 500 })
      .subscribe((value) => (result = value))
    scheduler.flush()
    expect(result?.succeeded).toBe(true)
    expect(result?.consumers.map((outcome) => [outcome.consumer, outcome.error?.code])).toEqual([
      ['quick', undefined],
      ['stuck', 'timeout'],
    ])
    expect(result?.consumers[1]?.error?.message).toMatch(
      /consumer 'stuck' did not apply the write at revision \d+ within 500 ms/,
    )
    sync.close()
  })

  it('writes nothing and waits for nobody when a condition fails', async () => {
    const store = createMemoryStore()
    const sync = createDatasync(store)
    sync.register('a', { prefixes: ['a/'], codec: string() }).events$.subscribe((event) => {
      event.done()
    })
    sync.start()
    const result = await lastValueFrom(
      sync.commit([{ op: 'put', key: 'a/1', value: enc('x') }], {
        conditions: [{ key: 'a/1', exists: true }],
      }),
    )
    expect(result).toMatchObject({ succeeded: false, consumers: [] })
    expect(await lastValueFrom(store.get('a/1'))).toBeUndefined()
    sync.close()
  })
})
