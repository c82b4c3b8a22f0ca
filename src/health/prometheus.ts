import { createRequire } from 'node:module'
import type * as PromClient from 'prom-client'

/** prom-client's module, or why it could not be loaded. */
export type PromLoad =
  | { readonly ok: true; readonly client: typeof PromClient }
  | { readonly ok: false; readonly reason: string }

let loaded: PromLoad | undefined

/**
 * Loads prom-client, an optional peer dependency, on first use: an application that never asks
 * for Prometheus text never needs it installed.
 */
export function loadPromClient(): PromLoad {
  if (loaded) return loaded
  try {
    const require = createRequire(import.meta.url)
    loaded = { ok: true, client: require('prom-client') as typeof PromClient }
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code
    loaded = {
      ok: false,
      reason:
        code === 'MODULE_NOT_FOUND'
          ? 'prom-client is not installed; run `npm install prom-client` (an optional peer dependency of rx-datasync) to serve Prometheus text'
          : `prom-client could not be loaded: ${error instanceof Error ? error.message : String(error)}`,
    }
  }
  return loaded
}

/** This package's version (src/health and dist/health are both two levels under its root). */
export function packageVersion(): string {
  try {
    const require = createRequire(import.meta.url)
    return (require('../../package.json') as { version?: string }).version ?? 'unknown'
  } catch {
    return 'unknown'
  }
}

/**
 * The prom-client counters, gauges and histogram of `createMetrics`, named `<prefix>…` and
 * registered in `registry` (the instance's own, never prom-client's global one).
 */
export function makePromMetrics(
  client: typeof PromClient,
  registry: PromClient.Registry,
  prefix: string,
  buckets: readonly number[],
) {
  const registers = [registry]
  const delivery = ['datasync', 'consumer', 'kind', 'reason'] as const
  return {
    events: new client.Counter({
      name: `${prefix}events_delivered_total`,
      help: 'Events delivered to consumers, by consumer, kind (resync, change) and reason.',
      labelNames: delivery,
      registers,
    }),
    keys: new client.Counter({
      name: `${prefix}keys_delivered_total`,
      help: 'Keys carried by the events delivered (resync items, or changes).',
      labelNames: delivery,
      registers,
    }),
    rounds: new client.Counter({
      name: `${prefix}rounds_total`,
      help: 'Rounds (resyncs or gap recoveries) started, by reason and snapshot cause.',
      labelNames: ['datasync', 'reason', 'cause'] as const,
      registers,
    }),
    gaps: new client.Counter({
      name: `${prefix}gaps_total`,
      help: 'Gaps detected (rounds after a reconnect or a broken watch), by snapshot cause.',
      labelNames: ['datasync', 'cause'] as const,
      registers,
    }),
    lag: new client.Gauge({
      name: `${prefix}consumer_lag_keys`,
      help: 'Keys with changes waiting behind a consumer’s unacknowledged events.',
      labelNames: ['datasync', 'consumer'] as const,
      registers,
    }),
    latency: new client.Histogram({
      name: `${prefix}ack_latency_seconds`,
      help: 'Time from delivering an event to its acknowledgement.',
      labelNames: ['datasync', 'consumer', 'kind'] as const,
      buckets: [...buckets],
      registers,
    }),
    ackFailures: new client.Counter({
      name: `${prefix}ack_failures_total`,
      help: 'Acknowledgements that timed out or failed, by error code.',
      labelNames: ['datasync', 'consumer', 'kind', 'code'] as const,
      registers,
    }),
    errors: new client.Counter({
      name: `${prefix}errors_total`,
      help: 'Errors reported by the orchestrator, by code.',
      labelNames: ['datasync', 'code'] as const,
      registers,
    }),
    keyFailures: new client.Counter({
      name: `${prefix}key_failures_total`,
      help: 'Keys a consumer named as failed; each is retried with backoff (waiting keys count in the lag).',
      labelNames: ['datasync', 'consumer'] as const,
      registers,
    }),
    snapshotSaves: new client.Counter({
      name: `${prefix}snapshot_saves_total`,
      help: 'Snapshots saved by persist.',
      labelNames: ['datasync'] as const,
      registers,
    }),
    snapshotSaveSeconds: new client.Counter({
      name: `${prefix}snapshot_save_seconds_total`,
      help: 'Time spent saving snapshots (encoding and writing).',
      labelNames: ['datasync'] as const,
      registers,
    }),
    snapshotBytes: new client.Gauge({
      name: `${prefix}snapshot_bytes`,
      help: 'The size of the last snapshot saved.',
      labelNames: ['datasync'] as const,
      registers,
    }),
    snapshotKeys: new client.Gauge({
      name: `${prefix}snapshot_keys`,
      help: 'The keys in the last snapshot saved.',
      labelNames: ['datasync'] as const,
      registers,
    }),
    info: new client.Gauge({
      name: `${prefix}info`,
      help: 'rx-datasync itself: always 1, with its version and the Node.js version.',
      labelNames: ['version', 'node_version'] as const,
      registers,
    }),
    state: new client.Gauge({
      name: `${prefix}state`,
      help: 'The orchestrator’s state: 1 for the current one, 0 for the others.',
      labelNames: ['datasync', 'state'] as const,
      registers,
    }),
  }
}
