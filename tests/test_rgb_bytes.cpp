// GpenRunner::forward_faces: faces as bytes through an executable that takes them
// (Executable::run_rgb_bytes, the CUDA backend's path; a stand-in here that does on the host what
// the device kernels do, from the RgbBytesIo alone), against the float path, byte for byte; the
// fall-backs to the float path (no byte path, out of device memory, the batch cut or on the CPU).
#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <memory>
#include <random>
#include <thread>

#include "core/device.h"
#include "core/face_tensor.h"
#include "core/face_detector.h"
#include "core/models/gpen.h"
#include "core/models/retinaface.h"
#include "kernels/cpu/isa.h"
#include "tests/test_util.h"

using namespace gpen;

namespace {

enum class Mode { Bytes, Refuse, OutOfMemory };

// The CPU executable, plus run_rgb_bytes computed from the RgbBytesIo as the CUDA kernels do.
class StandInExecutable final : public Executable {
 public:
  StandInExecutable(std::unique_ptr<Executable> cpu, Shape shape, Mode mode, std::atomic<int>& calls, bool quick)
      : cpu_(std::move(cpu)), shape_(std::move(shape)), mode_(mode), calls_(calls), quick_(quick) {}
  bool has_untimed_algorithms() const override { return quick_; }
  void run(const std::vector<Tensor>& in, std::vector<Tensor>& out) override { cpu_->run(in, out); }
  bool run_rgb_bytes(const RgbBytesIo& io, const uint8_t* const* in, int n, uint8_t* const* out) override {
    ++calls_;
    if (mode_ == Mode::Refuse) return false;
    if (mode_ == Mode::OutOfMemory) throw OutOfDeviceMemory("stand-in device: out of memory");
    if (shape_[0] != n) return false;
    const int64_t plane = shape_[2] * shape_[3];
    std::vector<Tensor> y(1);
    cpu_->run({from_bytes(io, in, n)}, y);
    for (int i = 0; i < n; ++i)
      for (int64_t p = 0; p < plane; ++p)
        for (int c = 0; c < 3; ++c) {
          float v = y[0].data<float>()[(i * 3 + c) * plane + p] * io.out_scale + io.out_offset;
          v = v < 0.f ? 0.f : v > 1.f ? 1.f : v;
          out[i][p * 3 + c] = uint8_t(int(v * 255.f));
        }
    return true;
  }
  bool run_from_rgb_bytes(const RgbBytesIo& io, const uint8_t* const* in, int n, std::vector<Tensor>& out) override {
    ++calls_;
    if (mode_ != Mode::Bytes) return false;
    cpu_->run({from_bytes(io, in, n)}, out);
    return true;
  }
  size_t arena_bytes() const override { return cpu_->arena_bytes(); }
  size_t weight_bytes() const override { return cpu_->weight_bytes(); }
  void enable_profiling(bool on) override { cpu_->enable_profiling(on); }
  std::vector<NodeProfile> profile() const override { return cpu_->profile(); }

 private:
  // What the device's input kernel does: channel c of each pixel through its table.
  Tensor from_bytes(const RgbBytesIo& io, const uint8_t* const* in, int n) const {
    const int64_t plane = shape_[2] * shape_[3];
    Tensor x = Tensor::empty(DType::F32, shape_);
    for (int i = 0; i < n; ++i)
      for (int64_t p = 0; p < plane; ++p)
        for (int c = 0; c < 3; ++c)
          x.data<float>()[(i * 3 + c) * plane + p] =
              io.in_levels[size_t(c) * 256 + in[i][p * 3 + (io.reverse_channels ? 2 - c : c)]];
    return x;
  }
  std::unique_ptr<Executable> cpu_;
  Shape shape_;
  Mode mode_;
  std::atomic<int>& calls_;
  bool quick_;
};

class StandInBackend final : public Backend {
 public:
  // times: presents itself as a backend whose compiles time algorithms (a GPU's cudnnFind).
  explicit StandInBackend(Mode mode, bool times = false) : cpu_(make_cpu_backend()), mode_(mode), times_(times) {}
  std::string name() const override { return "stand-in device"; }
  bool times_algorithms() const override { return times_; }
  std::unique_ptr<Executable> compile(const Graph& g, const CompileOptions& opt) override {
    const Shape shape = g.value(g.inputs()[0]).shape;
    if (oom_from_batch > 0 && shape[0] >= oom_from_batch) throw OutOfDeviceMemory("stand-in device: out of memory");
    const bool quick = times_ && opt.quick_algorithms;  // as CUDA: only where it times anything
    compiles.push_back({int(shape[0]), quick});
    return std::make_unique<StandInExecutable>(cpu_->compile(g, opt), shape, mode_, calls, quick);
  }
  std::atomic<int> calls{0};
  std::vector<std::pair<int, bool>> compiles;  // (batch, compiled with untimed algorithms)
  int oom_from_batch = 0;                      // > 0: compiling this batch size or more is out of memory

 private:
  std::unique_ptr<Backend> cpu_;
  Mode mode_;
  bool times_;
};

std::shared_ptr<const GpenModel> tiny_model() {
  static auto m = std::make_shared<const GpenModel>(
      GpenModel::from_state_dict(load_gpen_weights(test::source_path("tests/fixtures/gpen_tiny/gpen_tiny.pth"))));
  return m;
}

std::vector<Image> random_faces(int n, int size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<Image> faces(size_t(n), Image(size, size, 3));
  for (Image& f : faces)
    for (uint8_t& v : f.pixels) v = uint8_t(rng());
  return faces;
}

std::vector<const Image*> pointers(const std::vector<Image>& faces) {
  std::vector<const Image*> p;
  for (const Image& f : faces) p.push_back(&f);
  return p;
}

// The float path on the CPU: what forward_faces must give.
std::vector<Image> float_path(const std::vector<Image>& faces) {
  GpenRunner cpu(tiny_model(), std::shared_ptr<Backend>(make_cpu_backend()), {});
  return tensor_to_faces(cpu.forward(faces_to_tensor(pointers(faces))));
}

void check_same(const std::vector<Image>& got, const std::vector<Image>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("face " << i);
    CHECK(got[i].width == want[i].width);
    CHECK(got[i].pixels == want[i].pixels);
  }
}

// The same faces run in a batch of another size. A face's floats should not depend on the batch
// (checked exactly for the generic and AVX2 kernels below; the conv kernels once differed by up
// to 3.6e-7 between batches of 1 and 7, from GCC's implicit FMA contraction). These checks run on
// whatever kernels the machine picks, AVX-512 ones included, so they allow a byte on a rounding
// edge to differ by one; anything else (a padding face kept, faces out of order) changes far more.
void check_same_in_another_batch(const std::vector<Image>& got, const std::vector<Image>& want) {
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO("face " << i);
    CHECK(got[i].width == want[i].width);
    REQUIRE(got[i].pixels.size() == want[i].pixels.size());
    int max_diff = 0;
    size_t differ = 0;
    for (size_t j = 0; j < got[i].pixels.size(); ++j) {
      const int d = std::abs(int(got[i].pixels[j]) - int(want[i].pixels[j]));
      max_diff = std::max(max_diff, d);
      differ += d != 0;
    }
    CHECK(max_diff <= 1);
    CHECK(differ * 1000 <= got[i].pixels.size());  // at most 0.1 % of the bytes
  }
}

}  // namespace

TEST_CASE("forward_faces: bytes through the device's byte path equal the float path", "[gpen]") {
  const int S = tiny_model()->config().size;
  const std::vector<Image> faces = random_faces(3, S, 31);
  const std::vector<Image> want = float_path(faces);
  auto backend = std::make_shared<StandInBackend>(Mode::Bytes);
  GpenRunner runner(tiny_model(), backend, {});
  Tensor scratch;
  check_same(runner.forward_faces(pointers(faces), scratch), want);
  check_same(runner.forward_faces(pointers(faces), scratch), want);
  CHECK(backend->calls == 2);
  CHECK(!scratch.defined());  // the float path never ran
  // The byte I/O is GPEN's scaling: what faces_into_tensor and tensor_to_faces do.
  for (int c = 0; c < 3; ++c) {
    CHECK(gpen_rgb_bytes_io().in_levels[size_t(c) * 256] == -1.f);
    CHECK(gpen_rgb_bytes_io().in_levels[size_t(c) * 256 + 255] == 1.f);
  }
}

TEST_CASE("forward_faces: the float path when the backend has no byte path or on the CPU, shared or not",
          "[gpen]") {
  const int S = tiny_model()->config().size;
  const std::vector<Image> faces = random_faces(2, S, 32);
  const std::vector<Image> want = float_path(faces);
  Tensor scratch;
  {
    auto refusing = std::make_shared<StandInBackend>(Mode::Refuse);
    GpenRunner runner(tiny_model(), refusing, {});
    check_same(runner.forward_faces(pointers(faces), scratch), want);
    check_same(runner.forward_faces(pointers(faces), scratch), want);
    CHECK(refusing->calls == 1);  // asked once, then not again
  }
  {
    GpenRunner cpu(tiny_model(), std::shared_ptr<Backend>(make_cpu_backend()), {});
    check_same(cpu.forward_faces(pointers(faces), scratch), want);
  }
  {
    // A shared runner on the CPU: the faces queue as bytes and are converted around the float path.
    GpenRunner shared(tiny_model(), std::shared_ptr<Backend>(make_cpu_backend()), {});
    shared.share_between_threads(4);
    check_same(shared.forward_faces(pointers(faces), scratch), want);
    CHECK(shared.sharing_stats().samples == 2);
  }
  // A face of the wrong size: the float path's clear error.
  auto bytes = std::make_shared<StandInBackend>(Mode::Bytes);
  GpenRunner runner(tiny_model(), bytes, {});
  const std::vector<Image> wrong = random_faces(1, S + 1, 33);
  CHECK_THROWS_AS(runner.forward_faces(pointers(wrong), scratch), Error);
}

TEST_CASE("forward_faces: out of device memory falls back to the float path and its policy", "[gpen]") {
  const int S = tiny_model()->config().size;
  const std::vector<Image> faces = random_faces(2, S, 34);
  const std::vector<Image> want = float_path(faces);
  Tensor scratch;
  {
    auto oom = std::make_shared<StandInBackend>(Mode::OutOfMemory);
    GpenRunner runner(tiny_model(), oom, {});
    runner.enable_oom_fallback([](const std::string&) {});
    check_same(runner.forward_faces(pointers(faces), scratch), want);  // run() of the stand-in works
    CHECK(oom->calls == 1);
  }
  {
    auto oom = std::make_shared<StandInBackend>(Mode::OutOfMemory);
    GpenRunner runner(tiny_model(), oom, {});  // no fallback asked for: the error reaches the caller
    CHECK_THROWS_AS(runner.forward_faces(pointers(faces), scratch), OutOfDeviceMemory);
  }
}

TEST_CASE("RetinaFace's byte input is retinaface_input, and a device taking bytes finds the same faces", "[detect]") {
  const Image photo = to_rgb(load_image(test::shared_path("images/group_solvay_1927.png")));
  const RgbBytesIo& io = retinaface_rgb_bytes_io();
  const Tensor want = retinaface_input(photo);
  const int64_t plane = int64_t(photo.width) * photo.height;
  for (int64_t p = 0; p < plane; ++p)
    for (int c = 0; c < 3; ++c)
      REQUIRE(io.in_levels[size_t(c) * 256 + photo.pixels[size_t(p) * 3 + size_t(2 - c)]] ==
              want.data<float>()[c * plane + p]);

  auto model = std::make_shared<const RetinaFaceModel>(
      RetinaFaceModel::load(test::shared_path("weights/retinaface_mobilenet0.25.pth")));
  FaceDetector cpu(model, std::shared_ptr<Backend>(make_cpu_backend()), {});
  auto standin = std::make_shared<StandInBackend>(Mode::Bytes);
  FaceDetector device(model, standin, {});
  DetectOptions opt;
  const std::vector<Detection> a = cpu.detect(photo, opt), b = device.detect(photo, opt);
  CHECK(standin->calls >= 1);  // every pass took the photo as bytes
  REQUIRE(a.size() == b.size());
  CHECK(a.size() >= 20);
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("face " << i);
    for (int k = 0; k < 4; ++k) CHECK(a[i].box[k] == b[i].box[k]);
    CHECK(a[i].score == b[i].score);
  }
}

TEST_CASE("forward_faces: a shared runner on a device takes the byte path from every thread", "[gpen]") {
  const int S = tiny_model()->config().size;
  const std::vector<Image> a = random_faces(2, S, 35), b = random_faces(1, S, 36);
  const std::vector<Image> want_a = float_path(a), want_b = float_path(b);
  auto bytes = std::make_shared<StandInBackend>(Mode::Bytes);
  GpenRunner shared(tiny_model(), bytes, {});
  shared.share_between_threads(4, 2);  // two dispatchers, each on its own twin
  std::vector<std::vector<Image>> got(6);
  std::vector<std::thread> ts;
  for (int i = 0; i < 6; ++i)
    ts.emplace_back([&, i] {
      Tensor scratch;
      got[size_t(i)] = shared.forward_faces(pointers(i % 2 ? b : a), scratch);
    });
  for (std::thread& t : ts) t.join();
  for (int i = 0; i < 6; ++i) {
    INFO("request " << i);
    check_same_in_another_batch(got[size_t(i)], i % 2 ? want_b : want_a);  // requests coalesce
  }
  CHECK(bytes->calls >= 1);
  CHECK(shared.sharing_stats().samples == 9);
  // Float tensors still go through the same runner (forward()), in batches of their own.
  GpenRunner cpu(tiny_model(), std::shared_ptr<Backend>(make_cpu_backend()), {});
  const Tensor x = faces_to_tensor(pointers(a));
  const Tensor y = shared.forward(x), y_cpu = cpu.forward(x);
  REQUIRE(y.dtype() == DType::F32);
  CHECK(test::max_abs_diff(y.data<float>(), y_cpu.data<float>(), size_t(y.numel())) == 0);
}

TEST_CASE("forward_faces: where compiling is costly, partial batches run padded to a few sizes", "[gpen]") {
  const int S = tiny_model()->config().size;
  const std::vector<Image> faces = random_faces(7, S, 37);
  const std::vector<Image> want = float_path(faces);
  auto timing = std::make_shared<StandInBackend>(Mode::Bytes, true);
  GpenRunner runner(tiny_model(), timing, {});
  runner.set_batch_limit(6);
  CHECK(runner.padded_batch(1) == 1);
  CHECK(runner.padded_batch(3) == 4);
  CHECK(runner.padded_batch(5) == 6);  // the power of two (8) is over the limit
  CHECK(runner.padded_batch(6) == 6);
  CHECK(runner.padded_batch(7) == 7);  // over the announced limit: as asked
  Tensor scratch;
  for (int n : {3, 4, 5, 2, 6, 1, 7}) {
    INFO(n << " faces");
    const std::vector<Image> some(faces.begin(), faces.begin() + n), some_want(want.begin(), want.begin() + n);
    check_same_in_another_batch(runner.forward_faces(pointers(some), scratch), some_want);  // the padding is dropped
  }
  CHECK(runner.compiled_batches() == std::vector<int>{1, 2, 4, 6, 7});
  CHECK(!scratch.defined());  // all on the byte path

  // Where compiling is cheap (the CPU, a backend that times nothing), every size as it comes.
  GpenRunner exact(tiny_model(), std::make_shared<StandInBackend>(Mode::Bytes), {});
  exact.set_batch_limit(6);
  CHECK(exact.padded_batch(3) == 3);
  const std::vector<Image> three(faces.begin(), faces.begin() + 3), three_want(want.begin(), want.begin() + 3);
  check_same_in_another_batch(exact.forward_faces(pointers(three), scratch), three_want);
  CHECK(exact.compiled_batches() == std::vector<int>{3});

  // A padded size that does not fit in device memory: the faces run as they are, and no more
  // padding is tried (no out-of-memory fallback needed for that).
  auto tight = std::make_shared<StandInBackend>(Mode::Bytes, true);
  tight->oom_from_batch = 4;
  GpenRunner runner3(tiny_model(), tight, {});
  runner3.set_batch_limit(8);
  check_same_in_another_batch(runner3.forward_faces(pointers(three), scratch), three_want);
  check_same_in_another_batch(runner3.forward_faces(pointers(three), scratch), three_want);
  CHECK(runner3.compiled_batches() == std::vector<int>{3});
  CHECK(!scratch.defined());
}

TEST_CASE("GpenRunner with quick_algorithms: heuristic at first, timed once the batch size recurs", "[gpen]") {
  const int S = tiny_model()->config().size;
  const std::vector<Image> faces = random_faces(2, S, 38);
  const std::vector<Image> want = float_path(faces);
  CompileOptions quick;
  quick.quick_algorithms = true;
  auto timing = std::make_shared<StandInBackend>(Mode::Bytes, true);
  GpenRunner runner(tiny_model(), timing, quick);
  Tensor scratch;
  for (int i = 1; i <= GpenRunner::kTimedAfterUses + 2; ++i) {
    INFO("forward " << i);
    check_same(runner.forward_faces(pointers(faces), scratch), want);
  }
  const std::vector<std::pair<int, bool>> want_compiles = {{2, true}, {2, false}};
  CHECK(timing->compiles == want_compiles);

  // Without the option (gpen bench, the seed report), or where nothing is timed: one compile.
  auto timing2 = std::make_shared<StandInBackend>(Mode::Bytes, true);
  GpenRunner timed(tiny_model(), timing2, {});
  auto cheap = std::make_shared<StandInBackend>(Mode::Bytes, false);
  GpenRunner on_cheap(tiny_model(), cheap, quick);
  for (int i = 0; i < GpenRunner::kTimedAfterUses + 2; ++i) {
    timed.forward_faces(pointers(faces), scratch);
    on_cheap.forward_faces(pointers(faces), scratch);
  }
  CHECK(timing2->compiles == std::vector<std::pair<int, bool>>{{2, false}});
  CHECK(cheap->compiles == std::vector<std::pair<int, bool>>{{2, false}});
}

// The CPU executable scales photo bytes straight into its arena (no f32 copy of the photo): the
// same outputs, bit for bit, as run() on the host-converted floats -- through the vectorised row
// kernel for RetinaFace's v - mean table, through lookups for any other table (GPEN's).
TEST_CASE("CPU executable: bytes into the arena give run()'s outputs exactly", "[detect]") {
  std::mt19937 rng(7);
  const int H = 37, W = 53;  // odd: rows split unevenly over the pool
  Image photo(W, H, 3);
  for (uint8_t& v : photo.pixels) v = uint8_t(rng());
  const uint8_t* bytes = photo.pixels.data();
  std::unique_ptr<Backend> backend = make_cpu_backend();
  CompileOptions opt;
  opt.threads = 3;

  const RetinaFaceModel det = RetinaFaceModel::from_state_dict(retinaface_random_state_dict(RetinaFaceBody::MobileNet025, 3));
  std::unique_ptr<Executable> exe = backend->compile(det.build_graph(1, H, W), opt);
  std::vector<Tensor> want, got;
  exe->run({retinaface_input(photo)}, want);
  REQUIRE(exe->run_from_rgb_bytes(retinaface_rgb_bytes_io(), &bytes, 1, got));
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    REQUIRE(got[i].shape() == want[i].shape());
    CHECK(test::max_abs_diff(got[i].data<float>(), want[i].data<float>(), size_t(got[i].numel())) == 0.0);
  }

  // GPEN's table (x / 127.5 - 1, planes R, G, B) is not v + offset: looked up per value.
  const int S = tiny_model()->config().size;
  std::vector<Image> faces = random_faces(2, S, 11);
  const RgbBytesIo& io = gpen_rgb_bytes_io();
  REQUIRE_FALSE(io.reverse_channels);
  Tensor x = Tensor::empty(DType::F32, {2, 3, S, S});
  for (int n = 0; n < 2; ++n)
    for (int64_t p = 0; p < int64_t(S) * S; ++p)
      for (int c = 0; c < 3; ++c)
        x.data<float>()[(n * 3 + c) * S * S + p] = io.in_levels[size_t(c) * 256 + faces[size_t(n)].pixels[size_t(p) * 3 + size_t(c)]];
  std::unique_ptr<Executable> gen = backend->compile(tiny_model()->build_graph(2), opt);
  const uint8_t* in[2] = {faces[0].pixels.data(), faces[1].pixels.data()};
  gen->run({x}, want);
  REQUIRE(gen->run_from_rgb_bytes(io, in, 2, got));
  REQUIRE(got.size() == 1);
  CHECK(test::max_abs_diff(got[0].data<float>(), want[0].data<float>(), size_t(got[0].numel())) == 0.0);
  // A batch size the graph was not built for is declined, not run.
  CHECK_FALSE(gen->run_from_rgb_bytes(io, in, 1, got));
}
TEST_CASE("CPU: a face gives the same floats in a batch of 1 and in a batch of 7", "[gpen]") {
  // Checked on the generic and AVX2 kernels (any x86-64 machine of CI has AVX2). The AVX-512
  // files are built the same way (no implicit contraction) but not asserted here: the machine
  // this was written on had no AVX-512.
  const int S = tiny_model()->config().size;
  const std::vector<Image> faces = random_faces(7, S, 37);
  const std::vector<Image> first(faces.begin(), faces.begin() + 1);
  for (const cpu::Isa isa : {cpu::Isa::Generic, cpu::Isa::AVX2}) {
    cpu::set_isa_cap(isa);
    if (cpu::active_isa() != isa) continue;
    INFO(cpu::isa_name(isa));
    GpenRunner seven(tiny_model(), std::shared_ptr<Backend>(make_cpu_backend()), {});
    GpenRunner one(tiny_model(), std::shared_ptr<Backend>(make_cpu_backend()), {});
    const Tensor y7 = seven.forward(faces_to_tensor(pointers(faces)));
    const Tensor y1 = one.forward(faces_to_tensor(pointers(first)));
    CHECK(test::max_abs_diff(y1.data<float>(), y7.data<float>(), size_t(y1.numel())) == 0);
  }
  cpu::set_isa_cap(cpu::Isa::AVX512_BF16);
}
