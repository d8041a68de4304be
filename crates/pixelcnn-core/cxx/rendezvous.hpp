// The rendezvous both shims start from: a TCPStore that rank 0 serves at
// master_addr:master_port and every rank joins (waiting up to `timeout` for
// all of them), under a prefix of this library's own.
#pragma once

#include <torch/csrc/distributed/c10d/PrefixStore.hpp>
#include <torch/csrc/distributed/c10d/TCPStore.hpp>

#include <chrono>
#include <cstdint>
#include <string>

namespace pixelcnn {

inline c10::intrusive_ptr<c10d::Store> rendezvous(const char* master_addr, int master_port, int rank, int world_size,
                                                  std::chrono::milliseconds timeout) {
  c10d::TCPStoreOptions store_options;
  store_options.port = static_cast<std::uint16_t>(master_port);
  store_options.isServer = rank == 0;
  store_options.numWorkers = static_cast<std::size_t>(world_size);
  store_options.waitWorkers = true;
  store_options.timeout = timeout;
  auto store = c10::make_intrusive<c10d::TCPStore>(std::string(master_addr), store_options);
  return c10::make_intrusive<c10d::PrefixStore>("pixelcnn", store);
}

}  // namespace pixelcnn
