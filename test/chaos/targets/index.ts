/** Every backend of the chaos run, by the name `--backend` takes, in the order they run. */
import type { Target } from '../target.js'
import { consulTarget } from './consul.js'
import { etcdTarget } from './etcd.js'
import { fileDbTarget } from './filedb.js'
import { httpTarget } from './http.js'
import { memoryTarget } from './memory.js'
import { natsTarget } from './nats.js'
import { postgresTarget } from './postgres.js'
import { redisTarget } from './redis.js'

export const TARGETS: Readonly<Record<string, () => Target>> = {
  memory: memoryTarget,
  etcd: () => etcdTarget(1),
  'etcd-cluster': () => etcdTarget(3),
  redis: () => redisTarget('node'),
  'redis-sentinel': () => redisTarget('sentinel'),
  'redis-cluster': () => redisTarget('cluster'),
  consul: consulTarget,
  filedb: fileDbTarget,
  nats: natsTarget,
  postgres: postgresTarget,
  http: httpTarget,
}
