// A process group of PyTorch's c10d (the engine under torch.distributed and
// DistributedDataParallel) for data-parallel training: a TCPStore rendezvous
// at MASTER_ADDR:MASTER_PORT (rank 0 serves it), then ProcessGroupGloo on the
// CPU. Collectives work in place on a tch tensor: tch's C handle is an
// `at::Tensor*` (torch-sys/libtch/torch_api.h).
//
// c10d reports failures (a peer that never joins, a peer that dies mid-
// collective, timeouts) as C++ exceptions; every entry point catches them
// and writes the message to the caller's buffer, so nothing unwinds into Rust.

#include <torch/csrc/distributed/c10d/ProcessGroupGloo.hpp>

#include "guarded.hpp"
#include "rendezvous.hpp"

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

struct PixelcnnProcessGroup {
  c10::intrusive_ptr<c10d::Backend> backend;
  std::chrono::milliseconds timeout;
};

namespace {

using pixelcnn::guarded;

bool is_loopback(const std::string& addr) {
  return addr == "127.0.0.1" || addr == "localhost" || addr == "::1";
}

}  // namespace

extern "C" {

// Joins (rank 0: creates) the group. Rendezvous and collectives fail after
// `timeout_ms`. Returns 0 and sets *out, or -1 with the reason in `error`.
int pixelcnn_pg_new_gloo(const char* master_addr, int master_port, int rank, int world_size, long timeout_ms,
                         PixelcnnProcessGroup** out, char* error, std::size_t error_len) {
  return guarded(error, error_len, [&] {
    std::chrono::milliseconds timeout(timeout_ms);
    auto prefixed = pixelcnn::rendezvous(master_addr, master_port, rank, world_size, timeout);
    auto options = c10d::ProcessGroupGloo::Options::create(timeout);
    // On one machine every rank binds the loopback address the master uses;
    // across machines each binds the address its own hostname resolves to.
    std::string addr(master_addr);
    options->devices.push_back(is_loopback(addr) ? c10d::ProcessGroupGloo::createDeviceForHostname(addr)
                                                 : c10d::ProcessGroupGloo::createDefaultDevice());
    auto group = c10::make_intrusive<c10d::ProcessGroupGloo>(prefixed, rank, world_size, options);
    *out = new PixelcnnProcessGroup{group, timeout};
  });
}

// Sums `tensor` (a contiguous CPU tensor) over all ranks, in place.
int pixelcnn_pg_allreduce_sum(PixelcnnProcessGroup* group, void* tensor, char* error, std::size_t error_len) {
  return guarded(error, error_len, [&] {
    // One tensor per call: a vector of several would be read as one tensor
    // replicated over devices, not as several tensors.
    std::vector<at::Tensor> tensors{*static_cast<at::Tensor*>(tensor)};
    group->backend->allreduce(tensors, c10d::AllreduceOptions())->wait(group->timeout);
  });
}

// Overwrites `tensor` on every rank with rank `root`'s.
int pixelcnn_pg_broadcast(PixelcnnProcessGroup* group, void* tensor, int root, char* error, std::size_t error_len) {
  return guarded(error, error_len, [&] {
    std::vector<at::Tensor> tensors{*static_cast<at::Tensor*>(tensor)};
    c10d::BroadcastOptions options;
    options.rootRank = root;
    group->backend->broadcast(tensors, options)->wait(group->timeout);
  });
}

void pixelcnn_pg_free(PixelcnnProcessGroup* group) {
  try {
    delete group;
  } catch (...) {
  }
}

}  // extern "C"
