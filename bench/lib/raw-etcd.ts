/** The raw etcd3 client's code of the benchmarks (no rx-datasync import: memory children load it alone). */
import { Range, type Etcd3, type IKeyValue } from 'etcd3'
import type { RawListing } from './backend.js'

/**
 * Keys per page of the raw paged read: large pages, as the store's (etcd walks the rest of the
 * range for every page), but under the raw client's default 4 MiB reply limit for these values
 * (20,000 keys of ~125 bytes: 2.5 MB).
 */
export const RAW_PAGE = 20_000

/**
 * The raw client's resync of `prefixes`: a paged range per prefix (limit, then continue after
 * the last key), every page at the revision of the first one, every value JSON.parsed into a Map.
 */
export async function rawEtcdRead(
  client: Etcd3,
  prefixes: readonly string[],
  limit = RAW_PAGE,
): Promise<RawListing> {
  let revision: string | undefined
  const listing: RawListing = []
  for (const prefix of prefixes) {
    const map = new Map<string, unknown>()
    const end = Range.prefix(prefix).end
    let start = Buffer.from(prefix)
    for (;;) {
      const builder = client.getAll().inRange({ start, end }).limit(limit)
      if (revision !== undefined) builder.revision(revision)
      const response = await builder.exec()
      revision ??= response.header.revision
      for (const kv of response.kvs) map.set(kv.key.toString(), JSON.parse(kv.value.toString()))
      const last: IKeyValue | undefined = response.kvs.at(-1)
      if (!response.more || last === undefined) break
      start = Buffer.concat([last.key, Buffer.from([0])])
    }
    listing.push(map)
  }
  return listing
}
