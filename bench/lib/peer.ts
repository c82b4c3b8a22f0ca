/**
 * The Go peer column (`--peer PATH`): the cn-infra code path of `../shared/peer/cn-infra-bench`,
 * built outside the repository, run by this process on the same server and the same data right
 * after our and the raw side ran the same workload, so the three columns come from one run.
 */
import { spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Backend } from './backend.js'
import type { Row } from './stats.js'

/** One row the Go program writes with `-out`. */
export interface PeerRow {
  readonly workload: string
  readonly backend: string
  readonly median: number
  readonly unit: string
  readonly runs: readonly number[]
}

/** What the peer is run with: the same knobs as our side. */
export interface PeerSettings {
  readonly path: string
  readonly runs: number
  readonly warmups: number
  readonly verbose: boolean
  readonly changes: number
  readonly batch: number
  readonly concurrency: number
  readonly samples: number
  readonly puts: number
  readonly putConcurrency: number
}

/** The workloads the Go program has (others get no third column). */
const PEER_WORKLOADS = new Set(['resync', 'memory', 'throughput', 'latency', 'writes'])

/** Our row names the Go program spells differently. */
const ALIASES: Readonly<Record<string, string>> = {
  'heap + external after GC': 'heap after GC',
}

/** The Go program's address flag for a backend, or undefined when it does not speak it. */
function addressOf(backend: Backend): { flag: string; address: string } | undefined {
  // Our Redis rows with other store options (redis lean) have the same Go counterpart as redis.
  if (backend.name === 'etcd') {
    const first = backend.endpoint.split(',')[0] ?? ''
    return { flag: '-etcd', address: first.replace(/^https?:\/\//, '') }
  }
  if (backend.name === 'redis') return { flag: '-redis', address: `127.0.0.1:${backend.endpoint}` }
  return undefined
}

/**
 * Runs the Go program for one workload (and one size for resync) on `backend`'s server; resolves
 * with its rows, or [] when it has no counterpart. Its stdout goes to ours with `--verbose`.
 */
export async function runPeer(
  settings: PeerSettings,
  backend: Backend,
  workload: string,
  sizes: readonly number[],
): Promise<PeerRow[]> {
  const target = addressOf(backend)
  if (target === undefined || !PEER_WORKLOADS.has(workload)) return []
  const dir = mkdtempSync(join(tmpdir(), 'bench-peer-'))
  const out = join(dir, 'rows.json')
  const benchDir = fileURLToPath(new URL('../..', import.meta.url))
  const args = [
    target.flag,
    target.address,
    '-workloads',
    workload,
    '-sizes',
    sizes.join(','),
    '-runs',
    String(settings.runs),
    '-warmups',
    String(settings.warmups),
    '-changes',
    String(settings.changes),
    '-batch',
    String(settings.batch),
    '-concurrency',
    String(settings.concurrency),
    '-samples',
    String(settings.samples),
    '-puts',
    String(settings.puts),
    '-put-concurrency',
    String(settings.putConcurrency),
    '-bench-dir',
    benchDir,
    '-out',
    out,
    ...(settings.verbose ? ['-verbose'] : []),
  ]
  try {
    await new Promise<void>((resolve, reject) => {
      const child = spawn(settings.path, args, {
        stdio: ['ignore', settings.verbose ? 'inherit' : 'ignore', 'inherit'],
      })
      child.on('error', reject)
      child.on('exit', (code, signal) => {
        if (code === 0) resolve()
        else reject(new Error(`Go peer ${settings.path} ${args.join(' ')}: exit ${code ?? signal}`))
      })
    })
    return JSON.parse(readFileSync(out, 'utf8')) as PeerRow[]
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** Our figure of a row as a number in `unit` (the table keeps it as text), or NaN. */
function oursIn(text: string, unit: string): number {
  const match = /^([\d,.]+)\s*(\S+)$/.exec(text.trim())
  if (!match) return NaN
  const value = Number(match[1]!.replace(/,/g, ''))
  const shown = match[2]!
  if (shown === unit) return value
  if (unit === 'ms' && shown === 's') return value * 1000
  return NaN
}

/**
 * Adds the Go column to `backend`'s rows that the Go program measured too: its median, and
 * ours / Go (medians; for times, sizes and CPU lower is better, for rates higher).
 */
export function withPeer(rows: readonly Row[], peer: readonly PeerRow[], backend: Backend): Row[] {
  return rows.map((row) => {
    if (row.backend !== backend.label) return row
    let name = row.workload
    for (const [ours, go] of Object.entries(ALIASES)) name = name.replace(ours, go)
    const match = peer.find((p) => p.workload === name)
    if (match === undefined) return row
    const ours = oursIn(row.ours, match.unit)
    return {
      ...row,
      peer: formatPeer(match.median, match.unit),
      peerRatio: ours / match.median,
    }
  })
}

function formatPeer(value: number, unit: string): string {
  if (unit === '/s') return `${Math.round(value).toLocaleString('en')}/s`
  if (unit === 'ms') return value >= 100 ? `${value.toFixed(0)} ms` : `${value.toFixed(2)} ms`
  if (unit === 'µs') return `${value.toFixed(1)} µs`
  if (unit === 'MiB') return `${value.toFixed(1)} MiB`
  return `${value} ${unit}`
}
