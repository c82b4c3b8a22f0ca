import { createHash } from 'node:crypto'
import type { Cluster, Redis } from 'ioredis'
import type { Revision } from '../../core/revision.js'
import type { TxnCondition } from '../../core/store.js'
import type { CheckedWrite } from '../../internal/checks.js'
import { asBuffer } from './bytes.js'
import { keyPattern } from './keyspace.js'

/**
 * Every write of the store (put, delete, transaction, each batch of a prefix delete) runs as this
 * Lua script: the conditions are checked and the writes made in one atomic step (no other command
 * runs in between), in one round trip, without WATCH (which would need a connection per caller:
 * ioredis multiplexes one connection between all of them) and without optimistic retries.
 *
 * After the writes, the script publishes what it wrote, values included, as one message on the
 * database's write channel (`writesChannel` (messages.ts)). A watch receives that message on its
 * subscriber connection right after the keyspace events of the same writes (Redis delivers a
 * script's messages contiguously and in order), so it knows the exact value of every write made
 * through a store, and a transaction arrives as one change event (P8). Writes by other clients
 * only raise keyspace events; the watch reads their values. Each message also carries its
 * store's id and a per-store sequence number, and the script publishes even when a condition
 * fails: a watch on a Cluster uses them to put one store's writes to different masters back in
 * the order they were made.
 *
 * KEYS: the keys named by conditions and operations (one hash slot on a Cluster). ARGV: the
 * channel, the message head (built by `messageHead` (messages.ts)), the condition count, then per
 * condition its kind ('absent', 'present', 'value', 'digest'), key index and argument; then the
 * operation count, then per operation its kind ('put', 'del', 'delp'), target (key index, or the
 * glob of a 'delp'), value and TTL in milliseconds ('' for none); {@link encodeWrite} builds
 * them. Returns `{ 0, 0 }` when a condition fails (after publishing an empty message), else
 * `{ 1, deleted }`. Writes run with pcall, so the message always goes out; the first refused
 * write ends the script with its error (Redis has no rollback: the writes before it stay, as with
 * MULTI/EXEC).
 */
export const WRITE_SCRIPT = `
local pos = 1
local function arg()
  local value = ARGV[pos]
  pos = pos + 1
  return value
end
local channel = arg()
local message = { arg() }
local conditions = tonumber(arg())
local holds = true
for _ = 1, conditions do
  local kind = arg()
  local key = KEYS[tonumber(arg())]
  local expected = arg()
  if holds then
    if kind == 'absent' then
      holds = redis.call('EXISTS', key) == 0
    elseif kind == 'present' then
      holds = redis.call('EXISTS', key) == 1
    else
      local value = redis.call('GET', key)
      holds = value and (kind ~= 'value' or value == expected)
        and (kind ~= 'digest' or redis.sha1hex(value) == expected)
    end
  end
end
if not holds then
  redis.call('PUBLISH', channel, message[1])
  return { 0, 0 }
end
local function entry(op, key, value)
  message[#message + 1] = op .. struct.pack('>I4', #key) .. key
  if value then message[#message + 1] = struct.pack('>I4', #value) .. value end
end
local operations = tonumber(arg())
local deleted = 0
local failure = nil
for _ = 1, operations do
  local kind = arg()
  local target = arg()
  local value = arg()
  local ttl = arg()
  local reply = nil
  if kind == 'put' then
    local key = KEYS[tonumber(target)]
    if ttl == '' then
      reply = redis.pcall('SET', key, value)
    else
      reply = redis.pcall('SET', key, value, 'PX', ttl)
    end
    if type(reply) ~= 'table' or not reply.err then entry('p', key, value) end
  elseif kind == 'del' then
    local key = KEYS[tonumber(target)]
    reply = redis.pcall('DEL', key)
    if type(reply) == 'number' then
      deleted = deleted + reply
      entry('d', key, nil)
    end
  else
    local cursor = '0'
    repeat
      local page = redis.call('SCAN', cursor, 'MATCH', target, 'COUNT', 1000, 'TYPE', 'string')
      cursor = page[1]
      for _, key in ipairs(page[2]) do
        reply = redis.pcall('DEL', key)
        if type(reply) == 'number' then
          deleted = deleted + reply
          entry('d', key, nil)
        else
          break
        end
      end
    until cursor == '0' or (type(reply) == 'table' and reply.err)
  end
  if type(reply) == 'table' and reply.err then
    failure = reply.err
    break
  end
end
redis.call('PUBLISH', channel, table.concat(message))
if failure then return redis.error_reply(failure) end
return { 1, deleted }
`

const SHA = createHash('sha1').update(WRITE_SCRIPT).digest('hex')

/**
 * The script of plain puts (no condition): the store sends the puts made in one turn of the
 * event loop as one call of it (`put-batch.ts`). Each put is a SET and a PUBLISH of its own write
 * message, exactly the message {@link WRITE_SCRIPT} publishes for one put, so a watch sees each
 * put as its own change event; a put's message is `ARGV[at] .. value` (its head and the put's
 * entry up to the value, built by `putMessagePrefix` (messages.ts)), concatenated on the server so the
 * value travels once. The puts are independent, as separate calls would be: a refused SET
 * publishes the message's head alone (the store's sequence moves on) and its error string is the
 * put's reply, the others' is 1.
 *
 * KEYS: the put keys, in order (a key may repeat). ARGV: the channel, then per put its message
 * prefix, value and TTL in milliseconds ('' for none).
 */
export const PUTS_SCRIPT = `
local channel = ARGV[1]
local replies = {}
for i = 1, #KEYS do
  local at = i * 3 - 1
  local value = ARGV[at + 1]
  local ttl = ARGV[at + 2]
  local reply
  if ttl == '' then
    reply = redis.pcall('SET', KEYS[i], value)
  else
    reply = redis.pcall('SET', KEYS[i], value, 'PX', ttl)
  end
  if type(reply) == 'table' and reply.err then
    redis.call('PUBLISH', channel, string.sub(ARGV[at], 1, ${String(4 + 2 + 8 + 8)}))
    replies[i] = reply.err
  else
    redis.call('PUBLISH', channel, ARGV[at] .. value)
    replies[i] = 1
  end
end
return replies
`

const PUTS_SHA = createHash('sha1').update(PUTS_SCRIPT).digest('hex')

type Arg = string | Buffer

/** A write of a transaction, checked; a put's TTL in milliseconds. */
export type Write = CheckedWrite<Uint8Array>

/** Writes and conditions as the script takes them (see {@link WRITE_SCRIPT}). */
export interface EncodedWrite {
  /** KEYS: every key named, once, in the order first named. */
  readonly keys: readonly string[]
  /** ARGV after the channel and the message head. */
  readonly args: readonly Arg[]
}

/**
 * Encodes writes under conditions as the script's KEYS and ARGV. A revision condition compares
 * the value's digest with the one `digestAt` gives for that revision; when it gives none (a
 * revision this store cannot vouch for), the condition cannot hold and this returns undefined.
 */
export function encodeWrite(
  writes: readonly Write[],
  conditions: readonly TxnCondition<Uint8Array>[],
  digestAt: (key: string, revision: Revision) => string | undefined,
): EncodedWrite | undefined {
  const keys: string[] = []
  const index = new Map<string, number>()
  const keyIndex = (key: string): string => {
    let at = index.get(key)
    if (at === undefined) {
      keys.push(key)
      at = keys.length
      index.set(key, at)
    }
    return String(at)
  }
  const args: Arg[] = [String(conditions.length)]
  for (const condition of conditions) {
    if ('exists' in condition) {
      args.push(condition.exists ? 'present' : 'absent', keyIndex(condition.key), '')
    } else if ('revision' in condition) {
      if (condition.revision === 0n) {
        args.push('absent', keyIndex(condition.key), '')
      } else {
        const expected = digestAt(condition.key, condition.revision)
        if (expected === undefined) return undefined
        args.push('digest', keyIndex(condition.key), expected)
      }
    } else {
      args.push('value', keyIndex(condition.key), asBuffer(condition.value))
    }
  }
  args.push(String(writes.length))
  for (const item of writes) {
    if (item.op === 'put') {
      const ttl = item.ttl === undefined ? '' : String(item.ttl)
      args.push('put', keyIndex(item.key), asBuffer(item.value), ttl)
    } else if (item.prefix) {
      args.push('delp', keyPattern(item.key), '', '')
    } else {
      args.push('del', keyIndex(item.key), '', '')
    }
  }
  return { keys, args }
}

/**
 * Runs the write script with EVALSHA, loading it with EVAL when the server lacks it: `write` on
 * `channel`, its message starting with `head` (see `messageHead` (messages.ts)).
 */
export async function runWriteScript(
  client: Redis | Cluster,
  channel: string,
  head: Buffer,
  write: EncodedWrite,
): Promise<{ succeeded: boolean; deleted: number }> {
  const { keys } = write
  const reply = await evalScript(client, SHA, WRITE_SCRIPT, keys, [channel, head, ...write.args])
  const [ok, deleted] = reply as [number, number]
  return { succeeded: ok === 1, deleted }
}

/** A put of {@link runPutsScript}: its key, value, TTL and message prefix. */
export interface PutArgs {
  readonly key: string
  readonly value: Buffer
  /** Milliseconds; undefined for none. */
  readonly ttl: number | undefined
  /** See `putMessagePrefix` (messages.ts). */
  readonly prefix: Buffer
}

/**
 * Runs {@link PUTS_SCRIPT} for `puts` (on one node: its keys may be in any slot). Resolves with
 * each put's outcome, in order: undefined when it was made, else the server's error.
 */
export async function runPutsScript(
  client: Redis | Cluster,
  channel: string,
  puts: readonly PutArgs[],
): Promise<(Error | undefined)[]> {
  const keys: string[] = []
  const args: Arg[] = [channel]
  for (const put of puts) {
    keys.push(put.key)
    args.push(put.prefix, put.value, put.ttl === undefined ? '' : String(put.ttl))
  }
  const replies = (await evalScript(client, PUTS_SHA, PUTS_SCRIPT, keys, args)) as unknown[]
  return puts.map((_, i) => {
    const reply = replies[i]
    return reply === 1 ? undefined : new Error(String(reply))
  })
}

/** The scripts each connection has sent with EVAL since it last connected. */
const loaded = new WeakMap<Redis | Cluster, Set<string>>()

/**
 * EVALSHA, after a first EVAL of the script on each connection (and again after it reconnects:
 * a restarted server or a new master lacks the script): a NOSCRIPT answer, retried with EVAL,
 * would run the script after commands sent behind it, out of the order they were made (a put
 * not yet visible to the get made after it). A Cluster sends EVAL every time: its masters are
 * reached over connections of their own, each may lack the script (a master new since a failover
 * or a slot move), and the client raises no event to tell. The fallback stays only for a server
 * that lost its scripts without a reconnect (`SCRIPT FLUSH`): see the README.
 */
async function evalScript(
  client: Redis | Cluster,
  sha: string,
  script: string,
  keys: readonly string[],
  args: readonly Arg[],
): Promise<unknown> {
  if (client.isCluster) return client.eval(script, keys.length, ...keys, ...args)
  let scripts = loaded.get(client)
  if (scripts === undefined) {
    const known = new Set<string>()
    client.on('ready', () => {
      known.clear()
    })
    loaded.set(client, known)
    scripts = known
  }
  if (!scripts.has(sha)) {
    scripts.add(sha)
    return client.eval(script, keys.length, ...keys, ...args)
  }
  try {
    return await client.evalsha(sha, keys.length, ...keys, ...args)
  } catch (error) {
    if (!(error instanceof Error) || !error.message.startsWith('NOSCRIPT')) throw error
    return client.eval(script, keys.length, ...keys, ...args)
  }
}
