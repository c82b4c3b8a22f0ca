/** The harness for real servers in integration tests. See README.md beside this file. */
export { freePort, freePorts, canConnect, connectError, LOOPBACK } from './ports.js'
export {
  ensureBinary,
  findBinary,
  registerBinary,
  type BinarySpec,
  type KnownBinary,
} from './install.js'
export {
  ServerProcess,
  startServerProcess,
  makeTempDir,
  liveServers,
  cleanupAllServers,
  type ServerProcessOptions,
  type ReadinessProbe,
  type ExitInfo,
} from './process.js'
export { pollUntil, type PollOptions } from './wait.js'
export { httpRequest, httpJson, type HttpRequestOptions, type HttpResponse } from './http.js'
export {
  EtcdServer,
  startEtcd,
  startEtcdCluster,
  etcdHealthy,
  etcdLeader,
  etcdPut,
  etcdGet,
  etcdDelete,
  type EtcdOptions,
  type EtcdCluster,
  type EtcdClusterOptions,
  type EtcdRequestOptions,
} from './etcd.js'
export {
  redisCommand,
  redisPing,
  redisInfo,
  parseInfo,
  parseReply,
  encodeCommand,
  RedisReplyError,
  type RespValue,
  type RedisTarget,
  type RedisArg,
} from './resp.js'
export {
  RedisServer,
  SentinelServer,
  startRedis,
  startSentinelSetup,
  startRedisCluster,
  type RedisOptions,
  type SentinelSetup,
  type SentinelSetupOptions,
  type RedisCluster,
  type RedisClusterOptions,
} from './redis.js'
export {
  NatsServer,
  NATS_TEST_TIMINGS,
  startNats,
  startNatsCluster,
  natsConnect,
  createNatsBucket,
  deleteNatsBucket,
  type NatsOptions,
  type NatsCluster,
  type NatsClusterOptions,
} from './nats.js'
export { useServer, withServer, cleanupServersAfterAll, type Cleanable } from './vitest.js'
export { PostgresServer, startPostgres, type PostgresOptions } from './postgres.js'
