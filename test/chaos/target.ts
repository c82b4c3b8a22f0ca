/** What a backend gives the chaos engine: servers, a store under test, a writer, faults. */
import { lastValueFrom } from 'rxjs'
import type { KvStore } from '../../src/index.js'
import type { Random } from '../conformance/random.js'
import type { TcpProxy } from '../support/tcp-proxy.js'
import type { History } from './history.js'

/** What a fault may use while it runs. */
export interface FaultContext {
  /** The writer's history: a fault that loses data records it (`history.delPrefix`). */
  readonly history: History
  /** The schedule's key root. */
  readonly root: string
  readonly random: Random
  /** Holds the writer after its operation in flight, for faults that must not race a write. */
  pauseWriter(): Promise<void>
  resumeWriter(): void
}

/** One kind of fault: `run` injects it, holds it `holdMs`, and undoes it before resolving. */
export interface Fault {
  readonly kind: string
  run(context: FaultContext, holdMs: number): Promise<void>
}

/** The stores of one schedule. */
export interface Session {
  /** The store under test (behind the faults). */
  readonly store: KvStore
  /** Writes the data, out of the faults' way where the backend allows. */
  readonly writer: KvStore
  /** Reads what the store holds under `prefix` now, as text, out of the faults' way. */
  read(prefix: string): Promise<Map<string, string>>
  close(): Promise<void>
}

/** One backend of the chaos run: its servers live from `start` to `stop`. */
export interface Target {
  readonly name: string
  readonly faults: readonly Fault[]
  /** The key root of a schedule (a Redis Cluster puts it in one hash slot). */
  root(id: string): string
  start(): Promise<void>
  open(root: string): Promise<Session>
  /** Makes sure every server is up and every connection allowed again (after a failed fault). */
  heal(): Promise<void>
  stop(): Promise<void>
}

/** Reads `prefix` through `store` as text. */
export async function readText(store: KvStore, prefix: string): Promise<Map<string, string>> {
  const decoder = new TextDecoder()
  const items = await lastValueFrom(store.list(prefix))
  return new Map(items.map((item) => [item.key, decoder.decode(item.value)]))
}

/** Waits `ms`: the schedule's own timing (how long a fault holds), not a wait for an event. */
export function hold(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** A server process the harness can stop and start (test/servers). */
export interface FaultServer {
  pause(): Promise<void>
  resume(): void
  kill(): Promise<unknown>
  restart(): Promise<unknown>
}

/**
 * The faults every single-server target shares, by kind: `cut` (every connection through the
 * store's proxy), `SIGSTOP` (SIGCONT after the hold), `kill -9` (a restart after the hold) and a
 * graceful `restart`. A target lists the ones it uses in its own order (the order is part of what
 * a seed draws).
 */
export function serverFaults(server: () => FaultServer, proxy: () => TcpProxy) {
  return {
    cut: {
      kind: 'cut',
      run: async (_, holdMs) => {
        await proxy().interrupt()
        await hold(holdMs)
        await proxy().restore()
      },
    },
    sigstop: {
      kind: 'SIGSTOP',
      run: async (_, holdMs) => {
        await server().pause()
        await hold(holdMs)
        server().resume()
      },
    },
    kill: {
      kind: 'kill -9',
      run: async (_, holdMs) => {
        await server().kill()
        await hold(holdMs)
        await server().restart()
      },
    },
    restart: {
      kind: 'restart',
      run: async () => {
        await server().restart()
      },
    },
  } satisfies Record<string, Fault>
}
