import { readFileSync } from 'node:fs'
import { once } from 'node:events'
import { createConnection, createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createMemoryStore, type Capabilities, type KvStore } from 'rx-datasync'
import { createConsulStore } from 'rx-datasync/consul'
import { createEtcdStore } from 'rx-datasync/etcd'
import { createFileStore } from 'rx-datasync/filedb'
import { createHttpStore } from 'rx-datasync/http-client'
import { createNatsStore } from 'rx-datasync/nats'
import { createPostgresStore } from 'rx-datasync/postgres'
import { createRedisStore } from 'rx-datasync/redis'

// The README's "Choose a backend" table is checked against each store's real `capabilities`.
// Each store is built against a loopback listener that only counts connections: building and
// closing a store must not connect (stores are cold), so the listener sees our own probe only.

const CAPABILITY_NAMES: readonly (keyof Capabilities)[] = [
  'write',
  'txn',
  'ttl',
  'nativePrev',
  'resumable',
  'atomicPrefixDelete',
]

interface Row {
  readonly store: string
  readonly cells: Readonly<Record<string, string>>
}

/** The rows of the table under the README heading `### Choose a backend`. */
function readmeTable(): Row[] {
  const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')
  const start = readme.indexOf('\n### Choose a backend\n')
  expect(start, 'README heading "### Choose a backend"').toBeGreaterThan(0)
  const lines = readme.slice(start).split('\n')
  const first = lines.findIndex((line) => line.startsWith('|'))
  const table: string[] = []
  for (const line of lines.slice(first)) {
    if (!line.startsWith('|')) break
    table.push(line)
  }
  const split = (line: string) =>
    line
      .slice(1, -1)
      .split('|')
      .map((cell) => cell.trim())
  const header = split(table[0] ?? '')
  expect(table[1], 'the separator row').toMatch(/^\|[\s:|-]+\|$/)
  return table.slice(2).map((line) => {
    const values = split(line)
    const cells = Object.fromEntries(header.map((name, i) => [name, values[i] ?? '']))
    const store = /^`([a-z]+)`$/.exec(cells.store ?? '')?.[1]
    expect(store, `store cell of ${line}`).toBeDefined()
    return { store: store as string, cells }
  })
}

/** A loopback listener that counts the connections it accepted. */
interface Counter {
  readonly port: number
  accepted: number
  /** The client ports of the accepted connections. */
  readonly peers: Set<number>
  readonly server: Server
}

async function listen(): Promise<Counter> {
  const server = createServer((socket) => {
    counter.accepted++
    counter.peers.add(socket.remotePort ?? 0)
    socket.destroy()
  })
  const counter: Counter = { port: 0, accepted: 0, peers: new Set(), server }
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const address = server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return Object.assign(counter, { port: address.port })
}

/** Connects once and waits until the listener accepted it: what came before is counted too. */
async function probe(counter: Counter): Promise<void> {
  const socket = createConnection(counter.port, '127.0.0.1')
  await once(socket, 'connect')
  const port = socket.localPort ?? 0
  while (!counter.peers.has(port)) await once(counter.server, 'connection')
  socket.destroy()
}

const FACTORIES: Record<string, (port: number) => KvStore> = {
  memory: () => createMemoryStore(),
  etcd: (port) => createEtcdStore({ endpoints: [`127.0.0.1:${port}`] }),
  redis: (port) => createRedisStore({ node: { host: '127.0.0.1', port } }),
  consul: (port) => createConsulStore({ address: `127.0.0.1:${port}` }),
  filedb: () => createFileStore({ paths: [join(tmpdir(), 'rx-datasync-backend-table-none')] }),
  nats: (port) => createNatsStore({ servers: `nats://127.0.0.1:${port}` }),
  postgres: (port) => createPostgresStore({ host: '127.0.0.1', port }),
  http: (port) => createHttpStore(`http://127.0.0.1:${port}`),
}

describe('README "Choose a backend" table', () => {
  let counter: Counter
  beforeAll(async () => {
    counter = await listen()
  })
  afterAll(async () => {
    counter.server.close()
    await once(counter.server, 'close')
  })

  it('has one row per store, with every capability as a column', () => {
    const rows = readmeTable()
    expect(rows.map((row) => row.store).sort()).toEqual(Object.keys(FACTORIES).sort())
    for (const row of rows) {
      for (const name of CAPABILITY_NAMES)
        expect(row.cells[name], `${row.store}.${name}`).toMatch(/^(yes|no)$/)
      expect(row.cells['when to pick it']?.length, `${row.store}: when to pick it`).toBeGreaterThan(
        20,
      )
    }
  })

  for (const [name, create] of Object.entries(FACTORIES)) {
    it(`${name}: the row matches its capabilities; building it does not connect`, async () => {
      const row = readmeTable().find((r) => r.store === name)
      expect(row, `README row for ${name}`).toBeDefined()
      const accepted = counter.accepted
      const store = create(counter.port)
      const actual = Object.fromEntries(
        Object.entries(store.capabilities).map(([key, value]) => [key, value ? 'yes' : 'no']),
      )
      expect(Object.keys(actual).sort()).toEqual([...CAPABILITY_NAMES].sort())
      const documented = Object.fromEntries(CAPABILITY_NAMES.map((key) => [key, row?.cells[key]]))
      expect(documented).toEqual(actual)
      await store.close()
      await probe(counter)
      expect(counter.accepted - accepted, `${name} connected while cold`).toBe(1)
    })
  }
})
