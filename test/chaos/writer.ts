/**
 * The chaos writer: one operation at a time (so the order it issues writes in is their commit
 * order per key), drawn from the schedule's seed: puts, deletes, prefix deletes, transactions
 * (with a condition now and then) and TTL puts where the store claims them. Each write is put in
 * the history before it is issued.
 */
import { lastValueFrom, timeout, type Observable } from 'rxjs'
import type { KvStore, TxnCondition, TxnOp } from '../../src/index.js'
import { Random } from '../conformance/random.js'
import { AREAS, KEYS } from './schedule.js'
import type { Entry, History } from './history.js'

const encoder = new TextEncoder()
const OP_TIMEOUT_MS = 5_000

export class ChaosWriter {
  readonly random: Random
  ops = 0
  failures = 0
  /** The messages of failures that no fault explains (a refused operation): a harness bug. */
  readonly refusals: string[] = []
  private counter = 0
  private ttlCounter = 0
  private gate: Promise<void> | undefined
  private openGate: (() => void) | undefined
  private inFlight: Promise<void> = Promise.resolve()

  constructor(
    private readonly store: KvStore,
    private readonly history: History,
    private readonly root: string,
    seed: number,
  ) {
    this.random = new Random((seed * 2654435761) >>> 0)
  }

  /** Runs until `until()` says stop, pausing up to `gapMs` between operations. */
  async run(until: () => boolean, gapMs: number): Promise<void> {
    while (!until()) {
      if (this.gate !== undefined) await this.gate
      this.inFlight = this.step()
      await this.inFlight
      const gap = this.random.int(gapMs + 1)
      if (gap > 0) await new Promise((resolve) => setTimeout(resolve, gap))
    }
  }

  async pause(): Promise<void> {
    if (this.gate === undefined) this.gate = new Promise((resolve) => (this.openGate = resolve))
    await this.inFlight
  }

  resume(): void {
    this.openGate?.()
    this.gate = undefined
    this.openGate = undefined
  }

  private value(): string {
    return `v${this.counter++}`
  }

  private key(): string {
    return this.root + this.random.pick(KEYS)
  }

  private async step(): Promise<void> {
    const caps = this.store.capabilities
    const roll = this.random.next()
    let entries: Entry[] = []
    let work: () => Promise<boolean>
    if (roll < 0.5) {
      const key = this.key()
      const value = this.value()
      entries = this.history.put(key, value)
      work = () => this.done(this.store.put(key, encoder.encode(value)))
    } else if (roll < 0.65) {
      const key = this.key()
      entries = this.history.del(key)
      work = () => this.done(this.store.delete(key))
    } else if (roll < 0.72) {
      const prefix = this.root + this.random.pick(AREAS)
      entries = this.history.delPrefix(prefix)
      work = () => this.done(this.store.delete(prefix, { prefix: true }))
    } else if (roll < 0.9 && caps.txn) {
      const ops: TxnOp<Uint8Array>[] = []
      const used = new Set<string>()
      const size = 2 + this.random.int(2)
      for (let i = 0; i < size; i++) {
        const key = this.key()
        if (used.has(key)) continue
        used.add(key)
        if (this.random.chance(0.7)) {
          const value = this.value()
          entries.push(...this.history.put(key, value, 'txn put'))
          ops.push({ op: 'put', key, value: encoder.encode(value) })
        } else {
          entries.push(...this.history.del(key, 'txn delete'))
          ops.push({ op: 'delete', key })
        }
      }
      const conditions: TxnCondition<Uint8Array>[] = this.random.chance(0.3)
        ? [{ key: this.key(), exists: this.random.chance(0.5) }]
        : []
      work = async () => {
        const result = await lastValueFrom(
          this.store.txn(ops, { conditions }).pipe(timeout(OP_TIMEOUT_MS)),
        )
        return result.succeeded
      }
    } else if (caps.ttl) {
      const key = `${this.root}t/${this.ttlCounter++}`
      const value = this.value()
      entries = this.history.put(key, value, 'ttl put')
      entries.push(...this.history.del(key, 'ttl expiry'))
      work = () =>
        this.done(this.store.put(key, encoder.encode(value), { ttl: `${1 + this.random.int(2)}s` }))
    } else {
      const key = this.key()
      const value = this.value()
      entries = this.history.put(key, value)
      work = () => this.done(this.store.put(key, encoder.encode(value)))
    }
    this.ops += 1
    try {
      const happened = await work()
      if (!happened) for (const entry of entries) entry.cancelled = true
    } catch (error) {
      this.failures += 1
      const code = (error as { code?: string }).code
      if (code === 'invalid-argument' || code === 'capability' || code === 'internal') {
        this.refusals.push((error as Error).message)
      }
    }
  }

  private async done(work: Observable<unknown>): Promise<boolean> {
    await lastValueFrom(work.pipe(timeout(OP_TIMEOUT_MS)), { defaultValue: undefined })
    return true
  }
}
