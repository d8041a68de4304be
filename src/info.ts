import { nativeBinding } from './native'

/** What libtorch the addon runs on: CUDA availability and thread count. */
export function libtorchInfo(): { cudaAvailable: boolean; cudaDeviceCount: number; threads: number } {
  return nativeBinding().libtorchInfo()
}
