/**
 * The second process of the bus round trip (test/integration/nats-bus.test.ts): a datasync over
 * a NATS stream source whose one consumer applies each event by appending it to a log file
 * (synchronously, before `done()`), so what it applied survives a kill -9. Started again, it
 * gets a resync (the last message per key at the stream's last sequence L), then the changes
 * after L; the stream is acknowledged only after the consumer's `done()`.
 *
 * Log lines: `S <revision> <key> <value>` (a snapshot item), `C <revision> <key> put <value>` or
 * `C <revision> <key> delete`.
 *
 * Arguments: <servers> <stream> <subjectPrefix> <log file>. Prints `ready` once in sync.
 */
import { appendFileSync } from 'node:fs'
import { filter, firstValueFrom } from 'rxjs'
import { acknowledgeApplied, createNatsStreamSource } from '../../../src/backends/nats/index.js'
import { createDatasync, string } from '../../../src/index.js'

const [servers = '', stream = '', subjectPrefix = '', log = ''] = process.argv.slice(2)
const source = createNatsStreamSource({
  servers,
  stream,
  subjectPrefix,
  durable: 'applier',
  ackWait: '3s',
})
const sync = createDatasync(source, { ackTimeout: '10s' })
const text = string()
const consumer = sync.register('applier', { prefixes: ['bus/'], codec: text })
consumer.events$.subscribe((event) => {
  const lines =
    event.kind === 'resync'
      ? event.items.map((item) => `S ${event.revision} ${item.key} ${item.value}`)
      : event.changes.map((change) =>
          change.op === 'put'
            ? `C ${change.revision} ${change.key} put ${change.value}`
            : `C ${change.revision} ${change.key} delete`,
        )
  if (lines.length > 0) appendFileSync(log, `${lines.join('\n')}\n`)
  event.done()
})
acknowledgeApplied(source, sync)
sync.start()
await firstValueFrom(sync.status$.pipe(filter((status) => status.state === 'in-sync')))
process.stdout.write('ready\n')
