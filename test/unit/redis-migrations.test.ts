/** CLUSTER NODES as the Redis watch reads it for slot moves (`src/backends/redis/migrations.ts`). */
import { describe, expect, it } from 'vitest'
import { parseClusterNodes } from '../../src/backends/redis/migrations.js'

// Redis 7.0's CLUSTER NODES on the source of a move (slot 866 going to node b), trimmed ids.
const SOURCE = [
  'aaa 127.0.0.1:7000@17000 myself,master - 0 0 1 connected 0-5460 [866->-bbb]',
  'bbb 127.0.0.1:7001@17001,node-b master - 0 1700000000000 2 connected 5461-10922',
  'ccc 127.0.0.1:7002@17002 master,fail? - 0 1700000000000 3 connected 10923-16383',
  'ddd 127.0.0.1:7003@17003 slave aaa 0 1700000000000 1 connected',
  'eee 127.0.0.1:7004@17004 master - 0 1700000000000 0 connected',
  '',
].join('\n')

describe('parseClusterNodes', () => {
  it('reads the answering node’s moves, every node’s address and which are usable masters', () => {
    const reply = parseClusterNodes(SOURCE)
    expect(reply.migrating).toEqual([[866, 'bbb']])
    expect(reply.importing).toEqual([])
    expect(reply.nodes.map((n) => [n.id, n.host, n.port, n.master, n.myself])).toEqual([
      ['aaa', '127.0.0.1', 7000, true, true],
      ['bbb', '127.0.0.1', 7001, true, false],
      ['ccc', '127.0.0.1', 7002, false, false],
      ['ddd', '127.0.0.1', 7003, false, false],
      ['eee', '127.0.0.1', 7004, true, false],
    ])
  })

  it('reads an importing slot on the target, and ignores move markers on other nodes’ lines', () => {
    const reply = parseClusterNodes(
      [
        'aaa 127.0.0.1:7000@17000 master - 0 0 1 connected 0-5460 [866->-bbb]',
        'bbb 127.0.0.1:7001@17001 myself,master - 0 0 2 connected 5461-10922 [866-<-aaa]',
      ].join('\n'),
    )
    expect(reply.importing).toEqual([[866, 'aaa']])
    expect(reply.migrating).toEqual([])
  })
})
