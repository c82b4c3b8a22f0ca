/**
 * The probe handler mounted in servers the application already runs (node:http, Express,
 * fastify), the Kubernetes paths, and the SIGTERM sequence of onShutdown in a real process.
 */
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import express from 'express'
import Fastify from 'fastify'
import { afterEach, describe, expect, it } from 'vitest'
import {
  createHealth,
  createHealthHandler,
  createMetrics,
  type CheckResult,
  type HealthHandler,
} from '../../src/health/index.js'
import { httpRequest, pollUntil } from '../servers/index.js'

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup()
})

/** A health whose one check answers what `state.result` holds. */
function controlled() {
  const state: { result: CheckResult } = { result: { state: 'ok' } }
  const health = createHealth({ checkInterval: '50ms' }).addCheck('db', () => state.result)
  const probes = createHealthHandler({ health, metrics: createMetrics() })
  cleanups.push(() => {
    probes.close()
  })
  return { state, probes }
}

async function listen(server: Server): Promise<string> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanups.push(() => new Promise((resolve) => server.close(resolve)))
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`
}

function statusOf(url: string) {
  return httpRequest(url).then((response) => response.status)
}

/** Polls until `url` answers `status`. */
function until(url: string, status: number) {
  return pollUntil(async () => ((await statusOf(url)) === status ? true : undefined), {
    timeoutMs: 10_000,
    description: `${url} to answer ${status}`,
  })
}

describe('createHealthHandler', () => {
  it('answers the Go and the Kubernetes paths from a plain node:http server', async () => {
    const { state, probes } = controlled()
    const base = await listen(
      createServer((request, response) => {
        if (request.url === '/api') response.end('api')
        else probes(request, response)
      }),
    )
    await until(`${base}/readyz`, 200)
    for (const path of ['/readiness', '/readyz', '/liveness', '/livez']) {
      const answer = await httpRequest(`${base}${path}`)
      expect(answer.status, path).toBe(200)
      expect(JSON.parse(answer.body), path).toMatchObject({
        ready: true,
        live: true,
        components: { db: { state: 'ok' } },
      })
    }
    expect((await httpRequest(`${base}/api`)).body).toBe('api')
    const missing = await httpRequest(`${base}/nope`)
    expect(missing.status).toBe(404)
    expect(missing.body).toContain('/readiness, /readyz, /liveness, /livez, /metrics')
    expect((await httpRequest(`${base}/readyz`, { method: 'POST' })).status).toBe(405)

    state.result = { state: 'degraded', error: 'slow' }
    await until(`${base}/readyz`, 503)
    expect(await statusOf(`${base}/readiness`)).toBe(503)
    expect(await statusOf(`${base}/livez`)).toBe(200)
  })

  it('is Express middleware: mounted under a path, other paths go on to the next handler', async () => {
    const { probes } = controlled()
    const app = express()
    app.use('/health', probes)
    app.get('/health/version', (_request, response) => {
      response.send('1.0')
    })
    const base = await listen(createServer(app))
    await until(`${base}/health/readyz`, 200)
    expect(await statusOf(`${base}/health/livez`)).toBe(200)
    const metrics = await httpRequest(`${base}/health/metrics`)
    expect(metrics.status).toBe(200)
    expect(metrics.headers['content-type']).toContain('text/plain')
    expect((await httpRequest(`${base}/health/version`)).body).toBe('1.0')
    // Express's own 404, not the handler's: the request went on.
    const other = await httpRequest(`${base}/health/other`)
    expect(other.status).toBe(404)
    expect(other.body).not.toContain('this server answers')
  })

  it('serves from fastify routes given the raw request and reply', async () => {
    const { probes } = controlled()
    const fastify = Fastify()
    const mount = (path: string, handler: HealthHandler) => {
      fastify.get(path, (request, reply) => {
        reply.hijack()
        handler(request.raw, reply.raw)
      })
    }
    for (const path of ['/readyz', '/livez', '/metrics']) mount(path, probes)
    await fastify.listen({ port: 0, host: '127.0.0.1' })
    cleanups.push(() => fastify.close())
    const base = `http://127.0.0.1:${(fastify.server.address() as AddressInfo).port}`
    await until(`${base}/readyz`, 200)
    expect(JSON.parse((await httpRequest(`${base}/livez`)).body)).toMatchObject({ live: true })
    expect((await httpRequest(`${base}/metrics`)).body).toContain('# TYPE')
  })

  it('drain() turns readiness off and leaves liveness alone', async () => {
    const { probes } = controlled()
    const base = await listen(createServer(probes))
    await until(`${base}/readyz`, 200)
    probes.drain()
    expect(probes.draining).toBe(true)
    const ready = await httpRequest(`${base}/readyz`)
    expect(ready.status).toBe(503)
    expect(JSON.parse(ready.body)).toMatchObject({ ready: false, draining: true })
    expect(await statusOf(`${base}/livez`)).toBe(200)
  })
})

describe('onShutdown', () => {
  it('on SIGTERM: readiness off at once, liveness on, stop after the grace, then exit 0', async () => {
    const work = await mkdtemp(join(tmpdir(), 'rx-datasync-shutdown-'))
    cleanups.push(() => rm(work, { recursive: true, force: true }))
    const health = fileURLToPath(new URL('../../src/health/index.ts', import.meta.url))
    const script = join(work, 'app.mts')
    await writeFile(
      script,
      `import { createHealth, onShutdown, serveHealth } from ${JSON.stringify(health)}
const server = await serveHealth({ health: createHealth(), port: 0, host: '127.0.0.1' })
onShutdown(server, {
  grace: '3s',
  stop: async () => {
    process.stdout.write('stopping\\n')
    await server.close()
  },
})
process.stdout.write(\`listening \${server.url}\\n\`)
`,
    )
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      cwd: fileURLToPath(new URL('../../', import.meta.url)),
      stdio: ['ignore', 'pipe', 'pipe'],
      timeout: 60_000,
      killSignal: 'SIGKILL',
    })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => (stdout += chunk))
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (stderr += chunk))
    const exited = once(child, 'exit') as Promise<[number | null, string | null]>
    cleanups.push(() => child.kill('SIGKILL'))
    const url = await pollUntil(() => /listening (\S+)/.exec(stdout)?.[1], {
      timeoutMs: 30_000,
      description: `the app to listen (stderr: ${stderr})`,
    })
    await until(`${url}/readyz`, 200)

    child.kill('SIGTERM')
    const drained = await until(`${url}/readyz`, 503)
    expect(drained).toBe(true)
    expect(await statusOf(`${url}/livez`)).toBe(200)
    // Still serving during the grace: stop has not run.
    expect(stdout).not.toContain('stopping')
    const [code] = await exited
    expect(code).toBe(0)
    expect(stdout).toContain('stopping')
  })
})
