import { asyncScheduler } from 'rxjs'
import { describe, expect, it } from 'vitest'
import type { DatasyncError } from '../src/core/errors.js'
import { awaitAck, type AckSettings } from '../src/sync/operators/await-ack.js'
import type { AckPolicy, Done } from '../src/sync/types.js'
import { at, testScheduler } from './helpers.js'

/** Settings with a 5-frame timeout and a 3-frame retry delay; `reported` collects failures. */
function settings(policy: AckPolicy, reported: string[], latencies: number[] = []): AckSettings {
  return {
    consumer: 'c',
    kind: 'change',
    timeoutMs: 5,
    policy,
    maxRetries: 1,
    retryDelayMs: 3,
    scheduler: asyncScheduler,
    report: (error: DatasyncError) => reported.push(`${error.code}: ${error.message}`),
    settled: (ms) => latencies.push(ms),
  }
}

describe('awaitAck', () => {
  it('completes at once when the consumer acknowledges during the delivery, with no timer left', () => {
    testScheduler().run(({ expectObservable, flush }) => {
      const reported: string[] = []
      const latencies: number[] = []
      let deliveries = 0
      const deliver = (done: Done) => {
        deliveries++
        done()
        done(new Error('a second call is a no-op'))
      }
      expectObservable(awaitAck(deliver, settings('halt', reported, latencies))).toBe('|')
      flush()
      expect({ deliveries, reported, latencies }).toEqual({
        deliveries: 1,
        reported: [],
        latencies: [0],
      })
    })
  })

  it('waits for an acknowledgement that comes later', () => {
    testScheduler().run(({ expectObservable, flush }) => {
      const reported: string[] = []
      let later: Done | undefined
      const deliver = (done: Done) => {
        later = done
      }
      at(() => later?.(), 3)
      expectObservable(awaitAck(deliver, settings('halt', reported))).toBe('---|')
      flush()
      expect(reported).toEqual([])
    })
  })

  it("reports done(error) given during the delivery as a ConsumerError; 'continue' goes on", () => {
    testScheduler().run(({ expectObservable, flush }) => {
      const reported: string[] = []
      const deliver = (done: Done) => {
        done(new Error('bad value'))
      }
      expectObservable(awaitAck(deliver, settings('continue', reported))).toBe('|')
      flush()
      expect(reported).toEqual([
        "consumer-failed: consumer 'c' failed to apply its change event: bad value",
      ])
    })
  })

  it("under 'retry' delivers again after done(error) given during the delivery", () => {
    testScheduler().run(({ expectObservable, flush }) => {
      const reported: string[] = []
      let deliveries = 0
      const deliver = (done: Done) => {
        deliveries++
        if (deliveries === 1) done(new Error('not yet'))
        else done()
      }
      expectObservable(awaitAck(deliver, settings('retry', reported))).toBe('---|')
      flush()
      expect({ deliveries, reported: reported.length }).toEqual({ deliveries: 2, reported: 1 })
    })
  })

  it("under 'retry' delivers again after the delivery threw, and 'halt' errors with the throw", () => {
    testScheduler().run(({ expectObservable, flush }) => {
      let deliveries = 0
      const deliver = (done: Done) => {
        deliveries++
        if (deliveries === 1) throw new Error('handler threw')
        done()
      }
      expectObservable(awaitAck(deliver, settings('retry', []))).toBe('---|')
      const boom = new Error('handler threw')
      const throwing = () => {
        throw boom
      }
      expectObservable(awaitAck(throwing, settings('halt', []))).toBe('#', undefined, boom)
      flush()
      expect(deliveries).toBe(2)
    })
  })

  it("times out a delivery nobody acknowledges: 'halt' errors after the timeout", () => {
    testScheduler().run(({ expectObservable, flush }) => {
      const reported: string[] = []
      const result = awaitAck(() => undefined, settings('halt', reported))
      expectObservable(result).toBe(
        '-----#',
        undefined,
        expect.objectContaining({ code: 'ack-timeout' }) as unknown,
      )
      flush()
      expect(reported).toHaveLength(1)
    })
  })
})
