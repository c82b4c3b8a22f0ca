/**
 * A regression the chaos run found (postgres, seed 24 of `npm run chaos`): PostgreSQL killed with
 * kill -9 while the store's pooled connections were busy, connecting or being given back ended
 * the whole process with an unhandled 'error' event ("terminating connection due to unexpected
 * postmaster exit"), since pg-pool leaves a client without an error listener at those moments.
 * The pool's clients now ignore the event (the error still fails their next query).
 */
import { lastValueFrom, timeout } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createPostgresStore } from '../../src/backends/postgres/index.js'
import { startPostgres, type PostgresServer } from '../servers/postgres.js'
import { runBackend } from '../chaos/report.js'
import { postgresTarget } from '../chaos/targets/postgres.js'

const enc = new TextEncoder()
const hold = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms))

describe('chaos regression: postgres killed under load', () => {
  let server: PostgresServer | undefined
  beforeAll(async () => {
    server = await startPostgres()
  }, 120_000)
  afterAll(async () => {
    await server?.cleanup()
  }, 120_000)

  it(
    'kill -9 while writes are in flight, some cancelled: the process lives, the store recovers',
    { timeout: 120_000 },
    async () => {
      const pg = server!
      const store = createPostgresStore(pg.connection())
      const uncaught: unknown[] = []
      const onUncaught = (error: unknown) => uncaught.push(error)
      process.on('uncaughtException', onUncaught)
      try {
        for (let round = 0; round < 3; round++) {
          let stop = false
          let written = 0
          const workers = Array.from({ length: 8 }, async (_, w) => {
            for (let i = 0; !stop; i++) {
              // Every third put is cancelled after 3 ms: its connection is given back broken.
              await lastValueFrom(
                store.put(`k/${w}`, enc.encode(String(i))).pipe(timeout(i % 3 === 0 ? 3 : 2_000)),
              ).then(
                () => (written += 1),
                () => undefined,
              )
            }
          })
          // The fault's own timing (how long writes run, how long the server stays down), as
          // in the chaos run: not a wait for an event.
          await hold(300)
          await pg.kill()
          await hold(200)
          await pg.restart()
          await hold(300)
          stop = true
          expect(written).toBeGreaterThan(0)
          await Promise.all(workers)
        }
        await lastValueFrom(store.put('k/last', enc.encode('after')))
        const got = await lastValueFrom(store.get('k/last'))
        expect(new TextDecoder().decode(got!.value)).toBe('after')
        expect(uncaught).toEqual([])
      } finally {
        process.off('uncaughtException', onUncaught)
        await store.close()
      }
    },
  )

  it('chaos seeds 22 and 24 keep every promise', { timeout: 180_000 }, async () => {
    const lines: string[] = []
    const summary = await runBackend(postgresTarget(), [22, 24], {
      activityMs: 1500,
      convergeMs: 30_000,
      log: (line) => lines.push(line),
    })
    expect(summary.aborted).toBeUndefined()
    expect(lines.filter((line) => line.includes('VIOLATION'))).toEqual([])
    expect(summary.violations).toBe(0)
  })
})
