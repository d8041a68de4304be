import * as os from 'node:os'
import { libtorchInfo } from '../src/index'

/** One line describing where a benchmark ran. */
export function describeMachine(): string {
  const cpus = os.cpus()
  const info = libtorchInfo()
  return `${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; ` +
    `Node ${process.version}; libtorch threads ${info.threads}; CUDA ${info.cudaAvailable ? `${info.cudaDeviceCount} device(s)` : 'none'}`
}
