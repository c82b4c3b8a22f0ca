/**
 * The etcd store's write queue (src/backends/etcd/writer.ts) against a fake context whose calls
 * the test answers by hand: what goes together, in which order, and who gets which answer. The
 * store itself is tested against real etcd (test/integration/etcd-writes.test.ts).
 */
import { Observable, Subject, firstValueFrom, of, type Subscriber } from 'rxjs'
import { describe, expect, it } from 'vitest'
import { GRPCUnavailableError } from 'etcd3'
import { EtcdLeaseInvalidError } from '../../src/backends/etcd/etcd3.js'
import { Writer, type Work, type WriterContext } from '../../src/backends/etcd/writer.js'
import type { WirePutRequest } from '../../src/backends/etcd/wire/encode.js'

interface Call {
  readonly kind: 'put' | 'puts' | 'run'
  readonly keys: readonly string[]
  answer(value?: unknown): void
  fail(error: unknown): void
}

function fakeContext(maxOps = 128, maxBytes = 1 << 20) {
  const calls: Call[] = []
  const call = <T>(kind: Call['kind'], keys: readonly string[]) =>
    new Observable<T>((subscriber: Subscriber<T>) => {
      calls.push({
        kind,
        keys,
        answer: (value) => {
          subscriber.next(value as T)
          subscriber.complete()
        },
        fail: (error) => {
          subscriber.error(error)
        },
      })
    })
  const keyOf = (put: WirePutRequest) => new TextDecoder().decode(put.key)
  const context: WriterContext = {
    maxOps,
    maxBytes,
    put: (put) => call('put', [keyOf(put)]),
    puts: (puts) => call('puts', puts.map(keyOf)),
    run: () => call('run', []),
  }
  return { context, calls }
}

const put = (key: string, bytes = 1): Work<undefined> => ({
  key,
  put: { key: new TextEncoder().encode(key), value: new Uint8Array(bytes), lease: undefined },
})

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown }
const outcome = (source: Observable<unknown>): Promise<Outcome> =>
  firstValueFrom(source).then(
    (value): Outcome => ({ ok: true, value }),
    (error: unknown): Outcome => ({ ok: false, error }),
  )

/** Lets the writer's microtask pump run. */
const tick = () => new Promise<void>((resolve) => setTimeout(resolve, 0))

describe('etcd Writer', () => {
  it('puts made together go as one Txn; the next batch waits for the call out', async () => {
    const { context, calls } = fakeContext()
    const writer = new Writer(context)
    const first = ['a', 'b', 'c'].map((key) => outcome(writer.ready(put(key))))
    await tick()
    const later = ['d', 'e'].map((key) => outcome(writer.ready(put(key))))
    await tick()
    expect(calls.map((c) => [c.kind, c.keys])).toEqual([['puts', ['a', 'b', 'c']]])
    calls[0]?.answer({})
    expect((await Promise.all(first)).every((o) => o.ok)).toBe(true)
    await tick()
    expect(calls.map((c) => c.keys)).toEqual([
      ['a', 'b', 'c'],
      ['d', 'e'],
    ])
    calls[1]?.answer({})
    expect((await Promise.all(later)).every((o) => o.ok)).toBe(true)
  })

  it('never puts one key twice in a batch, never more than maxOps, and a delete goes alone', async () => {
    const { context, calls } = fakeContext(2)
    const writer = new Writer(context)
    const all = [
      outcome(writer.ready(put('a'))),
      outcome(writer.ready(put('a'))),
      outcome(writer.ready(put('b'))),
      outcome(writer.ready(put('c'))),
      outcome(writer.ready({ run: () => Promise.resolve({ deleted: 1 }) })),
      outcome(writer.ready(put('d'))),
    ]
    const seen: string[][] = []
    for (let i = 0; i < 5; i++) {
      await tick()
      const last = calls[calls.length - 1]
      seen.push([last?.kind ?? '', ...(last?.keys ?? [])])
      last?.answer(last.kind === 'run' ? { deleted: 1 } : {})
    }
    expect(seen).toEqual([['put', 'a'], ['puts', 'a', 'b'], ['put', 'c'], ['run'], ['put', 'd']])
    const results = await Promise.all(all)
    expect(results[4]).toEqual({ ok: true, value: { deleted: 1 } })
    expect(results[0]).toEqual({ ok: true, value: undefined })
  })

  it('a batch refused for one put is sent again put by put, ahead of later writes', async () => {
    const { context, calls } = fakeContext()
    const writer = new Writer(context)
    const all = ['a', 'b', 'c'].map((key) => outcome(writer.ready(put(key))))
    await tick()
    const later = outcome(writer.ready(put('d')))
    calls[0]?.fail(new EtcdLeaseInvalidError('7'))
    for (const key of ['a', 'b', 'c']) {
      await tick()
      const last = calls[calls.length - 1]
      expect(last?.kind).toBe('put')
      expect(last?.keys).toEqual([key])
      if (key === 'b') last?.fail(new EtcdLeaseInvalidError('7'))
      else last?.answer({})
    }
    await tick()
    expect(calls[calls.length - 1]?.keys).toEqual(['d'])
    calls[calls.length - 1]?.answer({})
    const results = await Promise.all(all)
    expect(results.map((o) => o.ok)).toEqual([true, false, true])
    expect((await later).ok).toBe(true)
  })

  it('a connection fault fails every put of the batch with it, sent once', async () => {
    const { context, calls } = fakeContext()
    const writer = new Writer(context)
    const all = ['a', 'b'].map((key) => outcome(writer.ready(put(key))))
    await tick()
    const fault = new GRPCUnavailableError('14 UNAVAILABLE: connection refused')
    calls[0]?.fail(fault)
    expect(await Promise.all(all)).toEqual([
      { ok: false, error: fault },
      { ok: false, error: fault },
    ])
    await tick()
    expect(calls).toHaveLength(1)
  })

  it('"too many operations" halves the batch size', async () => {
    const { context, calls } = fakeContext(8)
    const writer = new Writer(context)
    const keys = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h']
    const first = keys.map((key) => outcome(writer.ready(put(key))))
    await tick()
    calls[0]?.fail(new Error('etcdserver: too many operations in txn request'))
    for (let i = 0; i < keys.length; i++) {
      await tick()
      calls[calls.length - 1]?.answer({})
    }
    expect((await Promise.all(first)).every((o) => o.ok)).toBe(true)
    const next = keys.map((key) => outcome(writer.ready(put(`${key}2`))))
    await tick()
    expect(calls[calls.length - 1]?.keys).toHaveLength(4)
    calls[calls.length - 1]?.answer({})
    await tick()
    calls[calls.length - 1]?.answer({})
    expect((await Promise.all(next)).every((o) => o.ok)).toBe(true)
  })

  it('a put over 64 KiB goes alone; maxBytes ends a batch', async () => {
    const { context, calls } = fakeContext(128, 3000)
    const writer = new Writer(context)
    const all = [
      outcome(writer.ready(put('a', 10))),
      outcome(writer.ready(put('big', 65 * 1024))),
      outcome(writer.ready(put('b', 1400))),
      outcome(writer.ready(put('c', 1400))),
      outcome(writer.ready(put('d', 1400))),
    ]
    const seen: (readonly string[])[] = []
    for (let i = 0; i < 4; i++) {
      await tick()
      const last = calls[calls.length - 1]
      seen.push(last?.keys ?? [])
      last?.answer({})
    }
    expect(seen).toEqual([['a'], ['big'], ['b', 'c'], ['d']])
    expect((await Promise.all(all)).every((o) => o.ok)).toBe(true)
  })

  it('a write waiting for its lease holds the writes behind it; an unsubscribed one is skipped', async () => {
    const { context, calls } = fakeContext()
    const writer = new Writer(context)
    const lease = new Subject<string>()
    const leased = outcome(writer.write(lease, () => put('t')))
    const dropped = writer.ready(put('x')).subscribe()
    const after = outcome(writer.ready(put('y')))
    dropped.unsubscribe()
    await tick()
    expect(calls).toHaveLength(0)
    lease.next('9')
    await tick()
    expect(calls[0]?.keys).toEqual(['t', 'y'])
    calls[0]?.answer({})
    expect([(await leased).ok, (await after).ok]).toEqual([true, true])
  })

  it('an error before the work is known fails that write alone', async () => {
    const { context, calls } = fakeContext()
    const writer = new Writer(context)
    const refused = outcome(writer.write(of('x'), () => ({ ...put('a'), key: invalid() })))
    const next = outcome(writer.ready(put('b')))
    await tick()
    calls[0]?.answer({})
    expect((await refused).ok).toBe(false)
    expect((await next).ok).toBe(true)
  })
})

function invalid(): string {
  throw new TypeError('no key')
}
