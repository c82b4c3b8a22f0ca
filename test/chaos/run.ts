/**
 * `npm run chaos`: random fault schedules against every backend, each checked by the checker,
 * and a table per backend. See README.md beside this file.
 *
 *   npm run chaos                                    # every backend, 100 schedules each
 *   npm run chaos -- --backend etcd --seed 1234      # replay one schedule
 *   npm run chaos -- --backend memory,redis --schedules 20 --activity 1000
 *   npm run chaos -- --backend etcd --resync-after-reconnect off   # override the drawn option
 */
import { parseArgs } from 'node:util'
import { cleanupAllServers } from '../servers/index.js'
import { runBackend, printTable, type BackendSummary } from './report.js'
import { TARGETS } from './targets/index.js'

const { values } = parseArgs({
  options: {
    backend: { type: 'string', default: 'all' },
    seed: { type: 'string' },
    'base-seed': { type: 'string', default: '1' },
    schedules: { type: 'string', default: '100' },
    activity: { type: 'string', default: '2000' },
    'converge-ms': { type: 'string', default: '30000' },
    verbose: { type: 'boolean', default: false },
    // 'on' or 'off' overrides what each schedule draws.
    'resync-after-reconnect': { type: 'string' },
  },
})

const names = values.backend === 'all' ? Object.keys(TARGETS) : values.backend.split(',')
for (const name of names) {
  if (!(name in TARGETS)) {
    console.error(`unknown backend '${name}'; known: ${Object.keys(TARGETS).join(', ')}`)
    process.exit(2)
  }
}
const seeds =
  values.seed !== undefined
    ? values.seed.split(',').map(Number)
    : Array.from({ length: Number(values.schedules) }, (_, i) => Number(values['base-seed']) + i)
for (const seed of seeds) {
  if (!Number.isSafeInteger(seed) || seed < 0) {
    console.error(`--seed: expected non-negative integers, got '${String(seed)}'`)
    process.exit(2)
  }
}

const summaries: BackendSummary[] = []
let failed = false
try {
  for (const name of names) {
    const summary = await runBackend(TARGETS[name]!(), seeds, {
      activityMs: Number(values.activity),
      convergeMs: Number(values['converge-ms']),
      verbose: values.verbose,
      ...(values['resync-after-reconnect'] === undefined
        ? {}
        : { resyncAfterReconnect: values['resync-after-reconnect'] === 'on' }),
    })
    summaries.push(summary)
    printTable([summary])
    if (summary.violations > 0 || summary.aborted !== undefined) failed = true
  }
} finally {
  await cleanupAllServers()
}
console.log('\nchaos run:', `seeds ${seeds[0]}..${seeds[seeds.length - 1]}`)
printTable(summaries)
process.exit(failed ? 1 : 0)
