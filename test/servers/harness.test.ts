/**
 * Proves the real-server harness: real etcd and Redis processes are started, answer, stop
 * answering when paused, answer again when resumed, refuse connections after kill -9, come back
 * with their data after a restart (etcd), and leave no process or directory behind.
 */
import { existsSync } from 'node:fs'
import { afterAll, describe, expect, it } from 'vitest'
import {
  ServerProcess,
  cleanupAllServers,
  connectError,
  etcdGet,
  etcdPut,
  freePort,
  liveServers,
  parseInfo,
  redisCommand,
  startEtcd,
  startEtcdCluster,
  startRedis,
  startRedisCluster,
  startSentinelSetup,
  withServer,
  type EtcdServer,
  type RedisServer,
} from './index.js'

const PAUSED_TIMEOUT_MS = 500

/** Every pid a test saw, to check at the end that none is left running. */
const seenPids = new Set<number>()
/** Every data directory a test saw, to check at the end that cleanup removed it. */
const seenDirs = new Set<string>()

function track(server: ServerProcess): void {
  if (server.pid !== undefined) seenPids.add(server.pid)
  seenDirs.add(server.dataDir)
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
    return true
  } catch {
    return false
  }
}

afterAll(async () => {
  await cleanupAllServers()
  expect(liveServers()).toEqual([])
  expect([...seenPids].filter(pidAlive)).toEqual([])
  expect([...seenDirs].filter((d) => existsSync(d))).toEqual([])
})

describe('etcd', () => {
  let etcd: EtcdServer | undefined
  afterAll(async () => {
    await etcd?.cleanup()
  })

  it('answers, pauses, resumes, dies by kill -9 and restarts with its data', async () => {
    etcd = await startEtcd()
    track(etcd)
    const url = etcd.clientUrl
    expect(url).toBe(`http://127.0.0.1:${etcd.clientPort}`)
    expect(etcd.endpoints).toEqual([url])

    await etcdPut(url, 'harness/key', 'value-1')
    expect(await etcdGet(url, 'harness/key')).toBe('value-1')
    expect(await etcdGet(url, 'harness/missing')).toBeUndefined()

    // SIGSTOP: the kernel still accepts the connection, but nobody answers.
    await etcd.pause()
    expect(etcd.isPaused).toBe(true)
    await expect(
      etcdGet(url, 'harness/key', { timeoutMs: PAUSED_TIMEOUT_MS }),
    ).rejects.toMatchObject({
      name: 'TimeoutError',
    })

    etcd.resume()
    expect(await etcdGet(url, 'harness/key')).toBe('value-1')

    const pid = etcd.pid!
    await etcd.kill()
    expect(etcd.running).toBe(false)
    expect(etcd.pid).toBeUndefined()
    expect(etcd.exitInfo).toEqual({ code: null, signal: 'SIGKILL' })
    expect(pidAlive(pid)).toBe(false)
    expect(await connectError(etcd.clientPort)).toBe('ECONNREFUSED')

    // Same args, ports and data directory: the key survived kill -9.
    await etcd.restart()
    track(etcd)
    expect(etcd.pid).not.toBe(pid)
    expect(await etcdGet(url, 'harness/key')).toBe('value-1')

    // A graceful stop, then a restart that stops the running process first.
    expect(await etcd.stop()).toMatchObject({ signal: 'SIGTERM' })
    await etcd.restart()
    track(etcd)
    await etcd.restart()
    track(etcd)
    expect(await etcdGet(url, 'harness/key')).toBe('value-1')

    const dir = etcd.dataDir
    expect(existsSync(etcd.logFile)).toBe(true)
    expect(etcd.logTail()).toContain('[harness] start #4')
    await etcd.cleanup()
    expect(etcd.running).toBe(false)
    expect(existsSync(dir)).toBe(false)
    await etcd.cleanup() // idempotent
  })

  it('runs a three-member cluster', async () => {
    const cluster = await startEtcdCluster(3)
    try {
      cluster.members.forEach(track)
      expect(cluster.endpoints).toHaveLength(3)
      expect(new Set(cluster.members.flatMap((m) => [m.clientPort, m.peerPort])).size).toBe(6)
      await etcdPut(cluster.endpoints[0]!, 'cluster/key', 'replicated')
      expect(await etcdGet(cluster.endpoints[2]!, 'cluster/key')).toBe('replicated')
      expect(cluster.members).toContain(await cluster.leader())
    } finally {
      await cluster.cleanup()
    }
    for (const m of cluster.members) expect(m.running).toBe(false)
  })
})

describe('redis', () => {
  let redis: RedisServer | undefined
  afterAll(async () => {
    await redis?.cleanup()
  })

  it('answers, pauses, resumes, dies by kill -9 and restarts', async () => {
    redis = await startRedis({ notifyKeyspaceEvents: 'KEA' })
    track(redis)
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`)
    expect(redis.port).not.toBe(6379)

    expect(await redisCommand(redis.port, 'SET', 'harness:key', 'value-1')).toBe('OK')
    expect(await redisCommand(redis.port, 'GET', 'harness:key')).toBe('value-1')
    expect(await redisCommand(redis.port, 'GET', 'harness:missing')).toBeNull()
    expect(await redisCommand(redis.port, 'CONFIG', 'GET', 'notify-keyspace-events')).toEqual([
      'notify-keyspace-events',
      'AKE',
    ])
    await expect(redisCommand(redis.port, 'NOSUCHCOMMAND')).rejects.toMatchObject({
      name: 'RedisReplyError',
    })

    await redis.pause()
    await expect(
      redisCommand({ port: redis.port, timeoutMs: PAUSED_TIMEOUT_MS }, 'PING'),
    ).rejects.toMatchObject({ name: 'TimeoutError' })

    redis.resume()
    expect(await redisCommand(redis.port, 'PING')).toBe('PONG')

    const pid = redis.pid!
    await redis.kill()
    expect(redis.running).toBe(false)
    expect(pidAlive(pid)).toBe(false)
    expect(await connectError(redis.port)).toBe('ECONNREFUSED')
    await expect(redisCommand(redis.port, 'PING')).rejects.toMatchObject({ code: 'ECONNREFUSED' })

    // Same port and directory; nothing is persisted (--save '' --appendonly no).
    await redis.restart()
    track(redis)
    expect(await redisCommand(redis.port, 'PING')).toBe('PONG')
    expect(await redisCommand(redis.port, 'GET', 'harness:key')).toBeNull()

    const dir = redis.dataDir
    await redis.cleanup()
    expect(existsSync(dir)).toBe(false)
    expect(await connectError(redis.port)).toBe('ECONNREFUSED')
  })

  it('runs a master with two replicas and three sentinels', async () => {
    const setup = await startSentinelSetup()
    try {
      ;[...setup.nodes, ...setup.sentinels].forEach(track)
      expect(setup.replicas).toHaveLength(2)
      expect(setup.sentinels).toHaveLength(3)
      for (const sentinel of setup.sentinels) {
        expect(
          await redisCommand(sentinel.port, 'SENTINEL', 'get-master-addr-by-name', 'mymaster'),
        ).toEqual(['127.0.0.1', String(setup.master.port)])
      }
      expect(await setup.currentMaster()).toEqual({ host: '127.0.0.1', port: setup.master.port })
      // Replication works.
      expect(await setup.master.command('SET', 'replicated', 'yes')).toBe('OK')
      expect(await setup.master.command('WAIT', '2', '5000')).toBe(2)
      expect(await setup.replicas[0]!.command('GET', 'replicated')).toBe('yes')
    } finally {
      await setup.cleanup()
    }
  })

  it('runs a six-node cluster', async () => {
    const cluster = await startRedisCluster()
    try {
      cluster.nodes.forEach(track)
      expect(cluster.nodes).toHaveLength(6)
      for (const port of cluster.ports) {
        const info = parseInfo(String(await redisCommand(port, 'CLUSTER', 'INFO')))
        expect(info.cluster_state).toBe('ok')
        expect(info.cluster_known_nodes).toBe('6')
      }
    } finally {
      await cluster.cleanup()
    }
  })
})

describe('ServerProcess failures', () => {
  it('reports binary, args and log lines when the process exits before it is ready', async () => {
    const server = new ServerProcess({
      binary: 'etcd',
      args: ['--no-such-flag-for-the-harness'],
      ready: () => Promise.resolve(false),
    })
    const error = await server.start().then(
      () => undefined,
      (err: unknown) => err as Error,
    )
    track(server)
    await server.cleanup()
    expect(error?.message).toContain('exited before it was ready')
    expect(error?.message).toMatch(/binary: \/\S*etcd/)
    expect(error?.message).toContain('--no-such-flag-for-the-harness')
    expect(error?.message).toContain('flag provided but not defined')
  })

  it('does not take another server on its port for itself', async () => {
    await withServer(
      () => startRedis(),
      async (first) => {
        track(first)
        await expect(startRedis({ port: first.port })).rejects.toThrow(/Address already in use/)
        expect(await first.command('PING')).toBe('PONG')
      },
    )
  })

  it('kills the process and reports it when readiness times out', async () => {
    // A server that runs (on a port of its own) but whose readiness check never holds.
    await withServer(
      async () =>
        new ServerProcess({
          binary: 'redis-server',
          args: ['--port', String(await freePort()), '--save', ''],
          ready: () => Promise.resolve(false),
          readyTimeoutMs: 300,
        }),
      async (server) => {
        const error = await server.start().then(
          () => undefined,
          (err: unknown) => err as Error,
        )
        track(server)
        expect(error?.message).toContain('was not ready within 300 ms')
        expect(server.running).toBe(false)
      },
    )
  })
})
