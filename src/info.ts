import { nativeSync } from './errors'
import { nativeBinding } from './native'

/**
 * What libtorch the addon runs on: CUDA availability, thread count, and
 * whether this CPU computes bfloat16 natively (AVX-512 BF16 or AMX), which
 * `precision: 'bf16'` needs on the CPU.
 */
export function libtorchInfo(): { cudaAvailable: boolean; cudaDeviceCount: number; threads: number; cpuBf16Native: boolean } {
  return nativeBinding().libtorchInfo()
}

/**
 * The throughput of an n×n matrix product through libtorch, in GFLOP/s, in
 * fp32 or bf16: the ceilings benchmarks compare training against. Blocks for a few seconds.
 */
export function matmulGflops(n = 2048, repeats = 5, options: { threads?: number; device?: string; precision?: 'fp32' | 'bf16' } = {}): number {
  return nativeSync(() => nativeBinding().matmulGflops(n, repeats, options.threads ?? null, options.device ?? 'cpu', options.precision ?? 'fp32'))
}
