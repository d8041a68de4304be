// A caching CPU allocator for libtorch: large blocks freed by one training
// step are kept, already paged in, for the next step to reuse.
//
// Why: a training step of the gated preset at batch 128 allocates and frees
// dozens of 25-51 MB activations. glibc hands such blocks back to the kernel
// (or keeps them in a per-thread arena that the next step, run on another
// libuv worker thread, does not use), so every step faults in and zeroes
// hundreds of MB of fresh pages. PyTorch's own CUDA allocator caches blocks
// for the same reason; on the CPU libtorch leaves it to malloc. Steps repeat
// the same shapes, so an exact-size (page-rounded) cache hits almost always.
//
// Blocks below SMALL_BLOCK go straight to c10's allocator: malloc recycles
// those well. Cached bytes are capped; a block freed beyond the cap is
// released. `pixelcnn_cpu_cache_release` empties the cache when a long task
// ends. Every entry point is noexcept-by-construction: nothing throws across
// the extern "C" boundary.

#include <c10/core/Allocator.h>
#include <c10/core/CPUAllocator.h>
#include <c10/core/impl/alloc_cpu.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <map>
#include <mutex>

namespace {

constexpr std::size_t SMALL_BLOCK = std::size_t(1) << 20;  // 1 MiB
constexpr std::size_t PAGE = 4096;
// Every allocation starts with a header that records its capacity (0: not
// cached), because libtorch also frees through `raw_deleter`, which gets
// only the data pointer (oneDNN's scratch buffers do). 64 bytes keep the data
// at c10's 64-byte alignment.
constexpr std::size_t HEADER = 64;
// A cached block may serve a request up to 1/8 smaller than itself: shapes
// that differ slightly (the last, partial batch) still reuse blocks, and the
// waste is bounded.
constexpr std::size_t SLACK_DIVISOR = 8;

std::size_t& capacity_of(void* data) {
  return *reinterpret_cast<std::size_t*>(static_cast<char*>(data) - HEADER);
}

void* base_of(void* data) { return static_cast<char*>(data) - HEADER; }

// c10::alloc_cpu throws c10::Error when out of memory, as the default
// allocator does; libtorch turns that into an error of the op.
void* fresh(std::size_t total, std::size_t capacity) {
  void* data = static_cast<char*>(c10::alloc_cpu(total)) + HEADER;
  capacity_of(data) = capacity;
  return data;
}

class BlockCache final : public c10::Allocator {
 public:
  c10::DataPtr allocate(std::size_t n) override {
    void* data = nullptr;
    if (n + HEADER < SMALL_BLOCK) {
      data = fresh(n + HEADER, 0);
    } else {
      std::size_t wanted = (n + HEADER + PAGE - 1) / PAGE * PAGE;
      data = take(wanted);
      if (data == nullptr) data = fresh(wanted, wanted);
    }
    return {data, data, &BlockCache::give_back, c10::Device(c10::DeviceType::CPU)};
  }

  c10::DeleterFnPtr raw_deleter() const override { return &BlockCache::give_back; }

  void copy_data(void* dest, const void* src, std::size_t count) const override {
    default_copy_data(dest, src, count);
  }

  void set_limit(std::size_t bytes) {
    std::lock_guard<std::mutex> lock(mutex_);
    limit_ = bytes;
  }

  std::size_t release() {
    std::multimap<std::size_t, void*> free;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      free.swap(free_);
      stats_.cached_bytes = 0;
    }
    std::size_t released = 0;
    for (auto& entry : free) {
      released += entry.first;
      c10::free_cpu(base_of(entry.second));
    }
    return released;
  }

  struct Stats {
    std::uint64_t hits = 0;
    std::uint64_t misses = 0;
    std::uint64_t cached_bytes = 0;
  };

  Stats stats() {
    std::lock_guard<std::mutex> lock(mutex_);
    return stats_;
  }

 private:
  // A cached block of at least `wanted` bytes and at most 1/8 more, or null.
  void* take(std::size_t wanted) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = free_.lower_bound(wanted);
    if (it == free_.end() || it->first - wanted > it->first / SLACK_DIVISOR) {
      stats_.misses += 1;
      return nullptr;
    }
    void* data = it->second;
    stats_.cached_bytes -= it->first;
    stats_.hits += 1;
    free_.erase(it);
    return data;
  }

  static void give_back(void* data);

  std::mutex mutex_;
  std::multimap<std::size_t, void*> free_;  // capacity -> data pointer
  std::size_t limit_ = std::size_t(4) << 30;
  Stats stats_;
};

// Never destroyed: tensors may be freed during static destruction, after a
// function-local static would already be gone.
BlockCache* const CACHE = new BlockCache();

void BlockCache::give_back(void* data) {
  if (data == nullptr) return;
  std::size_t capacity = capacity_of(data);
  if (capacity != 0) {
    std::lock_guard<std::mutex> lock(CACHE->mutex_);
    if (CACHE->stats_.cached_bytes + capacity <= CACHE->limit_) {
      CACHE->free_.emplace(capacity, data);
      CACHE->stats_.cached_bytes += capacity;
      return;
    }
  }
  c10::free_cpu(base_of(data));
}

}  // namespace

extern "C" {

// Makes the cache libtorch's CPU allocator. Returns 0, or -1 if libtorch
// refused (the message, NUL-terminated, is written to `error`).
int pixelcnn_cpu_cache_install(std::size_t limit_bytes, char* error, std::size_t error_len) {
  try {
    CACHE->set_limit(limit_bytes);
    // Priority above the default allocator's registration (0).
    c10::SetCPUAllocator(CACHE, 1);
    return 0;
  } catch (const std::exception& e) {
    if (error_len > 0) {
      std::snprintf(error, error_len, "%s", e.what());
    }
    return -1;
  } catch (...) {
    if (error_len > 0) std::snprintf(error, error_len, "unknown C++ exception");
    return -1;
  }
}

// Frees every cached block; returns the bytes released.
std::size_t pixelcnn_cpu_cache_release() {
  try {
    return CACHE->release();
  } catch (...) {
    return 0;
  }
}

void pixelcnn_cpu_cache_stats(std::uint64_t* hits, std::uint64_t* misses, std::uint64_t* cached_bytes) {
  auto stats = CACHE->stats();
  *hits = stats.hits;
  *misses = stats.misses;
  *cached_bytes = stats.cached_bytes;
}

}  // extern "C"
