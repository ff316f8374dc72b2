#include "host_pool.h"

#include <cstdlib>
#include <mutex>
#include <string>
#include <unordered_map>
#include <vector>

#include "error.h"

#if defined(__unix__) || defined(__APPLE__)
#include <sys/mman.h>
#include <unistd.h>
#define PIT_HAVE_MMAP 1
#endif

namespace pit {
namespace {

constexpr size_t kAlign = 64;

// The smallest size class ≥ bytes: 8 classes per power of two.
size_t size_class(size_t bytes) {
  size_t top = size_t(1) << (63 - __builtin_clzll(bytes));  // highest power of two ≤ bytes
  size_t step = top / 8;
  return (bytes + step - 1) / step * step;
}

int64_t default_limit() {
  if (const char* env = std::getenv("PIT_HOST_POOL_BYTES")) return std::strtoll(env, nullptr, 10);
#ifdef PIT_HAVE_MMAP
  long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  if (pages > 0 && page > 0) return static_cast<int64_t>(pages) * page / 4;
#endif
  return int64_t(1) << 30;
}

void* map_block(size_t bytes) {
#ifdef PIT_HAVE_MMAP
  void* p = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  return p == MAP_FAILED ? nullptr : p;  // page-aligned, so 64-byte aligned
#else
  return std::aligned_alloc(kAlign, bytes);
#endif
}

void unmap_block(void* p, size_t bytes) {
#ifdef PIT_HAVE_MMAP
  munmap(p, bytes);
#else
  (void)bytes;
  std::free(p);
#endif
}

struct Pool {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // size class → blocks
  int64_t cached = 0;
  int64_t limit = default_limit();

  void release_all() {
    for (auto& [bytes, blocks] : free_blocks)
      for (void* p : blocks) unmap_block(p, bytes);
    free_blocks.clear();
    cached = 0;
  }
};

Pool& pool() {
  static Pool* p = new Pool();  // never destroyed: tensors may outlive static destruction
  return *p;
}

}  // namespace

void* host_alloc(size_t bytes) {
  if (bytes < kMinPooled) {
    void* p = std::aligned_alloc(kAlign, bytes == 0 ? kAlign : (bytes + kAlign - 1) / kAlign * kAlign);
    PIT_CHECK_RANGE(p != nullptr, "out of host memory: could not allocate ", bytes, " bytes");
    return p;
  }
  const size_t cls = size_class(bytes);
  Pool& P = pool();
  {
    std::lock_guard<std::mutex> lock(P.mutex);
    auto it = P.free_blocks.find(cls);
    if (it != P.free_blocks.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      P.cached -= static_cast<int64_t>(cls);
      return p;
    }
  }
  void* p = map_block(cls);
  if (p == nullptr) {
    std::lock_guard<std::mutex> lock(P.mutex);
    P.release_all();
    p = map_block(cls);
  }
  PIT_CHECK_RANGE(p != nullptr, "out of host memory: could not allocate ", bytes, " bytes");
  return p;
}

void host_free(void* data, size_t bytes) {
  if (data == nullptr) return;
  if (bytes < kMinPooled) {
    std::free(data);
    return;
  }
  const size_t cls = size_class(bytes);
  Pool& P = pool();
  {
    std::lock_guard<std::mutex> lock(P.mutex);
    if (P.cached + static_cast<int64_t>(cls) <= P.limit) {
      P.free_blocks[cls].push_back(data);
      P.cached += static_cast<int64_t>(cls);
      return;
    }
  }
  unmap_block(data, cls);
}

HostPoolStats host_pool_stats() {
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mutex);
  return {P.cached, P.limit};
}

void host_pool_release() {
  Pool& P = pool();
  std::lock_guard<std::mutex> lock(P.mutex);
  P.release_all();
}

}  // namespace pit
