import { readFile } from 'node:fs/promises'
import ts from 'typescript'
import { describe, expect, it } from 'vitest'

// Pins the public surface of every subpath: its runtime names (what `import` gives) and its
// type-only names (what TypeScript sees). An accidental export, or one lost in a refactor, shows
// up here in review.
const expected: Record<
  string,
  { readonly values: readonly string[]; readonly types: readonly string[] }
> = {
  'rx-datasync': {
    values: [
      'AckTimeoutError',
      'AuthError',
      'CapabilityError',
      'ClosedError',
      'CodecError',
      'ConfigError',
      'ConsumerError',
      'DatasyncError',
      'KeyFailedError',
      'KeyFailures',
      'SnapshotPersistError',
      'UnavailableError',
      'ZERO_REVISION',
      'applyChanges',
      'batchQuiet',
      'bytes',
      'compareRevisions',
      'createDatasync',
      'createLayeredStore',
      'createMemoryStore',
      'createRoutedStore',
      'createSnapshot',
      'diffSnapshots',
      'failedKeys',
      'filterEvents',
      'handleEvents',
      'identity',
      'isRetryable',
      'json',
      'mapValues',
      'maxRevision',
      'mergeEvents',
      'publishTo',
      'revision',
      'string',
      'toMillis',
      'toViews',
      'webStoragePersistence',
      'withCodec',
      'withPrefix',
    ],
    types: [
      'AckPolicy',
      'BatchQuietOptions',
      'Capabilities',
      'Change',
      'ChangeEvent',
      'ChangeOp',
      'ChangesEvent',
      'Codec',
      'CombinedSource',
      'CombinedStore',
      'CombinedStoreOptions',
      'CommitOptions',
      'CommitResult',
      'Consumer',
      'ConsumerEvent',
      'ConsumerOptions',
      'ConsumerOutcome',
      'Datasync',
      'DatasyncErrorOptions',
      'DatasyncOptions',
      'DeleteChange',
      'DeleteOptions',
      'Done',
      'Duration',
      'ErrorCode',
      'EventHandler',
      'EventReason',
      'HandleEventsOptions',
      'HandledEvent',
      'KeyRetryOptions',
      'KeyValue',
      'KvStore',
      'LayeredStoreOptions',
      'MemoryStore',
      'MemoryStoreOptions',
      'NamedSource',
      'PersistOptions',
      'PersistProblem',
      'PersistValues',
      'Publication',
      'PublishOptions',
      'PublishResult',
      'PutChange',
      'PutOptions',
      'ResyncEvent',
      'Revision',
      'RoutedStoreOptions',
      'Snapshot',
      'SnapshotCause',
      'SnapshotEvent',
      'SnapshotPersistence',
      'SourceInput',
      'StorageLike',
      'StoreEvent',
      'StoreStatus',
      'SyncActivity',
      'SyncState',
      'SyncStatus',
      'TxnCondition',
      'TxnOp',
      'TxnOptions',
      'TxnResult',
      'TypedStore',
      'WatchOptions',
    ],
  },
  'rx-datasync/etcd': {
    values: ['createEtcdStore', 'loadEtcdConfig'],
    types: [
      'ConfigLookup',
      'EtcdConfigLookup',
      'EtcdPutOptions',
      'EtcdStore',
      'EtcdStoreOptions',
      'EtcdTlsOptions',
      'EtcdTxnOp',
    ],
  },
  'rx-datasync/redis': {
    values: ['createRedisStore', 'loadRedisConfig'],
    types: [
      'ConfigLookup',
      'RedisAddress',
      'RedisClusterOptions',
      'RedisConfigLookup',
      'RedisSentinelOptions',
      'RedisStore',
      'RedisStoreOptions',
    ],
  },
  'rx-datasync/consul': {
    values: ['createConsulStore', 'loadConsulConfig'],
    types: ['ConfigLookup', 'ConsulStore', 'ConsulStoreOptions', 'ConsulTlsOptions'],
  },
  'rx-datasync/nats': {
    values: [
      'acknowledgeApplied',
      'createNatsSink',
      'createNatsStore',
      'createNatsStreamSource',
      'loadNatsConfig',
    ],
    types: [
      'AckedEvent',
      'AppliedSignals',
      'ConfigLookup',
      'NatsBucketOptions',
      'NatsBusOptions',
      'NatsSink',
      'NatsSinkOptions',
      'NatsSourceOptions',
      'NatsStore',
      'NatsStoreOptions',
      'NatsStreamSource',
      'NatsTlsOptions',
      'SinkReceipt',
    ],
  },
  'rx-datasync/filedb': {
    values: ['createFileStore', 'loadFileDbConfig'],
    types: ['ConfigLookup', 'FileStore', 'FileStoreOptions'],
  },
  'rx-datasync/postgres': {
    values: ['createPostgresStore', 'createPostgresTableSource', 'loadPostgresConfig', 'rowJson'],
    types: [
      'ConfigLookup',
      'PostgresConnectionOptions',
      'PostgresStore',
      'PostgresStoreOptions',
      'PostgresTableSource',
      'PostgresTableSourceOptions',
      'PostgresTlsOptions',
    ],
  },
  'rx-datasync/proto': {
    values: ['loadProtoCodec', 'protoCodec'],
    types: ['ProtoCodec', 'ProtoCodecOptions', 'ProtoForm'],
  },
  'rx-datasync/health': {
    values: [
      'LIVENESS_PATHS',
      'READINESS_PATHS',
      'createHealth',
      'createHealthHandler',
      'createMetrics',
      'onShutdown',
      'serveHealth',
    ],
    types: [
      'AckFailureCount',
      'AckLatency',
      'CheckOptions',
      'CheckResult',
      'ComponentHealth',
      'ComponentKind',
      'ComponentOptions',
      'DatasyncLike',
      'DatasyncMetrics',
      'DeliveredCount',
      'Drainable',
      'ErrorCount',
      'GapCount',
      'Health',
      'HealthCheck',
      'HealthHandler',
      'HealthHandlerOptions',
      'HealthOptions',
      'HealthReport',
      'HealthServer',
      'HealthServerOptions',
      'HealthState',
      'KeyFailureCount',
      'LagGauge',
      'MetricsOptions',
      'MetricsSnapshot',
      'PrometheusRegistry',
      'RoundCount',
      'ShutdownOptions',
      'SnapshotSaves',
      'StoreLike',
      'TrackedDatasync',
    ],
  },
  'rx-datasync/http': {
    values: ['loadHttpServerConfig', 'serveStore'],
    types: [
      'HttpCorsOptions',
      'HttpServerMetrics',
      'HttpServerOptions',
      'HttpServerTls',
      'HttpTokenGrant',
      'StoreServer',
    ],
  },
  'rx-datasync/http-client': {
    values: ['createHttpStore'],
    types: ['FetchBodyReader', 'FetchLike', 'FetchResponse', 'HttpStoreOptions'],
  },
  'rx-datasync/snapshot-file': {
    values: ['fileSnapshotPersistence'],
    types: ['FileSnapshotOptions', 'SnapshotPersistence'],
  },
  'rx-datasync/testing': {
    values: [
      'ackAfter',
      'changesOf',
      'createFaultStore',
      'describeEvent',
      'recordConsumer',
      'scriptedStore',
      'snapshotOf',
    ],
    types: ['ConsumerRecorder', 'FaultStore', 'FaultStoreOptions', 'RecorderOptions'],
  },
}

interface PackageJson {
  readonly exports: Record<string, { readonly source?: string } | string>
}

async function subpaths(): Promise<[specifier: string, source: string][]> {
  const pkg = JSON.parse(
    await readFile(new URL('../../package.json', import.meta.url), 'utf8'),
  ) as PackageJson
  return Object.entries(pkg.exports)
    .filter(([subpath]) => subpath !== './package.json')
    .map(([subpath, target]) => [
      subpath === '.' ? 'rx-datasync' : `rx-datasync/${subpath.slice(2)}`,
      typeof target === 'string' ? target : (target.source ?? ''),
    ])
}

/** The names each subpath's source exports that are types only, as the compiler sees them. */
function typeOnlyExports(entries: readonly [string, string][]): Map<string, string[]> {
  const files = entries.map(([, source]) => new URL(`../../${source}`, import.meta.url).pathname)
  const program = ts.createProgram(files, {
    noEmit: true,
    strict: true,
    skipLibCheck: true,
    target: ts.ScriptTarget.ES2022,
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
  })
  const checker = program.getTypeChecker()
  const result = new Map<string, string[]>()
  entries.forEach(([specifier], i) => {
    const file = program.getSourceFile(files[i] ?? '')
    const module = file && checker.getSymbolAtLocation(file)
    if (!module) throw new Error(`no module for ${specifier}`)
    const types = checker
      .getExportsOfModule(module)
      .filter((symbol) => {
        const target =
          symbol.flags & ts.SymbolFlags.Alias ? checker.getAliasedSymbol(symbol) : symbol
        const typeOnly = (symbol.declarations ?? []).every(
          (declaration) =>
            ts.isExportSpecifier(declaration) &&
            (declaration.isTypeOnly || declaration.parent.parent.isTypeOnly),
        )
        return (target.flags & ts.SymbolFlags.Value) === 0 || typeOnly
      })
      .map((symbol) => symbol.name)
    result.set(specifier, types.sort())
  })
  return result
}

describe('public exports', () => {
  it('every subpath of package.json is pinned here', async () => {
    expect((await subpaths()).map(([specifier]) => specifier).sort()).toEqual(
      Object.keys(expected).sort(),
    )
  })

  for (const [specifier, names] of Object.entries(expected)) {
    it(`${specifier} exports exactly its pinned runtime names`, async () => {
      const module = (await import(specifier)) as Record<string, unknown>
      expect(Object.keys(module).sort()).toEqual([...names.values].sort())
    })
  }

  it('each subpath exports exactly its pinned type names', async () => {
    const found = typeOnlyExports(await subpaths())
    for (const [specifier, names] of Object.entries(expected)) {
      expect({ specifier, types: found.get(specifier) }).toEqual({
        specifier,
        types: [...names.types].sort(),
      })
    }
  }, 60_000)
})
