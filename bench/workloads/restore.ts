/**
 * Restore: the time from start to the first view of two acknowledging json() consumers (one per
 * prefix, half of the keys each), restarting with a saved snapshot of every key (`persist`,
 * rx-datasync/snapshot-file: read, checksum, parse, deliver as the `restored` resync) against a
 * full resync from etcd (paged range, decode, deliver). Both sides are our orchestrator over a
 * fresh store: "ours" is the restart with the file, "raw" the restart without one. The target is
 * the issue's: the first view at least 5x sooner (ratio <= 0.2). The file stays the same across
 * runs: a restart that resumes with nothing new writes nothing. A second row does the same with
 * lazy consumers (`decode: 'lazy'`), which leaves out the JSON decoding both sides share: what
 * remains is reading the snapshot against listing etcd.
 */
import { mkdtemp, rm, stat } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { performance } from 'node:perf_hooks'
import { filter, firstValueFrom, timeout } from 'rxjs'
import { createDatasync, json, type DatasyncOptions } from 'rx-datasync'
import { fileSnapshotPersistence } from 'rx-datasync/snapshot-file'
import type { Backend } from '../lib/backend.js'
import { dataSet, type Iface } from '../lib/data.js'
import { median, ms, pairedRatio, type Row } from '../lib/stats.js'
import { alternate, type Settings } from './common.js'

const TIMEOUT_MS = 300_000

export async function restoreWorkload(
  backend: Backend,
  count: number,
  settings: Settings,
): Promise<Row[]> {
  // Resuming after a saved revision is what etcd's history allows; the other backends relist.
  if (backend.name !== 'etcd') return []
  const data = dataSet(`bench-restore-${count}`, count)
  await backend.clear(data.root)
  await backend.load(data)
  const dir = await mkdtemp(join(tmpdir(), 'rx-datasync-bench-restore-'))
  const file = join(dir, 'snapshot')
  try {
    await save(backend, data.prefixes, file, count)
    const bytes = (await stat(file)).size
    const k = `${count / 1000}k`
    const rows: Row[] = []
    for (const decode of ['eager', 'lazy'] as const) {
      const times = await alternate<number>(
        settings,
        `restore ${k} ${decode} ${backend.label}`,
        (side) =>
          firstView(
            backend,
            data.prefixes,
            count,
            side === 'ours' ? { persist: { to: fileSnapshotPersistence(file) } } : {},
            side === 'ours' ? 'restored' : 'startup',
            decode,
          ),
        (value) => ms(value),
      )
      rows.push({
        workload: `first view after a restart, ${k} keys${decode === 'lazy' ? ', lazy consumers' : ''}: saved snapshot (${(bytes / 1e6).toFixed(1)} MB) vs full resync`,
        backend: backend.label,
        ours: ms(median(times.ours)),
        raw: ms(median(times.raw)),
        ratio: pairedRatio(times.ours, times.raw),
        target: { op: '<=', value: 0.2 },
      })
    }
    return rows
  } finally {
    await backend.clear(data.root)
    await rm(dir, { recursive: true, force: true })
  }
}

/** Runs an orchestrator with `persist` until it saved every key. */
async function save(
  backend: Backend,
  prefixes: readonly string[],
  file: string,
  count: number,
): Promise<void> {
  const store = await backend.ourStore()
  const sync = createDatasync(store, {
    ackTimeout: '300s',
    persist: { to: fileSnapshotPersistence(file), every: '10ms' },
  })
  prefixes.forEach((prefix, i) => {
    sync
      .register(`consumer-${i}`, { prefixes: [prefix], codec: json<Iface>() })
      .events$.subscribe((event) => {
        event.done()
      })
  })
  const saved = firstValueFrom(
    sync.activity$.pipe(
      filter((step) => step.type === 'persisted' && step.keys === count),
      timeout(TIMEOUT_MS),
    ),
  )
  sync.start()
  await saved
  sync.close()
  await store.close()
}

/** The time from start until every consumer has its first resync (of `reason`), in ms. */
async function firstView(
  backend: Backend,
  prefixes: readonly string[],
  count: number,
  options: DatasyncOptions,
  reason: 'restored' | 'startup',
  decode: 'eager' | 'lazy',
): Promise<number> {
  const store = await backend.ourStore()
  const sync = createDatasync(store, { ackTimeout: '300s', ...options })
  let keys = 0
  let resyncs = 0
  let start = 0
  const viewed = new Promise<number>((resolve, reject) => {
    prefixes.forEach((prefix, i) => {
      const consumer = sync.register(`consumer-${i}`, {
        prefixes: [prefix],
        codec: json<Iface>(),
        decode,
      })
      consumer.events$.subscribe((event) => {
        if (event.kind === 'resync') {
          if (event.reason !== reason) {
            reject(new Error(`expected a ${reason} resync, got ${event.reason}`))
          }
          keys += event.items.length
          if (++resyncs === prefixes.length) resolve(performance.now() - start)
        }
        event.done()
      })
    })
  })
  start = performance.now()
  sync.start()
  const elapsed = await viewed
  // Closed once in sync, so the next run meets a quiet server.
  await firstValueFrom(
    sync.status$.pipe(
      filter((status) => status.state === 'in-sync'),
      timeout(TIMEOUT_MS),
    ),
  )
  sync.close()
  await store.close()
  if (keys !== count) throw new Error(`first view: ${keys} keys instead of ${count}`)
  return elapsed
}
