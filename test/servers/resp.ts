/**
 * A minimal raw RESP2 client: one TCP connection per command, no dependency. Enough for test
 * setup, probes and assertions; the code under test brings its own Redis client.
 */
import net from 'node:net'
import { LOOPBACK } from './ports.js'

/** An error reply (`-ERR ...`) from Redis. */
export class RedisReplyError extends Error {
  override readonly name = 'RedisReplyError'
}

/** A parsed RESP2 reply: simple/bulk string, integer, nil, array (nested errors stay values). */
export type RespValue = string | number | null | RedisReplyError | RespValue[]

export interface RedisTarget {
  readonly port: number
  /** Default 127.0.0.1. */
  readonly host?: string
  /** Aborts (rejecting with a TimeoutError) after this long (ms). Default 5 000. */
  readonly timeoutMs?: number
  readonly signal?: AbortSignal
  /** Sent first as `AUTH [username] password` (its reply is skipped); for a protected server. */
  readonly password?: string
  /** The ACL user `AUTH` names. Default the `default` user. */
  readonly username?: string
}

export type RedisArg = string | number | Buffer

/** Encodes a command as a RESP array of bulk strings. */
export function encodeCommand(args: readonly RedisArg[]): Buffer {
  const parts: Buffer[] = [Buffer.from(`*${args.length}\r\n`)]
  for (const arg of args) {
    const data = Buffer.isBuffer(arg) ? arg : Buffer.from(String(arg), 'utf8')
    parts.push(Buffer.from(`$${data.length}\r\n`), data, Buffer.from('\r\n'))
  }
  return Buffer.concat(parts)
}

interface Parsed {
  readonly value: RespValue
  readonly next: number
}

/** Parses one reply starting at `offset`; `undefined` when the buffer does not hold it all yet. */
export function parseReply(buf: Buffer, offset = 0): Parsed | undefined {
  const lineEnd = buf.indexOf('\r\n', offset)
  if (lineEnd < 0) return undefined
  const type = String.fromCharCode(buf[offset]!)
  const line = buf.toString('utf8', offset + 1, lineEnd)
  const afterLine = lineEnd + 2
  switch (type) {
    case '+':
      return { value: line, next: afterLine }
    case '-':
      return { value: new RedisReplyError(line), next: afterLine }
    case ':':
      return { value: Number(line), next: afterLine }
    case '$': {
      const length = Number(line)
      if (length < 0) return { value: null, next: afterLine }
      if (buf.length < afterLine + length + 2) return undefined
      return {
        value: buf.toString('utf8', afterLine, afterLine + length),
        next: afterLine + length + 2,
      }
    }
    case '*': {
      const count = Number(line)
      if (count < 0) return { value: null, next: afterLine }
      const items: RespValue[] = []
      let next = afterLine
      for (let i = 0; i < count; i++) {
        const item = parseReply(buf, next)
        if (item === undefined) return undefined
        items.push(item.value)
        next = item.next
      }
      return { value: items, next }
    }
    default:
      throw new Error(
        `unexpected RESP reply type ${JSON.stringify(type)} in ${JSON.stringify(line)}`,
      )
  }
}

/**
 * Sends one command (e.g. `redisCommand(port, 'SET', 'k', 'v')`) on a fresh connection and
 * resolves with its reply. An error reply rejects with RedisReplyError; a timeout or abort
 * rejects with the signal's reason (a `TimeoutError` DOMException for the timeout).
 */
export function redisCommand(
  target: number | RedisTarget,
  ...args: RedisArg[]
): Promise<RespValue> {
  const t: RedisTarget = typeof target === 'number' ? { port: target } : target
  const timeout = AbortSignal.timeout(t.timeoutMs ?? 5_000)
  const signal = t.signal ? AbortSignal.any([t.signal, timeout]) : timeout
  return new Promise<RespValue>((resolve, reject) => {
    signal.throwIfAborted()
    const socket = net.connect({ host: t.host ?? LOOPBACK, port: t.port })
    let buffer = Buffer.alloc(0)
    let settled = false
    const finish = (err: Error | undefined, value?: RespValue): void => {
      if (settled) return
      settled = true
      signal.removeEventListener('abort', onAbort)
      socket.destroy()
      if (err !== undefined) reject(err)
      else if (value instanceof RedisReplyError) reject(value)
      else resolve(value ?? null)
    }
    const onAbort = (): void => {
      finish(signal.reason as Error)
    }
    signal.addEventListener('abort', onAbort, { once: true })
    const auth =
      t.password === undefined
        ? undefined
        : ['AUTH', ...(t.username === undefined ? [] : [t.username]), t.password]
    socket.once('connect', () => {
      socket.write(
        auth === undefined
          ? encodeCommand(args)
          : Buffer.concat([encodeCommand(auth), encodeCommand(args)]),
      )
    })
    let skip = auth === undefined ? 0 : 1
    socket.on('data', (chunk: Buffer) => {
      buffer = Buffer.concat([buffer, chunk])
      try {
        for (;;) {
          const parsed = parseReply(buffer)
          if (parsed === undefined) return
          if (skip === 0) {
            finish(undefined, parsed.value)
            return
          }
          skip--
          if (parsed.value instanceof RedisReplyError) {
            finish(parsed.value)
            return
          }
          buffer = buffer.subarray(parsed.next)
        }
      } catch (err) {
        finish(err as Error)
      }
    })
    socket.once('error', (err) => {
      finish(err)
    })
    socket.once('close', () => {
      finish(new Error(`connection to ${t.host ?? LOOPBACK}:${t.port} closed before a full reply`))
    })
  })
}

/** True when the server answers PING with PONG. */
export async function redisPing(target: number | RedisTarget): Promise<boolean> {
  return (await redisCommand(target, 'PING')) === 'PONG'
}

/** `INFO [section]` parsed into a field map. */
export async function redisInfo(
  target: number | RedisTarget,
  section?: string,
): Promise<Record<string, string>> {
  const reply = await redisCommand(
    target,
    ...(section === undefined ? ['INFO'] : ['INFO', section]),
  )
  return parseInfo(typeof reply === 'string' ? reply : '')
}

/** Parses `field:value` lines (INFO, CLUSTER INFO) into a map. */
export function parseInfo(text: string): Record<string, string> {
  const fields: Record<string, string> = {}
  for (const line of text.split(/\r?\n/)) {
    if (line === '' || line.startsWith('#')) continue
    const colon = line.indexOf(':')
    if (colon > 0) fields[line.slice(0, colon)] = line.slice(colon + 1)
  }
  return fields
}
