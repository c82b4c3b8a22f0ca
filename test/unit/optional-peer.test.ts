import { readFileSync } from 'node:fs'
import { describe, expect, it } from 'vitest'
import { DatasyncError } from 'rx-datasync'
import { MissingPeerError, OPTIONAL_PEERS, requirePeer } from '../../src/internal/optional-peer.js'

const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as {
  peerDependencies: Record<string, string>
  peerDependenciesMeta: Record<string, { optional?: boolean }>
}

describe('optional peer dependencies', () => {
  it('names the same version ranges as package.json', () => {
    for (const [name, range] of Object.entries(OPTIONAL_PEERS)) {
      expect(pkg.peerDependencies[name], name).toBe(range)
      expect(pkg.peerDependenciesMeta[name]?.optional, name).toBe(true)
    }
    // Every optional client is in the table (prom-client has its own loader in src/health).
    const optional = Object.keys(pkg.peerDependenciesMeta).filter(
      (name) => pkg.peerDependenciesMeta[name]?.optional === true && name !== 'prom-client',
    )
    expect(Object.keys(OPTIONAL_PEERS).sort()).toEqual(optional.sort())
  })

  it('a missing client fails with what to install, as a config error', () => {
    let caught: unknown
    try {
      requirePeer('rx-datasync-no-such-client', 'rx-datasync/nowhere')
    } catch (error) {
      caught = error
    }
    expect(caught).toBeInstanceOf(MissingPeerError)
    expect(caught).toBeInstanceOf(DatasyncError)
    const error = caught as MissingPeerError
    expect(error.code).toBe('config')
    expect(error.packageName).toBe('rx-datasync-no-such-client')
    expect(error.message).toBe(
      'rx-datasync/nowhere needs the rx-datasync-no-such-client client, which is not installed: run `npm install rx-datasync-no-such-client` (an optional peer dependency of rx-datasync)',
    )
  })

  it('the message carries the declared range of a known client', () => {
    const error = new MissingPeerError('etcd3', 'rx-datasync/etcd', undefined)
    expect(error.message).toContain('run `npm install etcd3`')
    expect(error.message).toContain('version ~1.1.2')
  })

  it('loads an installed client as the same instance an import gives', async () => {
    const required = requirePeer('ioredis', 'rx-datasync/redis') as typeof import('ioredis')
    const imported = await import('ioredis')
    expect(required.Redis).toBe(imported.Redis)
    const chokidar = requirePeer('chokidar', 'rx-datasync/filedb') as typeof import('chokidar')
    expect(chokidar.FSWatcher).toBe((await import('chokidar')).FSWatcher)
    const pg = requirePeer('pg', 'rx-datasync/postgres') as typeof import('pg')
    expect(pg.Client).toBe((await import('pg')).default.Client)
  })

  it('the postgres backend loads pg only through requirePeer', async () => {
    const dir = new URL('../../src/backends/postgres/', import.meta.url)
    const { readdirSync } = await import('node:fs')
    for (const file of readdirSync(dir).filter((name) => name.endsWith('.ts'))) {
      const text = readFileSync(new URL(file, dir), 'utf8')
      const runtime = /^import (?!type )[^\n]*from 'pg'/m.exec(text)
      expect(runtime?.[0], file).toBeUndefined()
    }
    const { Client, Pool } = await import('../../src/backends/postgres/pg.js')
    const imported = (await import('pg')).default
    expect(Client).toBe(imported.Client)
    expect(Pool).toBe(imported.Pool)
    expect(new MissingPeerError('pg', 'rx-datasync/postgres', undefined).message).toContain(
      'run `npm install pg` (an optional peer dependency of rx-datasync, version ^8.11.0)',
    )
  })
})
