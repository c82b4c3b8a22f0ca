import type { ServerResponse } from 'node:http'
import type { Socket } from 'node:net'
import type { Change, KeyValue, SnapshotCause } from '../../core/events.js'
import type { Revision } from '../../core/revision.js'
import { matchesAny } from '../../core/snapshot.js'
import {
  toWireChange,
  toWireKeyValue,
  type WireChanges,
  type WireError,
  type WireSnapshotChunk,
  type WireStatus,
} from '../wire.js'
import type { Access } from './access.js'
import type { Counters } from './metrics.js'

/**
 * A frame every session of one fan-out writes alike (a whole change batch, a progress event),
 * encoded to bytes by the first session that needs it: each other session writes the same
 * Buffer, with no JSON and no UTF-8 encoding of its own.
 */
export interface SharedFrame {
  frame?: Buffer
}

function changesFrame(revision: Revision, changes: readonly Change<Uint8Array>[]): string {
  const body: WireChanges = { revision: revision.toString(), changes: changes.map(toWireChange) }
  return `event: changes\nid: ${revision.toString()}\ndata: ${JSON.stringify(body)}\n\n`
}

function progressFrame(revision: Revision): string {
  const id = revision.toString()
  return `event: progress\nid: ${id}\ndata: ${JSON.stringify({ revision: id })}\n\n`
}

const HEARTBEAT = Buffer.from(': heartbeat\n\n')

const byteLength = (frame: string | Buffer) =>
  typeof frame === 'string' ? Buffer.byteLength(frame) : frame.length

/** What a session needs from its server. */
export interface SessionOptions {
  readonly maxBufferedBytes: number
  readonly snapshotChunk: number
  readonly counters: Counters
  /** Called once when the stream ends (closed by the client, cut, or ended by the server). */
  readonly onEnd: (session: Session) => void
}

/** Ends the session of a response whose connection closed (one listener function for all). */
function onResponseClose(this: ServerResponse & { [SESSION]?: Session }): void {
  this[SESSION]?.end()
}
const SESSION = Symbol('session')

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
 *
 * An idle session costs the server little: the options object is the server's (shared), the
 * access the token's (cached), and the close listener one function for every response; a batch
 * costs it one write of a shared Buffer, straight to the socket: the stream's response is not
 * chunked (its end is the connection's close, see `serveStore`), so its body is the frames as
 * they are, and a write to the response would only add a cork, a tick and the response's
 * bookkeeping per client and batch.
 */
export class Session {
  /** The revision of the last event with an id written to the stream. */
  lastId: Revision | undefined
  /** `waiting` until its snapshot or resume starts: events before it are in the snapshot. */
  #phase: 'waiting' | 'snapshot' | 'live' | 'ended' = 'waiting'
  /** Frames that wait for the snapshot to be written (allocated when one does). */
  #queue: [string | Buffer, Revision | undefined][] | undefined
  #queueBytes = 0
  /** The response's connection, written to directly once the headers went out. */
  readonly #socket: Socket
  /** Something was written since the heartbeat's last tick (see `heartbeat`). */
  #wrote = false

  constructor(
    readonly response: ServerResponse,
    /** The prefixes the client watches. */
    readonly prefixes: readonly string[],
    /** What its token may read. */
    readonly access: Access,
    /** The server's, shared by every session. */
    readonly options: SessionOptions,
  ) {
    ;(response as ServerResponse & { [SESSION]?: Session })[SESSION] = this
    response.on('close', onResponseClose)
    if (response.socket === null) throw new Error('a watch response without its connection')
    this.#socket = response.socket
  }

  /** Whether a key is watched by this client and readable by its token. */
  sees(key: string): boolean {
    return matchesAny(key, this.prefixes) && this.access.canRead(key)
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
    return this.#queueBytes + this.#socket.writableLength
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

  /**
   * Sends the changes of one batch that this client may see, if any. A client that sees the
   * whole batch (the common case) writes `shared`'s frame: one Buffer for all of them.
   */
  changes(
    revision: Revision,
    changes: readonly Change<Uint8Array>[],
    shared: SharedFrame = {},
  ): void {
    if (this.#phase === 'ended' || this.#phase === 'waiting') return
    let seen = 0
    for (const change of changes) if (this.sees(change.key)) seen++
    if (seen === 0) return
    if (seen === changes.length) {
      shared.frame ??= Buffer.from(changesFrame(revision, changes))
      this.#write(shared.frame, revision)
      return
    }
    const kept = changes.filter((change) => this.sees(change.key))
    this.#write(changesFrame(revision, kept), revision)
  }

  /**
   * The heartbeat's tick: a stream written to since the last tick is alive and skipped (a busy
   * server writes nothing more to it); an idle one gets `progress`.
   */
  heartbeat(revision: Revision, shared: SharedFrame): void {
    if (this.#wrote) {
      this.#wrote = false
      return
    }
    this.progress(revision, shared)
  }

  /**
   * Moves the client's resume position to `revision` when nothing it sees changed since (the
   * frame shared like a change batch's), or just keeps the stream alive.
   */
  progress(revision: Revision, shared: SharedFrame = {}): void {
    if (this.#phase !== 'live') return
    if (this.lastId !== undefined && this.lastId >= revision) {
      this.#write(HEARTBEAT, undefined)
      return
    }
    shared.frame ??= Buffer.from(progressFrame(revision))
    this.#write(shared.frame, revision)
  }

  /** Ends the stream's session (its connection closed). */
  end(): void {
    this.#end()
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

  #write(frame: string | Buffer, id: Revision | undefined): void {
    if (this.#phase === 'snapshot') {
      ;(this.#queue ??= []).push([frame, id])
      this.#queueBytes += byteLength(frame)
    } else {
      this.#out(frame, id)
    }
    this.#checkLimit()
  }

  #out(frame: string | Buffer, id: Revision | undefined): boolean {
    const counters = this.options.counters
    counters.eventsSent++
    counters.bytesSent += byteLength(frame)
    if (id !== undefined) this.lastId = id
    this.#wrote = true
    return this.#socket.write(frame)
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
    const queued = this.#queue ?? []
    this.#queue = undefined
    this.#queueBytes = 0
    for (const [frame, id] of queued) this.#out(frame, id)
    this.#checkLimit()
  }

  #drained(): Promise<void> {
    return new Promise((resolve) => {
      const socket = this.#socket
      const done = () => {
        socket.off('drain', done)
        socket.off('close', done)
        resolve()
      }
      socket.on('drain', done)
      socket.on('close', done)
    })
  }

  #end(): void {
    if (this.#phase === 'ended') return
    this.#phase = 'ended'
    this.#queue = undefined
    this.#queueBytes = 0
    this.options.onEnd(this)
  }
}
