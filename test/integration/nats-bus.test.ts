/**
 * The bus round trip on real servers: changes written to etcd, published by a sink (a watch of
 * etcd piped through `createNatsSink().publish()`) to a JetStream stream, consumed by a second
 * process (test/integration/children/nats-bus-applier.ts: a stream source under a datasync whose
 * consumer appends what it applies to a log). The second process is killed (-9) mid-stream and
 * started again: at the end the log rebuilds exactly etcd's state (nothing lost), and no change
 * revision is in it twice (nothing applied twice).
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import os from 'node:os'
import path from 'node:path'
import { jetstreamManager } from '@nats-io/jetstream'
import { lastValueFrom, type Subscription } from 'rxjs'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createEtcdStore, type EtcdStore } from '../../src/backends/etcd/index.js'
import { createNatsSink, type NatsSink } from '../../src/backends/nats/index.js'
import { string } from '../../src/index.js'
import { pollUntil, startEtcd, type EtcdServer } from '../servers/index.js'
import { natsConnect, startNats, type NatsServer } from '../servers/nats.js'

const text = string()
const CHILD = path.join(import.meta.dirname, 'children', 'nats-bus-applier.ts')
const STREAM = 'bus_round_trip'
const SUBJECTS = 'bus.changes'

/** The state the log's lines build, and the change revisions in it. */
function replay(log: string): { state: Map<string, string>; changeRevisions: string[] } {
  const state = new Map<string, string>()
  const changeRevisions: string[] = []
  let snapshotAt: string | undefined
  for (const line of log.split('\n')) {
    if (line === '') continue
    const [kind = '', rev = '', key = '', ...rest] = line.split(' ')
    if (kind === 'S') {
      // A new resync replaces everything held.
      if (snapshotAt !== rev) state.clear()
      snapshotAt = rev
      state.set(key, rest.join(' '))
    } else {
      snapshotAt = undefined
      changeRevisions.push(rev)
      if (rest[0] === 'put') state.set(key, rest.slice(1).join(' '))
      else state.delete(key)
    }
  }
  return { state, changeRevisions }
}

describe(
  'nats bus: etcd -> sink -> stream -> source -> a second process',
  { timeout: 240_000 },
  () => {
    let etcd: EtcdServer | undefined
    let nats: NatsServer | undefined
    let dir: string
    beforeAll(async () => {
      ;[etcd, nats] = await Promise.all([startEtcd(), startNats()])
      dir = await mkdtemp(path.join(os.tmpdir(), 'rx-datasync-nats-bus-'))
    }, 180_000)
    afterAll(async () => {
      await Promise.all([etcd?.cleanup(), nats?.cleanup()])
      await rm(dir, { recursive: true, force: true })
    })

    it('a consumer killed mid-stream and restarted: nothing lost, nothing applied twice', async () => {
      if (etcd === undefined || nats === undefined) throw new Error('the servers did not start')
      const log = path.join(dir, 'applied.log')
      const store: EtcdStore = createEtcdStore({ endpoints: etcd.endpoints })
      const sink: NatsSink = createNatsSink({
        servers: nats.url,
        stream: STREAM,
        subjectPrefix: SUBJECTS,
        createStream: true,
      })
      const children: ChildProcess[] = []
      const startChild = async () => {
        const child = spawn(
          process.execPath,
          ['--import', 'tsx', CHILD, nats!.url, STREAM, SUBJECTS, log],
          { stdio: ['ignore', 'pipe', 'pipe'] },
        )
        children.push(child)
        let output = ''
        child.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()))
        child.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()))
        await pollUntil(() => output.includes('ready') || undefined, {
          timeoutMs: 60_000,
          description: `the applier to be in sync (output: ${output})`,
        })
        return child
      }
      const lines = async () => (await readFile(log, 'utf8').catch(() => '')).split('\n').length - 1
      const put = (key: string, value: string) =>
        lastValueFrom(store.put(key, text.encode(value)), { defaultValue: undefined })
      let publishing: Subscription | undefined
      try {
        for (let i = 0; i < 10; i++) await put(`bus/${i}`, `v0-${i}`)
        publishing = store.watch(['bus/']).pipe(sink.publish()).subscribe()
        const first = await startChild()
        const writes = async (round: number, count: number) => {
          for (let i = 0; i < count; i++) {
            const key = `bus/${(i * 7) % 30}`
            if (i % 11 === 10) await lastValueFrom(store.delete(key))
            else await put(key, `v${round}-${i}`)
          }
        }
        const running = writes(1, 300)
        await pollUntil(async () => (await lines()) >= 60 || undefined, {
          timeoutMs: 60_000,
          description: 'the applier to apply some changes',
        })
        first.kill('SIGKILL')
        await running
        await writes(2, 100)
        await startChild()
        await writes(3, 50)
        const expected = new Map(
          (await lastValueFrom(store.list('bus/'))).map((item) => [
            item.key,
            text.decode(item.value),
          ]),
        )
        await pollUntil(
          async () => {
            const { state } = replay(await readFile(log, 'utf8'))
            return (
              state.size === expected.size &&
              [...expected].every(([key, value]) => state.get(key) === value)
            )
          },
          { timeoutMs: 60_000, description: 'the applied log to hold etcd state' },
        )
        const { changeRevisions } = replay(await readFile(log, 'utf8'))
        expect(changeRevisions.length).toBeGreaterThan(0)
        expect(new Set(changeRevisions).size).toBe(changeRevisions.length)
        // The stream was acknowledged after the consumer applied: the ack floor reaches the end.
        const admin = await natsConnect([nats.url])
        try {
          const jsm = await jetstreamManager(admin)
          const last = (await jsm.streams.info(STREAM)).state.last_seq
          await pollUntil(
            async () =>
              (await jsm.consumers.info(STREAM, 'applier')).ack_floor.stream_seq === last ||
              undefined,
            { timeoutMs: 30_000, description: 'the applier to acknowledge every message' },
          )
        } finally {
          await admin.close()
        }
      } finally {
        publishing?.unsubscribe()
        for (const child of children) child.kill('SIGKILL')
        await sink.close()
        await store.close()
      }
    })
  },
)
