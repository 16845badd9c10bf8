// Fork-join thread pool: parallel_for splits [0, n) into chunks that the workers and the calling
// thread take from a shared counter, so uneven chunks balance themselves. One pool per executor;
// `--threads N` sizes it. Nested parallel_for calls from inside a task run serially.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace gpen {

class ThreadPool {
 public:
  // threads <= 0: one per hardware thread.
  explicit ThreadPool(int threads = 0);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return int(workers_.size()) + 1; }

  // Calls fn(begin, end) on disjoint chunks covering [0, n), each at most `grain` long (grain 0:
  // about 4 chunks per thread). Returns when all chunks are done.
  void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

  static int hardware_threads();

 private:
  void worker_loop();
  void run_chunks(const std::function<void(int64_t, int64_t)>* task, int64_t n, int64_t grain);

  std::vector<std::thread> workers_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::condition_variable done_;
  const std::function<void(int64_t, int64_t)>* task_ = nullptr;
  int64_t task_n_ = 0, task_grain_ = 1;
  std::atomic<int64_t> next_{0};
  int busy_ = 0;
  uint64_t generation_ = 0;
  bool stop_ = false;
  std::atomic<bool> in_task_{false};
};

// Runs fn serially when pool is null.
void parallel_for(ThreadPool* pool, int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

}  // namespace gpen
