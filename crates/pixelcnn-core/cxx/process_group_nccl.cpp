// The NCCL twin of process_group.cpp: the same TCPStore rendezvous (rank 0
// serves it at MASTER_ADDR:MASTER_PORT), then c10d's ProcessGroupNCCL, whose
// collectives work in place on CUDA tensors. build.rs compiles this file only
// where the PyTorch wheel has CUDA and NCCL (Linux x86-64) and every header is
// there, into a shared library of its own that the core opens when a group
// asks for NCCL: linked into the addon, libtorch_cuda.so would become a hard
// dependency, and the addon would no longer load on a CPU-only libtorch.
//
// Every entry point catches every C++ exception and writes its message to the
// caller's buffer; nothing unwinds into Rust.

#include <c10/cuda/CUDAFunctions.h>
#include <torch/csrc/distributed/c10d/ProcessGroupNCCL.hpp>

#include "guarded.hpp"
#include "rendezvous.hpp"

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

struct PixelcnnNcclGroup {
  c10::intrusive_ptr<c10d::ProcessGroupNCCL> backend;
  c10::DeviceIndex device;
};

namespace {

using pixelcnn::guarded;

at::Tensor& checked(PixelcnnNcclGroup* group, void* tensor) {
  at::Tensor& t = *static_cast<at::Tensor*>(tensor);
  TORCH_CHECK(t.is_cuda() && t.is_contiguous(), "NCCL takes contiguous CUDA tensors, got a ",
              t.is_contiguous() ? "" : "non-contiguous ", t.device(), " tensor");
  TORCH_CHECK(t.get_device() == group->device, "this rank's NCCL group is on cuda:", static_cast<int>(group->device),
              ", got a tensor on ", t.device());
  return t;
}

// Stream-ordered: the caller's CUDA stream waits for the collective without
// the host waiting (as DistributedDataParallel does). c10d's watchdog enforces
// the group's timeout; TORCH_NCCL_BLOCKING_WAIT=1 makes the host wait instead,
// so that a timeout arrives here as an exception.
void finish(const c10::intrusive_ptr<c10d::Work>& work) { work->wait(); }

}  // namespace

extern "C" {

// Joins (rank 0: creates) the group, this process's collectives on CUDA
// device `device`. Returns 0 and sets *out, or -1 with the reason in `error`.
int pixelcnn_nccl_new(const char* master_addr, int master_port, int rank, int world_size, long timeout_ms, int device,
                      PixelcnnNcclGroup** out, char* error, std::size_t error_len) {
  return guarded(error, error_len, [&] {
    std::chrono::milliseconds timeout(timeout_ms);
    // Bind this process to its GPU before NCCL creates anything, as
    // torch.cuda.set_device(local_rank) does. Without a GPU there is nothing
    // to bind: ProcessGroupNCCL's constructor below then says so.
    if (c10::cuda::device_count() > 0) c10::cuda::set_device(static_cast<c10::DeviceIndex>(device));
    auto prefixed = pixelcnn::rendezvous(master_addr, master_port, rank, world_size, timeout);
    auto options = c10d::ProcessGroupNCCL::Options::create();
    options->timeout = timeout;
    auto group = c10::make_intrusive<c10d::ProcessGroupNCCL>(prefixed, rank, world_size, options);
    *out = new PixelcnnNcclGroup{group, static_cast<c10::DeviceIndex>(device)};
  });
}

// Sums `tensor` (a contiguous tensor on the group's device) over all ranks, in place.
int pixelcnn_nccl_allreduce_sum(PixelcnnNcclGroup* group, void* tensor, char* error, std::size_t error_len) {
  return guarded(error, error_len, [&] {
    at::Tensor& t = checked(group, tensor);
    // One tensor per call (a vector of several is one tensor per device).
    // ProcessGroupNCCL guards the tensor's device itself.
    std::vector<at::Tensor> tensors{t};
    finish(group->backend->allreduce(tensors, c10d::AllreduceOptions()));
  });
}

// Overwrites `tensor` on every rank with rank `root`'s.
int pixelcnn_nccl_broadcast(PixelcnnNcclGroup* group, void* tensor, int root, char* error, std::size_t error_len) {
  return guarded(error, error_len, [&] {
    at::Tensor& t = checked(group, tensor);
    std::vector<at::Tensor> tensors{t};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    finish(group->backend->broadcast(tensors, options));
  });
}

void pixelcnn_nccl_free(PixelcnnNcclGroup* group) {
  try {
    // Releases the communicators (ncclCommDestroy) before the group goes.
    if (group != nullptr && group->backend) group->backend->shutdown();
  } catch (...) {
  }
  try {
    delete group;
  } catch (...) {
  }
}

}  // extern "C"
