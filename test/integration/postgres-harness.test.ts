import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startPostgres, type PostgresServer } from '../servers/postgres.js'

describe('postgres harness', { timeout: 120_000 }, () => {
  let server: PostgresServer
  beforeAll(async () => {
    server = await startPostgres()
  }, 120_000)
  afterAll(async () => {
    await server.cleanup()
  })

  it('runs its own server, keeps data across kill -9 and a restart, pauses and resumes', async () => {
    expect(server.port).not.toBe(5432)
    await server.query('CREATE TABLE t (k text PRIMARY KEY)')
    await server.query("INSERT INTO t VALUES ('a')")
    await server.kill()
    expect(server.running).toBe(false)
    await server.start()
    expect(await server.query('SELECT k FROM t')).toEqual([{ k: 'a' }])
    await server.pause()
    server.resume()
    expect(await server.query('SELECT count(*)::int AS n FROM t')).toEqual([{ n: 1 }])
    await server.stop()
    await server.restart()
    expect(await server.query('SELECT k FROM t')).toEqual([{ k: 'a' }])
  })
})
