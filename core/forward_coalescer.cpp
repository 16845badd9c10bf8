#include "core/forward_coalescer.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"

namespace gpen {

// One caller's input, and the batches its samples went through.
struct ForwardCoalescer::Request {
  const Tensor* x = nullptr;
  int64_t n = 0, taken = 0, done = 0;  // samples: all, in a batch already, finished
  struct Result {
    std::shared_ptr<const Tensor> batch_out;
    int64_t batch_row, request_row, count;
  };
  std::vector<Result> results;
  std::exception_ptr error;
};

// Samples [request_row, request_row + count) of a request at rows [batch_row, ...) of a batch.
struct ForwardCoalescer::Piece {
  std::shared_ptr<Request> request;
  int64_t request_row, batch_row, count;
};

namespace {

int64_t row_elems(const Tensor& t) { return t.numel() / t.dim(0); }

// Any dtype: rows are copied as bytes.
void copy_rows(const Tensor& from, int64_t from_row, Tensor& to, int64_t to_row, int64_t count) {
  const size_t row_bytes = size_t(row_elems(from)) * dtype_size(from.dtype());
  std::memcpy(static_cast<char*>(to.raw()) + size_t(to_row) * row_bytes,
              static_cast<const char*>(from.raw()) + size_t(from_row) * row_bytes, size_t(count) * row_bytes);
}

}  // namespace

ForwardCoalescer::ForwardCoalescer(Forward forward, int max_batch)
    : ForwardCoalescer(std::vector<Forward>{std::move(forward)}, max_batch) {}

ForwardCoalescer::ForwardCoalescer(std::vector<Forward> forwards, int max_batch) : forwards_(std::move(forwards)) {
  if (forwards_.empty()) fail("batched forward: no forward to run");
  set_max_batch(max_batch);
  for (const Forward& f : forwards_) dispatchers_.emplace_back([this, &f] { dispatch_loop(f); });
}

ForwardCoalescer::~ForwardCoalescer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  work_cv_.notify_all();
  for (std::thread& t : dispatchers_) t.join();
}

void ForwardCoalescer::set_max_batch(int max_batch) {
  if (max_batch < 1) fail("batch size must be at least 1, got ", max_batch);
  std::lock_guard<std::mutex> lock(mu_);
  max_batch_ = max_batch;
}

int ForwardCoalescer::max_batch() const {
  std::lock_guard<std::mutex> lock(mu_);
  return max_batch_;
}

ForwardCoalescer::Stats ForwardCoalescer::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  return stats_;
}

int64_t ForwardCoalescer::queued_samples() const {
  std::lock_guard<std::mutex> lock(mu_);
  return queued_;
}

Tensor ForwardCoalescer::operator()(const Tensor& x) {
  if (x.ndim() < 1 || x.dim(0) < 1) fail("batched forward: empty input ", shape_str(x.shape()));
  auto req = std::make_shared<Request>();
  req->x = &x;  // the caller waits below, so x outlives every batch that reads it
  req->n = x.dim(0);
  std::unique_lock<std::mutex> lock(mu_);
  if (stopping_) fail("batched forward: shutting down");
  queue_.push_back(req);
  queued_ += req->n;
  work_cv_.notify_all();
  work_cv_.wait(lock, [&] { return req->done == req->n; });
  lock.unlock();
  if (req->error) std::rethrow_exception(req->error);

  const Request::Result& first = req->results.at(0);
  if (req->results.size() == 1 && first.batch_row == 0 && first.batch_out->dim(0) == req->n) return *first.batch_out;
  Shape s = first.batch_out->shape();
  s[0] = req->n;
  Tensor y = Tensor::empty(first.batch_out->dtype(), s);
  for (const Request::Result& r : req->results) copy_rows(*r.batch_out, r.batch_row, y, r.request_row, r.count);
  return y;
}

int ForwardCoalescer::batch_size_for(int64_t queued) const {
  if (queued >= max_batch_) return max_batch_;
  int b = 1;
  while (int64_t(b) * 2 <= queued) b *= 2;
  return b;
}

int64_t ForwardCoalescer::queued_like_front() const {
  int64_t n = 0;
  for (const std::shared_ptr<Request>& r : queue_) {
    if (r->x->dtype() != queue_.front()->x->dtype()) break;
    n += r->n - r->taken;
  }
  return n;
}

std::vector<ForwardCoalescer::Piece> ForwardCoalescer::take_pieces(int batch) {
  std::vector<Piece> pieces;
  int64_t row = 0;
  const DType dtype = queue_.front()->x->dtype();  // a batch is of one dtype
  while (row < batch && !queue_.empty() && queue_.front()->x->dtype() == dtype) {
    const std::shared_ptr<Request>& r = queue_.front();
    const int64_t count = std::min<int64_t>(batch - row, r->n - r->taken);
    pieces.push_back(Piece{r, r->taken, row, count});
    r->taken += count;
    row += count;
    queued_ -= count;
    if (r->taken == r->n) queue_.pop_front();
  }
  return pieces;
}

void ForwardCoalescer::dispatch_loop(const Forward& forward) {
  for (;;) {
    std::vector<Piece> pieces;
    int batch = 0;
    {
      std::unique_lock<std::mutex> lock(mu_);
      work_cv_.wait(lock, [&] { return stopping_ || queued_ > 0; });
      if (stopping_) {
        for (const std::shared_ptr<Request>& r : queue_) {
          r->error = std::make_exception_ptr(Error("batched forward: shutting down"));
          r->done = r->n;
        }
        queue_.clear();
        queued_ = 0;
        work_cv_.notify_all();
        return;
      }
      batch = batch_size_for(queued_like_front());
      pieces = take_pieces(batch);
    }
    run_batch(forward, pieces, batch);
  }
}

void ForwardCoalescer::run_batch(const Forward& forward, const std::vector<Piece>& pieces, int batch) {
  std::shared_ptr<const Tensor> out;
  std::exception_ptr error;
  try {
    const Tensor& first = *pieces[0].request->x;
    Tensor in;
    if (pieces.size() == 1 && pieces[0].count == first.dim(0)) {
      in = first;  // one whole request: no copy
    } else {
      Shape s = first.shape();
      s[0] = batch;
      in = Tensor::empty(first.dtype(), s);
      for (const Piece& p : pieces) {
        if (row_elems(*p.request->x) != row_elems(first))
          fail("batched forward: requests of different sample shapes (", shape_str(p.request->x->shape()), " and ",
               shape_str(first.shape()), ")");
        copy_rows(*p.request->x, p.request_row, in, p.batch_row, p.count);
      }
    }
    out = std::make_shared<const Tensor>(forward(in));
    if (out->ndim() < 1 || out->dim(0) != batch)
      fail("batched forward: a batch of ", batch, " gave ", dtype_name(out->dtype()), " ", shape_str(out->shape()));
  } catch (...) {
    error = std::current_exception();
  }

  std::lock_guard<std::mutex> lock(mu_);
  ++stats_.batches;
  stats_.samples += uint64_t(batch);
  stats_.largest_batch = std::max(stats_.largest_batch, batch);
  for (const Piece& p : pieces) {
    Request& r = *p.request;
    if (error) {
      if (!r.error) r.error = error;
      // Its samples not yet taken are not worth running: drop them from the queue.
      if (r.taken < r.n) {
        queued_ -= r.n - r.taken;
        r.done += r.n - r.taken;
        r.taken = r.n;
        queue_.erase(std::remove(queue_.begin(), queue_.end(), p.request), queue_.end());
      }
    } else {
      r.results.push_back(Request::Result{out, p.batch_row, p.request_row, p.count});
    }
    r.done += p.count;
  }
  work_cv_.notify_all();
}

}  // namespace gpen
