import { of, take } from 'rxjs'
import { describe, expect, it } from 'vitest'
import {
  CodecError,
  createMemoryStore,
  json,
  string,
  withCodec,
  withPrefix,
  type Change,
  type KvStore,
  type StoreEvent,
  type WatchOptions,
} from '../../src/index.js'
import { scriptedStore, snapshotOf } from '../../src/testing/index.js'
import { failure, r, record, run } from './support.js'

const utf8 = (text: string) => new TextEncoder().encode(text)
const text = (raw: Uint8Array | undefined) =>
  raw === undefined ? undefined : new TextDecoder().decode(raw)
const BAD_JSON = utf8('{not json')

interface Route {
  readonly via: string
}

function routes(initial: Record<string, Uint8Array> = {}) {
  const raw = createMemoryStore({ initial })
  const typed = withCodec(raw, json<Route>())
  const errors = record(typed.decodeErrors$)
  return { raw, typed, errors: errors.values }
}

function changesOf<V>(event: StoreEvent<V> | undefined): readonly Change<V>[] {
  if (event?.type !== 'changes') throw new Error(`expected a changes event, got ${event?.type}`)
  return event.changes
}

describe('withCodec', () => {
  it('keeps the store’s name, capabilities and status', () => {
    const raw = createMemoryStore()
    const typed = withCodec(raw, json<Route>())
    expect(typed.name).toBe('memory')
    expect(typed.capabilities).toBe(raw.capabilities)
    expect(run(typed.status$)).toEqual({ state: 'ready' })
  })

  it('encodes values on put', () => {
    const { raw, typed } = routes()
    run(typed.put('routes/r1', { via: '10.0.0.1' }))
    expect(text(run(raw.get('routes/r1'))?.value)).toBe('{"via":"10.0.0.1"}')
  })

  it('passes put options through', () => {
    const { raw, typed } = routes()
    // The memory store refuses a non-positive TTL: an error proves the option reached it.
    expect(failure(typed.put('k', { via: 'x' }, { ttl: 0 }))).toBeInstanceOf(TypeError)
    expect(run(raw.get('k'))).toBeUndefined()
  })

  it('decodes values on get, and gives undefined for a missing key', () => {
    const { typed } = routes({ 'routes/r1': utf8('{"via":"a"}') })
    expect(run(typed.get('routes/r1'))).toEqual({
      key: 'routes/r1',
      value: { via: 'a' },
      revision: r(1),
    })
    expect(run(typed.get('routes/none'))).toBeUndefined()
  })

  it('decodes a listing, sorted by key', () => {
    const { typed } = routes({
      'routes/b': utf8('{"via":"b"}'),
      'routes/a': utf8('{"via":"a"}'),
      'other/c': utf8('{"via":"c"}'),
    })
    expect(run(typed.list('routes/'))).toEqual([
      { key: 'routes/a', value: { via: 'a' }, revision: r(1) },
      { key: 'routes/b', value: { via: 'b' }, revision: r(1) },
    ])
    expect(run(typed.listKeys('routes/'))).toEqual(['routes/a', 'routes/b'])
  })

  it('deletes keys and prefixes', () => {
    const { raw, typed } = routes({ 'a/1': utf8('1'), 'a/2': utf8('2'), b: utf8('3') })
    expect(run(typed.delete('b'))).toEqual({ deleted: 1 })
    expect(run(typed.delete('a/', { prefix: true }))).toEqual({ deleted: 2 })
    expect(run(raw.listKeys(''))).toEqual([])
  })

  it('decodes the watch snapshot and changes, prev included', () => {
    const { typed } = routes({ 'routes/r1': utf8('{"via":"a"}') })
    const watch = record(typed.watch(['routes/']))
    run(typed.put('routes/r1', { via: 'b' }))
    run(typed.delete('routes/r1'))
    expect(watch.values).toEqual<StoreEvent<Route>[]>([
      {
        type: 'snapshot',
        revision: r(1),
        cause: 'startup',
        items: [{ key: 'routes/r1', value: { via: 'a' }, revision: r(1) }],
      },
      {
        type: 'changes',
        revision: r(2),
        changes: [
          { op: 'put', key: 'routes/r1', value: { via: 'b' }, prev: { via: 'a' }, revision: r(2) },
        ],
      },
      {
        type: 'changes',
        revision: r(3),
        changes: [{ op: 'delete', key: 'routes/r1', prev: { via: 'b' }, revision: r(3) }],
      },
    ])
  })

  it('runs a transaction with encoded puts', () => {
    const { raw, typed } = routes({ 'routes/old': utf8('{"via":"o"}') })
    const watch = record(typed.watch(['routes/']))
    const result = run(
      typed.txn([
        { op: 'put', key: 'routes/new', value: { via: 'n' } },
        { op: 'delete', key: 'routes/old' },
      ]),
    )
    expect(result).toEqual({ succeeded: true, revision: r(2) })
    expect(text(run(raw.get('routes/new'))?.value)).toBe('{"via":"n"}')
    expect(run(raw.get('routes/old'))).toBeUndefined()
    // One commit, one event.
    expect(changesOf(watch.values[1])).toEqual([
      { op: 'put', key: 'routes/new', value: { via: 'n' }, revision: r(2) },
      { op: 'delete', key: 'routes/old', prev: { via: 'o' }, revision: r(2) },
    ])
  })

  it('encodes the value of a transaction condition', () => {
    const { raw, typed } = routes({ 'routes/r1': utf8('{"via":"a"}') })
    const swap = (expected: Route, next: Route) =>
      typed.txn([{ op: 'put', key: 'routes/r1', value: next }], {
        conditions: [{ key: 'routes/r1', value: expected }],
      })
    expect(run(swap({ via: 'x' }, { via: 'b' }))).toEqual({ succeeded: false, revision: r(1) })
    expect(text(run(raw.get('routes/r1'))?.value)).toBe('{"via":"a"}')
    expect(run(swap({ via: 'a' }, { via: 'b' }))).toEqual({ succeeded: true, revision: r(2) })
    expect(text(run(raw.get('routes/r1'))?.value)).toBe('{"via":"b"}')
  })

  it('passes exists and revision conditions through unchanged', () => {
    const { typed } = routes({ 'routes/r1': utf8('{"via":"a"}') })
    const putIfAbsent = (key: string) =>
      typed.txn([{ op: 'put', key, value: { via: 'n' } }], { conditions: [{ key, exists: false }] })
    expect(run(putIfAbsent('routes/r1')).succeeded).toBe(false)
    expect(run(putIfAbsent('routes/r2')).succeeded).toBe(true)
    const atRevision = (rev: number) =>
      typed.txn([{ op: 'delete', key: 'routes/r1' }], {
        conditions: [{ key: 'routes/r1', revision: r(rev) }],
      })
    expect(run(atRevision(2)).succeeded).toBe(false)
    expect(run(atRevision(1)).succeeded).toBe(true)
  })

  it('leaves an undecodable value out of get, list and the snapshot, and reports it', () => {
    const { typed, errors } = routes({ 'routes/bad': BAD_JSON, 'routes/ok': utf8('{"via":"a"}') })
    expect(run(typed.get('routes/bad'))).toBeUndefined()
    expect(run(typed.list('routes/')).map((item) => item.key)).toEqual(['routes/ok'])
    const watch = record(typed.watch(['routes/']))
    const [snapshot] = watch.values
    expect(snapshot?.type === 'snapshot' && snapshot.items.map((item) => item.key)).toEqual([
      'routes/ok',
    ])
    expect(errors.map((error) => error.key)).toEqual(['routes/bad', 'routes/bad', 'routes/bad'])
    for (const error of errors) {
      expect(error).toBeInstanceOf(CodecError)
      expect(error.codec).toBe('json')
      expect(error.cause).toBeInstanceOf(SyntaxError)
      expect(error.message).toContain(`key 'routes/bad'`)
    }
  })

  it('leaves an undecodable change out of its batch, reports it, and keeps watching', () => {
    const { raw, typed, errors } = routes()
    const watch = record(typed.watch(['routes/']))
    run(
      raw.txn([
        { op: 'put', key: 'routes/bad', value: BAD_JSON },
        { op: 'put', key: 'routes/ok', value: utf8('{"via":"a"}') },
      ]),
    )
    run(raw.put('routes/later', utf8('{"via":"b"}')))
    expect(changesOf(watch.values[1])).toEqual([
      { op: 'put', key: 'routes/ok', value: { via: 'a' }, revision: r(1) },
    ])
    expect(changesOf(watch.values[2])).toEqual([
      { op: 'put', key: 'routes/later', value: { via: 'b' }, revision: r(2) },
    ])
    expect(errors.map((error) => error.key)).toEqual(['routes/bad'])
    expect(watch.subscription.closed).toBe(false)
  })

  it('reports a value that is not valid UTF-8 for the string codec', () => {
    const raw = createMemoryStore({ initial: { s: new Uint8Array([0xff]) } })
    const typed = withCodec(raw, string())
    const errors = record(typed.decodeErrors$).values
    expect(run(typed.get('s'))).toBeUndefined()
    expect(errors).toHaveLength(1)
    expect(errors[0]?.key).toBe('s')
    expect(errors[0]?.codec).toBe('string')
  })

  it('keeps a put whose previous value did not decode, without prev', () => {
    const { raw, typed, errors } = routes({ 'routes/r1': BAD_JSON })
    const watch = record(typed.watch(['routes/']))
    errors.length = 0
    run(raw.put('routes/r1', utf8('{"via":"fixed"}')))
    const [change] = changesOf(watch.values[1])
    expect(change).toEqual({ op: 'put', key: 'routes/r1', value: { via: 'fixed' }, revision: r(2) })
    expect(change !== undefined && 'prev' in change).toBe(false)
    expect(errors.map((error) => error.key)).toEqual(['routes/r1'])
  })

  it('keeps a delete whose last value did not decode, without prev', () => {
    const { raw, typed, errors } = routes({ 'routes/r1': BAD_JSON })
    const watch = record(typed.watch(['routes/']))
    errors.length = 0
    run(raw.delete('routes/r1'))
    const [change] = changesOf(watch.values[1])
    expect(change).toEqual({ op: 'delete', key: 'routes/r1', revision: r(2) })
    expect(change !== undefined && 'prev' in change).toBe(false)
    expect(errors.map((error) => error.key)).toEqual(['routes/r1'])
  })

  it('fails a put with a CodecError naming the key when the value cannot be encoded', () => {
    const raw = createMemoryStore()
    const typed = withCodec(raw, json<unknown>())
    const put = typed.put('k/undefined', undefined)
    const error = failure(put)
    expect(error).toBeInstanceOf(CodecError)
    expect(error).toMatchObject({ key: 'k/undefined', codec: 'json', code: 'codec' })
    expect((error as CodecError).cause).toBeInstanceOf(TypeError)
    expect(raw.revision()).toBe(r(0))
  })

  it('encodes only on subscribe (cold), so a bad value does not throw at the call', () => {
    const typed = withCodec(createMemoryStore(), json<unknown>())
    expect(() => typed.put('k', undefined)).not.toThrow()
    expect(() => typed.txn([{ op: 'put', key: 'k', value: undefined }])).not.toThrow()
  })

  it('fails a transaction with a CodecError naming the key of a bad op or condition', () => {
    const raw = createMemoryStore({ initial: { a: utf8('1') } })
    const typed = withCodec(raw, json<unknown>())
    const badOp = failure(
      typed.txn([
        { op: 'put', key: 'good', value: 1 },
        { op: 'put', key: 'bad', value: () => 1 },
      ]),
    )
    expect(badOp).toBeInstanceOf(CodecError)
    expect((badOp as CodecError).key).toBe('bad')
    const badCondition = failure(
      typed.txn([{ op: 'put', key: 'a', value: 2 }], {
        conditions: [{ key: 'a', value: undefined }],
      }),
    )
    expect(badCondition).toBeInstanceOf(CodecError)
    expect((badCondition as CodecError).key).toBe('a')
    expect(raw.revision()).toBe(r(1))
    expect(run(raw.listKeys(''))).toEqual(['a'])
  })

  it('completes decodeErrors$ on close and closes the store', async () => {
    const raw = createMemoryStore()
    const typed = withCodec(raw, json<Route>())
    let completed = false
    typed.decodeErrors$.subscribe({
      complete: () => {
        completed = true
      },
    })
    await typed.close()
    expect(completed).toBe(true)
    expect(failure(raw.get('x'))).toMatchObject({ code: 'closed' })
  })
})

describe('withPrefix', () => {
  function scoped(initial: Record<string, string> = {}) {
    const raw = createMemoryStore<string>({ initial })
    return { raw, app: withPrefix(raw, 'app/') }
  }

  it('keeps the store’s name and capabilities', () => {
    const { raw, app } = scoped()
    expect(app.name).toBe(raw.name)
    expect(app.capabilities).toBe(raw.capabilities)
  })

  it('keeps the trailing separator: put("x") writes "app/x"', () => {
    const { raw, app } = scoped()
    run(app.put('x', 'v'))
    expect(run(raw.listKeys(''))).toEqual(['app/x'])
    expect(run(raw.get('app/x'))?.value).toBe('v')
  })

  it('uses the prefix exactly as given, with no separator added', () => {
    const raw = createMemoryStore<string>()
    run(withPrefix(raw, 'app').put('x', 'v'))
    expect(run(raw.listKeys(''))).toEqual(['appx'])
  })

  it('refuses a prefix that is not a string', () => {
    const raw = createMemoryStore<string>()
    expect(() => withPrefix(raw, undefined as unknown as string)).toThrow(TypeError)
    expect(() => withPrefix(raw, 5 as unknown as string)).toThrow(/prefix as a string, got number/)
  })

  it('strips the prefix on get, list and listKeys', () => {
    const { app } = scoped({ 'app/a/1': 'x', 'app/a/2': 'y', 'app/b': 'z' })
    expect(run(app.get('a/1'))).toEqual({ key: 'a/1', value: 'x', revision: r(1) })
    expect(run(app.get('missing'))).toBeUndefined()
    expect(run(app.list('a/'))).toEqual([
      { key: 'a/1', value: 'x', revision: r(1) },
      { key: 'a/2', value: 'y', revision: r(1) },
    ])
    expect(run(app.listKeys(''))).toEqual(['a/1', 'a/2', 'b'])
  })

  it('hides keys outside the prefix', () => {
    const { app } = scoped({ 'app/a': '1', 'other/a': '2', a: '3', 'apple/a': '4', 'app-x': '5' })
    expect(run(app.get('a'))?.value).toBe('1')
    expect(run(app.listKeys(''))).toEqual(['a'])
    expect(run(app.list('')).map((item) => item.value)).toEqual(['1'])
    const watch = record(app.watch(['']))
    const [snapshot] = watch.values
    expect(snapshot?.type === 'snapshot' && snapshot.items.map((item) => item.key)).toEqual(['a'])
  })

  it('watches under the prefix and strips keys from the snapshot and changes', () => {
    const { raw, app } = scoped({ 'app/cfg/a': '1', 'app/other': '2' })
    const watch = record(app.watch(['cfg/']))
    run(app.put('cfg/b', '3'))
    run(raw.put('cfg/outside', 'x'))
    run(raw.put('app/cfg/a', '4'))
    run(app.delete('cfg/b'))
    expect(watch.values).toEqual<StoreEvent<string>[]>([
      {
        type: 'snapshot',
        revision: r(1),
        cause: 'startup',
        items: [{ key: 'cfg/a', value: '1', revision: r(1) }],
      },
      {
        type: 'changes',
        revision: r(2),
        changes: [{ op: 'put', key: 'cfg/b', value: '3', revision: r(2) }],
      },
      {
        type: 'changes',
        revision: r(4),
        changes: [{ op: 'put', key: 'cfg/a', value: '4', prev: '1', revision: r(4) }],
      },
      {
        type: 'changes',
        revision: r(5),
        changes: [{ op: 'delete', key: 'cfg/b', prev: '3', revision: r(5) }],
      },
    ])
  })

  it('watches several prefixes', () => {
    const { app } = scoped({ 'app/a/1': '1', 'app/b/1': '2', 'app/c/1': '3' })
    const watch = record(app.watch(['a/', 'c/']))
    const [snapshot] = watch.values
    expect(snapshot?.type === 'snapshot' && snapshot.items.map((item) => item.key)).toEqual([
      'a/1',
      'c/1',
    ])
  })

  it('deletes a key and a prefix inside the prefix only', () => {
    const { raw, app } = scoped({ 'app/a/1': '1', 'app/a/2': '2', 'a/1': 'outside', 'app/b': '3' })
    expect(run(app.delete('b'))).toEqual({ deleted: 1 })
    expect(run(app.delete('a/', { prefix: true }))).toEqual({ deleted: 2 })
    expect(run(raw.listKeys(''))).toEqual(['a/1'])
  })

  it('deletes everything in the prefix with the empty prefix, and nothing outside', () => {
    const { raw, app } = scoped({ 'app/a': '1', 'app/b': '2', apple: '3', z: '4' })
    expect(run(app.delete('', { prefix: true }))).toEqual({ deleted: 2 })
    expect(run(raw.listKeys(''))).toEqual(['apple', 'z'])
  })

  it('maps the keys of transaction operations and conditions', () => {
    const { raw, app } = scoped({ 'app/lock': 'me', lock: 'someone else', 'app/old': 'o' })
    const txn = (owner: string) =>
      app.txn(
        [
          { op: 'put', key: 'new', value: 'n' },
          { op: 'delete', key: 'old' },
        ],
        { conditions: [{ key: 'lock', value: owner }] },
      )
    // 'lock' outside the prefix holds 'someone else': the condition must read 'app/lock'.
    expect(run(txn('someone else')).succeeded).toBe(false)
    expect(run(txn('me'))).toEqual({ succeeded: true, revision: r(2) })
    expect(run(raw.listKeys(''))).toEqual(['app/lock', 'app/new', 'lock'])
  })

  it('maps the keys of exists, revision and prefix-delete transaction parts', () => {
    const { raw, app } = scoped({ 'app/a/1': '1', 'app/a/2': '2', 'a/1': 'outside' })
    const result = run(
      app.txn([{ op: 'delete', key: 'a/', prefix: true }], {
        conditions: [
          { key: 'a/1', exists: true },
          { key: 'a/2', revision: r(1) },
          { key: 'free', exists: false },
        ],
      }),
    )
    expect(result.succeeded).toBe(true)
    expect(run(raw.listKeys(''))).toEqual(['a/1'])
  })

  it('passes put options through', () => {
    const { raw, app } = scoped()
    expect(failure(app.put('x', 'v', { ttl: -1 }))).toBeInstanceOf(TypeError)
    expect(run(raw.listKeys(''))).toEqual([])
  })

  it('composes with withCodec', () => {
    const raw = createMemoryStore()
    const typed = withCodec(withPrefix(raw, 'routes/'), json<Route>())
    run(typed.put('r1', { via: 'a' }))
    expect(text(run(raw.get('routes/r1'))?.value)).toBe('{"via":"a"}')
    expect(run(typed.list(''))).toEqual([{ key: 'r1', value: { via: 'a' }, revision: r(1) }])
  })

  it('composes prefixes, outer first', () => {
    const raw = createMemoryStore<string>()
    const nested: KvStore<string> = withPrefix(withPrefix(raw, 'app/'), 'cfg/')
    run(nested.put('x', 'v'))
    expect(run(raw.listKeys(''))).toEqual(['app/cfg/x'])
    expect(run(nested.listKeys(''))).toEqual(['x'])
  })
})

describe('views and watch options', () => {
  it('withPrefix and withCodec pass watch options (after, relistOnReconnect) to the store', () => {
    const asked: WatchOptions[] = []
    const inner = scriptedStore<Uint8Array>((_, options) => {
      asked.push(options)
      return of(snapshotOf<Uint8Array>(3, {}))
    })
    const typed = withCodec(withPrefix(inner, 'app/'), json<Route>())
    run(typed.watch(['r/'], { after: r(2), relistOnReconnect: true }).pipe(take(1)))
    run(typed.watch(['r/']).pipe(take(1)))
    expect(asked).toEqual([{ after: r(2), relistOnReconnect: true }, {}])
  })
})
