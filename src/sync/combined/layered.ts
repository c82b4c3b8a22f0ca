import { outermost } from './routes.js'
import { SourceSet, nameSources } from './sources.js'
import { combinedStore, timing, type Layout } from './store.js'
import type { CombinedStore, LayeredStoreOptions, SourceInput } from './types.js'

/**
 * A store made of layers stacked by precedence, lowest first (`[files, etcd, local]`: the last
 * wins): for each key, readers see the value of the highest layer that holds it, and `prev` is
 * the value they saw before. Deleting a key in a higher layer reveals the lower layer's value
 * (a put for readers, not a delete); a change in a lower layer hidden by a higher one is no
 * change for readers. Writes (puts, deletes, transactions) go to one layer, `writeTo`; a
 * transaction's conditions are checked in that layer. See src/sync/combined/README.md.
 *
 * ```
 * files (lowest):  S(mtu=1500)------------------------c(mtu=1400)--
 * local (highest): S(mtu=9000)-----c(delete mtu)-----------------------
 * layered.watch:   S(mtu=9000)-----c(mtu:9000>1500)----c(mtu:1500>1400)
 * ```
 *
 * @example
 * ```ts
 * import { createLayeredStore, createMemoryStore } from 'rx-datasync'
 * const defaults = createMemoryStore<string>({ initial: { mtu: '1500' } })
 * const local = createMemoryStore<string>()
 * const store = createLayeredStore([defaults, local], { writeTo: 'memory#2' })
 * store.put('mtu', '9000').subscribe() // goes to `local`, hides the default
 * store.get('mtu').subscribe((item) => console.log(item?.value)) // '9000'
 * ```
 */
export function createLayeredStore<V = Uint8Array>(
  layers: readonly SourceInput<V>[],
  options: LayeredStoreOptions = {},
): CombinedStore<V> {
  const what = 'createLayeredStore'
  if (!Array.isArray(layers) || layers.length === 0) {
    throw new TypeError(`${what}: expected a non-empty array of layers, lowest precedence first`)
  }
  const named = nameSources<V>(what, layers)
  if (named.sources.length !== layers.length) {
    throw new TypeError(`${what}: a store is given twice; each layer must be a store of its own`)
  }
  const names = named.sources.map((source) => source.name)
  const writeTo = options.writeTo === undefined ? names.length - 1 : names.indexOf(options.writeTo)
  if (writeTo < 0) {
    throw new TypeError(
      `${what}: writeTo: expected the name of a layer (${names.map((n) => `'${n}'`).join(', ')}), got ${JSON.stringify(options.writeTo)}`,
    )
  }
  const sources = new SourceSet<V>(options.name ?? 'layered', named.sources)
  const all = names.map((_, index) => index)

  const layout: Layout = {
    holders: () => all,
    plan: (prefixes) => {
      const covered = outermost(prefixes)
      return new Map(all.map((index) => [index, covered]))
    },
    accepts: () => true,
    shadows: () => false,
    home: () => writeTo,
    prefixTargets: (prefix) => [{ source: writeTo, prefix, whole: true }],
    readOnly: (source) =>
      `writes go to layer ${sources.describe(source)}, which is read-only (choose another with writeTo)`,
  }

  const target = named.sources[writeTo]?.store.capabilities
  return combinedStore({
    sources,
    layout,
    capabilities: Object.freeze({
      write: target?.write ?? false,
      txn: target?.txn ?? false,
      ttl: target?.ttl ?? false,
      // Changes carry prev from the combined view; a layer relists alone (see createRoutedStore).
      nativePrev: true,
      resumable: true,
      atomicPrefixDelete: target?.atomicPrefixDelete ?? false,
    }),
    ...timing(options),
  })
}
