import { Subject, defer, filter, map, type Observable } from 'rxjs'
import type { Codec } from './codec.js'
import { CodecError } from './errors.js'
import type { Change, KeyValue, StoreEvent } from './events.js'
import type { KvStore, TxnCondition, TxnOp } from './store.js'

/** A store seen through a codec; values that do not decode are reported on `decodeErrors$`. */
export interface TypedStore<T> extends KvStore<T> {
  /**
   * One {@link CodecError} (naming the key) for each value the codec could not decode. Such a key
   * is left out of the snapshot or change batch it came in, so a reader keeps its last good value.
   */
  readonly decodeErrors$: Observable<CodecError>
}

/**
 * A typed view of a store: values are encoded on the way in and decoded on the way out.
 *
 * @example
 * ```ts
 * import { createMemoryStore, json, withCodec } from 'rx-datasync'
 * const routes = withCodec(createMemoryStore(), json<{ via: string }>())
 * routes.put('routes/r1', { via: '10.0.0.1' }).subscribe()
 * ```
 */
export function withCodec<T, R>(store: KvStore<R>, codec: Codec<T, R>): TypedStore<T> {
  const decodeErrors = new Subject<CodecError>()

  const decodeItem = (item: KeyValue<R>): KeyValue<T> | undefined => {
    try {
      return { key: item.key, value: codec.decode(item.value), revision: item.revision }
    } catch (error) {
      decodeErrors.next(new CodecError(item.key, codec.name, error, undefined, store.name))
      return undefined
    }
  }
  const decodeOptional = (key: string, raw: R | undefined): { ok: boolean; value?: T } => {
    if (raw === undefined) return { ok: true }
    try {
      return { ok: true, value: codec.decode(raw) }
    } catch (error) {
      decodeErrors.next(new CodecError(key, codec.name, error, undefined, store.name))
      return { ok: false }
    }
  }
  const decodeChange = (change: Change<R>): Change<T> | undefined => {
    const prev = decodeOptional(change.key, change.prev)
    const base = {
      key: change.key,
      revision: change.revision,
      ...('value' in prev ? { prev: prev.value } : {}),
    }
    if (change.op === 'delete') return { op: 'delete', ...base }
    const value = decodeOptional(change.key, change.value)
    if (!value.ok) return undefined
    return { op: 'put', value: value.value as T, ...base }
  }
  const encode = (key: string, value: T): R => {
    try {
      return codec.encode(value)
    } catch (error) {
      throw new CodecError(key, codec.name, error, undefined, store.name)
    }
  }
  const encodeOp = (op: TxnOp<T>): TxnOp<R> =>
    op.op === 'put' ? { ...op, value: encode(op.key, op.value) } : op
  const encodeCondition = (condition: TxnCondition<T>): TxnCondition<R> =>
    'value' in condition
      ? { key: condition.key, value: encode(condition.key, condition.value) }
      : condition

  const identity = store.identity?.bind(store)
  return {
    name: store.name,
    capabilities: store.capabilities,
    ...(identity === undefined ? {} : { identity }),
    status$: store.status$,
    decodeErrors$: decodeErrors.asObservable(),
    // Watch options pass through: `after` and `relistOnReconnect` are the inner store's to keep.
    watch: (prefixes, options) =>
      store.watch(prefixes, options).pipe(
        map((event): StoreEvent<T> => {
          if (event.type === 'snapshot') {
            const items: KeyValue<T>[] = []
            for (const item of event.items) {
              const decoded = decodeItem(item)
              if (decoded) items.push(decoded)
            }
            return { ...event, items }
          }
          const changes: Change<T>[] = []
          for (const change of event.changes) {
            const decoded = decodeChange(change)
            if (decoded) changes.push(decoded)
          }
          return { ...event, changes }
        }),
        // A batch whose every change failed to decode carries nothing for a reader.
        filter((event) => event.type === 'snapshot' || event.changes.length > 0),
      ),
    get: (key) =>
      store.get(key).pipe(map((item) => (item === undefined ? undefined : decodeItem(item)))),
    list: (prefix) =>
      store
        .list(prefix)
        .pipe(
          map((items) =>
            items.map(decodeItem).filter((item): item is KeyValue<T> => item !== undefined),
          ),
        ),
    listKeys: (prefix) => store.listKeys(prefix),
    put: (key, value, options) => defer(() => store.put(key, encode(key, value), options)),
    delete: (key, options) => store.delete(key, options),
    txn: (ops, options) =>
      defer(() =>
        store.txn(
          ops.map(encodeOp),
          options?.conditions ? { conditions: options.conditions.map(encodeCondition) } : undefined,
        ),
      ),
    close: () => {
      decodeErrors.complete()
      return store.close()
    },
  }
}

/**
 * A view of the keys under `prefix`, with the prefix taken off on the way out and put back on the
 * way in. The prefix is kept exactly as given, trailing separator included (`'app/'` stays
 * `'app/'`; the Go original lost it).
 *
 * @example
 * ```ts
 * import { createMemoryStore, withPrefix } from 'rx-datasync'
 * const app = withPrefix(createMemoryStore(), 'app/')
 * app.listKeys('').subscribe(console.log) // keys of 'app/...' without 'app/'
 * ```
 */
export function withPrefix<V>(store: KvStore<V>, prefix: string): KvStore<V> {
  if (typeof prefix !== 'string') {
    throw new TypeError(`withPrefix: expected the prefix as a string, got ${typeof prefix}`)
  }
  const inner = (key: string) => prefix + key
  const outer = (key: string) => key.slice(prefix.length)
  const strip = <K extends { readonly key: string }>(item: K): K => ({
    ...item,
    key: outer(item.key),
  })

  const identity = store.identity?.bind(store)
  return {
    name: store.name,
    capabilities: store.capabilities,
    // The same store under another prefix holds other data: another identity.
    ...(identity === undefined
      ? {}
      : { identity: () => identity().pipe(map((id) => `${id} under ${JSON.stringify(prefix)}`)) }),
    status$: store.status$,
    watch: (prefixes, options) =>
      store
        .watch(prefixes.map(inner), options)
        .pipe(
          map((event): StoreEvent<V> =>
            event.type === 'snapshot'
              ? { ...event, items: event.items.map(strip) }
              : { ...event, changes: event.changes.map(strip) },
          ),
        ),
    get: (key) =>
      store.get(inner(key)).pipe(map((item) => (item === undefined ? undefined : strip(item)))),
    list: (p) => store.list(inner(p)).pipe(map((items) => items.map(strip))),
    listKeys: (p) => store.listKeys(inner(p)).pipe(map((keys) => keys.map(outer))),
    put: (key, value, options) => store.put(inner(key), value, options),
    delete: (key, options) => store.delete(inner(key), options),
    txn: (ops, options) =>
      store.txn(
        ops.map((op) => ({ ...op, key: inner(op.key) })),
        options?.conditions
          ? { conditions: options.conditions.map((c) => ({ ...c, key: inner(c.key) })) }
          : undefined,
      ),
    close: () => store.close(),
  }
}
