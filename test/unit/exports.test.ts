import { readFile } from 'node:fs/promises'
import { describe, expect, it } from 'vitest'

// Pins the public export list of every subpath: an accidental export shows up here in review.
// A subpath whose module does not exist yet is pinned as absent, so adding it is a visible change.
const expected: Record<string, readonly string[] | 'absent'> = {
  'rx-datasync': [
    'AckTimeoutError',
    'AuthError',
    'CapabilityError',
    'ClosedError',
    'CodecError',
    'ConfigError',
    'ConsumerError',
    'DatasyncError',
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
    'withCodec',
    'withPrefix',
  ],
  'rx-datasync/etcd': ['createEtcdStore', 'loadEtcdConfig'],
  'rx-datasync/filedb': ['createFileStore', 'loadFileDbConfig'],
  'rx-datasync/health': ['createHealth', 'createMetrics', 'serveHealth'],
  'rx-datasync/proto': ['loadProtoCodec', 'protoCodec'],
  'rx-datasync/redis': ['createRedisStore', 'loadRedisConfig'],
  'rx-datasync/testing': [
    'ackAfter',
    'changesOf',
    'createFaultStore',
    'describeEvent',
    'recordConsumer',
    'scriptedStore',
    'snapshotOf',
  ],
}

describe('public exports', () => {
  it('every subpath of package.json is pinned here', async () => {
    const pkg = JSON.parse(
      await readFile(new URL('../../package.json', import.meta.url), 'utf8'),
    ) as {
      exports: Record<string, unknown>
    }
    const subpaths = Object.keys(pkg.exports)
      .filter((subpath) => subpath !== './package.json')
      .map((subpath) => (subpath === '.' ? 'rx-datasync' : `rx-datasync/${subpath.slice(2)}`))
    expect(subpaths.filter((name) => !(name in expected) && !(name in pending))).toEqual([])
  })

  for (const [specifier, names] of Object.entries(expected)) {
    it(`${specifier} exports exactly its pinned names`, async () => {
      const module = (await import(specifier)) as Record<string, unknown>
      expect(Object.keys(module).sort()).toEqual(names === 'absent' ? [] : [...names].sort())
    })
  }
})

/** Subpaths declared in package.json whose modules later issues build; pinned when they land. */
const pending: Record<string, true> = {
  'rx-datasync/consul': true,
}
