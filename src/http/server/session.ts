import type { ServerResponse } from 'node:http'
import type { Change, KeyValue, SnapshotCause } from '../../core/events.js'
import type { Revision } from '../../core/revision.js'
import {
  toWireChange,
  toWireKeyValue,
  type WireChanges,
  type WireError,
  type WireSnapshotChunk,
  type WireStatus,
} from '../wire.js'
import type { Counters } from './metrics.js'

/** The frame of a whole change batch, encoded by the first session that needs it. */
export interface SharedFrame {
  frame?: string
}

function changesFrame(revision: Revision, changes: readonly Change<Uint8Array>[]): string {
  const body: WireChanges = { revision: revision.toString(), changes: changes.map(toWireChange) }
  return `event: changes\nid: ${revision.toString()}\ndata: ${JSON.stringify(body)}\n\n`
}

/** What a session needs from its server. */
export interface SessionOptions {
  readonly maxBufferedBytes: number
  readonly snapshotChunk: number
  readonly counters: Counters
  /** Called once when the stream ends (closed by the client, cut, or ended by the server). */
  readonly onEnd: (session: Session) => void
}

/**
 * One watch client's Server-Sent Events stream. The hub hands it every change batch at once (it
 * never waits for a client); the session keeps what its filter lets through and writes it. A
 * snapshot goes out in chunks of `snapshotChunk` items, each after the previous one drained;
 * change batches that arrive meanwhile wait in a queue and follow the last chunk. When more
 * than `maxBufferedBytes` wait (in the queue and in Node's socket buffer) the client is cut: it
 * reconnects with its Last-Event-ID, and nobody else waited for it.
 *
 * Only a complete snapshot (its last chunk), a change batch or a progress event carries an
 * `id:` (the revision), so a client cut in the middle of a snapshot never resumes from it.
 */
export class Session {
  /** The revision of the last event with an id written to the stream. */
  lastId: Revision | undefined
  /** `waiting` until its snapshot or resume starts: events before it are in the snapshot. */
  #phase: 'waiting' | 'snapshot' | 'live' | 'ended' = 'waiting'
  #queue: [string, Revision | undefined][] = []
  #queueBytes = 0

  constructor(
    readonly response: ServerResponse,
    /** Whether a key is watched by this client and readable by its token. */
    readonly filter: (key: string) => boolean,
    readonly options: SessionOptions,
  ) {
    response.once('close', () => {
      this.#end()
    })
  }

  /** Whether the stream has ended. */
  get ended(): boolean {
    return this.#phase === 'ended'
  }

  /** Whether its stream has not started yet (the hub is getting its snapshot ready). */
  get waiting(): boolean {
    return this.#phase === 'waiting'
  }

  /** Bytes waiting to be sent to this client. */
  get buffered(): number {
    return this.#queueBytes + this.response.writableLength
  }

  /** Sends a snapshot (items already filtered, sorted), in chunks. */
  snapshot(revision: Revision, items: readonly KeyValue<Uint8Array>[], cause: SnapshotCause): void {
    if (this.#phase === 'ended') return
    if (this.#phase === 'snapshot') {
      // A second snapshot while one is on its way (the upstream store relisted): the client
      // starts over with a new connection.
      this.response.destroy()
      return
    }
    this.#phase = 'snapshot'
    void this.#stream(revision, items, cause)
  }

  /** Starts the stream as a resume after `after` (the hub then replays its log). */
  resume(after: Revision): void {
    if (this.#phase !== 'waiting') return
    this.#phase = 'live'
    this.lastId = after
  }

  /** Sends the changes of one batch that this client may see, if any. */
  changes(
    revision: Revision,
    changes: readonly Change<Uint8Array>[],
    shared: SharedFrame = {},
  ): void {
    if (this.#phase === 'ended' || this.#phase === 'waiting') return
    const kept = changes.filter((change) => this.filter(change.key))
    if (kept.length === 0) return
    if (kept.length === changes.length) {
      // Every client that sees the whole batch writes the same frame: encoded once.
      shared.frame ??= changesFrame(revision, kept)
      this.#write(shared.frame, revision)
      return
    }
    this.#write(changesFrame(revision, kept), revision)
  }

  /** Moves the client's resume position to `revision` when nothing it sees changed since. */
  progress(revision: Revision): void {
    if (this.#phase !== 'live') return
    if (this.lastId !== undefined && this.lastId >= revision) {
      this.#write(': heartbeat\n\n', undefined)
      return
    }
    this.#send('progress', { revision: revision.toString() }, revision)
  }

  /** Tells the client the served store's health. */
  status(status: WireStatus): void {
    if (this.#phase !== 'ended' && this.#phase !== 'waiting')
      this.#send('status', status, undefined)
  }

  /** Ends the stream with an error event (the upstream watch failed for good). */
  fail(error: WireError): void {
    if (this.#phase === 'ended') return
    this.#send('error', { error }, undefined)
    this.response.end()
  }

  /** Ends the stream (the server is closing). */
  close(): void {
    if (this.#phase !== 'ended') this.response.end()
  }

  #send(event: string, body: unknown, id: Revision | undefined): void {
    const frame =
      id === undefined
        ? `event: ${event}\ndata: ${JSON.stringify(body)}\n\n`
        : `event: ${event}\nid: ${id.toString()}\ndata: ${JSON.stringify(body)}\n\n`
    this.#write(frame, id)
  }

  #write(frame: string, id: Revision | undefined): void {
    if (this.#phase === 'snapshot') {
      this.#queue.push([frame, id])
      this.#queueBytes += frame.length
    } else {
      this.#out(frame, id)
    }
    this.#checkLimit()
  }

  #out(frame: string, id: Revision | undefined): boolean {
    const counters = this.options.counters
    counters.eventsSent++
    counters.bytesSent += frame.length
    if (id !== undefined) this.lastId = id
    return this.response.write(frame)
  }

  #checkLimit(): void {
    if (this.#phase === 'ended' || this.buffered <= this.options.maxBufferedBytes) return
    this.options.counters.slowClientsCut++
    this.response.destroy()
    this.#end()
  }

  async #stream(revision: Revision, items: readonly KeyValue<Uint8Array>[], cause: SnapshotCause) {
    const size = this.options.snapshotChunk
    for (let start = 0; ; start += size) {
      if (this.#phase !== 'snapshot') return
      const more = start + size < items.length
      const chunk: WireSnapshotChunk = {
        revision: revision.toString(),
        cause,
        items: items.slice(start, start + size).map(toWireKeyValue),
        more,
      }
      const frame = `event: snapshot\n${more ? '' : `id: ${revision.toString()}\n`}data: ${JSON.stringify(chunk)}\n\n`
      const flowing = this.#out(frame, more ? undefined : revision)
      if (!more) break
      if (!flowing) await this.#drained()
    }
    if (this.#phase !== 'snapshot') return
    this.#phase = 'live'
    const queued = this.#queue
    this.#queue = []
    this.#queueBytes = 0
    for (const [frame, id] of queued) this.#out(frame, id)
    this.#checkLimit()
  }

  #drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        this.response.off('drain', done)
        this.response.off('close', done)
        resolve()
      }
      this.response.on('drain', done)
      this.response.on('close', done)
    })
  }

  #end(): void {
    if (this.#phase === 'ended') return
    this.#phase = 'ended'
    this.#queue = []
    this.#queueBytes = 0
    this.options.onEnd(this)
  }
}
