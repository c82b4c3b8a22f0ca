import {
  asyncScheduler,
  concat,
  defer,
  forkJoin,
  from,
  map,
  mergeMap,
  of,
  reduce,
  type Observable,
  type SchedulerLike,
} from 'rxjs'
import { toMillis } from '../../core/duration.js'
import { CapabilityError, DatasyncError } from '../../core/errors.js'
import type { KeyValue, StoreEvent } from '../../core/events.js'
import type {
  Capabilities,
  KvStore,
  TxnCondition,
  TxnOp,
  TxnResult,
  WatchOptions,
} from '../../core/store.js'
import { argumentChecks, type ArgumentChecks } from '../../internal/checks.js'
import { CombinedClock, stamp } from './clock.js'
import { mergeWatch, type MergeContext } from './merge.js'
import { mergeByKey } from './sorted.js'
import type { SourceSet } from './sources.js'
import type { CombinedStore, CombinedStoreOptions } from './types.js'

/** Where a prefix delete goes in one source, and whether every key there is that source's. */
export interface PrefixTarget {
  readonly source: number
  readonly prefix: string
  /** No other source owns keys under `prefix`: a native prefix delete removes only its keys. */
  readonly whole: boolean
}

/** How a combined store places keys on its sources: the one difference of routed and layered. */
export interface Layout {
  /** The sources that may hold `key`, lowest precedence first. */
  holders(key: string): readonly number[]
  /** The sources to read for `prefixes`, in order, each with the prefixes it covers. */
  plan(prefixes: readonly string[]): ReadonlyMap<number, readonly string[]>
  /** Whether a key read from `source` belongs to the combined view. */
  accepts(source: number, key: string): boolean
  /**
   * Whether `source` may hold keys outside the combined view under `prefix` (so that what it
   * reads there must be filtered with {@link accepts}).
   */
  shadows(source: number, prefix: string): boolean
  /** The source a write of (or a condition on) `key` goes to. @throws when none takes it */
  home(key: string, what: string): number
  /** The sources a delete of everything under `prefix` reaches. */
  prefixTargets(prefix: string): readonly PrefixTarget[]
  /** Why a write to read-only `source` is refused, for the `CapabilityError`. */
  readOnly(source: number): string
}

/** Everything a combined store is made of. */
export interface CombinedParts<V> {
  readonly sources: SourceSet<V>
  readonly layout: Layout
  readonly capabilities: Capabilities
  readonly startTimeoutMs: number
  readonly scheduler: SchedulerLike
}

/** Prefix deletes that must go key by key run this many at a time. */
const DELETES_IN_FLIGHT = 8

/**
 * A {@link CombinedStore} over sources placed by `layout`. Reads merge the sources (the highest
 * source holding a key wins), writes go to the one source `layout` names, a transaction runs in
 * one source or is refused, and revisions are the store's own ({@link CombinedClock}).
 */
export function combinedStore<V>(parts: CombinedParts<V>): CombinedStore<V> {
  const { sources, layout } = parts
  const { edge, stores, name } = sources
  const clock = new CombinedClock()
  const check: ArgumentChecks = argumentChecks({ backend: name })
  const context: MergeContext<V> = {
    sources,
    clock,
    startTimeoutMs: parts.startTimeoutMs,
    scheduler: parts.scheduler,
  }
  const store = (index: number): KvStore<V> => {
    const found = stores[index]
    if (found === undefined) throw new DatasyncError('internal', `${name}: no source ${index}`)
    return found
  }
  /** Refuses a write (`put 'k'`, `delete under 'p/'`) that would go to a read-only source. */
  const writable = (source: number, write: string): void => {
    if (!store(source).capabilities.write) {
      throw new CapabilityError(name, 'writes', `${write}: ${layout.readOnly(source)}`)
    }
  }

  /** What each source to read holds under `prefix` (its own keys only), in source order. */
  const readEach = <T>(
    prefix: string,
    read: (source: KvStore<V>, prefix: string) => Observable<readonly T[]>,
    keyOf: (item: T) => string,
  ): Observable<{ readonly source: number; readonly items: readonly T[] }[]> => {
    const plan = [...layout.plan([prefix])]
    if (plan.length === 0) return of([])
    return forkJoin(
      plan.map(([source, prefixes]) =>
        forkJoin(
          prefixes.map((p) =>
            read(store(source), p).pipe(
              map((items) =>
                layout.shadows(source, p)
                  ? items.filter((item) => layout.accepts(source, keyOf(item)))
                  : items,
              ),
            ),
          ),
        ).pipe(map((lists) => ({ source, items: lists.flat() }))),
      ),
    )
  }

  /** Deletes every key of one prefix target, natively when all of them belong to it. */
  const deleteUnder = (target: PrefixTarget): Observable<number> => {
    const source = store(target.source)
    if (target.whole) {
      return source.delete(target.prefix, { prefix: true }).pipe(map((result) => result.deleted))
    }
    return source.listKeys(target.prefix).pipe(
      mergeMap((keys) => from(keys.filter((key) => layout.accepts(target.source, key)))),
      mergeMap((key) => source.delete(key), DELETES_IN_FLIGHT),
      reduce((sum, result) => sum + result.deleted, 0),
    )
  }

  const txn = (ops: readonly TxnOp<V>[], conditions: readonly TxnCondition<V>[]) => {
    check.writes(ops, (_what, ttl) => ttl)
    check.conditions(conditions)
    const involved = new Map<number, string[]>()
    const note = (source: number, key: string) => {
      const keys = involved.get(source)
      if (keys === undefined) involved.set(source, [key])
      else if (!keys.includes(key)) keys.push(key)
    }
    // A prefix delete becomes one per source it reaches (none when no source holds the prefix).
    const placed = ops.flatMap((op): TxnOp<V>[] => {
      if (op.op === 'delete' && op.prefix === true) {
        return layout.prefixTargets(op.key).map((target) => {
          note(target.source, op.key)
          return { op: 'delete', key: target.prefix, prefix: true }
        })
      }
      note(layout.home(op.key, 'txn'), op.key)
      return [op]
    })
    for (const condition of conditions) note(layout.home(condition.key, 'txn'), condition.key)
    if (involved.size > 1) {
      const parts = [...involved].map(
        ([source, keys]) =>
          `${keys.map((key) => `'${key}'`).join(', ')} in source ${sources.describe(source)}`,
      )
      throw new CapabilityError(
        name,
        'transactions across sources',
        `the transaction names ${parts.join(' and ')}; a transaction is atomic within one source only: split it, one per source`,
      )
    }
    const [target] = involved.keys()
    if (target === undefined) return of<TxnResult>({ succeeded: true, revision: clock.now() })
    for (const op of ops) writable(target, `txn ${op.op} '${op.key}'`)
    const mapped: TxnCondition<V>[] = []
    for (const condition of conditions) {
      if (!('revision' in condition)) {
        mapped.push(condition)
        continue
      }
      const at = clock.sourceRevision(condition.key, target, condition.revision)
      // The key is no longer at that version (or never was, in this source): it cannot hold.
      if (at === undefined) return of<TxnResult>({ succeeded: false, revision: clock.now() })
      mapped.push({ key: condition.key, revision: at })
    }
    return store(target)
      .txn(placed, mapped.length > 0 ? { conditions: mapped } : undefined)
      .pipe(
        map((result): TxnResult =>
          result.succeeded
            ? { succeeded: true, revision: clock.tick() }
            : { succeeded: false, revision: clock.now() },
        ),
      )
  }

  return {
    name,
    capabilities: parts.capabilities,
    sources: sources.sources,
    sources$: sources.sources$,
    status$: sources.status$,

    watch(prefixes: readonly string[], options?: WatchOptions): Observable<StoreEvent<V>> {
      return edge.watch(
        defer(() => {
          check.prefixes(prefixes)
          const plan = layout.plan(prefixes)
          const filters = new Map<number, (key: string) => boolean>()
          for (const [source, covered] of plan) {
            if (covered.some((prefix) => layout.shadows(source, prefix))) {
              filters.set(source, (key) => layout.accepts(source, key))
            }
          }
          return mergeWatch(context, {
            prefixes: plan,
            filters,
            relistOnReconnect: options?.relistOnReconnect === true,
          })
        }),
      )
    },

    get(key: string): Observable<KeyValue<V> | undefined> {
      return edge.op('get', () => {
        check.key('get', key)
        const holders = layout.holders(key)
        if (holders.length === 0) return of(undefined)
        return forkJoin(holders.map((source) => store(source).get(key))).pipe(
          map((found) => {
            for (let i = found.length - 1; i >= 0; i--) {
              const item = found[i]
              const source = holders[i]
              if (item === undefined || source === undefined) continue
              const at = clock.observe(key, source, item.revision, stamp(clock))
              return { key, value: item.value, revision: at }
            }
            return undefined
          }),
        )
      })
    },

    list(prefix: string): Observable<readonly KeyValue<V>[]> {
      return edge.op('list', () => {
        check.prefix('list', prefix)
        return readEach(
          prefix,
          (source, p) => source.list(p),
          (item) => item.key,
        ).pipe(
          map((parts) => {
            const lists = parts.map(({ source, items }) => items.map((item) => ({ source, item })))
            const next = stamp(clock)
            return mergeByKey(lists, (entry) => entry.item.key).map(({ source, item }) => ({
              key: item.key,
              value: item.value,
              revision: clock.observe(item.key, source, item.revision, next),
            }))
          }),
        )
      })
    },

    listKeys(prefix: string): Observable<readonly string[]> {
      return edge.op('listKeys', () => {
        check.prefix('listKeys', prefix)
        return readEach(
          prefix,
          (source, p) => source.listKeys(p),
          (key) => key,
        ).pipe(
          map((parts) =>
            mergeByKey(
              parts.map((part) => part.items),
              (key) => key,
            ),
          ),
        )
      })
    },

    put(key, value, options) {
      return edge.op('put', () => {
        check.key('put', key)
        const target = layout.home(key, 'put')
        writable(target, `put '${key}'`)
        return store(target).put(key, value, options)
      })
    },

    delete(key, options) {
      return edge.op('delete', () => {
        if (options?.prefix !== true) {
          check.key('delete', key)
          const target = layout.home(key, 'delete')
          writable(target, `delete '${key}'`)
          return store(target).delete(key)
        }
        check.prefix('delete', key)
        const targets = layout.prefixTargets(key)
        for (const target of targets) writable(target.source, `delete under '${key}'`)
        return concat(...targets.map(deleteUnder)).pipe(
          reduce((sum, deleted) => sum + deleted, 0),
          map((deleted) => ({ deleted })),
        )
      })
    },

    txn(ops, options) {
      return edge.op('txn', () => txn(ops, options?.conditions ?? []))
    },

    close(): Promise<void> {
      return sources.close()
    },
  }
}

/** The start timeout in milliseconds and the scheduler of a combined store's options. */
export function timing(
  options: CombinedStoreOptions,
): Pick<CombinedParts<unknown>, 'startTimeoutMs' | 'scheduler'> {
  const timeout = options.startTimeout ?? '10s'
  return {
    startTimeoutMs: timeout === Infinity ? Infinity : toMillis(timeout, 'startTimeout'),
    scheduler: options.scheduler ?? asyncScheduler,
  }
}
