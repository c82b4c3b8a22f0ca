/**
 * The raw NATS client's code of the benchmarks (@nats-io/jetstream and @nats-io/kv, no
 * rx-datasync import): a KV bucket `bench`, keys with `/` as NATS's `.` (the bench keys need no
 * other escaping, so both sides store the same subjects).
 */
import { jetstreamManager } from '@nats-io/jetstream'
import { Kvm, type KV } from '@nats-io/kv'
import { connect, type NatsConnection } from '@nats-io/transport-node'
import type { RawListing, RawWatcher } from './backend.js'

export const BENCH_BUCKET = 'bench'

/** A plain connection and the bench bucket (created when missing). */
export async function rawNats(url: string): Promise<{ nc: NatsConnection; kv: KV }> {
  const nc = await connect({ servers: url })
  const kv = await new Kvm(nc).create(BENCH_BUCKET, { history: 1 })
  return { nc, kv }
}

/** A contract key as the bench's NATS key. */
export const natsKey = (key: string): string => key.replaceAll('/', '.')

/**
 * The raw client's resync of `prefixes`: per prefix the KV's watch of its last values (an ordered
 * consumer delivering the last message of every key), read up to the last of them (the entry the
 * KV client marks `isUpdate`: the data set is not written meanwhile), every value JSON.parsed
 * into a Map.
 */
export async function rawNatsRead(
  nc: NatsConnection,
  prefixes: readonly string[],
): Promise<RawListing> {
  const kv = await new Kvm(nc).open(BENCH_BUCKET)
  const listing: RawListing = []
  for (const prefix of prefixes) {
    const map = new Map<string, unknown>()
    const watch = await kv.watch({ key: `${natsKey(prefix)}>` })
    for await (const entry of watch) {
      if (entry.operation === 'PUT') map.set(entry.key.replaceAll('.', '/'), entry.json())
      if (entry.isUpdate) break
    }
    watch.stop()
    listing.push(map)
  }
  return listing
}

/** A raw watcher: the KV's watch of new updates under `prefix`, each value JSON.parsed. */
export async function rawNatsWatch(
  url: string,
  prefix: string,
  onPut: (key: string, value: unknown) => void,
): Promise<RawWatcher> {
  const { nc, kv } = await rawNats(url)
  const watch = await kv.watch({ key: `${natsKey(prefix)}>`, include: 'updates' })
  void (async () => {
    for await (const entry of watch) {
      if (entry.operation === 'PUT') onPut(entry.key.replaceAll('.', '/'), entry.json())
    }
  })()
  return {
    close: async () => {
      watch.stop()
      await nc.close()
    },
  }
}

/** Puts many keys with the raw client, `concurrency` publishes in flight. */
export async function rawNatsPutMany(kv: KV, entries: readonly [string, string][]): Promise<void> {
  await Promise.all(entries.map(([key, value]) => kv.put(natsKey(key), value)))
}

/** Purges every key under `root` (its subjects) from the bench bucket. */
export async function rawNatsClear(nc: NatsConnection, root: string): Promise<void> {
  const jsm = await jetstreamManager(nc)
  await jsm.streams.purge(`KV_${BENCH_BUCKET}`, {
    filter: `$KV.${BENCH_BUCKET}.${natsKey(root)}.>`,
  })
}
