import {
  Subscription,
  concat,
  concatMap,
  defer,
  finalize,
  from,
  ignoreElements,
  map,
  of,
  takeWhile,
  tap,
  timer,
  type Observable,
} from 'rxjs'
import { valuesEqual } from '../../core/equal.js'
import { CapabilityError, UnavailableError } from '../../core/errors.js'
import type { KvStore } from '../../core/store.js'
import { createDatasync } from '../../sync/datasync.js'
import { publishTo, type Publication, type PublishResult } from '../../sync/publish.js'
import type { ConsumerEvent } from '../../sync/types.js'
import { flag, stringOption, type Command } from '../command.js'
import type { CommandContext } from '../context.js'
import { EXIT, UsageError } from '../errors.js'

/** `rx-datasync mirror --from <store> --to <store>` */
export const mirror: Command = {
  name: 'mirror',
  usage: 'mirror --from <store> --to <store> [options]',
  summary: "copy one store's content and changes into another, until interrupted",
  description: [
    'Publishes everything under --prefix in the source into the destination, then every',
    'change (deletes included) as it happens, until SIGINT or SIGTERM; with --once it stops',
    'after the first copy. Each store is a URL or a backend name configured by its file, e.g.',
    '',
    '  rx-datasync mirror --from file:///etc/app/conf.d --to etcd://127.0.0.1:2379',
    '  rx-datasync mirror --from filedb --filedb-config files.yaml --to etcd --etcd-config etcd.yaml',
    '',
    'On start and after every outage of the source, the destination is listed under',
    '--to-prefix and made equal to the source: missing and different keys are written, and keys',
    'the source does not have are deleted (unless --keep-extra). Keys are renamed from --prefix',
    'to --to-prefix. Each write is printed ("PUT key", "DELETE key"; with --json,',
    '{"op","key","ok"}), then "SYNCED ..." ({"op":"synced",...}) after each copy. A write that',
    'fails is retried, then reported on stderr; the exit code is then 1.',
  ].join('\n'),
  options: {
    from: { type: 'string', arg: '<store>', help: 'the source: a URL or a backend name' },
    to: { type: 'string', arg: '<store>', help: 'the destination: a URL or a backend name' },
    prefix: { type: 'string', arg: '<prefix>', help: 'copy the keys under it (default: all)' },
    'to-prefix': {
      type: 'string',
      arg: '<prefix>',
      help: 'put them under this prefix instead (default: --prefix)',
    },
    once: { type: 'boolean', help: 'stop after the first copy' },
    'keep-extra': {
      type: 'boolean',
      help: 'never delete destination keys the source does not have at a resync',
    },
    concurrency: { type: 'string', arg: '<n>', help: 'writes in flight at once (default 16)' },
    quiet: { type: 'boolean', short: 'q', help: 'print the SYNCED lines only' },
    json: { type: 'boolean', help: 'one JSON object per line' },
    'verify-keyspace-events': {
      type: 'boolean',
      help: 'Redis: only check notify-keyspace-events (exit 4 when classes are missing), never set it',
    },
  },
  store: 'two',
  positionals: { min: 0, max: 0, names: '' },
  async run(context, values) {
    const fromSpec = stringOption(values, 'from')
    const toSpec = stringOption(values, 'to')
    if (fromSpec === undefined || toSpec === undefined) {
      throw new UsageError('give both --from <store> and --to <store>', 'mirror')
    }
    const prefix = stringOption(values, 'prefix') ?? ''
    const toPrefix = stringOption(values, 'to-prefix') ?? prefix
    const concurrencyText = stringOption(values, 'concurrency') ?? '16'
    const concurrency = Number(concurrencyText)
    if (!/^\d+$/.test(concurrencyText) || concurrency < 1) {
      throw new UsageError(
        `--concurrency: expected a whole number of at least 1, got '${concurrencyText}'`,
        'mirror',
      )
    }
    const settings: MirrorSettings = {
      prefix,
      toPrefix,
      concurrency,
      keepExtra: flag(values, 'keep-extra'),
      quiet: flag(values, 'quiet'),
      json: flag(values, 'json'),
    }

    const source = await context.open(fromSpec, {
      verifyKeyspaceEvents: flag(values, 'verify-keyspace-events'),
    })
    const target = await context.open(toSpec)
    if (!target.store.capabilities.write) {
      throw new CapabilityError(target.store.name, 'writes', `--to ${target.label} is read-only`)
    }
    const scheduler = context.io.scheduler
    // Full resyncs after outages: the destination is listed again and made equal to the source.
    const sync = createDatasync(source.store, {
      ackTimeout: '24h',
      resyncAfterReconnect: true,
      scheduler,
    })
    const consumer = sync.register('mirror', { prefixes: [prefix] })
    const once = flag(values, 'once')
    let failures = 0

    return new Promise<number>((resolve, reject) => {
      const subscription = new Subscription()
      let copied = false
      let lost = false
      const finish = (end: () => void) => {
        subscription.unsubscribe()
        sync.close()
        context.progress.clear()
        end()
      }
      const done = () => {
        finish(() => {
          resolve(failures > 0 ? EXIT.failed : EXIT.ok)
        })
      }
      subscription.add(
        consumer.events$
          .pipe(
            concatMap((event) =>
              apply(context, target.store, settings, event).pipe(
                tap((failed) => {
                  failures += failed
                }),
                finalize(() => {
                  event.done()
                }),
                map(() => event),
              ),
            ),
          )
          .subscribe({
            next: (event) => {
              if (event.kind !== 'resync') return
              copied = true
              if (once) done()
            },
            error: (error: unknown) => {
              finish(() => {
                reject(error instanceof Error ? error : new Error(String(error)))
              })
            },
          }),
      )
      subscription.add(
        sync.status$.subscribe((status) => {
          if (status.state === 'halted') {
            finish(() => {
              reject(status.error ?? new UnavailableError(source.label, 'the watch stopped'))
            })
          } else if (status.state === 'degraded' && !lost) {
            lost = true
            context.err(
              `${source.label}: degraded${status.error ? ` (${status.error.message})` : ''}; waiting for it to recover`,
            )
          } else if (status.state === 'in-sync' && lost) {
            lost = false
            context.err(`${source.label}: in sync again`)
          }
        }),
      )
      subscription.add(context.io.signals.subscribe(done))
      subscription.add(
        timer(context.timeoutMs, scheduler).subscribe(() => {
          if (copied) return
          finish(() => {
            reject(
              new UnavailableError(
                source.label,
                `no snapshot within ${context.timeoutMs} ms (--timeout)`,
              ),
            )
          })
        }),
      )
      subscription.add(
        timer(0, 250, scheduler)
          .pipe(takeWhile(() => !copied))
          .subscribe((tick) => {
            context.progress.update(
              `mirror: reading ${source.label}… ${(tick / 4).toFixed(0)} s`,
              true,
            )
          }),
      )
      subscription.add(sync.start())
    })
  },
}

interface MirrorSettings {
  readonly prefix: string
  readonly toPrefix: string
  readonly concurrency: number
  readonly keepExtra: boolean
  readonly quiet: boolean
  readonly json: boolean
}

/** Writes one event into the destination; emits how many writes failed. */
function apply(
  context: CommandContext,
  target: KvStore,
  settings: MirrorSettings,
  event: ConsumerEvent<Uint8Array>,
): Observable<number> {
  const rename = (key: string) => settings.toPrefix + key.slice(settings.prefix.length)
  if (event.kind === 'change') {
    const publications = event.changes.map((change): Publication<Uint8Array> =>
      change.op === 'put'
        ? { op: 'put', key: rename(change.key), value: change.value }
        : { op: 'delete', key: rename(change.key) },
    )
    return publish(context, target, settings, publications)
  }
  return defer(() =>
    context.once(`${target.name} (listing the destination)`, target.list(settings.toPrefix)),
  ).pipe(
    concatMap((existing) => {
      const current = new Map(existing.map((item) => [item.key, item.value]))
      const wanted = new Set<string>()
      const publications: Publication<Uint8Array>[] = []
      for (const item of event.items) {
        const key = rename(item.key)
        wanted.add(key)
        const value = current.get(key)
        if (value === undefined || !valuesEqual(value, item.value)) {
          publications.push({ op: 'put', key, value: item.value })
        }
      }
      if (!settings.keepExtra) {
        for (const key of current.keys()) {
          if (!wanted.has(key)) publications.push({ op: 'delete', key })
        }
      }
      const puts = publications.filter((p) => p.op === 'put').length
      const deletes = publications.length - puts
      return publish(context, target, settings, publications).pipe(
        tap((failed) => {
          const summary = {
            op: 'synced',
            reason: event.reason,
            keys: event.items.length,
            put: puts,
            deleted: deletes,
            failed,
          }
          context.out(
            settings.json
              ? JSON.stringify(summary)
              : `SYNCED ${event.reason}: ${summary.keys} keys (${puts} put, ${deletes} deleted, ${failed} failed)`,
          )
        }),
      )
    }),
  )
}

/** Publishes writes, printing each; emits how many failed. */
function publish(
  context: CommandContext,
  target: KvStore,
  settings: MirrorSettings,
  publications: readonly Publication<Uint8Array>[],
): Observable<number> {
  if (publications.length === 0) return of(0)
  const total = publications.length
  let written = 0
  let failed = 0
  return from(publications).pipe(
    publishTo<Uint8Array>(target, {
      concurrency: settings.concurrency,
      scheduler: context.io.scheduler,
    }),
    tap((result: PublishResult<Uint8Array>) => {
      written++
      const { op, key } = result.publication
      if (!result.ok) {
        failed++
        context.err(`${op} ${key} failed: ${result.error.message}`)
        if (settings.json) {
          context.out(JSON.stringify({ op, key, ok: false, error: result.error.message }))
        }
      } else if (!settings.quiet) {
        context.out(
          settings.json
            ? JSON.stringify({ op, key, ok: true })
            : `${op === 'put' ? 'PUT' : 'DELETE'} ${key}`,
        )
      }
      if (total > 1) context.progress.update(`mirror: ${written}/${total} writes`)
    }),
    ignoreElements(),
    finalize(() => {
      context.progress.clear()
    }),
    (writes) =>
      concat(
        writes,
        defer(() => of(failed)),
      ),
  )
}
