// Whether the current CUDA device computes bfloat16 natively (compute
// capability 8.0, Ampere, or more), asked through libtorch's CUDA hooks: the
// hooks' interface is a CPU-only header, so this builds and links against any
// libtorch, and a libtorch without CUDA answers with its stub (false).

#include <ATen/detail/CUDAHooksInterface.h>

extern "C" int pixelcnn_cuda_bf16_native() {
  try {
    const auto& hooks = at::detail::getCUDAHooks();
    // supportsBFloat16ConvolutionWithCuDNNv8: "the current device is at least Ampere".
    return hooks.hasCUDA() && hooks.supportsBFloat16ConvolutionWithCuDNNv8() ? 1 : 0;
  } catch (...) {
    return 0;
  }
}
