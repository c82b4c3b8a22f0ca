/** Small statistics and formatting helpers of the benchmarks. */
import { performance } from 'node:perf_hooks'

/** The median of `values` (the mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const mid = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/**
 * The ratio of two sides measured in alternating runs: the median of the per-run ratios (run i
 * of one side over run i of the other, measured back to back), so that load from other
 * processes, which drifts over minutes, cancels out of each ratio.
 */
export function pairedRatio(ours: readonly number[], raw: readonly number[]): number {
  const ratios: number[] = []
  for (let i = 0; i < Math.min(ours.length, raw.length); i++) ratios.push(ours[i]! / raw[i]!)
  return median(ratios)
}

/** The `p`-th percentile (0..100) of `values`, nearest rank. */
export function percentile(values: readonly number[], p: number): number {
  if (values.length === 0) return NaN
  const sorted = [...values].sort((a, b) => a - b)
  const rank = Math.min(sorted.length, Math.max(1, Math.ceil((p / 100) * sorted.length)))
  return sorted[rank - 1]!
}

/** CPU time (user + system) of a `process.cpuUsage(since)` difference, in milliseconds. */
export function cpuMs(used: NodeJS.CpuUsage): number {
  return (used.user + used.system) / 1000
}

/** Runs `work` and measures it: its result, the wall time and the process's CPU time (ms). */
export async function measure<T>(
  work: () => Promise<T>,
): Promise<{ value: T; ms: number; cpuMs: number }> {
  const cpu = process.cpuUsage()
  const start = performance.now()
  const value = await work()
  const ms = performance.now() - start
  return { value, ms, cpuMs: cpuMs(process.cpuUsage(cpu)) }
}

/** Milliseconds, 3 significant figures-ish. */
export function ms(value: number): string {
  if (!Number.isFinite(value)) return 'n/a'
  if (value >= 100) return `${value.toFixed(0)} ms`
  if (value >= 10) return `${value.toFixed(1)} ms`
  return `${value.toFixed(2)} ms`
}

/** A rate per second. */
export function perSecond(value: number): string {
  if (!Number.isFinite(value)) return 'n/a'
  return `${Math.round(value).toLocaleString('en')}/s`
}

/** Bytes as MiB. */
export function mib(bytes: number): string {
  if (!Number.isFinite(bytes)) return 'n/a'
  return `${(bytes / 1024 / 1024).toFixed(1)} MiB`
}

/** One line of the final table. */
export interface Row {
  readonly workload: string
  readonly backend: string
  readonly ours: string
  readonly raw: string
  /** ours / raw, or raw / ours for throughput: as the target states it. */
  readonly ratio: number
  /** `<= 1.25`, `>= 0.8`, or undefined for a figure shown for information. */
  readonly target?: { readonly op: '<=' | '>='; readonly value: number }
  /** The Go peer's figure (`--peer`), when it measured this row too. */
  readonly peer?: string
  /** ours / Go, medians. */
  readonly peerRatio?: number
}

/** Whether a row meets its target: 'pass', 'FAIL', or 'info' when it has none. */
export function verdict(row: Row): string {
  if (!row.target) return 'info'
  const ok = row.target.op === '<=' ? row.ratio <= row.target.value : row.ratio >= row.target.value
  return ok ? 'pass' : 'FAIL'
}

/** Renders rows as a Markdown table (readable in a terminal and pasteable into an issue). */
export function renderTable(rows: readonly Row[]): string {
  const withPeer = rows.some((row) => row.peer !== undefined)
  const times = (ratio: number | undefined) =>
    ratio !== undefined && Number.isFinite(ratio) ? `${ratio.toFixed(2)}x` : 'n/a'
  const header = withPeer
    ? ['workload', 'backend', 'ours', 'raw', 'Go', 'ratio', 'ours/Go', 'target', 'result']
    : ['workload', 'backend', 'ours', 'raw', 'ratio', 'target', 'result']
  const lines = rows.map((row) => [
    row.workload,
    row.backend,
    row.ours,
    row.raw,
    ...(withPeer ? [row.peer ?? '-'] : []),
    times(row.ratio),
    ...(withPeer ? [row.peer === undefined ? '-' : times(row.peerRatio)] : []),
    row.target ? `${row.target.op} ${row.target.value}x` : '-',
    verdict(row),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...lines.map((line) => line[i]!.length)))
  const format = (cells: readonly string[]) =>
    `| ${cells.map((cell, i) => cell.padEnd(widths[i]!)).join(' | ')} |`
  return [
    format(header),
    `|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`,
    ...lines.map(format),
  ].join('\n')
}
