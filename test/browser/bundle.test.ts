/**
 * rx-datasync/http-client runs in browsers: bundling it for the browser platform must succeed
 * (esbuild refuses a Node built-in there) and must not pull in the Node server or the health
 * module, through any chain of imports. .dependency-cruiser.json checks the direct imports.
 */
import { build } from 'esbuild'
import { describe, expect, it } from 'vitest'

describe('the http client is browser-safe', () => {
  it('bundles for the browser with no Node built-in and no server code', async () => {
    const result = await build({
      entryPoints: ['src/http/client/index.ts'],
      bundle: true,
      platform: 'browser',
      format: 'esm',
      write: false,
      metafile: true,
      logLevel: 'silent',
      external: ['rxjs'],
    })
    const inputs = Object.keys(result.metafile.inputs)
    expect(inputs).toContain('src/http/client/http-store.ts')
    expect(inputs.filter((file) => /^node:|src\/http\/server\/|src\/health\//.test(file))).toEqual(
      [],
    )
    const imports = Object.values(result.metafile.outputs).flatMap((output) =>
      output.imports.map((imported) => imported.path),
    )
    expect(imports.filter((path) => path !== 'rxjs')).toEqual([])
  })
})
