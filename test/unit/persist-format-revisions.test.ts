// The snapshot file's reader shares one bigint among consecutive keys of one revision (keys
// written by one transaction), as the etcd store's reader does: the revisions read back must be
// the ones saved, in runs, alternating, with the same low 32 bits and past 2^53.
import { describe, expect, it } from 'vitest'
import type { KeyValue } from '../../src/core/events.js'
import { decodeSnapshot, encodeSnapshot } from '../../src/sync/persist/format.js'
import { revision } from '../../src/core/revision.js'
import { r } from './support.js'

const bytes = (text: string) => new TextEncoder().encode(text)

describe('snapshot file: revisions', () => {
  it('reads back each key revision: runs of one revision, the same low 32 bits, past 2^53', async () => {
    const revisions = [5, 5, 5, 7, 5, 2 ** 32 + 5, 2 ** 32 + 5, 2 ** 53 + 2, 9]
    const items: KeyValue<Uint8Array>[] = revisions.map((at, i) => ({
      key: `k/${i}`,
      value: bytes(`v${i}`),
      revision: i === 7 ? revision(2n ** 53n + 2n) : r(at),
    }))
    const file = await encodeSnapshot({
      store: 'test',
      revision: r(10),
      prefixes: ['k/'],
      savedAt: 0,
      items,
    })
    const { items: read } = await decodeSnapshot<Uint8Array>('test', file, ['k/'])
    expect(read.map((item) => item.revision)).toEqual(items.map((item) => item.revision))
    expect(read.map((item) => new TextDecoder().decode(item.value))).toEqual(
      items.map((_, i) => `v${i}`),
    )
  })
})
