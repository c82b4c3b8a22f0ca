export { createPostgresStore } from './postgres-store.js'
export type {
  PostgresConnectionOptions,
  PostgresStore,
  PostgresStoreOptions,
  PostgresTlsOptions,
} from './options.js'
