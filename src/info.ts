import { nativeSync } from './errors'
import { nativeBinding } from './native'

/** What libtorch the addon runs on: CUDA availability and thread count. */
export function libtorchInfo(): { cudaAvailable: boolean; cudaDeviceCount: number; threads: number } {
  return nativeBinding().libtorchInfo()
}

/**
 * The fp32 throughput of an n×n matrix product through libtorch, in GFLOP/s:
 * the ceiling benchmarks compare training against. Blocks for a few seconds.
 */
export function matmulGflops(n = 2048, repeats = 5, options: { threads?: number; device?: string } = {}): number {
  return nativeSync(() => nativeBinding().matmulGflops(n, repeats, options.threads ?? null, options.device ?? 'cpu'))
}
