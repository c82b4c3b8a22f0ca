import { DatasyncError } from '../../core/errors.js'
import type { Capabilities } from '../../core/store.js'
import { Routes } from './routes.js'
import { SourceSet, nameSources } from './sources.js'
import { combinedStore, timing, type Layout } from './store.js'
import type { CombinedStore, RoutedStoreOptions, SourceInput } from './types.js'

/**
 * A store whose keys live in several stores by prefix: each source owns the prefixes it is
 * given, and a key belongs to the source with the longest prefix it starts with (`''` takes
 * every key no other route takes). Reads and watches merge the sources; a write goes to the
 * key's source, and is refused with a `CapabilityError` naming the key and the source when that
 * source is read-only (FileDB). A transaction runs atomically in one source; one that names keys
 * of two sources is refused (no fake atomicity). See src/sync/combined/README.md.
 *
 * ```
 * files   ('defaults/'):  S(d/x=1)------------------------------c(d/x=2)--
 * etcd    ('config/'):    -------S(c/y=1)---c(c/y=2)---(down)-(up: relist)----
 * routed.watch(['']):     -------S(d/x=1,c/y=1)--c(c/y:1>2)-----c(…diff)-c(d/x:1>2)
 * ```
 *
 * @example
 * ```ts
 * import { createMemoryStore, createRoutedStore } from 'rx-datasync'
 * const defaults = createMemoryStore<string>({ initial: { 'defaults/mtu': '1500' } })
 * const live = createMemoryStore<string>()
 * const store = createRoutedStore({ 'defaults/': defaults, 'config/': live })
 * store.put('config/mtu', '9000').subscribe() // goes to `live`
 * store.list('').subscribe((items) => console.log(items.map((item) => item.key)))
 * // ['config/mtu', 'defaults/mtu']
 * ```
 */
export function createRoutedStore<V = Uint8Array>(
  routes: Readonly<Record<string, SourceInput<V>>>,
  options: RoutedStoreOptions = {},
): CombinedStore<V> {
  const what = 'createRoutedStore'
  if (typeof routes !== 'object' || routes === null || Object.keys(routes).length === 0) {
    throw new TypeError(
      `${what}: expected routes as an object of prefix to store, such as { 'config/': etcd }`,
    )
  }
  const entries = Object.entries(routes)
  const named = nameSources<V>(
    what,
    entries.map(([, input]) => input),
  )
  const table = new Routes(
    entries.map(([prefix, input]) => ({ prefix, source: named.indexOf(input) })),
  )
  const sources = new SourceSet<V>(options.name ?? 'routed', named.sources)
  const routesOf = (source: number) =>
    table.list
      .filter((route) => route.source === source)
      .map((route) => `'${route.prefix}'`)
      .join(', ')

  const layout: Layout = {
    holders: (key) => {
      const owner = table.owner(key)
      return owner === undefined ? [] : [owner]
    },
    plan: (prefixes) => table.plan(prefixes),
    accepts: (source, key) => table.owner(key) === source,
    shadows: (source, prefix) => table.foreignUnder(source, prefix),
    home: (key, action) => {
      const owner = table.owner(key)
      if (owner === undefined) {
        throw new DatasyncError(
          'invalid-argument',
          `${sources.name} ${action}: no source takes key '${key}': the routes are ${table.list.map((route) => `'${route.prefix}'`).join(', ')} (add a route, '' for every other key)`,
        )
      }
      return owner
    },
    prefixTargets: (prefix) =>
      [...table.plan([prefix])].flatMap(([source, prefixes]) =>
        prefixes.map((p) => ({ source, prefix: p, whole: !table.foreignUnder(source, p) })),
      ),
    readOnly: (source) =>
      `source ${sources.describe(source)}, which takes ${routesOf(source)}, is read-only`,
  }

  return combinedStore({
    sources,
    layout,
    capabilities: routedCapabilities(named.sources.map((source) => source.store.capabilities)),
    ...timing(options),
  })
}

/**
 * What a routed store can do: writes where a source writes; transactions and TTL where every
 * writing source has them (a transaction is refused across sources, as a Redis Cluster refuses
 * keys across slots); changes always carry `prev` (from the combined view); a broken source
 * relists alone, so a combined watch never relists (`resumable`); a prefix delete is one atomic
 * operation only when a single source writes.
 */
function routedCapabilities(all: readonly Capabilities[]): Capabilities {
  const writers = all.filter((capabilities) => capabilities.write)
  const every = (capability: keyof Capabilities) =>
    writers.length > 0 && writers.every((capabilities) => capabilities[capability])
  return Object.freeze({
    write: writers.length > 0,
    txn: every('txn'),
    ttl: every('ttl'),
    nativePrev: true,
    resumable: true,
    atomicPrefixDelete: writers.length === 1 && every('atomicPrefixDelete'),
  })
}
