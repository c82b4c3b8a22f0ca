import { Subscription, takeWhile, timer } from 'rxjs'
import { UnavailableError } from '../../core/errors.js'
import { createDatasync } from '../../sync/datasync.js'
import type { ConsumerEvent } from '../../sync/types.js'
import { flag, stringOption, type Command } from '../command.js'
import type { CommandContext } from '../context.js'
import { EXIT } from '../errors.js'
import { changeJson, changeLine, parseEncoding, ValueFormat } from '../values.js'

/** Resync items written between two progress updates. */
const CHUNK = 1000

/** `rx-datasync watch [prefix...]` */
export const watch: Command = {
  name: 'watch',
  usage: 'watch [prefix...] [options]',
  summary: 'print the resync, then every change, until interrupted',
  description: [
    'Prints everything under the prefixes (all keys without one), then every change as it',
    'happens, until SIGINT or SIGTERM (exit code 0). Readable lines:',
    '',
    '  RESYNC startup @12 (2 keys)',
    '    config/a = 1',
    '    config/b = {"x":1}',
    '  PUT config/a = 2 (was 1) @13',
    '  DELETE config/b (was {"x":1}) @14',
    '',
    'With --json, one JSON object per line: {"op":"resync","reason","revision","keys"} starts a',
    'resync (forget what you have), followed by its keys as {"op":"put","key","value",',
    '"revision","reason"}; each change is {"op":"put"|"delete","key","value" (puts),"prev"',
    '(when known),"revision","reason"}. Revisions are strings (they may exceed 2^53).',
    '',
    'After an outage the changes missed are printed (reason "reconnect" or "gap"), or a whole',
    'new resync with --resync-after-reconnect. Outages are reported on stderr. The command',
    'fails with exit code 5 when the first resync does not come within --timeout.',
    '',
    'Redis: the watch needs keyspace events (notify-keyspace-events with the classes K, g, $,',
    'x and e). When the server lacks some, the watch sets them with CONFIG SET and says so on',
    'stderr; with --verify-keyspace-events it only checks, and exits 4 naming what is missing.',
  ].join('\n'),
  options: {
    json: { type: 'boolean', help: 'one JSON object per line' },
    encoding: {
      type: 'string',
      arg: '<text|json|base64>',
      help: 'how values are shown: UTF-8 text (default), JSON, or base64 bytes',
    },
    'resync-after-reconnect': {
      type: 'boolean',
      help: 'after an outage, print a whole resync instead of the changes missed',
    },
    'verify-keyspace-events': {
      type: 'boolean',
      help: 'Redis: only check notify-keyspace-events (exit 4 when classes are missing), never set it',
    },
  },
  store: 'one',
  positionals: { min: 0, max: Infinity, names: '[prefix...]' },
  async run(context, values, prefixes) {
    const output = new ValueFormat(parseEncoding(stringOption(values, 'encoding')), (message) => {
      context.err(`warning: ${message}`)
    })
    const print = flag(values, 'json') ? printJson : printLines
    const { store, label, resyncAfterReconnect } = await context.open(context.storeSpec(), {
      verifyKeyspaceEvents: flag(values, 'verify-keyspace-events'),
    })
    const scheduler = context.io.scheduler
    const sync = createDatasync(store, {
      // The command acknowledges as soon as it has printed: no timeout to wait for.
      ackTimeout: '1h',
      resyncAfterReconnect: resyncAfterReconnect || flag(values, 'resync-after-reconnect'),
      scheduler,
    })
    const consumer = sync.register('watch', {
      prefixes: prefixes.length > 0 ? prefixes : [''],
    })

    return new Promise<number>((resolve, reject) => {
      const subscription = new Subscription()
      let synced = false
      let lost = false
      const finish = (end: () => void) => {
        subscription.unsubscribe()
        sync.close()
        context.progress.clear()
        end()
      }
      subscription.add(
        consumer.events$.subscribe((event) => {
          synced = true
          print(context, output, event)
          event.done()
        }),
      )
      subscription.add(
        sync.status$.subscribe((status) => {
          if (status.state === 'halted') {
            finish(() => {
              reject(status.error ?? new UnavailableError(label, 'the watch stopped'))
            })
          } else if (status.state === 'degraded' && !lost) {
            lost = true
            context.err(
              `${label}: degraded${status.error ? ` (${status.error.message})` : ''}; waiting for it to recover`,
            )
          } else if (status.state === 'in-sync' && lost) {
            lost = false
            context.err(`${label}: in sync again`)
          }
        }),
      )
      subscription.add(
        context.io.signals.subscribe(() => {
          finish(() => {
            resolve(EXIT.ok)
          })
        }),
      )
      subscription.add(
        timer(context.timeoutMs, scheduler).subscribe(() => {
          if (synced) return
          context.expire()
          finish(() => {
            reject(
              new UnavailableError(label, `no snapshot within ${context.timeoutMs} ms (--timeout)`),
            )
          })
        }),
      )
      subscription.add(
        timer(0, 250, scheduler)
          .pipe(takeWhile(() => !synced))
          .subscribe((tick) => {
            context.progress.update(`watch: reading ${label}… ${(tick / 4).toFixed(0)} s`, true)
          }),
      )
      subscription.add(sync.start())
    })
  },
}

function printLines(
  context: CommandContext,
  output: ValueFormat,
  event: ConsumerEvent<Uint8Array>,
): void {
  if (event.kind === 'resync') {
    const total = event.items.length
    context.out(`RESYNC ${event.reason} @${event.revision} (${total} ${plural(total, 'key')})`)
    event.items.forEach((item, index) => {
      context.out(`  ${item.key} = ${output.inline(item.key, item.value)}`)
      if ((index + 1) % CHUNK === 0) context.progress.update(`resync: ${index + 1}/${total} keys`)
    })
    context.progress.clear()
    return
  }
  if (event.reason !== 'live') {
    const count = event.changes.length
    context.out(`CHANGES ${event.reason} @${event.revision} (${count} ${plural(count, 'change')})`)
  }
  for (const change of event.changes) context.out(changeLine(output, change))
}

function printJson(
  context: CommandContext,
  output: ValueFormat,
  event: ConsumerEvent<Uint8Array>,
): void {
  if (event.kind === 'resync') {
    const total = event.items.length
    context.out(
      JSON.stringify({
        op: 'resync',
        reason: event.reason,
        revision: String(event.revision),
        keys: total,
      }),
    )
    event.items.forEach((item, index) => {
      context.out(
        JSON.stringify({
          op: 'put',
          key: item.key,
          value: output.json(item.key, item.value),
          revision: String(item.revision),
          reason: event.reason,
        }),
      )
      if ((index + 1) % CHUNK === 0) context.progress.update(`resync: ${index + 1}/${total} keys`)
    })
    context.progress.clear()
    return
  }
  for (const change of event.changes) {
    context.out(JSON.stringify(changeJson(output, change, event.reason)))
  }
}

function plural(count: number, word: string): string {
  return count === 1 ? word : `${word}s`
}
