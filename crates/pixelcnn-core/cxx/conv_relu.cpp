// A convolution followed by its ReLU as one oneDNN primitive, for inference
// in bf16 on the CPU: libtorch's `mkldnn::_convolution_pointwise` with the
// "relu" post-op, the operator PyTorch's inductor emits for conv → relu.
//
// Why: in a bf16 forward pass of the seed network, the separate ReLUs took
// 28% of the time (`perf`, BENCHMARKS.md: they run through ATen's AVX2 bf16
// kernels, converting every element to fp32 and back), and in PyTorch the
// fused form ran the same network's forward 2.3–2.5× faster than conv2d then
// relu. A post-op applies the ReLU to each output block while it is still
// in registers.
//
// Only without autograd: the operator has no backward, so under grad mode
// (training) the caller keeps the composition. The operator is found through
// the dispatcher by name, as Python's torch.ops finds it; where libtorch was
// built without oneDNN it is absent and the caller falls back too.

#include "guarded.hpp"

#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/core/grad_mode.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace {

const std::optional<c10::OperatorHandle>& conv_pointwise() {
  static const std::optional<c10::OperatorHandle> handle =
      c10::Dispatcher::singleton().findSchema({"mkldnn::_convolution_pointwise", ""});
  return handle;
}

}  // namespace

extern "C" {

// relu(conv2d(x, w, b, stride 1, padding (pad_h, pad_w))) for `at::Tensor*`
// x, w, b (b may be null). Returns 0 with the new tensor in `*out` (freed by
// tch), 1 when the fused form does not apply (grad mode on, not a CPU bf16
// input, or no such operator in this libtorch; nothing written), or -1 with
// the message in `error`.
int pixelcnn_conv_relu(void* x, void* w, void* b, int64_t pad_h, int64_t pad_w, void** out, char* error, std::size_t error_len) {
  int status = 1;
  const int caught = pixelcnn::guarded(error, error_len, [&] {
    const auto& input = *static_cast<at::Tensor*>(x);
    if (at::GradMode::is_enabled() || !input.device().is_cpu() || input.scalar_type() != at::kBFloat16) return;
    const auto& handle = conv_pointwise();
    if (!handle) return;
    const auto& weight = *static_cast<at::Tensor*>(w);
    std::vector<c10::IValue> stack;
    stack.reserve(10);
    stack.emplace_back(input);
    stack.emplace_back(weight.contiguous());
    if (b != nullptr) {
      stack.emplace_back(*static_cast<at::Tensor*>(b));
    } else {
      stack.emplace_back();
    }
    stack.emplace_back(std::vector<int64_t>{pad_h, pad_w});  // padding
    stack.emplace_back(std::vector<int64_t>{1, 1});          // stride
    stack.emplace_back(std::vector<int64_t>{1, 1});          // dilation
    stack.emplace_back(static_cast<int64_t>(1));             // groups
    stack.emplace_back(std::string("relu"));                 // attr
    stack.emplace_back(c10::List<std::optional<c10::Scalar>>());  // scalars
    stack.emplace_back();                                    // algorithm: None
    handle->callBoxed(&stack);
    *out = new at::Tensor(stack.at(0).toTensor());
    status = 0;
  });
  return caught != 0 ? -1 : status;
}

// Whether autograd records operations on this thread (the caller checks it
// before preparing a fused call's weights).
int pixelcnn_grad_mode_enabled() { return at::GradMode::is_enabled() ? 1 : 0; }

}  // extern "C"
