/** The NATS feed's reading of a JetStream ack subject, in each of its forms. */
import { describe, expect, it } from 'vitest'
import { ackInfo } from '../../src/backends/nats/feed.js'

describe('nats feed: ackInfo', () => {
  it('reads the stream sequence, delivery sequence and pending count of every form', () => {
    const facts = { sseq: 1234n, dseq: 56, pending: 7 }
    // v1: $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<dseq>.<ts>.<pending>
    expect(ackInfo('$JS.ACK.KV_b.rxds_x.1.1234.56.1700000000000000000.7')).toEqual(facts)
    // v2: with domain and account hash, then with a trailing random token
    expect(ackInfo('$JS.ACK._.ACC.KV_b.rxds_x.1.1234.56.1700000000000000000.7')).toEqual(facts)
    expect(ackInfo('$JS.ACK._.ACC.KV_b.rxds_x.1.1234.56.1700000000000000000.7.tok')).toEqual(facts)
  })

  it('is undefined for anything else', () => {
    expect(ackInfo(undefined)).toBeUndefined()
    expect(ackInfo('_INBOX.abc')).toBeUndefined()
  })
})
