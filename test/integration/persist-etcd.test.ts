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
let dir = ''
let runs = 0
beforeAll(async () => {
  etcd = await startEtcd()
  dir = await mkdtemp(join(tmpdir(), 'rx-datasync-persist-etcd-'))
})
afterEach(async () => {
  for (const app of apps.splice(0)) await app.kill()
  if (!etcd.running) await etcd.start()
})
afterAll(async () => {
  await etcd?.cleanup()
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
    const saved = await readFile(input.file, 'utf8')
    await writeFile(input.file, saved.replace(`"${p}a/1","`, `"${p}a/9","`))
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
