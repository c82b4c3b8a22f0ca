import { rm } from 'node:fs/promises'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { loadConsulConfig } from '../../src/backends/consul/index.js'
import { loadEtcdConfig } from '../../src/backends/etcd/index.js'
import { loadFileDbConfig } from '../../src/backends/filedb/index.js'
import { loadRedisConfig } from '../../src/backends/redis/index.js'
import { toMillis, type Duration } from '../../src/core/duration.js'
import { makeTestCertificates, type TestCertificates } from '../support/tls.js'
import { rejection, useTempDir } from './support.js'

// Issue 22: every field of the Go original's sample configuration files (ligato/cn-infra at
// 356dce1f: db/keyval/etcd/etcd.conf, examples/*/etcd.conf, examples/redis-lib/*.yaml,
// db/keyval/consul/consul.conf, db/keyval/filedb/filesystem.conf) is accepted, or refused with
// a message saying it is not supported and why. The samples are copied here as they are (only
// etcd.conf's '<file-path>' placeholders are replaced by real certificate files).

const dir = useTempDir('rx-datasync-go-samples-')
let certs: TestCertificates

beforeAll(async () => {
  certs = await makeTestCertificates()
}, 60_000)
afterAll(async () => {
  await rm(certs.dir, { recursive: true, force: true })
})

const etcdConf = () => `# A list of host IP addresses of ETCD database server.
endpoints:
  - "172.17.0.1:2379"

# Connection fails if it is not established till timeout
dial-timeout: 100ms

# Operation timeout value.
operation-timeout: 300ms

# Insecure transport omits TLS usage
insecure-transport: false

insecure-skip-tls-verify: false

# TLS certification file
cert-file: ${certs.clientCertFile}

# TLS certification key
key-file: ${certs.clientKeyFile}

# CA file used to create a set of x509 certificates
ca-file: ${certs.caFile}

# Interval between ETCD auto compaction cycles. 0 means disabled.
auto-compact: 0

resync-after-reconnect: false

allow-delayed-start: false

reconnect-interval: 2s
`

describe('the Go original sample configuration files', () => {
  it('etcd.conf: every field accepted', async () => {
    const file = await dir.file('etcd.conf', etcdConf())
    const options = await loadEtcdConfig({ file, env: {} })
    expect(options).toMatchObject({
      endpoints: ['172.17.0.1:2379'],
      dialTimeout: '100ms',
      operationTimeout: '300ms',
      resyncAfterReconnect: false,
      allowDelayedStart: false,
      reconnectInterval: '2s',
      tls: { insecureSkipVerify: false },
    })
    expect(options?.tls?.ca).toBeInstanceOf(Buffer)
  })

  it('examples/datasync-plugin/etcd.conf and examples/etcd-lib/etcd.conf', async () => {
    const datasync = await dir.file(
      'datasync-etcd.conf',
      'insecure-transport: true\ndial-timeout: 1s\nendpoints:\n - "127.0.0.1:2379"\n',
    )
    expect(await loadEtcdConfig({ file: datasync, env: {} })).toMatchObject({
      endpoints: ['127.0.0.1:2379'],
      dialTimeout: '1s',
    })
    const lib = await dir.file(
      'lib-etcd.conf',
      'insecure-transport: true\nsession-ttl: 10\nendpoints:\n  - "172.17.0.1:2379"\n\n',
    )
    expect(await loadEtcdConfig({ file: lib, env: {} })).toMatchObject({ sessionTtl: '10s' })
  })

  it('etcd expand-env-variables: false is accepted, true is refused saying why', async () => {
    const off = await dir.file('expand-off.conf', 'endpoints: [a:1]\nexpand-env-variables: false\n')
    expect(await loadEtcdConfig({ file: off, env: {} })).toMatchObject({ endpoints: ['a:1'] })
    const on = await dir.file('expand-on.conf', 'endpoints: [a:1]\nexpand-env-variables: true\n')
    const error = await rejection(loadEtcdConfig({ file: on, env: {} }))
    expect(error.source).toBe(`${on}:2`)
    expect(error.field).toBe('expand-env-variables')
    expect(error.message).toMatch(/: not supported: the Go original expanded \$\{VAR\}/)
    expect(error.message).toMatch(/expandEnv option/)
    const fromEnv = await rejection(
      loadEtcdConfig({ file: off, env: { ETCD_EXPAND_ENV_VARS: '1' } }),
    )
    expect(fromEnv.message).toMatch(/^ETCD_EXPAND_ENV_VARS: not supported: /)
  })

  it('examples/redis-lib/node-client.yaml', async () => {
    const file = await dir.file(
      'node-client.yaml',
      `---
# github.com/ligato/cn-infra/db/keyval/redis#NodeConfig
db: 0
dial-timeout: 0
enable-query-on-slave: false
endpoint: localhost:6379
password: ""
pool:
  busy-timeout: 0
  idle-check-frequency: 0
  idle-timeout: 0
  max-connections: 0
read-timeout: 0
tls:
  ca-file: ""
  cert-file: ""
  enabled: false
  key-file: ""
  skip-verify: false
write-timeout: 0
`,
    )
    const options = await loadRedisConfig({ file, env: {} })
    expect(options).toEqual({ node: 'localhost:6379', db: 0 })
  })

  it('examples/redis-lib/sentinel-client.yaml', async () => {
    const file = await dir.file(
      'sentinel-client.yaml',
      `---
# github.com/ligato/cn-infra/db/keyval/redis#SentinelConfig
db: 0
dial-timeout: 0
endpoints:
  - 172.17.0.7:26379
  - 172.17.0.8:26379
  - 172.17.0.9:26379
master-name: mymaster
password: ""
pool:
  busy-timeout: 0
  idle-check-frequency: 0
  idle-timeout: 0
  max-connections: 0
read-timeout: 0
write-timeout: 0
`,
    )
    expect(await loadRedisConfig({ file, env: {} })).toEqual({
      sentinel: {
        sentinels: ['172.17.0.7:26379', '172.17.0.8:26379', '172.17.0.9:26379'],
        masterName: 'mymaster',
      },
      db: 0,
    })
  })

  it('examples/redis-lib/cluster-client.yaml', async () => {
    const file = await dir.file(
      'cluster-client.yaml',
      `---
# github.com/ligato/cn-infra/db/keyval/redis#ClusterConfig
dial-timeout: 0
enable-query-on-slave: true
endpoints:
  - 172.17.0.1:6379
  - 172.17.0.2:6379
  - 172.17.0.3:6379
max-rediects: 0
password: ""
pool:
  busy-timeout: 0
  idle-check-frequency: 0
  idle-timeout: 0
  max-connections: 0
read-timeout: 0
route-by-latency: true
write-timeout: 0
`,
    )
    expect(await loadRedisConfig({ file, env: {} })).toEqual({
      cluster: {
        nodes: ['172.17.0.1:6379', '172.17.0.2:6379', '172.17.0.3:6379'],
        scaleReads: 'all',
      },
    })
  })

  it('db/keyval/consul/consul.conf', async () => {
    const file = await dir.file(
      'consul.conf',
      '# Address of the Consul server\naddress: 0.0.0.0:8500\n\nresync-after-reconnect: false',
    )
    expect(await loadConsulConfig({ file, env: {} })).toEqual({
      address: '0.0.0.0:8500',
      resyncAfterReconnect: false,
    })
  })

  it('db/keyval/filedb/filesystem.conf', async () => {
    const file = await dir.file(
      'filesystem.conf',
      'configuration-paths: [/path/to/directory/, /path/to/file.ext]\n\nstatus-path: "/path/to/status.ext"\n',
    )
    expect(await loadFileDbConfig({ file, env: {} })).toEqual({
      paths: ['/path/to/directory', '/path/to/file.ext'],
      statusPath: '/path/to/status.ext',
    })
  })
})

describe("Go's compound durations", () => {
  it.each<[Duration, number]>([
    ['1m30s', 90_000],
    ['500ms', 500],
    ['1h2m3.5s', 3_723_500],
    ['1.5h', 5_400_000],
    ['2h45m', 9_900_000],
    ['1500us', 1.5],
    ['1500µs', 1.5],
    ['250000ns', 0.25],
    ['1s500ms', 1_500],
    ['.5s', 500],
    ['0', 0],
  ])('toMillis(%j) is %d', (text, ms) => {
    expect(toMillis(text)).toBeCloseTo(ms, 9)
  })

  it.each(['5', '1m30', 'm30s', '1d', '1 s', '-1s', '1s ', '', '1..5s', 'ms'])(
    'refuses %j, naming the thing',
    (text) => {
      expect(() => toMillis(text as Duration, 'ackTimeout')).toThrow(
        /^ackTimeout: expected a duration such as .*'1m30s', got /,
      )
    },
  )

  it('is read from every loader', async () => {
    const etcd = await dir.file('d-etcd.yaml', 'dial-timeout: 1m30s\nauto-compact: 1h2m3.5s\n')
    expect(await loadEtcdConfig({ file: etcd, env: {} })).toMatchObject({
      dialTimeout: '1m30s',
      autoCompact: '1h2m3.5s',
    })
    const redis = await dir.file('d-redis.yaml', 'endpoint: a:1\nread-timeout: 1m30s\n')
    expect(await loadRedisConfig({ file: redis, env: {} })).toMatchObject({
      commandTimeout: '1m30s',
    })
    const consul = await dir.file('d-consul.yaml', 'wait-time: 1m30s\nretry-delay: 1s500ms\n')
    expect(await loadConsulConfig({ file: consul, env: {} })).toMatchObject({
      waitTime: '1m30s',
      retryDelay: '1s500ms',
    })
    const bad = await dir.file('d-bad.yaml', 'endpoint: a:1\nread-timeout: 1m30\n')
    const error = await rejection(loadRedisConfig({ file: bad, env: {} }))
    expect(error.source).toBe(`${bad}:2`)
    expect(error.field).toBe('read-timeout')
  })
})
