import { toMillis, type Duration } from '../../core/duration.js'
import { flag, stringOption, type Command, type OptionSpec } from '../command.js'
import type { CommandContext } from '../context.js'
import { EXIT, NotFoundError, UsageError } from '../errors.js'
import { itemJson, parseEncoding, ValueFormat } from '../values.js'

const json: OptionSpec = { type: 'boolean', help: 'one JSON object per line' }
const encoding: OptionSpec = {
  type: 'string',
  arg: '<text|json|base64>',
  help: 'how values are shown: UTF-8 text (default), JSON, or base64 bytes',
}

function format(context: CommandContext, values: Parameters<Command['run']>[1]): ValueFormat {
  return new ValueFormat(parseEncoding(stringOption(values, 'encoding')), (message) => {
    context.err(`warning: ${message}`)
  })
}

/** `rx-datasync get <key>` */
export const get: Command = {
  name: 'get',
  usage: 'get <key> [options]',
  summary: "print a key's value (exit code 3 when it does not exist)",
  description: [
    'Prints the value of one key on stdout, followed by a newline; with --json, one line',
    '{"key", "value", "revision"}. A key that does not exist prints nothing on stdout, a',
    'message on stderr, and exits with code 3.',
  ].join('\n'),
  options: { json, encoding },
  store: 'one',
  positionals: { min: 1, max: 1, names: '<key>' },
  async run(context, values, [key = '']) {
    const output = format(context, values)
    const { store, label } = await context.open(context.storeSpec())
    const item = await context.once(label, store.get(key))
    if (item === undefined) throw new NotFoundError(key)
    context.out(
      flag(values, 'json')
        ? JSON.stringify(itemJson(output, item))
        : output.text(item.key, item.value),
    )
    return EXIT.ok
  },
}

/** `rx-datasync put <key> [value]` */
export const put: Command = {
  name: 'put',
  usage: 'put <key> [value] [options]',
  summary: "write a key's value (from stdin when the value is absent or '-')",
  description: [
    "Writes a value. Without a value argument, or with '-', the value is read from stdin as",
    'it is (a trailing newline included); an empty stdin is refused (exit code 2), as it is',
    'most often a mistake upstream in a pipe, unless --allow-empty. Prints nothing on',
    'success. A store that cannot be written (FileDB) fails with exit code 1.',
  ].join('\n'),
  options: {
    encoding: {
      type: 'string',
      arg: '<text|json|base64>',
      help: 'how the value is given: text (default), JSON (checked), or base64 (decoded)',
    },
    ttl: {
      type: 'string',
      arg: '<duration>',
      help: "delete the key after this long, e.g. '30s' (etcd, Redis, Consul)",
    },
    'allow-empty': {
      type: 'boolean',
      help: 'write an empty value when stdin is empty (refused otherwise)',
    },
  },
  store: 'one',
  positionals: { min: 1, max: 2, names: '<key> [value]' },
  async run(context, values, [key = '', given]) {
    const enc = parseEncoding(stringOption(values, 'encoding'))
    const ttlText = stringOption(values, 'ttl')
    let ttl: Duration | undefined
    if (ttlText !== undefined) {
      ttl = duration('--ttl', ttlText)
      if (toMillis(ttl) === 0) throw new UsageError('--ttl: expected a duration above 0', 'put')
    }
    let input: string | Uint8Array | undefined = given
    if (input === undefined || input === '-') {
      if (context.io.stdin.isTTY === true) {
        throw new UsageError('give the value as an argument, or pipe it on stdin', 'put')
      }
      input = await readAll(context)
      if (input.length === 0 && !flag(values, 'allow-empty')) {
        throw new UsageError(
          `stdin was empty: refusing to write an empty value to '${key}' (--allow-empty writes it)`,
          'put',
        )
      }
    }
    const bytes = ValueFormat.encode(enc, input)
    const { store, label } = await context.open(context.storeSpec())
    await context.once(label, store.put(key, bytes, ttl === undefined ? undefined : { ttl }))
    return EXIT.ok
  },
}

/** `rx-datasync del <key> [--prefix]` */
export const del: Command = {
  name: 'del',
  usage: 'del <key> [--prefix] [options]',
  summary: 'delete a key, or every key under a prefix',
  description: [
    'Deletes a key, or with --prefix every key that starts with it, and prints how many were',
    'deleted ("deleted N"; with --json, {"deleted": N}). Deleting a key that does not exist',
    'is not an error: it prints "deleted 0".',
  ].join('\n'),
  options: {
    prefix: { type: 'boolean', help: 'delete every key that starts with <key>' },
    json,
  },
  store: 'one',
  positionals: { min: 1, max: 1, names: '<key>' },
  async run(context, values, [key = '']) {
    const prefix = flag(values, 'prefix')
    if (prefix && key === '') {
      throw new UsageError("refusing to delete every key: give a prefix that is not ''", 'del')
    }
    const { store, label } = await context.open(context.storeSpec())
    const { deleted } = await context.once(label, store.delete(key, { prefix }))
    context.out(flag(values, 'json') ? JSON.stringify({ deleted }) : `deleted ${deleted}`)
    return EXIT.ok
  },
}

/** `rx-datasync list [prefix]` */
export const list: Command = {
  name: 'list',
  usage: 'list [prefix] [options]',
  summary: 'print every key (and its value) under a prefix',
  description: [
    'Prints every key under the prefix (all keys without one), sorted, read at one revision:',
    '"key = value" lines, or keys alone with --keys-only; with --json, one object per line',
    '({"key", "value", "revision"}, or {"key"} with --keys-only). Values that are not one',
    'printable line are shown as JSON strings.',
  ].join('\n'),
  options: {
    'keys-only': { type: 'boolean', help: 'print the keys only' },
    json,
    encoding,
  },
  store: 'one',
  positionals: { min: 0, max: 1, names: '[prefix]' },
  async run(context, values, [prefix = '']) {
    const output = format(context, values)
    const asJson = flag(values, 'json')
    const { store, label } = await context.open(context.storeSpec())
    if (flag(values, 'keys-only')) {
      const keys = await context.once(label, store.listKeys(prefix))
      for (const key of keys) context.out(asJson ? JSON.stringify({ key }) : key)
      return EXIT.ok
    }
    const items = await context.once(label, store.list(prefix))
    for (const item of items) {
      context.out(
        asJson
          ? JSON.stringify(itemJson(output, item))
          : `${item.key} = ${output.inline(item.key, item.value)}`,
      )
    }
    return EXIT.ok
  },
}

/**
 * Parses a duration option: a number with a unit (`500ms`, `30s`, `5m`, `1h`, or Go's compound
 * form `1m30s`). A bare number other than 0 is refused: `--timeout 5` could mean seconds or
 * milliseconds.
 */
export function duration(option: string, text: string): Duration {
  if (/^\d+(\.\d+)?$/.test(text) && Number(text) !== 0) {
    throw new UsageError(
      `${option}: '${text}' has no unit; write '${text}s' for seconds or '${text}ms' for milliseconds (units: ms, s, m, h; also 1m30s)`,
    )
  }
  const value: Duration = /^0+(\.0+)?$/.test(text) ? 0 : (text as Duration)
  try {
    toMillis(value, option)
  } catch {
    throw new UsageError(
      `${option}: expected a duration with a unit, such as '500ms', '30s', '5m', '1h' or '1m30s', got '${text}'`,
    )
  }
  return value
}

async function readAll(context: CommandContext): Promise<Uint8Array> {
  const chunks: Buffer[] = []
  for await (const chunk of context.io.stdin) {
    chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk)
  }
  return new Uint8Array(Buffer.concat(chunks))
}
