#include "core/thread_pool.h"

#include <algorithm>

namespace gpen {

int ThreadPool::hardware_threads() {
  unsigned n = std::thread::hardware_concurrency();
  return n ? int(n) : 1;
}

ThreadPool::ThreadPool(int threads) {
  if (threads <= 0) threads = hardware_threads();
  for (int i = 1; i < threads; ++i) workers_.emplace_back([this] { worker_loop(); });
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  for (auto& t : workers_) t.join();
}

void ThreadPool::run_chunks(const std::function<void(int64_t, int64_t)>* task, int64_t n, int64_t grain) {
  if (!task) return;
  for (;;) {
    int64_t begin = next_.fetch_add(grain);
    if (begin >= n) return;
    (*task)(begin, std::min(n, begin + grain));
  }
}

void ThreadPool::worker_loop() {
  uint64_t seen = 0;
  for (;;) {
    const std::function<void(int64_t, int64_t)>* task;
    int64_t n, grain;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      wake_.wait(lock, [&] { return stop_ || generation_ != seen; });
      if (stop_) return;
      seen = generation_;
      ++busy_;
      task = task_;  // copied under the lock: the caller may already be setting up the next task
      n = task_n_;
      grain = task_grain_;
    }
    run_chunks(task, n, grain);
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (--busy_ == 0) done_.notify_all();
    }
  }
}

void ThreadPool::parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain <= 0) grain = std::max<int64_t>(1, (n + 4 * size() - 1) / (4 * size()));
  // Serial when there is one chunk, no workers, or we are already inside a task (nested call).
  bool expected = false;
  if (workers_.empty() || n <= grain || !in_task_.compare_exchange_strong(expected, true)) {
    fn(0, n);
    return;
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    task_ = &fn;
    task_n_ = n;
    task_grain_ = grain;
    next_.store(0);
    ++generation_;
  }
  wake_.notify_all();
  run_chunks(&fn, n, grain);
  {
    std::unique_lock<std::mutex> lock(mutex_);
    done_.wait(lock, [&] { return busy_ == 0 && next_.load() >= task_n_; });
    task_ = nullptr;
  }
  in_task_.store(false);
}

void parallel_for(ThreadPool* pool, int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (pool) {
    pool->parallel_for(n, grain, fn);
  } else if (n > 0) {
    fn(0, n);
  }
}

}  // namespace gpen
