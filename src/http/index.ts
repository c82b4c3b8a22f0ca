/**
 * `rx-datasync/http`: serve any store over HTTP(S) to other processes and browsers (Node only).
 * The browser-safe client is `rx-datasync/http-client`.
 */
export { serveStore, type StoreServer } from './server/server.js'
export type {
  HttpCorsOptions,
  HttpServerOptions,
  HttpServerTls,
  HttpTokenGrant,
} from './server/options.js'
export type { HttpServerMetrics } from './server/metrics.js'
export { loadHttpServerConfig } from './server/config.js'
