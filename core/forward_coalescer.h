// Dynamic batching: many threads' forwards of a few samples each, run as fewer, larger batches by
// one dispatcher thread.
//
// Why: a GPU runs GPEN-512 at 221 faces/s one face at a time and at 392 faces/s sixteen at a time
// (docs/BENCHMARKS.md). A server's workers each restore their own photo, one or two faces at a
// time; given one model each they would also hold one copy of every activation on the device.
// Sharing one runner through a coalescer gives both: one set of device buffers, and batches that
// grow with the load.
//
// With several forwards (one per GPU stream: runners that can run at the same time), there is one
// dispatcher thread per forward, and a batch goes to whichever is free.
//
// Policy: no artificial delay. Whenever a dispatcher is free it takes what is queued, in arrival
// order, up to the largest allowed batch size that does not exceed it, and runs it. Requests
// queue up while a batch runs, so under load the next batch is full; with one client a request
// runs at once. A request larger than the batch is cut across batches. Batch sizes are limited to
// a set (default: powers of two up to max_batch, and max_batch): every distinct size is a compiled
// executable with its own device memory, and a greedy split such as 5 = 4 + 1 ran faster on the
// H200 than one padded batch of 8.
//
// Each request's result is assembled on its own thread from the batches that computed it. An
// exception from the inner forward is rethrown to every request that had samples in that batch;
// the dispatcher goes on with the next batch.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "core/tensor.h"

namespace gpen {

class ForwardCoalescer {
 public:
  using Forward = std::function<Tensor(const Tensor&)>;  // batch (dim 0) in, batch out

  // `forward` is only ever called from the dispatcher thread, one batch at a time.
  ForwardCoalescer(Forward forward, int max_batch);
  // One dispatcher per forward; each forward is called from its own dispatcher only.
  ForwardCoalescer(std::vector<Forward> forwards, int max_batch);
  ~ForwardCoalescer();  // waits for the batches in flight; requests still queued fail
  ForwardCoalescer(const ForwardCoalescer&) = delete;
  ForwardCoalescer& operator=(const ForwardCoalescer&) = delete;

  // Thread-safe; blocks until every sample of x has been through a batch. x: [n, ...], n >= 1, any
  // dtype (a batch holds requests of one dtype: GPEN's float tensors, or faces as bytes). Same
  // result as forward(x) for a forward whose samples do not interact.
  Tensor operator()(const Tensor& x);

  // The largest batch, and the allowed sizes: powers of two up to it, and it (applies to the
  // batches formed after the call).
  void set_max_batch(int max_batch);
  int max_batch() const;

  struct Stats {
    uint64_t batches = 0, samples = 0;  // forwards run, samples through them
    int largest_batch = 0;
  };
  Stats stats() const;
  int64_t queued_samples() const;  // waiting for a batch (tests use it to line up requests)

 private:
  struct Request;
  struct Piece;
  void dispatch_loop(const Forward& forward);
  int batch_size_for(int64_t queued) const;  // under mu_
  int64_t queued_like_front() const;          // under mu_: samples queued from the front on, of its dtype
  std::vector<Piece> take_pieces(int batch);  // under mu_
  void run_batch(const Forward& forward, const std::vector<Piece>& pieces, int batch);

  std::vector<Forward> forwards_;
  mutable std::mutex mu_;
  std::condition_variable work_cv_;
  std::deque<std::shared_ptr<Request>> queue_;  // requests with samples not yet taken
  int64_t queued_ = 0;
  int max_batch_ = 1;
  bool stopping_ = false;
  Stats stats_;
  std::vector<std::thread> dispatchers_;
};

}  // namespace gpen
