/**
 * The etcd backend's hand-written protobuf codecs (src/backends/etcd/wire/) against protobufjs
 * with the etcd proto that etcd3 ships: replies encoded by protobufjs decode to the same fields,
 * requests encoded by hand decode in protobufjs to what was asked, including unknown fields,
 * empty values, and varints past 32 and 53 bits (revisions are int64).
 */
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import protobuf from 'protobufjs'
import { describe, expect, it } from 'vitest'
import {
  decodePutResponse,
  decodeRangeResponse,
  decodeTxnResponse,
  decodeWatchResponse,
} from '../../src/backends/etcd/wire/decode.js'
import {
  encodeDeleteRequest,
  encodePutRequest,
  encodeRangeRequest,
  encodeTxnRequest,
  encodeWatchCancel,
  encodeWatchCreate,
} from '../../src/backends/etcd/wire/encode.js'
import { Reader, Writer, int64Size } from '../../src/backends/etcd/wire/proto.js'

const require = createRequire(import.meta.url)
const protoDir = join(dirname(require.resolve('etcd3/package.json')), 'proto')
const root = new protobuf.Root()
root.resolvePath = (_origin, target) => join(protoDir, target.replace(/^\.\//, ''))
root.loadSync('rpc.proto', { keepCase: true })
const type = (name: string) => root.lookupType(name)

const bytes = (text: string) => Buffer.from(text, 'utf8')
const encode = (name: string, message: Record<string, unknown>) => {
  const t = type(name)
  return Buffer.from(t.encode(t.fromObject(message)).finish())
}
const decode = (name: string, buf: Buffer) =>
  type(name).toObject(type(name).decode(buf), { longs: String, bytes: Buffer, defaults: true })

/** An unknown field (number 99, length-delimited, then number 98 varint) appended to a message. */
const unknown = Buffer.from([0x9a, 0x06, 0x03, 0x61, 0x62, 0x63, 0x90, 0x06, 0xff, 0x01])

const BIG = 2n ** 62n + 12345n
const ABOVE_53 = 2n ** 53n + 1n

describe('etcd wire: primitives', () => {
  it('reads and writes varints across every length, and int64 as bigint', () => {
    for (const value of [
      0n,
      1n,
      127n,
      128n,
      16383n,
      16384n,
      2n ** 28n,
      2n ** 32n,
      2n ** 49n - 1n,
      2n ** 49n,
      ABOVE_53,
      BIG,
      2n ** 63n - 1n,
      -1n,
      -(2n ** 63n),
    ]) {
      const writer = new Writer(int64Size(value))
      writer.int64(value)
      const buf = writer.finish()
      expect(new Reader(buf).int64(), String(value)).toBe(value)
      if (value >= 0n && value <= BigInt(Number.MAX_SAFE_INTEGER)) {
        expect(new Reader(buf).varint()).toBe(Number(value))
      }
    }
  })

  it('refuses a varint longer than 10 bytes and a field past its message', () => {
    expect(() => decodeWatchResponse(Buffer.from([0x10, 0xff]))).toThrow(/varint past the end/)
    const long = Buffer.alloc(11, 0xff)
    expect(() => new Reader(long).varint()).toThrow(/varint longer than 10 bytes/)
    // RangeResponse with kvs (field 2) claiming 5 bytes but holding 1.
    expect(() => decodeRangeResponse(Buffer.from([0x12, 0x05, 0x0a]))).toThrow(
      /field longer than its message/,
    )
  })
})

describe('etcd wire: replies decoded by hand', () => {
  it('RangeResponse: header revision, keys as text, values as views, more, count', () => {
    const message = {
      header: {
        cluster_id: '14841639068965178418',
        member_id: '10276657743932975437',
        revision: String(BIG),
        raft_term: '7',
      },
      kvs: [
        {
          key: bytes('a/1'),
          create_revision: '5',
          mod_revision: '9',
          version: '2',
          value: bytes('{"x":1}'),
          lease: '0',
        },
        {
          key: bytes('a/2'),
          create_revision: '6',
          mod_revision: '9',
          version: '1',
          value: Buffer.alloc(0),
          lease: String(ABOVE_53),
        },
        {
          key: bytes('a/ü'),
          create_revision: '7',
          mod_revision: String(ABOVE_53),
          version: '1',
          value: bytes('v'),
        },
      ],
      more: true,
      count: '1000',
    }
    const buf = Buffer.concat([encode('etcdserverpb.RangeResponse', message), unknown])
    const response = decodeRangeResponse(buf)
    expect(response.revision).toBe(BIG)
    expect(response.more).toBe(true)
    expect(response.count).toBe(1000)
    expect(response.kvs.map((kv) => kv.key)).toEqual(['a/1', 'a/2', 'a/ü'])
    expect(response.kvs.map((kv) => Buffer.from(kv.value).toString())).toEqual(['{"x":1}', '', 'v'])
    expect(response.kvs.map((kv) => kv.revision)).toEqual([9n, 9n, ABOVE_53])
    expect(response.lastKey?.toString()).toBe('a/ü')
    // A view into the reply, not a copy.
    expect(response.kvs[0]!.value.buffer).toBe(buf.buffer)
    expect(Object.getPrototypeOf(response.kvs[0]!.value)).toBe(Uint8Array.prototype)
  })

  it('RangeResponse: empty, and a key-value with unknown fields inside', () => {
    const empty = decodeRangeResponse(
      encode('etcdserverpb.RangeResponse', { header: { revision: '3' } }),
    )
    expect(empty).toMatchObject({
      revision: 3n,
      kvs: [],
      more: false,
      count: 0,
      lastKey: undefined,
    })
    const kv = Buffer.concat([
      encode('mvccpb.KeyValue', { key: bytes('k'), mod_revision: '4', value: bytes('v') }),
      unknown,
    ])
    const withKv = Buffer.concat([Buffer.from([0x12, kv.length]), kv])
    const response = decodeRangeResponse(withKv)
    expect(response.kvs).toHaveLength(1)
    expect(response.kvs[0]!.key).toBe('k')
    expect(response.kvs[0]!.revision).toBe(4n)
    expect(Buffer.from(response.kvs[0]!.value).toString()).toBe('v')
  })

  it('WatchResponse: created, events with prev_kv, deletes, fragment, cancel and compaction', () => {
    const created = decodeWatchResponse(
      encode('etcdserverpb.WatchResponse', {
        header: { revision: '10' },
        watch_id: '0',
        created: true,
      }),
    )
    expect(created).toMatchObject({ revision: 10n, created: true, canceled: false, events: [] })
    const message = {
      header: { revision: '12' },
      watch_id: String(ABOVE_53),
      fragment: true,
      events: [
        {
          type: 'Put',
          kv: { key: bytes('a/1'), mod_revision: '11', value: bytes('new') },
          prev_kv: { key: bytes('a/1'), mod_revision: '3', value: bytes('old') },
        },
        {
          type: 'Delete',
          kv: { key: bytes('a/2'), mod_revision: '12' },
          prev_kv: { key: bytes('a/2'), mod_revision: '4', value: Buffer.alloc(0) },
        },
        { type: 'Put', kv: { key: bytes('a/3'), mod_revision: '12', value: bytes('') } },
      ],
    }
    const response = decodeWatchResponse(
      Buffer.concat([encode('etcdserverpb.WatchResponse', message), unknown]),
    )
    expect(response.watchId).toBe(ABOVE_53)
    expect(response.fragment).toBe(true)
    expect(
      response.events.map((e) => [
        e.type,
        e.kv.key,
        e.kv.revision,
        Buffer.from(e.kv.value).toString(),
        e.prevKv && Buffer.from(e.prevKv.value).toString(),
      ]),
    ).toEqual([
      ['put', 'a/1', 11n, 'new', 'old'],
      ['delete', 'a/2', 12n, '', ''],
      ['put', 'a/3', 12n, '', undefined],
    ])
    const canceled = decodeWatchResponse(
      encode('etcdserverpb.WatchResponse', {
        header: { revision: '20' },
        canceled: true,
        compact_revision: String(BIG),
        cancel_reason: 'etcdserver: mvcc: required revision has been compacted',
      }),
    )
    expect(canceled).toMatchObject({
      canceled: true,
      compactRevision: BIG,
      cancelReason: 'etcdserver: mvcc: required revision has been compacted',
    })
  })

  it('PutResponse and TxnResponse: revision and succeeded; responses and prev_kv skipped', () => {
    const put = decodePutResponse(
      Buffer.concat([
        encode('etcdserverpb.PutResponse', {
          header: { revision: String(ABOVE_53) },
          prev_kv: { key: bytes('k'), value: bytes('v') },
        }),
        unknown,
      ]),
    )
    expect(put.revision).toBe(ABOVE_53)
    const txn = decodeTxnResponse(
      encode('etcdserverpb.TxnResponse', {
        header: { revision: '77' },
        succeeded: true,
        responses: [
          { response_put: { header: { revision: '77' } } },
          { response_delete_range: { deleted: '3' } },
        ],
      }),
    )
    expect(txn).toEqual({ revision: 77n, succeeded: true })
    expect(
      decodeTxnResponse(encode('etcdserverpb.TxnResponse', { header: { revision: '78' } })),
    ).toEqual({ revision: 78n, succeeded: false })
  })
})

describe('etcd wire: requests encoded by hand', () => {
  it('RangeRequest', () => {
    const buf = encodeRangeRequest({
      key: bytes('a/'),
      rangeEnd: bytes('a0'),
      limit: 10000,
      revision: BIG,
      serializable: true,
      keysOnly: true,
    })
    expect(decode('etcdserverpb.RangeRequest', buf)).toMatchObject({
      key: bytes('a/'),
      range_end: bytes('a0'),
      limit: '10000',
      revision: String(BIG),
      serializable: true,
      keys_only: true,
      count_only: false,
    })
    // Defaults are left out.
    expect(encodeRangeRequest({ key: bytes('k') })).toEqual(
      encode('etcdserverpb.RangeRequest', { key: bytes('k') }),
    )
  })

  it('PutRequest and DeleteRangeRequest, with an empty value and a large lease', () => {
    expect(
      decode(
        'etcdserverpb.PutRequest',
        encodePutRequest({ key: bytes('k'), value: bytes('v'), lease: BIG }),
      ),
    ).toMatchObject({
      key: bytes('k'),
      value: bytes('v'),
      lease: String(BIG),
    })
    const empty = encodePutRequest({ key: bytes('k'), value: new Uint8Array(0) })
    expect(empty).toEqual(encode('etcdserverpb.PutRequest', { key: bytes('k') }))
    expect(
      decode(
        'etcdserverpb.DeleteRangeRequest',
        encodeDeleteRequest({ key: bytes('a/'), rangeEnd: bytes('a0') }),
      ),
    ).toMatchObject({
      key: bytes('a/'),
      range_end: bytes('a0'),
    })
  })

  it('TxnRequest: compares of every target (a zero in the union kept), puts and deletes', () => {
    const buf = encodeTxnRequest({
      compare: [
        { key: bytes('a'), result: 0, target: 0, number: 0n },
        { key: bytes('b'), result: 1, target: 0, number: 0n },
        { key: bytes('c'), result: 0, target: 2, number: ABOVE_53 },
        { key: bytes('d'), result: 0, target: 3, value: new Uint8Array(0) },
        { key: bytes('e'), result: 3, target: 3, value: bytes('x') },
      ],
      success: [
        { put: { key: bytes('p'), value: bytes('1'), lease: 5n } },
        { put: { key: bytes('q'), value: new Uint8Array(0) } },
        { delete: { key: bytes('r/'), rangeEnd: bytes('r0') } },
      ],
      failure: [{ delete: { key: bytes('s') } }],
    })
    const txn = type('etcdserverpb.TxnRequest').decode(buf) as unknown as {
      compare: {
        key: Buffer
        result: number
        target: number
        target_union?: string
        version?: unknown
        mod_revision?: unknown
        value?: Buffer
      }[]
      success: {
        request?: string
        request_put?: { key: Buffer; value: Buffer; lease: unknown }
        request_delete_range?: { key: Buffer; range_end: Buffer }
      }[]
      failure: { request_delete_range?: { key: Buffer } }[]
    }
    const object = type('etcdserverpb.TxnRequest').toObject(txn as never, {
      longs: String,
      bytes: String,
      oneofs: true,
      defaults: true,
      enums: String,
    }) as Record<string, { [k: string]: unknown }[]>
    expect(
      object.compare!.map((c) => [c.result, c.target, c.target_union, c[c.target_union as string]]),
    ).toEqual([
      ['Equal', 'Version', 'version', '0'],
      ['Greater', 'Version', 'version', '0'],
      ['Equal', 'Mod', 'mod_revision', String(ABOVE_53)],
      ['Equal', 'Value', 'value', ''],
      ['NotEqual', 'Value', 'value', Buffer.from('x').toString('base64')],
    ])
    expect(object.success!.map((op) => op.request)).toEqual([
      'request_put',
      'request_put',
      'request_delete_range',
    ])
    expect(txn.success[0]!.request_put!.key.toString()).toBe('p')
    expect(String(txn.success[0]!.request_put!.lease)).toBe('5')
    expect(txn.success[1]!.request_put!.value.length).toBe(0)
    expect(txn.success[2]!.request_delete_range!.range_end.toString()).toBe('r0')
    expect(txn.failure[0]!.request_delete_range!.key.toString()).toBe('s')
  })

  it('WatchRequest: create and cancel', () => {
    const create = decode(
      'etcdserverpb.WatchRequest',
      encodeWatchCreate({
        key: bytes('a/'),
        rangeEnd: bytes('a0'),
        startRevision: ABOVE_53,
        progressNotify: true,
        prevKv: true,
        fragment: true,
      }),
    ) as { create_request: Record<string, unknown> }
    expect(create.create_request).toMatchObject({
      key: bytes('a/'),
      range_end: bytes('a0'),
      start_revision: String(ABOVE_53),
      progress_notify: true,
      prev_kv: true,
      fragment: true,
    })
    const cancel = decode('etcdserverpb.WatchRequest', encodeWatchCancel(7n)) as {
      cancel_request: { watch_id: string }
    }
    expect(cancel.cancel_request.watch_id).toBe('7')
  })
})
