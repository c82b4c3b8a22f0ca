export { createRedisStore } from './redis-store.js'
export type { RedisStore } from './redis-store.js'
export type {
  RedisAddress,
  RedisClusterOptions,
  RedisSentinelOptions,
  RedisStoreOptions,
} from './options.js'
export { loadRedisConfig } from './config.js'
// RedisConfigLookup: deprecated, kept for existing imports.
// eslint-disable-next-line @typescript-eslint/no-deprecated
export type { ConfigLookup, RedisConfigLookup } from './config.js'
