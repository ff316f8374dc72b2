// Thread pool behind parallel_for. Workers claim chunks from one atomic counter, so uneven
// chunks balance themselves. Between jobs a worker spins briefly before it sleeps on a
// condition variable: ops arrive back to back during training, and a sleeping worker takes
// 40-60 µs to wake (milliseconds when another process holds its core), which was most of a
// small op's time.
#include "parallel.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <mutex>
#include <thread>
#include <vector>

namespace pit {
namespace {

thread_local bool in_parallel_region = false;

// How long an idle worker polls for the next job before sleeping (measured: the wake-up it
// avoids costs 40-60 µs per op on an idle core).
constexpr std::chrono::microseconds kSpin{200};

inline void relax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#endif
}

class ThreadPool {
 public:
  explicit ThreadPool(int threads) : threads_(threads) {
    for (int i = 1; i < threads_; ++i) workers_.emplace_back([this] { worker_loop(); });
  }
  ~ThreadPool() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    for (auto& w : workers_) w.join();
  }
  int threads() const { return threads_; }

  void run(int64_t chunks, const std::function<void(int64_t)>& chunk_fn) {
    std::lock_guard<std::mutex> one_job_at_a_time(job_mutex_);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      job_ = &chunk_fn;
      job_chunks_ = chunks;
      next_chunk_.store(0);
      busy_workers_ = static_cast<int>(workers_.size());
      generation_.store(generation_.load() + 1, std::memory_order_release);
    }
    wake_.notify_all();
    work_on_current_job();
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [this] { return busy_workers_ == 0; });
    job_ = nullptr;
  }

 private:
  void work_on_current_job() {
    in_parallel_region = true;
    for (int64_t c; (c = next_chunk_.fetch_add(1)) < job_chunks_;) (*job_)(c);
    in_parallel_region = false;
  }
  void worker_loop() {
    uint64_t seen = 0;
    for (;;) {
      const auto spin_until = std::chrono::steady_clock::now() + kSpin;
      while (generation_.load(std::memory_order_acquire) == seen && std::chrono::steady_clock::now() < spin_until)
        relax();
      {
        std::unique_lock<std::mutex> lock(mutex_);
        wake_.wait(lock, [&] { return stopping_ || generation_.load() != seen; });
        if (stopping_) return;
        seen = generation_.load();
      }
      work_on_current_job();
      std::lock_guard<std::mutex> lock(mutex_);
      if (--busy_workers_ == 0) done_.notify_one();
    }
  }

  int threads_;
  std::vector<std::thread> workers_;
  std::mutex job_mutex_, mutex_;
  std::condition_variable wake_, done_;
  const std::function<void(int64_t)>* job_ = nullptr;
  int64_t job_chunks_ = 0;
  std::atomic<int64_t> next_chunk_{0};
  int busy_workers_ = 0;
  std::atomic<uint64_t> generation_{0};  // written under mutex_, read by spinning workers
  bool stopping_ = false;
};

int configured_threads() {
  if (const char* env = std::getenv("PIT_NUM_THREADS")) {
    int n = std::atoi(env);
    if (n > 0) return std::min(n, 256);
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

ThreadPool& pool() {
  static ThreadPool instance(configured_threads());
  return instance;
}

}  // namespace

int num_threads() { return pool().threads(); }

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  grain = std::max<int64_t>(grain, 1);
  const int threads = num_threads();
  if (threads == 1 || in_parallel_region || n <= grain) {
    fn(0, n);
    return;
  }
  // A few chunks per thread balance uneven work without many tiny chunks.
  int64_t chunk = std::max(grain, (n + 4 * threads - 1) / (4 * threads));
  int64_t chunks = (n + chunk - 1) / chunk;
  pool().run(chunks, [&](int64_t c) { fn(c * chunk, std::min(n, (c + 1) * chunk)); });
}

}  // namespace pit
