/**
 * The messages a Redis store publishes with each write (on {@link writesChannel}): a head (magic,
 * hash slot, writer id, sequence) and each key written, a put with its value or a delete. The
 * write scripts in `scripts.ts` build them; the watch decodes them.
 */
/** The channel the store's writes are published on, one per database (pub/sub ignores SELECT). */
export function writesChannel(db: number): string {
  return `__rx-datasync__:writes@${db}`
}

const MAGIC = Buffer.from('rxw1')
const HEAD_LENGTH = MAGIC.length + 2 + 8 + 8

/**
 * The head of a write message: a magic string, the hash slot of the write's keys, the writing
 * store's 8-byte id and the write's sequence number in that store.
 */
export function messageHead(slot: number, writer: Buffer, sequence: bigint): Buffer {
  const head = Buffer.alloc(HEAD_LENGTH)
  writeHead(head, slot, writer, sequence)
  return head
}

function writeHead(into: Buffer, slot: number, writer: Buffer, sequence: bigint): void {
  MAGIC.copy(into)
  into.writeUInt16BE(slot, MAGIC.length)
  writer.copy(into, MAGIC.length + 2, 0, 8)
  into.writeBigUInt64BE(sequence, MAGIC.length + 10)
}

/**
 * A put's write message up to its value: the head (as {@link messageHead} makes it), then the
 * put's entry (`p`, the key's length and bytes, the value's length). {@link PUTS_SCRIPT} appends
 * the value.
 */
export function putMessagePrefix(
  slot: number,
  writer: Buffer,
  sequence: bigint,
  key: string,
  valueLength: number,
): Buffer {
  const keyLength = Buffer.byteLength(key)
  const prefix = Buffer.allocUnsafe(HEAD_LENGTH + 9 + keyLength)
  writeHead(prefix, slot, writer, sequence)
  prefix[HEAD_LENGTH] = 0x70
  prefix.writeUInt32BE(keyLength, HEAD_LENGTH + 1)
  prefix.write(key, HEAD_LENGTH + 5, 'utf8')
  prefix.writeUInt32BE(valueLength, HEAD_LENGTH + 5 + keyLength)
  return prefix
}

/** One write of a published message: a put with its value, or a delete. */
export interface WrittenKey {
  readonly key: string
  readonly value: Uint8Array | undefined
}

/** A decoded write message. */
export interface WriteMessage {
  readonly slot: number
  /** The writing store's id, as hex. */
  readonly writer: string
  readonly sequence: bigint
  /** Empty when the write's conditions failed. */
  readonly writes: readonly WrittenKey[]
}

/** Decodes a write message; undefined when it is not one (another publisher on the channel). */
export function decodeWriteMessage(message: Buffer): WriteMessage | undefined {
  if (message.length < HEAD_LENGTH || !message.subarray(0, MAGIC.length).equals(MAGIC)) {
    return undefined
  }
  const slot = message.readUInt16BE(MAGIC.length)
  const writer = message.toString('hex', MAGIC.length + 2, MAGIC.length + 10)
  const sequence = message.readBigUInt64BE(MAGIC.length + 10)
  const writes: WrittenKey[] = []
  let at = HEAD_LENGTH
  const length = (): number => {
    if (at + 4 > message.length) throw new RangeError('truncated')
    const n = message.readUInt32BE(at)
    at += 4
    if (at + n > message.length) throw new RangeError('truncated')
    return n
  }
  try {
    while (at < message.length) {
      const op = message[at]
      at += 1
      const keyLength = length()
      const key = message.toString('utf8', at, at + keyLength)
      at += keyLength
      if (op === 0x70) {
        const valueLength = length()
        writes.push({ key, value: new Uint8Array(message.subarray(at, at + valueLength)) })
        at += valueLength
      } else if (op === 0x64) {
        writes.push({ key, value: undefined })
      } else {
        return undefined
      }
    }
  } catch {
    return undefined
  }
  return { slot, writer, sequence, writes }
}
