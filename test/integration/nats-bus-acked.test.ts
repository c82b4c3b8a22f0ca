/**
 * The bus source's `after: 'acked'` on a real nats-server (issue 19): a watch resumes after the
 * durable consumer's ack floor, so what a previous run acknowledged is not delivered again and
 * what it received but did not acknowledge is (at least once). The stream is filled by a sink
 * from a memory store's changes.
 */
import { jetstreamManager } from '@nats-io/jetstream'
import { firstValueFrom, lastValueFrom, take, toArray } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import {
  createNatsSink,
  createNatsStreamSource,
  type NatsStreamSource,
} from '../../src/backends/nats/index.js'
import { createMemoryStore, string, type Change, type StoreEvent } from '../../src/index.js'
import { pollUntil } from '../servers/index.js'
import { natsConnect, startNats, type NatsServer } from '../servers/nats.js'

const text = string()
const STREAM = 'acked_bus'
const SUBJECTS = 'acked.changes'
const DURABLE = 'acked-reader'

/** The changes of `events`, as `revision op key=value` lines. */
function lines(events: readonly StoreEvent<Uint8Array>[]): string[] {
  return events.flatMap((event) =>
    event.type === 'changes'
      ? event.changes.map(
          (c: Change<Uint8Array>) =>
            `${c.revision} ${c.op} ${c.key}${c.op === 'put' ? `=${text.decode(c.value)}` : ''}`,
        )
      : [`snapshot ${event.revision}`],
  )
}

describe("nats bus source: after 'acked'", { timeout: 120_000 }, () => {
  let server: NatsServer | undefined
  beforeAll(async () => {
    server = await startNats()
  }, 180_000)
  afterAll(async () => {
    await server?.cleanup()
  })

  it('resumes after the ack floor: acknowledged messages stay behind, the rest come again', async () => {
    const url = server!.url
    // Ten changes into the stream: a watch of a memory store, published by the sink.
    const store = createMemoryStore()
    const sink = createNatsSink({
      servers: url,
      stream: STREAM,
      subjectPrefix: SUBJECTS,
      createStream: true,
    })
    const published = firstValueFrom(store.watch(['k/']).pipe(sink.publish(), take(11), toArray()))
    for (let i = 1; i <= 10; i++) {
      await lastValueFrom(store.put(`k/${i % 4}`, text.encode(`v${i}`)), {
        defaultValue: undefined,
      })
    }
    await published
    await sink.close()

    const source = (): NatsStreamSource =>
      createNatsStreamSource({
        servers: url,
        stream: STREAM,
        subjectPrefix: SUBJECTS,
        durable: DURABLE,
        after: 'acked',
        ackWait: '30s',
      })

    // First run: no durable consumer yet, so everything from the start, as changes (no snapshot).
    const first = source()
    const firstEvents = await firstValueFrom(first.watch(['k/']).pipe(take(10), toArray()))
    const firstLines = lines(firstEvents)
    expect(firstLines.filter((line) => line.startsWith('snapshot'))).toEqual([])
    expect(firstLines.map((line) => line.split(' ').slice(1).join(' '))).toEqual(
      Array.from({ length: 10 }, (_, i) => `put k/${(i + 1) % 4}=v${i + 1}`),
    )
    // That watch acknowledged nothing: watched again, the source gets all ten once more, and
    // this time acknowledges the first six, then stops.
    const acked = firstEvents[5]!.revision
    const second = source()
    try {
      const again = first.watch(['k/']).subscribe()
      try {
        const redelivered = await firstValueFrom(first.emitted$.pipe(take(10), toArray()))
        expect(redelivered.at(-1)).toBe(firstEvents[9]!.revision)
        first.acknowledge(acked)
        const admin = await natsConnect([url])
        try {
          const jsm = await jetstreamManager(admin)
          await pollUntil(
            async () =>
              BigInt((await jsm.consumers.info(STREAM, DURABLE)).ack_floor.stream_seq) === acked ||
              undefined,
            { timeoutMs: 10_000, description: 'the ack floor to reach the sixth message' },
          )
        } finally {
          await admin.close()
        }
      } finally {
        again.unsubscribe()
        await first.close()
      }

      // Second run: only what follows the ack floor, delivered again (at least once).
      const secondEvents = await firstValueFrom(second.watch(['k/']).pipe(take(4), toArray()))
      expect(lines(secondEvents)).toEqual(lines(firstEvents.slice(6)))
      expect(secondEvents[0]!.revision > acked).toBe(true)
    } finally {
      await second.close()
    }
  })
})
