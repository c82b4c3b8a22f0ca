/**
 * The orchestrator's saved snapshot (`persist`) across restarts of the application, a child
 * process, against a real etcd: with etcd down the restarted application's consumers get the
 * restored snapshot at once, and when etcd returns only what changed meanwhile; with etcd up the
 * watch resumes after the saved revision with no Range request at all (etcd's own gRPC counters
 * say so); a spoilt file is reported and the normal resync runs.
 */
import { fork, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest'
import { etcdDelete, etcdPut, startEtcd, type EtcdServer } from '../servers/index.js'
import { rangeCalls } from '../support/etcd.js'
import type { AppInput, AppMessage } from './children/persist-app.js'

const APP = fileURLToPath(new URL('./children/persist-app.ts', import.meta.url))

/** A running application with everything it told so far. */
class App {
  readonly messages: AppMessage[] = []
  readonly #waiters = new Set<() => void>()
  readonly exited: Promise<void>
  constructor(readonly child: ChildProcess) {
    child.on('message', (message: AppMessage) => {
      this.messages.push(message)
      for (const wake of [...this.#waiters]) wake()
    })
    this.exited = new Promise((resolve) => {
      child.on('exit', () => {
        resolve()
      })
    })
  }

  /** The first message (in order) that `test` accepts, waiting for it up to `timeoutMs`. */
  waitFor<M extends AppMessage>(
    what: string,
    test: (message: AppMessage) => message is M,
    timeoutMs = 30_000,
  ): Promise<M> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const found = this.messages.find(test)
        if (found === undefined) return false
        this.#waiters.delete(wake)
        clearTimeout(timer)
        resolve(found)
        return true
      }
      const wake = () => void check()
      const timer = setTimeout(() => {
        this.#waiters.delete(wake)
        reject(
          new Error(
            `timed out waiting for ${what}; the app said: ${JSON.stringify(this.messages)}`,
          ),
        )
      }, timeoutMs)
      if (!check()) this.#waiters.add(wake)
    })
  }

  labels(consumer: string): string[] {
    return this.messages.flatMap((m) =>
      m.type === 'event' && m.consumer === consumer ? [m.label] : [],
    )
  }

  states(): string[] {
    return this.messages.flatMap((m) => (m.type === 'status' ? [m.state] : []))
  }

  /** Waits until it saved a snapshot at `revision` or later. */
  saved(revision: number): Promise<AppMessage> {
    return this.waitFor(
      `a save at revision ${revision}`,
      (m): m is AppMessage => m.type === 'persisted' && BigInt(m.revision) >= BigInt(revision),
    )
  }

  /** SIGKILL: the application dies as in a crash, nothing flushed. */
  async kill(): Promise<void> {
    this.child.kill('SIGKILL')
    await this.exited
  }
}

const apps: App[] = []
function startApp(input: AppInput): App {
  const child = fork(APP, [JSON.stringify(input)], {
    execArgv: ['--conditions=source', '--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  })
  const app = new App(child)
  apps.push(app)
  return app
}

const isEvent =
  (consumer: string, label: string) =>
  (m: AppMessage): m is Extract<AppMessage, { type: 'event' }> =>
    m.type === 'event' && m.consumer === consumer && m.label === label
const isState =
  (state: string) =>
  (m: AppMessage): m is Extract<AppMessage, { type: 'status' }> =>
    m.type === 'status' && m.state === state

let etcd: EtcdServer
/** Another etcd cluster (its own cluster id): a snapshot saved from `etcd` is not its. */
let other: EtcdServer
let dir = ''
let runs = 0
beforeAll(async () => {
  ;[etcd, other] = await Promise.all([startEtcd(), startEtcd()])
  dir = await mkdtemp(join(tmpdir(), 'rx-datasync-persist-etcd-'))
})
afterEach(async () => {
  for (const app of apps.splice(0)) await app.kill()
  if (!etcd.running) await etcd.start()
  if (!other.running) await other.start()
})
afterAll(async () => {
  await etcd?.cleanup()
  await other?.cleanup()
  await rm(dir, { recursive: true, force: true, maxRetries: 5 })
})

/** A fresh key space and snapshot file for one test, with a first application that saved it. */
async function prepared(): Promise<{ input: AppInput; p: string; revision: number }> {
  const p = `persist-${process.pid}-${++runs}/`
  const input: AppInput = {
    endpoints: etcd.endpoints,
    file: join(dir, `run-${runs}.snapshot`),
    prefixes: { a: [`${p}a/`], b: [`${p}b/`] },
  }
  await etcdPut(etcd.clientUrl, `${p}a/1`, 'one')
  await etcdPut(etcd.clientUrl, `${p}a/2`, 'two')
  const revision = await etcdPut(etcd.clientUrl, `${p}b/1`, 'bee')
  const first = startApp(input)
  await first.waitFor('the first resync', isEvent('a', `R(startup) ${p}a/1=one ${p}a/2=two`))
  await first.saved(revision)
  await first.kill()
  return { input, p, revision }
}

describe('persist across application restarts (etcd)', () => {
  it('etcd down: the restored snapshot at once; etcd back: only what changed meanwhile', async () => {
    const { input, p } = await prepared()
    // While the application is down, the data changes; then etcd goes down too.
    await etcdPut(etcd.clientUrl, `${p}a/1`, 'uno')
    await etcdDelete(etcd.clientUrl, `${p}a/2`)
    const changed = await etcdPut(etcd.clientUrl, `${p}b/2`, 'bee2')
    await etcd.stop()

    const app = startApp(input)
    const restored = await app.waitFor(
      'the restored resync',
      isEvent('a', `R(restored) ${p}a/1=one ${p}a/2=two`),
    )
    await app.waitFor('b restored', isEvent('b', `R(restored) ${p}b/1=bee`))
    await app.waitFor('the restored status', isState('restored'))
    // "At once": well before the store's dial timeout (2 s), which etcd being down would cost.
    expect(restored.at).toBeLessThan(2_000)

    await etcd.start()
    await app.waitFor('a: the changes', isEvent('a', `C(live) ${p}a/1:one>uno`))
    await app.waitFor('a: the delete', isEvent('a', `C(live) ${p}a/2:two>x`))
    await app.waitFor('b: the put', isEvent('b', `C(live) ${p}b/2:x>bee2`))
    await app.waitFor('in sync', isState('in-sync'))
    await app.saved(changed)
    // Nothing but the restored snapshot and the differences: no full resync.
    expect(app.labels('a')).toEqual([
      `R(restored) ${p}a/1=one ${p}a/2=two`,
      `C(live) ${p}a/1:one>uno`,
      `C(live) ${p}a/2:two>x`,
    ])
    expect(app.labels('b')).toEqual([`R(restored) ${p}b/1=bee`, `C(live) ${p}b/2:x>bee2`])
    // Restored until etcd answered (degraded on the way, as etcd's status may say), and no
    // round after that: no relist.
    const states = app.states()
    expect(states.slice(0, 4)).toEqual(['idle', 'connecting', 'resyncing', 'restored'])
    expect(states.slice(4).filter((state) => state !== 'degraded')).toEqual(['in-sync'])
  })

  it('etcd up: the watch resumes after the saved revision with no Range request', async () => {
    const { input, p } = await prepared()
    await etcdPut(etcd.clientUrl, `${p}a/3`, 'three')
    const ranges = await rangeCalls(etcd.clientUrl)

    const app = startApp(input)
    await app.waitFor('a: the change', isEvent('a', `C(live) ${p}a/3:x>three`))
    await app.waitFor('in sync', isState('in-sync'))
    expect(await rangeCalls(etcd.clientUrl)).toBe(ranges)
    expect(app.messages.filter((m) => m.type === 'error')).toEqual([])
    expect(app.labels('a')).toEqual([
      `R(restored) ${p}a/1=one ${p}a/2=two`,
      `C(live) ${p}a/3:x>three`,
    ])

    // The control: the same start without the file lists (so the counter does count).
    const control = startApp({ ...input, file: join(dir, `control-${runs}.snapshot`) })
    await control.waitFor(
      'the control resync',
      isEvent('a', `R(startup) ${p}a/1=one ${p}a/2=two ${p}a/3=three`),
    )
    expect(await rangeCalls(etcd.clientUrl)).toBeGreaterThan(ranges)
  })

  it('a spoilt snapshot file is reported, not applied, and the normal resync runs', async () => {
    const { input, p } = await prepared()
    // One byte of the data changed (the key a/1 becomes a/9): the checksum no longer matches.
    const saved = await readFile(input.file)
    const at = saved.indexOf(`${p}a/1`) + `${p}a/`.length
    expect(at).toBeGreaterThan(`${p}a/`.length)
    saved[at] = '9'.charCodeAt(0)
    await writeFile(input.file, saved)
    const app = startApp(input)
    const error = await app.waitFor(
      'the report',
      (m): m is Extract<AppMessage, { type: 'error' }> => m.type === 'error',
    )
    expect(error.name).toBe('SnapshotPersistError')
    expect(error.message).toMatch(/^snapshot file .*run-\d+\.snapshot: checksum: /)
    await app.waitFor('the normal resync', isEvent('a', `R(startup) ${p}a/1=one ${p}a/2=two`))
    expect(app.labels('a')).toEqual([`R(startup) ${p}a/1=one ${p}a/2=two`])
  })
})

describe('persist: a snapshot saved from another etcd cluster', () => {
  /**
   * Writes the other cluster's data under the test's prefix, then other keys until its revision
   * passes the saved one: resuming there after the saved revision would be accepted by etcd and
   * would leave the first cluster's data in the consumers.
   */
  async function otherData(p: string, savedAt: number): Promise<void> {
    await etcdPut(other.clientUrl, `${p}a/1`, 'B-one')
    let revision = await etcdPut(other.clientUrl, `${p}b/9`, 'B-nine')
    while (revision <= savedAt + 1) {
      revision = await etcdPut(other.clientUrl, `filler-${process.pid}/${revision}`, 'x')
    }
  }
  const isError = (m: AppMessage): m is Extract<AppMessage, { type: 'error' }> => m.type === 'error'

  it('is reported (identity) and not applied: the consumers hold the other cluster data', async () => {
    const { input, p, revision } = await prepared()
    await otherData(p, revision)
    const ranges = await rangeCalls(other.clientUrl)

    const app = startApp({ ...input, endpoints: other.endpoints })
    const error = await app.waitFor('the report', isError)
    expect(error.name).toBe('SnapshotPersistError')
    expect(error.message).toMatch(
      /^snapshot file .*run-\d+\.snapshot: identity: saved from etcd cluster \d+, but the store is etcd cluster \d+ \(its revisions say nothing about the other's\); not applied/,
    )
    await app.waitFor('a: the resync', isEvent('a', `R(startup) ${p}a/1=B-one`))
    await app.waitFor('b: the resync', isEvent('b', `R(startup) ${p}b/9=B-nine`))
    await app.waitFor('in sync', isState('in-sync'))
    // A full list of the other cluster, nothing of the first.
    expect(await rangeCalls(other.clientUrl)).toBeGreaterThan(ranges)
    expect(app.labels('a')).toEqual([`R(startup) ${p}a/1=B-one`])
    expect(app.labels('b')).toEqual([`R(startup) ${p}b/9=B-nine`])
    expect(app.messages.filter(isError)).toHaveLength(1)
  })

  it('down at start: the snapshot at once; when it comes up, a full resync replaces it', async () => {
    const { input, p, revision } = await prepared()
    await otherData(p, revision)
    await other.stop()

    const app = startApp({ ...input, endpoints: other.endpoints })
    const restored = await app.waitFor(
      'the restored resync',
      isEvent('a', `R(restored) ${p}a/1=one ${p}a/2=two`),
    )
    await app.waitFor('b restored', isEvent('b', `R(restored) ${p}b/1=bee`))
    await app.waitFor('the restored status', isState('restored'))
    expect(restored.at).toBeLessThan(2_000)
    expect(app.messages.filter(isError)).toEqual([])

    await other.start()
    const error = await app.waitFor('the report', isError)
    expect(error.message).toContain('identity: saved from etcd cluster ')
    expect(error.message).toContain(
      '; the data restored while the store could not be reached is replaced',
    )
    await app.waitFor('a: the full resync', isEvent('a', `R(startup) ${p}a/1=B-one`))
    await app.waitFor('b: the full resync', isEvent('b', `R(startup) ${p}b/9=B-nine`))
    await app.waitFor(
      'in sync',
      (m): m is AppMessage => isState('in-sync')(m) && m.at > restored.at,
    )
    await app.saved(0)
    // Each consumer's last resync is the whole of its part of the other cluster: a/2 and b/1,
    // which only the first cluster had, are gone from the views.
    expect(app.labels('a')).toEqual([
      `R(restored) ${p}a/1=one ${p}a/2=two`,
      `R(startup) ${p}a/1=B-one`,
    ])
    expect(app.labels('b')).toEqual([`R(restored) ${p}b/1=bee`, `R(startup) ${p}b/9=B-nine`])
    // Never in sync while it held the first cluster's data.
    const states = app.states().filter((state) => state !== 'degraded')
    expect(states).toEqual(['idle', 'connecting', 'resyncing', 'restored', 'resyncing', 'in-sync'])
  })
})
