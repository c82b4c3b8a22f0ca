export { createRedisStore } from './redis-store.js'
export type { RedisStore } from './redis-store.js'
export type {
  RedisAddress,
  RedisClusterOptions,
  RedisSentinelOptions,
  RedisStoreOptions,
} from './options.js'
export { loadRedisConfig } from './config.js'
export type { RedisConfigLookup } from './config.js'
