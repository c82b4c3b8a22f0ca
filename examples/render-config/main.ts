// A confd / consul-template job on rx-datasync: a consumer renders a config file from the keys it
// holds, debounced (batchQuiet), and an HTTP handler writes a key and answers only once the file
// has been rendered with it (write and wait). No server needed: the embedded store is used.
// Run it with `npm run example:render`.
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { filter, firstValueFrom, lastValueFrom } from 'rxjs'
import { batchQuiet, createDatasync, createMemoryStore, handleEvents, json } from 'rx-datasync'

interface Upstream {
  readonly host: string
  readonly port: number
}

const upstream = json<Upstream>()
const store = createMemoryStore({
  initial: {
    'upstreams/api-1': upstream.encode({ host: '10.0.0.1', port: 8080 }),
    'upstreams/api-2': upstream.encode({ host: '10.0.0.2', port: 8080 }),
  },
})
const sync = createDatasync(store, { ackTimeout: '5s' })
const upstreams = sync.register('nginx', {
  prefixes: ['upstreams/'],
  codec: upstream,
  // Hand over up to 100 unacknowledged events: batchQuiet merges them into one render.
  maxInFlight: 100,
})

const dir = await mkdtemp(join(tmpdir(), 'rx-datasync-render-'))
const file = join(dir, 'upstreams.conf')
let renders = 0

/** Renders the whole file from what the consumer holds now (its view includes the event). */
async function render(): Promise<void> {
  const servers = [...upstreams.view().values()]
    .map(({ value }) => `    server ${value.host}:${value.port};`)
    .join('\n')
  await writeFile(file, `upstream api {\n${servers}\n}\n`)
  renders++
}

// Events within 50 ms of each other (at most 500 ms) become one render; handleEvents acknowledges
// the merged event (and so every event in it) when the file is written, or with the error.
upstreams.events$
  .pipe(
    batchQuiet({ min: '50ms', max: '500ms' }),
    handleEvents(async (event) => {
      await render()
      console.log(`rendered (${event.kind}, ${event.reason}), ${upstreams.view().size} upstreams`)
    }),
  )
  .subscribe()

// PUT /upstreams/<name> with a JSON body writes the key and answers when the file has it.
const server = createServer((request, response) => {
  const chunks: Buffer[] = []
  request.on('data', (chunk: Buffer) => chunks.push(chunk))
  request.on('end', () => {
    const key = (request.url ?? '').slice(1)
    const value = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Upstream
    sync.commit([{ op: 'put', key, value: upstream.encode(value) }], { timeout: '5s' }).subscribe({
      next: (result) => {
        const failed = result.consumers.filter((outcome) => outcome.error !== undefined)
        response.writeHead(failed.length === 0 ? 200 : 502, { 'content-type': 'application/json' })
        response.end(
          JSON.stringify({
            revision: result.revision.toString(),
            appliedBy: result.consumers.map((outcome) => outcome.consumer),
            errors: failed.map((outcome) => outcome.error?.message),
          }),
        )
      },
      error: (error: unknown) => {
        response.writeHead(500).end(String(error))
      },
    })
  })
})
server.listen(0, '127.0.0.1')
await new Promise((resolve) => server.once('listening', resolve))
const { port } = server.address() as AddressInfo

sync.start()
await firstValueFrom(sync.status$.pipe(filter((status) => status.state === 'in-sync')))

// Three writes in a burst: one render for all of them.
await lastValueFrom(store.put('upstreams/api-3', upstream.encode({ host: '10.0.0.3', port: 8080 })))
await lastValueFrom(store.put('upstreams/api-4', upstream.encode({ host: '10.0.0.4', port: 8080 })))
await lastValueFrom(store.delete('upstreams/api-1'))

// Write and wait, over HTTP: the answer comes after the file was rendered with the new upstream.
const answer = await fetch(`http://127.0.0.1:${port}/upstreams/api-5`, {
  method: 'PUT',
  body: JSON.stringify({ host: '10.0.0.5', port: 9090 }),
})
console.log(`PUT /upstreams/api-5 -> ${answer.status} ${await answer.text()}`)
const rendered = await readFile(file, 'utf8')
console.log(`${file} (${renders} renders):\n${rendered}`)
if (!rendered.includes('10.0.0.5:9090')) throw new Error('the answer came before the render')

server.close()
sync.close()
await store.close()
await rm(dir, { recursive: true, force: true })
