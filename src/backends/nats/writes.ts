import { CapabilityError, DatasyncError } from '../../core/errors.js'
import { valuesEqual } from '../../core/equal.js'
import { revision, type Revision } from '../../core/revision.js'
import type { TxnCondition, TxnOp, TxnResult } from '../../core/store.js'
import { headers as natsHeaders } from './client.js'
import { API, NAME } from './errors.js'
import { checks, encodeKey, show } from './keys.js'
import type { Handles } from './link.js'

/** A write whose expected sequence no longer held is tried again (read, check, write) this often. */
const CONFLICT_ATTEMPTS = 8

/** A key's last message: its sequence (0 when it has none) and its value when it is a put. */
interface Entry {
  readonly seq: bigint
  readonly value: Uint8Array | undefined
}

/** The subject of a key's messages. */
export function subjectOf(handles: Handles, key: string): string {
  return handles.prefix + encodeKey(key)
}

/** The key's last message (a put, a delete marker, or none). */
export async function readEntry(handles: Handles, key: string): Promise<Entry> {
  const entry = await handles.kv.get(encodeKey(key))
  if (entry === null) return { seq: 0n, value: undefined }
  return {
    seq: BigInt(entry.revision),
    value: entry.operation === 'PUT' ? entry.value : undefined,
  }
}

/** The stream's last sequence: the store's revision now. */
export async function currentRevision(handles: Handles): Promise<Revision> {
  const info = await handles.jsm.streams.info(handles.stream)
  return revision(info.state.last_seq)
}

/**
 * Publishes a put (a value) or a delete (a `KV-Operation: DEL` marker) of `key`; with `expect`,
 * only while the key's last message is at that sequence (0: the key has none). Resolves with the
 * new message's sequence.
 */
export async function publish(
  handles: Handles,
  key: string,
  value: Uint8Array | undefined,
  expect?: bigint,
): Promise<bigint> {
  const options =
    value === undefined
      ? { headers: deleteHeaders() }
      : ({} as { headers?: ReturnType<typeof natsHeaders> })
  const ack = await handles.js.publish(subjectOf(handles, key), value ?? new Uint8Array(0), {
    ...options,
    ...(expect === undefined ? {} : { expect: { lastSubjectSequence: Number(expect) } }),
  })
  return BigInt(ack.seq)
}

function deleteHeaders() {
  const h = natsHeaders()
  h.set('KV-Operation', 'DEL')
  return h
}

function isConflict(error: unknown): boolean {
  return (error as { code?: unknown } | null)?.code === API.wrongLastSequence
}

/** Deletes `key` if it holds a value, as one conditional write; resolves 1 or 0. */
export async function deleteOne(handles: Handles, key: string): Promise<number> {
  for (let attempt = 1; ; attempt++) {
    const entry = await readEntry(handles, key)
    if (entry.value === undefined) return 0
    try {
      await publish(handles, key, undefined, entry.seq)
      return 1
    } catch (error) {
      if (!isConflict(error) || attempt >= CONFLICT_ATTEMPTS) throw error
    }
  }
}

/**
 * A transaction as nats-server 2.9 can make it atomic: at most one put or delete of one key, with
 * any conditions on that same key, checked against the key's last message and written with that
 * message's sequence as the expected one (`Nats-Expected-Last-Subject-Sequence`), so a write in
 * between fails it and it is read, checked and tried again. Anything else fails with a
 * `CapabilityError`: JetStream 2.9 has no atomic write of several messages.
 */
export async function runTxn(
  handles: Handles,
  ops: readonly TxnOp<Uint8Array>[],
  conditions: readonly TxnCondition<Uint8Array>[],
): Promise<TxnResult> {
  const op = ops[0]
  const key = op?.key ?? conditions[0]?.key
  if (key === undefined) {
    throw new TypeError(`${NAME} txn: expected at least one operation or condition, got none`)
  }
  for (let attempt = 1; ; attempt++) {
    const entry = await readEntry(handles, key)
    if (!conditions.every((condition) => holds(condition, entry))) {
      return { succeeded: false, revision: await currentRevision(handles) }
    }
    if (op === undefined || (op.op === 'delete' && entry.value === undefined)) {
      return { succeeded: true, revision: await currentRevision(handles) }
    }
    try {
      const seq = await publish(handles, key, op.op === 'put' ? op.value : undefined, entry.seq)
      return { succeeded: true, revision: revision(seq) }
    } catch (error) {
      if (!isConflict(error)) throw error
      if (attempt >= CONFLICT_ATTEMPTS) {
        throw new DatasyncError(
          'conflict',
          `${NAME} txn: the key ${show(key)} kept changing between the read of its conditions and the write (${attempt} tries)`,
          { cause: error },
        )
      }
    }
  }
}

function holds(condition: TxnCondition<Uint8Array>, entry: Entry): boolean {
  if ('exists' in condition) return condition.exists === (entry.value !== undefined)
  if ('revision' in condition) {
    return condition.revision === (entry.value === undefined ? 0n : entry.seq)
  }
  return entry.value !== undefined && valuesEqual(entry.value, condition.value)
}

/**
 * Checks a transaction and refuses, with a `CapabilityError`, what nats-server 2.9 cannot do
 * atomically: several operations, a prefix delete, a TTL, or conditions on another key than the
 * one written.
 */
export function assertTxn(
  ops: readonly TxnOp<Uint8Array>[],
  conditions: readonly TxnCondition<Uint8Array>[],
): void {
  const writes = checks.writes(ops, (what) => {
    throw new CapabilityError(
      NAME,
      'TTL',
      `${what}: nats-server 2.9 has no per-key TTL (it needs 2.11)`,
    )
  })
  checks.conditions(conditions)
  if (writes.length > 1) {
    throw new CapabilityError(
      NAME,
      'transactions of several operations',
      `nats-server 2.9 has no atomic write of several messages (atomic batches need nats-server 2.12); got ${writes.length} operations: write them one by one, or one put or delete with conditions on its key`,
    )
  }
  const write = writes[0]
  if (write?.op === 'delete' && write.prefix) {
    throw new CapabilityError(
      NAME,
      'prefix deletes in a transaction',
      'a prefix delete is one write per key; use delete(prefix, { prefix: true })',
    )
  }
  const key = write?.key ?? conditions[0]?.key
  const other = conditions.find((condition) => condition.key !== key)
  if (other !== undefined) {
    throw new CapabilityError(
      NAME,
      'conditions on other keys',
      `a condition on ${show(other.key)} cannot guard a write of ${show(key)}: nats-server 2.9 checks only the written key's last sequence`,
    )
  }
}

/** Bounds how many writes are in flight at once; the others wait, first come first served. */
export class Slots {
  #free: number
  readonly #waiting: (() => void)[] = []

  constructor(size: number) {
    this.#free = size
  }

  async run<T>(work: () => Promise<T>): Promise<T> {
    if (this.#free > 0) this.#free--
    else await new Promise<void>((resolve) => this.#waiting.push(resolve))
    try {
      return await work()
    } finally {
      const next = this.#waiting.shift()
      if (next === undefined) this.#free++
      else next()
    }
  }
}
