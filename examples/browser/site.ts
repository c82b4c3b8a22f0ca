// Builds the browser app with esbuild and serves it (index.html and app.js) from a tiny static
// server. Used by `npm run example:browser` (main.ts) and by the browser test.
import { readFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { fileURLToPath } from 'node:url'
import { build } from 'esbuild'

const HERE = fileURLToPath(new URL('.', import.meta.url))

/** Bundles app.ts for the browser (rx-datasync from the source, as the tests use it). */
export async function buildApp(): Promise<string> {
  const result = await build({
    entryPoints: [`${HERE}app.ts`],
    bundle: true,
    platform: 'browser',
    format: 'esm',
    target: 'es2022',
    conditions: ['source'],
    write: false,
    logLevel: 'warning',
  })
  const output = result.outputFiles[0]
  if (output === undefined) throw new Error('esbuild produced no output')
  return output.text
}

/** A running static site. */
export interface Site {
  readonly url: string
  readonly port: number
  close(): Promise<void>
}

/** Serves index.html and the bundled app.js on 127.0.0.1 (`port` 0: a free one). */
export async function serveApp(port = 0): Promise<Site> {
  const files: Record<string, { type: string; body: string }> = {
    '/': { type: 'text/html', body: await readFile(`${HERE}index.html`, 'utf8') },
    '/app.js': { type: 'text/javascript', body: await buildApp() },
  }
  const server = createServer((request, response) => {
    const file = files[(request.url ?? '/').split('?')[0] ?? '/']
    if (file === undefined) {
      response.writeHead(404).end()
      return
    }
    response.writeHead(200, { 'content-type': `${file.type}; charset=utf-8` }).end(file.body)
  })
  await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', resolve))
  const bound = (server.address() as AddressInfo).port
  return {
    url: `http://127.0.0.1:${bound}`,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => {
          resolve()
        })
      }),
  }
}
