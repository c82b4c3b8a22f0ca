// FileDB snapshot cost, dominated by parsing: a tree of 100 YAML files holding 100k keys (1,000
// nested entries each), and the same tree as JSON for reference. Each figure is the median of
// --runs timed snapshots after --warmups untimed ones, each from a fresh store (the first
// snapshot of a watch reads and parses every file), in CPU time of this process (wall time on
// a shared machine mostly measures the other processes).
//
//   node --conditions=source --import tsx bench/filedb-yaml.ts [--runs 7] [--warmups 2]
//        [--files 100] [--keys 1000] [--no-parse-rows]
//
// It also times parsing alone, the same YAML text through js-yaml 4 (what FileDB uses) and
// through the `yaml` package's parseDocument + toJS (what FileDB used before), to show where
// the snapshot's time goes.
import { mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { load, CORE_SCHEMA } from 'js-yaml'
import { firstValueFrom } from 'rxjs'
import { parseDocument } from 'yaml'
import { createFileStore } from '../src/backends/filedb/index.js'

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '7' },
    warmups: { type: 'string', default: '2' },
    files: { type: 'string', default: '100' },
    keys: { type: 'string', default: '1000' },
    'no-parse-rows': { type: 'boolean', default: false },
  },
})
const runs = Number(values.runs)
const warmups = Number(values.warmups)
const files = Number(values.files)
const perFile = Number(values.keys)

function entry(file: number, index: number) {
  return {
    key: `config/f${file}/route-${index}`,
    value: {
      via: `10.${file}.${index % 256}.1`,
      weight: index % 17,
      enabled: index % 3 !== 0,
      tags: ['edge', `zone-${index % 5}`],
      limits: { rps: 1000 + index, burst: 50 },
    },
  }
}

function yamlText(file: number): string {
  const lines = ['data:']
  for (let i = 0; i < perFile; i++) {
    const { key, value } = entry(file, i)
    lines.push(
      `  - key: ${key}`,
      '    value:',
      `      via: ${value.via}`,
      `      weight: ${value.weight}`,
      `      enabled: ${value.enabled}`,
      `      tags: [${value.tags.join(', ')}]`,
      '      limits:',
      `        rps: ${value.limits.rps}`,
      `        burst: ${value.limits.burst}`,
    )
  }
  return `${lines.join('\n')}\n`
}

function jsonText(file: number): string {
  const data = Array.from({ length: perFile }, (_, i) => entry(file, i))
  return `${JSON.stringify({ data }, null, 2)}\n`
}

async function writeTree(root: string, ext: 'yaml' | 'json'): Promise<number> {
  await mkdir(root, { recursive: true })
  let bytes = 0
  for (let file = 0; file < files; file++) {
    const text = ext === 'yaml' ? yamlText(file) : jsonText(file)
    bytes += Buffer.byteLength(text)
    await writeFile(join(root, `routes-${file}.${ext}`), text)
  }
  return bytes
}

/** The CPU time of this process in ms: on a busy machine, what the work cost without the waits. */
function cpuMs(): number {
  const { user, system } = process.cpuUsage()
  return (user + system) / 1000
}

async function snapshotMs(root: string): Promise<number> {
  const store = createFileStore({ paths: [root] })
  try {
    const started = cpuMs()
    const first = await firstValueFrom(store.watch(['']))
    const elapsed = cpuMs() - started
    const keys = first.type === 'snapshot' ? first.items.length : -1
    if (keys !== files * perFile) throw new Error(`expected ${files * perFile} keys, got ${keys}`)
    return elapsed
  } finally {
    await store.close()
  }
}

function median(numbers: number[]): number {
  const sorted = [...numbers].sort((a, b) => a - b)
  const middle = Math.floor(sorted.length / 2)
  return sorted.length % 2 === 1
    ? (sorted[middle] ?? 0)
    : ((sorted[middle - 1] ?? 0) + (sorted[middle] ?? 0)) / 2
}

async function timed(fn: () => Promise<number> | number): Promise<number> {
  for (let i = 0; i < warmups; i++) await fn()
  const samples: number[] = []
  for (let i = 0; i < runs; i++) samples.push(await fn())
  return median(samples)
}

const work = await mkdtemp(join(tmpdir(), 'rx-datasync-bench-filedb-'))
try {
  const yamlBytes = await writeTree(join(work, 'yaml'), 'yaml')
  const jsonBytes = await writeTree(join(work, 'json'), 'json')
  const texts = Array.from({ length: files }, (_, file) => yamlText(file))
  const parseWith = (parse: (text: string) => unknown) => () => {
    const started = cpuMs()
    for (const text of texts) parse(text)
    return cpuMs() - started
  }
  const rows: [string, number][] = [
    [
      `FileDB snapshot, ${files} YAML files, ${(files * perFile) / 1000}k keys (${(yamlBytes / 1e6).toFixed(1)} MB)`,
      await timed(() => snapshotMs(join(work, 'yaml'))),
    ],
    [
      `FileDB snapshot, same tree as JSON (${(jsonBytes / 1e6).toFixed(1)} MB)`,
      await timed(() => snapshotMs(join(work, 'json'))),
    ],
  ]
  if (!values['no-parse-rows']) {
    rows.push([
      'parse only: js-yaml 4 load (CORE_SCHEMA)',
      await timed(parseWith((text) => load(text, { schema: CORE_SCHEMA }))),
    ])
    rows.push([
      "parse only: yaml parseDocument + toJS (FileDB's parser before)",
      await timed(
        parseWith((text) => parseDocument(text, { uniqueKeys: true }).toJS({ maxAliasCount: 100 })),
      ),
    ])
  }
  console.log(`median of ${runs} runs (${warmups} warm-ups), Node ${process.version}`)
  for (const [label, value] of rows) console.log(`${label.padEnd(72)} ${value.toFixed(0)} ms CPU`)
} finally {
  await rm(work, { recursive: true, force: true })
}
