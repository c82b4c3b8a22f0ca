import { loadPromClient } from '../../health/prometheus.js'

/** The server's counters, as plain numbers. */
export interface HttpServerMetrics {
  /** Watch streams open now. */
  readonly clients: number
  /** SSE events written to watch streams (snapshot chunks, change batches, progress). */
  readonly eventsSent: number
  /** Bytes written to watch streams. */
  readonly bytesSent: number
  /** Reconnections served from the change log (no snapshot). */
  readonly resumes: number
  /** Reconnections that needed a fresh snapshot (too old for the log, or from another history). */
  readonly relists: number
  /** Clients cut for having more than `maxBufferedBytes` waiting. */
  readonly slowClientsCut: number
  /** Requests answered with a 4xx or 5xx error. */
  readonly requestErrors: number
  /** Bytes waiting to be sent to all watch clients now. */
  readonly bufferedBytes: number
}

/** The counters the server updates. */
export class Counters {
  eventsSent = 0
  bytesSent = 0
  resumes = 0
  relists = 0
  slowClientsCut = 0
  requestErrors = 0
}

/**
 * The metrics in the Prometheus text format (prom-client, an optional peer dependency), named
 * `rx_datasync_http_…` with their units, from a fresh registry on each call.
 *
 * @throws Error naming prom-client when it is not installed.
 */
export async function prometheusText(snapshot: HttpServerMetrics): Promise<string> {
  const loaded = loadPromClient()
  if (!loaded.ok) throw new Error(loaded.reason)
  const client = loaded.client
  const registry = new client.Registry()
  const registers = [registry]
  const gauge = (name: string, help: string, value: number) => {
    new client.Gauge({ name, help, registers }).set(value)
  }
  const counter = (name: string, help: string, value: number) => {
    new client.Counter({ name, help, registers }).inc(value)
  }
  gauge('rx_datasync_http_clients', 'Watch streams open now.', snapshot.clients)
  gauge(
    'rx_datasync_http_buffered_bytes',
    'Bytes waiting to be sent to watch clients now.',
    snapshot.bufferedBytes,
  )
  counter(
    'rx_datasync_http_events_sent_total',
    'SSE events written to watch streams.',
    snapshot.eventsSent,
  )
  counter(
    'rx_datasync_http_sent_bytes_total',
    'Bytes written to watch streams.',
    snapshot.bytesSent,
  )
  counter(
    'rx_datasync_http_resumes_total',
    'Watch reconnections served from the change log, without a snapshot.',
    snapshot.resumes,
  )
  counter(
    'rx_datasync_http_relists_total',
    'Watch reconnections that needed a fresh snapshot.',
    snapshot.relists,
  )
  counter(
    'rx_datasync_http_slow_clients_cut_total',
    'Watch clients cut for having more than maxBufferedBytes waiting.',
    snapshot.slowClientsCut,
  )
  counter(
    'rx_datasync_http_request_errors_total',
    'Requests answered with a 4xx or 5xx error.',
    snapshot.requestErrors,
  )
  return registry.metrics()
}
