import type { Observable } from 'rxjs'
import type { KvStore } from '../../core/store.js'
import { flag, type Command } from '../command.js'
import { EXIT } from '../errors.js'

/** The key `ping` reads: one round trip that finds nothing. */
export const PING_KEY = '.rx-datasync/ping'

/** `rx-datasync ping` */
export const ping: Command = {
  name: 'ping',
  usage: 'ping [options]',
  summary: 'check that the store answers (exit code 0, else 5), and how fast',
  description: [
    'Opens the store, makes one read round trip (a get of a key that does not exist; PING on',
    'each Redis master), prints "<store>: ok in N ms" and exits 0. A store that cannot be',
    'reached, or does not answer within --timeout, exits 5 with the reason on stderr; refused',
    'credentials or a bad configuration exit 4. With --json: {"store","ok","ms"}. For',
    'health checks of scripts and containers.',
  ].join('\n'),
  options: { json: { type: 'boolean', help: 'one JSON object' } },
  store: 'one',
  positionals: { min: 0, max: 0, names: '' },
  async run(context, values) {
    const { store, label } = await context.open(context.storeSpec())
    const scheduler = context.io.scheduler
    const started = scheduler.now()
    const round: Observable<unknown> = hasPing(store) ? store.ping() : store.get(PING_KEY)
    await context.once(label, round)
    const ms = Math.round(scheduler.now() - started)
    context.out(
      flag(values, 'json')
        ? JSON.stringify({ store: label, ok: true, ms })
        : `${label}: ok in ${ms} ms`,
    )
    return EXIT.ok
  },
}

/** A store with its own round trip (the Redis store's `ping()`, which reaches every master). */
function hasPing(store: KvStore): store is KvStore & { ping(): Observable<unknown> } {
  return typeof (store as { ping?: unknown }).ping === 'function'
}
