/** The header of a benchmark run: the machine, Node and the servers' versions. */
import os from 'node:os'

export function machineLines(): string[] {
  const cpus = os.cpus()
  const model = cpus[0]?.model.trim() ?? 'unknown CPU'
  return [
    `machine: ${model}, ${cpus.length} cores (${os.availableParallelism()} available), ${(os.totalmem() / 1024 ** 3).toFixed(1)} GiB memory, ${os.platform()} ${os.release()} ${os.arch()}`,
    `load average at start: ${os
      .loadavg()
      .map((l) => l.toFixed(2))
      .join(', ')} (the machine is shared: prefer the ratios)`,
    `node: ${process.version} (V8 ${process.versions.v8})`,
  ]
}
