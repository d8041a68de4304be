import * as os from 'node:os'
import { libtorchInfo } from '../src/index'

/** One line describing where a benchmark ran. */
export function describeMachine(): string {
  const cpus = os.cpus()
  const info = libtorchInfo()
  return `${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; ` +
    `Node ${process.version}; libtorch threads ${info.threads}; CUDA ${info.cudaAvailable ? `${info.cudaDeviceCount} device(s)` : 'none'}`
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
}

export async function timeIt(run: () => Promise<unknown>): Promise<number> {
  const started = performance.now()
  await run()
  return (performance.now() - started) / 1000
}
