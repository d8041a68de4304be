import { nativeSync } from './errors'
import { nativeBinding } from './native'

/** What `precision: 'auto'` (the default) runs on the default device, per kind of work. */
export interface AutoPrecision {
  device: string
  /** `fit`: bf16 where the device computes it natively. */
  training: 'fp32' | 'bf16'
  /** `evaluate`, `logProbs` and validation: always fp32 under `'auto'`. */
  likelihood: 'fp32' | 'bf16'
  /** `predict`: bf16 where native. */
  prediction: 'fp32' | 'bf16'
  /** `sample`, `complete`: fp32 (bf16 sampling measured slower than fp32 on a bf16 CPU). */
  sampling: 'fp32' | 'bf16'
}

/**
 * What libtorch the addon runs on: CUDA availability, thread count, whether
 * this CPU computes bfloat16 natively (AVX-512 BF16 or AMX), which
 * `precision: 'bf16'` needs on the CPU, whether the CUDA device does (compute
 * capability ≥ 8.0), and what `precision: 'auto'` resolves to.
 */
export function libtorchInfo(): { cudaAvailable: boolean; cudaDeviceCount: number; threads: number; cpuBf16Native: boolean; cudaBf16Native: boolean; autoPrecision: AutoPrecision } {
  return nativeBinding().libtorchInfo() as ReturnType<typeof libtorchInfo>
}

/**
 * The throughput of an n×n matrix product through libtorch, in GFLOP/s, in
 * fp32 or bf16: the ceilings benchmarks compare training against. Blocks for a few seconds.
 */
export function matmulGflops(n = 2048, repeats = 5, options: { threads?: number; device?: string; precision?: 'fp32' | 'bf16' } = {}): number {
  return nativeSync(() => nativeBinding().matmulGflops(n, repeats, options.threads ?? null, options.device ?? 'cpu', options.precision ?? 'fp32'))
}
