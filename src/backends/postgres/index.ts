export { createPostgresStore } from './postgres-store.js'
export type {
  PostgresConnectionOptions,
  PostgresStore,
  PostgresStoreOptions,
  PostgresTlsOptions,
} from './options.js'
export {
  createPostgresTableSource,
  type PostgresTableSource,
  type PostgresTableSourceOptions,
} from './table-source.js'
export { rowJson } from './row-codec.js'
export { loadPostgresConfig } from './config.js'
export type { ConfigLookup } from '../../internal/config.js'
