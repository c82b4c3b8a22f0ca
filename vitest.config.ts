import { defineConfig } from 'vitest/config'

// 'source' points the package's own subpaths (rx-datasync, rx-datasync/testing, ...) at src/,
// so tests and examples import by package name without a build.
const resolve = { conditions: ['source', 'module', 'node', 'development|production'] }
const shared = {
  resolve,
  ssr: { resolve: { conditions: resolve.conditions, externalConditions: ['source'] } },
}

export default defineConfig({
  ...shared,
  test: {
    projects: [
      { ...shared, test: { name: 'unit', include: ['test/unit/**/*.test.ts'] } },
      { ...shared, test: { name: 'marbles', include: ['marbles/**/*.marbles.spec.ts'] } },
      {
        ...shared,
        test: {
          name: 'conformance',
          include: ['test/conformance/**/*.test.ts'],
          testTimeout: 30_000,
        },
      },
      {
        ...shared,
        test: {
          name: 'browser',
          include: ['test/browser/**/*.test.ts'],
          testTimeout: 120_000,
          hookTimeout: 300_000,
          fileParallelism: false,
        },
      },
      {
        ...shared,
        test: {
          name: 'integration',
          include: [
            'test/integration/**/*.test.ts',
            'test/servers/**/*.test.ts',
            // The packed tarball installed into fresh consumer projects.
            'test/package/**/*.test.ts',
          ],
          testTimeout: 120_000,
          hookTimeout: 300_000,
          fileParallelism: false,
        },
      },
    ],
  },
})
