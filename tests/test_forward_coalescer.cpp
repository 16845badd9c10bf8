// Dynamic batching (core/forward_coalescer.h): concurrent requests coalesce into batches of the
// allowed sizes, every sample comes back to its own caller in order, a large request is cut
// across batches, a failing batch fails only its requests, and a runner shared between threads
// gives the same faces as one used alone.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/forward_coalescer.h"
#include "core/models/gpen.h"
#include "tests/test_util.h"

using namespace gpen;

namespace {

// y = 3x - 1 per element, recording each batch's size; optionally held at a gate so that tests
// can line requests up behind a batch in flight.
class RecordingForward {
 public:
  Tensor operator()(const Tensor& x) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      sizes_.push_back(x.dim(0));
      ++entered_;
      cv_.notify_all();
      cv_.wait(lock, [&] { return open_; });
    }
    if (fail_size_ > 0 && x.dim(0) == fail_size_) throw Error("fake device fault");
    Tensor y = Tensor::empty(x.dtype(), x.shape());
    if (x.dtype() == DType::U8) {  // bytes: 255 - x
      for (int64_t i = 0; i < x.numel(); ++i) y.data<uint8_t>()[i] = uint8_t(255 - x.data<uint8_t>()[i]);
      return y;
    }
    for (int64_t i = 0; i < x.numel(); ++i) y.data<float>()[i] = 3 * x.data<float>()[i] - 1;
    return y;
  }
  void close_gate() { set_open(false); }
  void open_gate() { set_open(true); }
  void wait_entered(int n) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return entered_ >= n; });
  }
  std::vector<int64_t> sizes() {
    std::lock_guard<std::mutex> lock(mu_);
    return sizes_;
  }
  int64_t fail_size_ = 0;

 private:
  void set_open(bool open) {
    std::lock_guard<std::mutex> lock(mu_);
    open_ = open;
    cv_.notify_all();
  }
  std::mutex mu_;
  std::condition_variable cv_;
  bool open_ = true;
  int entered_ = 0;
  std::vector<int64_t> sizes_;
};

void check_three_x_minus_one(const Tensor& x, const Tensor& y) {
  REQUIRE(y.shape() == x.shape());
  for (int64_t i = 0; i < x.numel(); ++i) REQUIRE(y.data<float>()[i] == 3 * x.data<float>()[i] - 1);
}

void wait_queued(const ForwardCoalescer& c, int64_t n) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (c.queued_samples() < n && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  REQUIRE(c.queued_samples() == n);
}

}  // namespace

TEST_CASE("a lone request runs at once, as one batch, untouched", "[coalescer]") {
  RecordingForward fake;
  ForwardCoalescer c([&](const Tensor& x) { return fake(x); }, 8);
  const Tensor x = test::random_tensor({3, 2, 5}, 1);
  check_three_x_minus_one(x, c(x));
  CHECK(fake.sizes() == std::vector<int64_t>{2, 1});  // 3 is not an allowed size: 2 + 1
  CHECK(c.stats().batches == 2);
  CHECK(c.stats().samples == 3);
}

TEST_CASE("requests queued behind a running batch are coalesced, each getting its own samples back", "[coalescer]") {
  RecordingForward fake;
  ForwardCoalescer c([&](const Tensor& x) { return fake(x); }, 8);
  fake.close_gate();
  const Tensor first = test::random_tensor({1, 4}, 10);
  std::thread t0([&] { check_three_x_minus_one(first, c(first)); });
  fake.wait_entered(1);  // the first request's batch is in flight and held

  // Six more requests of 1..2 samples (9 in all) queue up meanwhile.
  std::vector<Tensor> xs;
  for (int i = 0; i < 6; ++i) xs.push_back(test::random_tensor({1 + i % 2, 4}, uint64_t(20 + i)));
  std::vector<Tensor> ys(xs.size());
  std::vector<std::thread> ts;
  for (size_t i = 0; i < xs.size(); ++i) ts.emplace_back([&, i] { ys[i] = c(xs[i]); });
  wait_queued(c, 9);
  fake.open_gate();
  t0.join();
  for (std::thread& t : ts) t.join();
  for (size_t i = 0; i < xs.size(); ++i) check_three_x_minus_one(xs[i], ys[i]);
  // 1 (held), then 8 of the 9 queued (a request cut across batches), then the last one.
  CHECK(fake.sizes() == std::vector<int64_t>{1, 8, 1});
  CHECK(c.stats().largest_batch == 8);
  CHECK(c.stats().samples == 10);
}

TEST_CASE("a request larger than the batch is cut across batches and reassembled in order", "[coalescer]") {
  RecordingForward fake;
  ForwardCoalescer c([&](const Tensor& x) { return fake(x); }, 4);
  const Tensor x = test::random_tensor({11, 3, 2}, 3);
  check_three_x_minus_one(x, c(x));
  CHECK(fake.sizes() == std::vector<int64_t>{4, 4, 2, 1});

  c.set_max_batch(6);  // not a power of two: 6 itself is allowed
  CHECK(c.max_batch() == 6);
  check_three_x_minus_one(x, c(x));
  CHECK(fake.sizes() == std::vector<int64_t>{4, 4, 2, 1, 6, 4, 1});
  CHECK_THROWS_WITH(c.set_max_batch(0), Catch::Contains("at least 1"));
}

TEST_CASE("a failing batch fails only the requests in it; later batches run", "[coalescer]") {
  RecordingForward fake;
  fake.fail_size_ = 2;
  ForwardCoalescer c([&](const Tensor& x) { return fake(x); }, 8);
  const Tensor big = test::random_tensor({3, 2}, 4);  // 2 (fails) + 1 (never run)
  CHECK_THROWS_WITH(c(big), Catch::Contains("fake device fault"));
  CHECK(fake.sizes() == std::vector<int64_t>{2});
  CHECK(c.queued_samples() == 0);
  const Tensor one = test::random_tensor({1, 2}, 5);
  check_three_x_minus_one(one, c(one));
  CHECK(fake.sizes() == std::vector<int64_t>{2, 1});
}

TEST_CASE("malformed requests are refused before they are queued", "[coalescer]") {
  RecordingForward fake;
  ForwardCoalescer c([&](const Tensor& x) { return fake(x); }, 4);
  CHECK_THROWS_WITH(c(Tensor::empty(DType::F32, {0, 3})), Catch::Contains("empty input"));
  CHECK(fake.sizes().empty());
  CHECK_THROWS_WITH(ForwardCoalescer([](const Tensor& x) { return x; }, 0), Catch::Contains("at least 1"));
}

TEST_CASE("requests of different dtypes queue together but never share a batch", "[coalescer]") {
  RecordingForward fake;
  ForwardCoalescer c([&](const Tensor& x) { return fake(x); }, 8);
  fake.close_gate();
  const Tensor hold = test::random_tensor({1, 4}, 40);
  std::thread t0([&] { check_three_x_minus_one(hold, c(hold)); });
  fake.wait_entered(1);
  // Queued meanwhile: floats (2), bytes (3), floats (1), bytes (2).
  std::vector<Tensor> xs;
  for (int i = 0; i < 4; ++i) {
    const int64_t n = std::vector<int64_t>{2, 3, 1, 2}[size_t(i)];
    if (i % 2 == 0) {
      xs.push_back(test::random_tensor({n, 4}, uint64_t(41 + i)));
    } else {
      Tensor b = Tensor::empty(DType::U8, {n, 4});
      for (int64_t k = 0; k < b.numel(); ++k) b.data<uint8_t>()[k] = uint8_t(k * 37 + i);
      xs.push_back(b);
    }
  }
  std::vector<Tensor> ys(xs.size());
  std::vector<std::thread> ts;
  for (size_t i = 0; i < xs.size(); ++i) {
    ts.emplace_back([&, i] { ys[i] = c(xs[i]); });
    wait_queued(c, std::vector<int64_t>{2, 5, 6, 8}[i]);  // in this order
  }
  fake.open_gate();
  t0.join();
  for (std::thread& t : ts) t.join();
  for (size_t i = 0; i < xs.size(); ++i) {
    INFO("request " << i);
    REQUIRE(ys[i].dtype() == xs[i].dtype());
    if (xs[i].dtype() == DType::F32) {
      check_three_x_minus_one(xs[i], ys[i]);
    } else {
      for (int64_t k = 0; k < xs[i].numel(); ++k) REQUIRE(ys[i].data<uint8_t>()[k] == 255 - xs[i].data<uint8_t>()[k]);
    }
  }
  // Each batch takes the run of one dtype at the queue's front: 2 floats, 2 + 1 bytes (3 is not
  // an allowed size), 1 float, 2 bytes.
  CHECK(fake.sizes() == std::vector<int64_t>{1, 2, 2, 1, 1, 2});
}

TEST_CASE("requests of different sample shapes in one batch fail cleanly", "[coalescer]") {
  RecordingForward fake;
  ForwardCoalescer c([&](const Tensor& x) { return fake(x); }, 4);
  fake.close_gate();
  const Tensor hold = test::random_tensor({1, 2}, 6);
  std::thread t0([&] { c(hold); });
  fake.wait_entered(1);
  const Tensor a = test::random_tensor({1, 2}, 7), b = test::random_tensor({1, 3}, 8);
  std::string err_a, err_b;
  std::thread ta([&] {
    try { c(a); } catch (const Error& e) { err_a = e.what(); }
  });
  wait_queued(c, 1);
  std::thread tb([&] {
    try { c(b); } catch (const Error& e) { err_b = e.what(); }
  });
  wait_queued(c, 2);
  fake.open_gate();
  t0.join();
  ta.join();
  tb.join();
  CHECK_THAT(err_a, Catch::Contains("different sample shapes"));
  CHECK_THAT(err_b, Catch::Contains("different sample shapes"));
}

TEST_CASE("many threads through one coalescer: every sample returns to its caller", "[coalescer]") {
  RecordingForward fake;
  ForwardCoalescer c([&](const Tensor& x) { return fake(x); }, 16);
  constexpr int kThreads = 8, kCalls = 25;
  std::atomic<int> bad{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t)
    ts.emplace_back([&, t] {
      for (int i = 0; i < kCalls; ++i) {
        const Tensor x = test::random_tensor({1 + (t + i) % 3, 3}, uint64_t(1000 * t + i));
        const Tensor y = c(x);
        for (int64_t k = 0; k < x.numel(); ++k)
          if (y.data<float>()[k] != 3 * x.data<float>()[k] - 1) ++bad;
      }
    });
  for (std::thread& t : ts) t.join();
  CHECK(bad == 0);
  int64_t total = 0;
  for (int64_t s : fake.sizes()) {
    total += s;
    CHECK((s == 1 || s == 2 || s == 4 || s == 8 || s == 16));
  }
  CHECK(total == int64_t(c.stats().samples));
}

TEST_CASE("with two forwards (streams) a second batch runs while the first is still in flight", "[coalescer]") {
  RecordingForward slow, fast;
  ForwardCoalescer c({[&](const Tensor& x) { return slow(x); }, [&](const Tensor& x) { return fast(x); }}, 4);
  slow.close_gate();
  fast.close_gate();
  const Tensor a = test::random_tensor({2, 3}, 30), b = test::random_tensor({4, 3}, 31);
  Tensor ya, yb;
  std::thread ta([&] { ya = c(a); });
  // One of the two dispatchers took `a` and is held; the other is free and takes `b`.
  while (slow.sizes().size() + fast.sizes().size() < 1) std::this_thread::yield();
  RecordingForward& holds_a = slow.sizes().size() == 1 ? slow : fast;
  RecordingForward& other = &holds_a == &slow ? fast : slow;
  other.open_gate();
  yb = c(b);  // returns while `a` is still held: two batches were in flight at once
  check_three_x_minus_one(b, yb);
  CHECK(other.sizes() == std::vector<int64_t>{4});
  CHECK(holds_a.sizes() == std::vector<int64_t>{2});
  holds_a.open_gate();
  ta.join();
  check_three_x_minus_one(a, ya);
  CHECK_THROWS_WITH(ForwardCoalescer(std::vector<ForwardCoalescer::Forward>{}, 4), Catch::Contains("no forward"));
}

TEST_CASE("a GPEN runner shared between threads restores the same faces as one used alone", "[coalescer][gpen]") {
  auto model = std::make_shared<GpenModel>(GpenModel::from_state_dict(gpen_random_state_dict(gpen_official_config(256), 5)));
  const Tensor x = test::random_tensor({3, 3, 256, 256}, 9);
  GpenRunner alone(model, std::shared_ptr<Backend>(make_cpu_backend()), CompileOptions{});
  const Tensor expected = alone.forward(x);

  GpenRunner shared(model, std::shared_ptr<Backend>(make_cpu_backend()), CompileOptions{});
  shared.share_between_threads(2, /*streams=*/2);  // the second stream on a twin runner
  const int64_t per = 3 * 256 * 256;
  std::vector<Tensor> ys(3);
  std::vector<std::thread> ts;
  for (int i = 0; i < 3; ++i)
    ts.emplace_back([&, i] {
      const Tensor xi = Tensor::from_floats({1, 3, 256, 256}, std::vector<float>(x.data<float>() + i * per,
                                                                                 x.data<float>() + (i + 1) * per));
      ys[size_t(i)] = shared.forward(xi);
    });
  for (std::thread& t : ts) t.join();
  for (int i = 0; i < 3; ++i)
    REQUIRE(test::max_abs_diff(ys[size_t(i)].data<float>(), expected.data<float>() + i * per, size_t(per)) < 1e-5);
  CHECK(shared.sharing_stats().samples == 3);
  CHECK(shared.sharing_stats().largest_batch <= 2);
  CHECK(alone.sharing_stats().batches == 0);
  // The shared runner keeps its host weights (other threads read the model while it compiles).
  CHECK(shared.model().build_graph(1).nodes().front().weight.defined());
  CHECK_THROWS_WITH(alone.set_max_batch(4), Catch::Contains("share_between_threads"));
  CHECK_THROWS_WITH(alone.share_between_threads(4), Catch::Contains("after the first forward"));
  CHECK_THROWS_WITH(shared.share_between_threads(4), Catch::Contains("after the first forward"));

  // A twin shares the prepared weights and gives the same faces, even after the original dropped
  // its own copy of the conv weights (it compiles from the shared kernel cache).
  const auto twin = alone.twin();
  const Tensor again = twin->forward(x);
  REQUIRE(test::max_abs_diff(again.data<float>(), expected.data<float>(), size_t(3 * per)) < 1e-5);
}
