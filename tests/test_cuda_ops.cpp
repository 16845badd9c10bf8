// Every op of the CUDA backend against the CPU backend's generic kernels (the oracle), one op per
// graph on odd sizes, and whole GPEN models [large]. These need the CUDA module and a device:
// without them each test prints "SKIPPED: no CUDA device (...)" as a warning and checks no GPU
// result (Catch2 v2 has no skip; docs/ARCHITECTURE.md says so, so their "passed" means only
// that the per-op graphs built and ran on the CPU).
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <cstdlib>
#include <random>
#include <thread>

#include "core/device.h"
#include "core/face_detector.h"
#include "core/face_tensor.h"
#include "core/image.h"
#include "core/models/gpen.h"
#include "tests/test_gpen_util.h"
#include "tests/test_util.h"
#include "tools/bench_cuda.h"

using namespace gpen;

namespace {

// Whether the CUDA module has a device. GPEN_TEST_REQUIRE_CUDA (the ctest run on the emulated
// module, CMakeLists.txt) makes a missing one a failure instead of a skip.
bool cuda_present() {
  const CudaModule& m = CudaModule::instance();
  if (m.usable()) return true;
  if (std::getenv("GPEN_TEST_REQUIRE_CUDA")) FAIL("no CUDA device, and GPEN_TEST_REQUIRE_CUDA is set: " << m.why_unusable());
  return false;
}

bool cuda_or_skip() {
  if (cuda_present()) return true;
  WARN("SKIPPED: no CUDA device (" << CudaModule::instance().why_unusable() << ")");
  return false;
}

std::unique_ptr<Executable> compile_on(Backend& b, const Graph& g, bool generic_isa) {
  CompileOptions opt;
  opt.threads = 2;
  if (generic_isa) opt.max_isa = cpu::Isa::Generic;
  return b.compile(g, opt);
}

struct Tolerance {
  double max_abs = 1e-4;  // relative to the largest reference magnitude (at least 1)
  double rel_l2 = 0;      // 0: not checked
};

// Whether an executable runs some node on f16 NHWC activations (its kernels say so).
bool runs_f16_nhwc(const Executable& exe) {
  for (const NodeProfile& p : exe.profile())
    if (p.kernel.find("f16_nhwc") != std::string::npos) return true;
  return false;
}

// Runs `g` on the CPU (generic kernels) and on CUDA in `p`; every output must agree. f16_nhwc:
// compiled in the f16 activation mode (GPEN_CUDA_NHWC16=1, fp16), which the graph must take.
// Without a device only the CPU side runs (the graph and its inputs are still checked).
void compare(const Graph& g, const std::vector<Tensor>& inputs, GpuPrecision p, Tolerance tol, bool f16_nhwc = false) {
  test::ScopedEnv mode("GPEN_CUDA_NHWC16", f16_nhwc ? "1" : "0");
  auto cpu = make_cpu_backend();
  std::vector<Tensor> want, got, again;
  compile_on(*cpu, g, true)->run(inputs, want);
  if (!cuda_present()) return;
  auto gpu = CudaModule::instance().make_backend(0, p);
  auto exe = compile_on(*gpu, g, false);
  INFO("f16 NHWC activations requested: " << f16_nhwc);
  REQUIRE(runs_f16_nhwc(*exe) == f16_nhwc);
  exe->run(inputs, got);    // records the CUDA graph
  exe->run(inputs, again);  // replays it: the same result, bit for bit
  // ... unless cuDNN had only a non-deterministic algorithm for some shape (its name says so, and
  // the compile printed a note): then the replay is held to the tolerance instead, and says so.
  bool deterministic = true;
  for (const NodeProfile& np : exe->profile()) deterministic &= np.kernel.find("_nondet") == std::string::npos;
  if (!deterministic) WARN("a non-deterministic cuDNN algorithm ran: the replay is compared within tolerance");
  REQUIRE(got.size() == want.size());
  REQUIRE(again.size() == got.size());
  for (size_t i = 0; i < want.size(); ++i) {
    REQUIRE(got[i].shape() == want[i].shape());
    const size_t n = size_t(want[i].numel());
    const double scale = std::max(1.0, test::max_abs(want[i].data<float>(), n));
    const double err = test::max_abs_diff(got[i].data<float>(), want[i].data<float>(), n);
    INFO("output " << i << " " << shape_str(want[i].shape()) << " " << gpu_precision_name(p) << ": max abs err "
                   << err << " (reference max " << scale << ")");
    CHECK(err <= tol.max_abs * scale);
    if (tol.rel_l2 > 0) CHECK(test::rel_l2(got[i].data<float>(), want[i].data<float>(), n) <= tol.rel_l2);
    const double replay = test::max_abs_diff(again[i].data<float>(), got[i].data<float>(), n);
    if (deterministic)
      CHECK(replay == 0);
    else
      CHECK(replay <= tol.max_abs * scale);
  }
}

Tensor rnd(Shape s, uint32_t seed, float lo = -1.f, float hi = 1.f) { return test::random_tensor(std::move(s), seed, lo, hi); }

cpu::ConvDesc conv_desc(int C, int K, int k, int stride, int pad, int groups = 1, bool transposed = false) {
  cpu::ConvDesc d;
  d.C = C;
  d.K = K;
  d.kh = d.kw = k;
  d.stride = stride;
  d.pad = pad;
  d.groups = groups;
  d.transposed = transposed;
  return d;
}

struct ConvCase {
  const char* name;
  cpu::ConvDesc d;
  int n, h, w;
  bool modulated;  // in_scale (style) and out_scale (demodulation) inputs
};

// One convolution, optionally modulated, writing into a channel slice of a wider buffer (concat
// in place), with StyleGAN's bias + leaky-ReLU epilogue.
void check_conv(const ConvCase& c, GpuPrecision p, Tolerance tol, bool f16_nhwc = false) {
  Graph g;
  const cpu::ConvDesc& d = c.d;
  const int x = g.input("x", {c.n, d.C, c.h, c.w});
  std::vector<Tensor> inputs = {rnd({c.n, d.C, c.h, c.w}, 1)};
  int style = -1, demod = -1;
  if (c.modulated) {
    style = g.input("style", {c.n, d.C});
    demod = g.input("demod", {c.n, d.K});
    inputs.push_back(rnd({c.n, d.C}, 2, 0.5f, 1.5f));
    inputs.push_back(rnd({c.n, d.K}, 3, 0.1f, 0.3f));
  }
  const Tensor w = rnd({d.K, d.C / d.groups, d.kh, d.kw}, 4, -0.3f, 0.3f);
  const int oh = d.out_h(c.h), ow = d.out_w(c.w);
  const int cat = g.buffer("cat", {c.n, d.K + 3, oh, ow});
  const int slice = g.channel_slice(cat, 0, d.K);
  g.conv2d("conv", x, d, w, EpilogueSpec::fused_lrelu(rnd({d.K}, 5)), style, demod, slice);
  g.scale_bias_act("fill", g.input("rest", {c.n, 3, oh, ow}), 1.f, EpilogueSpec{}, g.channel_slice(cat, d.K, d.K + 3));
  inputs.push_back(rnd({c.n, 3, oh, ow}, 6));
  g.mark_output(cat);
  INFO(c.name);
  compare(g, inputs, p, tol, f16_nhwc);
}

const ConvCase kConvCases[] = {
    {"3x3 s1 p1", conv_desc(13, 11, 3, 1, 1), 3, 17, 19, false},
    {"3x3 s1 p1 modulated", conv_desc(13, 11, 3, 1, 1), 3, 17, 19, true},
    {"1x1", conv_desc(3, 7, 1, 1, 0), 2, 9, 11, false},
    {"1x1 modulated (ToRGB-like)", conv_desc(16, 3, 1, 1, 0), 2, 9, 11, true},
    {"1x1 modulated 64->3 (ToRGB)", conv_desc(64, 3, 1, 1, 0), 2, 33, 35, true},
    {"1x1 3->64 (first encoder layer)", conv_desc(3, 64, 1, 1, 0), 3, 31, 29, false},
    {"1x1 5->9 modulated", conv_desc(5, 9, 1, 1, 0), 2, 7, 8, true},
    {"1x1 24->16 (cuDNN)", conv_desc(24, 16, 1, 1, 0), 2, 9, 7, true},
    {"3x3 s2 p0", conv_desc(12, 16, 3, 2, 0), 2, 17, 15, false},
    {"3x3 s2 p1", conv_desc(8, 8, 3, 2, 1), 1, 16, 16, false},
    {"depthwise 3x3", conv_desc(12, 12, 3, 1, 1, 12), 2, 13, 9, false},
    {"grouped 3x3 g3", conv_desc(12, 9, 3, 1, 1, 3), 2, 11, 7, false},
    {"transposed 3x3 s2 modulated", conv_desc(10, 6, 3, 2, 0, 1, true), 2, 7, 9, true},
    {"transposed 4x4 s2 p1", conv_desc(6, 5, 4, 2, 1, 1, true), 1, 5, 6, false},
    {"transposed grouped g2", conv_desc(8, 6, 3, 2, 0, 2, true), 2, 5, 5, false},
};

}  // namespace

TEST_CASE("cuda conv2d matches the generic kernel (fp32, tf32, fp16)", "[cuda]") {
  cuda_or_skip();  // warns; the CPU side still runs
  for (const ConvCase& c : kConvCases) {
    check_conv(c, GpuPrecision::FP32, {1e-4, 0});
    check_conv(c, GpuPrecision::TF32, {5e-3, 5e-3});
    check_conv(c, GpuPrecision::FP16, {1e-2, 5e-3});
  }
}

TEST_CASE("cuda conv2d reads a channel-slice input view", "[cuda]") {
  cuda_or_skip();  // warns; the CPU side still runs
  for (GpuPrecision p : {GpuPrecision::FP32, GpuPrecision::FP16}) {
    for (int k : {3, 1}) {  // cuDNN, and the direct 1x1 kernel
      Graph g;
      const int x = g.input("x", {2, 9, 10, 11});
      const cpu::ConvDesc d = conv_desc(5, 4, k, 1, k / 2);
      g.mark_output(g.conv2d("conv", g.channel_slice(x, 2, 7), d, rnd({4, 5, k, k}, 7), EpilogueSpec::with_bias(rnd({4}, 8))));
      INFO("kernel " << k);
      compare(g, {rnd({2, 9, 10, 11}, 9)}, p, {p == GpuPrecision::FP32 ? 1e-4 : 1e-2, 0});
    }
  }
}

TEST_CASE("cuda quick (heuristic) convolution algorithms match the generic kernel; a timed compile replaces them",
          "[cuda]") {
  cuda_or_skip();  // warns; the CPU side still runs
  test::ScopedEnv no_file("GPEN_CUDA_ALGO_CACHE", "off");  // no measured entry from an earlier process
  for (GpuPrecision p : {GpuPrecision::FP32, GpuPrecision::FP16}) {
    for (bool transposed : {false, true}) {
      Graph g;
      // Channel counts no other test uses, so that no earlier timed compile of this process
      // answers for the shape.
      const cpu::ConvDesc d = conv_desc(23, 29, 3, transposed ? 2 : 1, 1, 1, transposed);
      const int x = g.input("x", {2, 23, 13, 11});
      g.mark_output(g.conv2d("conv", x, d, rnd({29, 23, 3, 3}, 31), EpilogueSpec::with_bias(rnd({29}, 32))));
      const std::vector<Tensor> inputs = {rnd({2, 23, 13, 11}, 33)};
      std::vector<Tensor> want, quick_out, timed_out;
      compile_on(*make_cpu_backend(), g, true)->run(inputs, want);
      if (!cuda_present()) continue;
      INFO(gpu_precision_name(p) << (transposed ? " transposed" : ""));
      auto gpu = CudaModule::instance().make_backend(0, p);
      CHECK(gpu->times_algorithms());
      CompileOptions quick;
      quick.quick_algorithms = true;
      auto q = gpu->compile(g, quick);
      CHECK(q->has_untimed_algorithms());
      q->run(inputs, quick_out);
      auto t = gpu->compile(g, CompileOptions{});
      CHECK(!t->has_untimed_algorithms());
      t->run(inputs, timed_out);
      CHECK(!gpu->compile(g, quick)->has_untimed_algorithms());  // now timed in this process
      const size_t n = size_t(want[0].numel());
      const double scale = std::max(1.0, test::max_abs(want[0].data<float>(), n));
      const double tol = (p == GpuPrecision::FP32 ? 1e-4 : 1e-2) * scale;
      CHECK(test::max_abs_diff(quick_out[0].data<float>(), want[0].data<float>(), n) <= tol);
      CHECK(test::max_abs_diff(timed_out[0].data<float>(), want[0].data<float>(), n) <= tol);
    }
  }
}

TEST_CASE("cuda linear, pixel norm and demodulation factors match the generic kernels", "[cuda]") {
  cuda_or_skip();  // warns; the CPU side still runs
  {
    Graph g;
    const int x = g.input("x", {3, 37});
    g.mark_output(g.linear("fc", x, rnd({29, 37}, 1), EpilogueSpec::fused_lrelu(rnd({29}, 2))));
    g.mark_output(g.linear("fc_plain", x, rnd({5, 37}, 3), EpilogueSpec{}));
    compare(g, {rnd({3, 37}, 4)}, GpuPrecision::FP32, {1e-5, 0});
  }
  {
    Graph g;
    g.mark_output(g.pixel_norm("pn_vec", g.input("v", {3, 37}), 1e-8f));
    g.mark_output(g.pixel_norm("pn_map", g.input("m", {2, 13, 5, 7}), 1e-8f));
    compare(g, {rnd({3, 37}, 5), rnd({2, 13, 5, 7}, 6)}, GpuPrecision::FP32, {1e-5, 0});
  }
  {
    Graph g;
    g.mark_output(g.demod_factors("demod", g.input("s", {3, 37}), rnd({29, 37}, 7, 0.f, 2.f), 1e-8f));
    compare(g, {rnd({3, 37}, 8)}, GpuPrecision::FP32, {1e-5, 0});
  }
}

TEST_CASE("cuda upfirdn2d matches the generic kernel (blur, upsample, downsample)", "[cuda]") {
  cuda_or_skip();  // warns; the CPU side still runs
  const Tensor k4 = Tensor::from_floats({4, 4}, {1, 3, 3, 1, 3, 9, 9, 3, 3, 9, 9, 3, 1, 3, 3, 1});
  const Tensor k3 = rnd({3, 3}, 1);  // asymmetric: catches a missing kernel flip
  struct Case {
    Tensor k;
    int up, down, pad0, pad1;
  };
  const Tensor k9 = rnd({9, 9}, 4);  // more taps than the tiled kernel takes: the general kernel
  // Small planes (one partial tile) and planes of several tiles with ragged edges.
  for (const Shape& xs : {Shape{2, 5, 9, 7}, Shape{2, 3, 67, 45}}) {
    for (const Case& c : {Case{k4, 1, 1, 2, 1}, Case{k4, 2, 1, 2, 1}, Case{k4, 1, 2, 1, 1}, Case{k3, 2, 1, 1, 1},
                          Case{k3, 1, 1, -1, 2}, Case{k4, 3, 1, 2, 2}, Case{k9, 1, 1, 4, 4}, Case{k3, 1, 3, 1, 1}}) {
      Graph g;
      const int x = g.input("x", xs);
      g.mark_output(g.upfirdn2d("fir", x, c.k, c.up, c.down, c.pad0, c.pad1, EpilogueSpec::fused_lrelu(rnd({xs[1]}, 2))));
      INFO(shape_str(xs) << " up " << c.up << " down " << c.down << " pad " << c.pad0 << "," << c.pad1);
      compare(g, {rnd(xs, 3)}, GpuPrecision::FP32, {1e-5, 0});
    }
  }
}

TEST_CASE("cuda elementwise ops match the generic kernels, on views", "[cuda]") {
  cuda_or_skip();  // warns; the CPU side still runs
  Graph g;
  const int a = g.input("a", {3, 5, 7, 9}), b = g.input("b", {3, 5, 7, 9});
  g.mark_output(g.add("sum", a, b));
  const int cat = g.buffer("cat", {3, 10, 7, 9});
  g.scale_bias_act("sba_lo", a, 0.7f, EpilogueSpec::fused_lrelu(rnd({5}, 1)), g.channel_slice(cat, 0, 5));
  g.scale_bias_act("sba_hi", g.channel_slice(cat, 0, 5), -1.3f, EpilogueSpec::with_bias(rnd({5}, 2)),
                   g.channel_slice(cat, 5, 10));
  g.mark_output(cat);
  g.mark_output(g.broadcast("const", rnd({1, 4, 3, 5}, 3), 3));
  compare(g, {rnd({3, 5, 7, 9}, 4), rnd({3, 5, 7, 9}, 5)}, GpuPrecision::FP32, {1e-6, 0});
}

TEST_CASE("cuda resampling ops match the generic kernels", "[cuda]") {
  cuda_or_skip();  // warns; the CPU side still runs
  Graph g;
  const int x = g.input("x", {2, 6, 17, 19});
  g.mark_output(g.upsample_nearest("up", x, 35, 40));
  g.mark_output(g.upsample_nearest("down", x, 8, 9));
  g.mark_output(g.max_pool2d("pool", x, 3, 2, 1));
  g.mark_output(g.max_pool2d("pool_nopad", x, 2, 2, 0));
  g.mark_output(g.reflect_pad2d("reflect", x, 3));
  g.mark_output(g.pixel_unshuffle("unshuffle", g.input("y", {2, 3, 12, 8}), 4));
  compare(g, {rnd({2, 6, 17, 19}, 1), rnd({2, 3, 12, 8}, 2)}, GpuPrecision::FP32, {0, 0});
}

namespace {

// Two modulated convs on images large enough for per-sample filters: a 3x3 conv into a concat
// slice (epilogue pass), and StyleGAN's upsampling, a transposed conv whose raw output cuDNN
// writes in place (per-sample) or the blur demodulates. Batch n, with its random inputs.
struct LargeModulated {
  Graph g;
  std::vector<Tensor> inputs;
  explicit LargeModulated(int n) {
    const int C = 16, K = 8;
    const Tensor k4 = Tensor::from_floats({4, 4}, {1, 3, 3, 1, 3, 9, 9, 3, 3, 9, 9, 3, 1, 3, 3, 1});
    const int x = g.input("x", {n, C, 40, 36}), s = g.input("s", {n, C}), d = g.input("d", {n, K});
    const int cat = g.buffer("cat", {n, 2 * K, 40, 36});
    g.conv2d("conv", x, conv_desc(C, K, 3, 1, 1), rnd({K, C, 3, 3}, 1, -0.3f, 0.3f),
             EpilogueSpec::fused_lrelu(rnd({K}, 2)), s, d, g.channel_slice(cat, 0, K));
    g.scale_bias_act("rest", g.input("f", {n, K, 40, 36}), 1.f, EpilogueSpec{}, g.channel_slice(cat, K, 2 * K));
    const int s2 = g.input("s2", {n, 2 * K}), d2 = g.input("d2", {n, K});
    const int t = g.conv2d("up", cat, conv_desc(2 * K, K, 3, 2, 0, 1, true), rnd({K, 2 * K, 3, 3}, 3, -0.3f, 0.3f),
                           EpilogueSpec{}, s2, d2);
    g.mark_output(g.upfirdn2d("blur", t, k4, 1, 1, 1, 1, EpilogueSpec::fused_lrelu(rnd({K}, 4))));
    inputs = {rnd({n, C, 40, 36}, 5), rnd({n, C}, 6, 0.5f, 1.5f), rnd({n, K}, 7, 0.1f, 0.3f), rnd({n, K, 40, 36}, 8),
              rnd({n, 2 * K}, 9, 0.5f, 1.5f), rnd({n, K}, 10, 0.1f, 0.3f)};
  }
};

// How many of g's nodes, compiled for CUDA fp16 in the f16 activation mode, run a kernel whose
// name contains `part` (a GPU must be usable).
int count_f16_kernels(const Graph& g, const std::string& part) {
  test::ScopedEnv mode("GPEN_CUDA_NHWC16", "1");
  auto exe = CudaModule::instance().make_backend(0, GpuPrecision::FP16)->compile(g, CompileOptions{});
  int count = 0;
  for (const NodeProfile& p : exe->profile()) count += p.kernel.find(part) != std::string::npos;
  return count;
}

}  // namespace

// The f16 activation mode (GPEN_CUDA_NHWC16=1): image values as NHWC f16 views, each op's f16
// kernel against the generic f32 one. Odd channel counts take the one-channel path, even ones
// the __half2 path; the f16 roundings of every stored value set the tolerances.
TEST_CASE("cuda f16 NHWC activations: every op matches the generic kernels", "[cuda]") {
  cuda_or_skip();  // warns; the CPU side still runs
  const Tolerance f16{1e-2, 5e-3};
  SECTION("convolutions (cuDNN on the view or on x * style, the direct 1x1), into a concat slice") {
    for (const ConvCase& c : kConvCases)
      if (c.d.groups == 1) check_conv(c, GpuPrecision::FP16, f16, true);
  }
  SECTION("convolutions reading a channel slice (compacted first)") {
    for (int k : {3, 1}) {
      Graph g;
      const int x = g.input("x", {2, 10, 10, 11});
      const cpu::ConvDesc d = conv_desc(6, 4, k, 1, k / 2);
      g.mark_output(g.conv2d("conv", g.channel_slice(x, 2, 8), d, rnd({4, 6, k, k}, 7), EpilogueSpec::with_bias(rnd({4}, 8))));
      INFO("kernel " << k);
      compare(g, {rnd({2, 10, 10, 11}, 9)}, GpuPrecision::FP16, f16, true);
    }
  }
  SECTION("upfirdn2d") {
    const Tensor k4 = Tensor::from_floats({4, 4}, {1, 3, 3, 1, 3, 9, 9, 3, 3, 9, 9, 3, 1, 3, 3, 1});
    const Tensor k3 = rnd({3, 3}, 1);
    struct Case {
      Tensor k;
      int up, down, pad0, pad1;
    };
    for (const Shape& xs : {Shape{2, 5, 9, 7}, Shape{2, 6, 67, 45}, Shape{1, 64, 16, 12}}) {
      for (const Case& c : {Case{k4, 1, 1, 2, 1}, Case{k4, 2, 1, 2, 1}, Case{k4, 1, 2, 1, 1}, Case{k3, 2, 1, 1, 1},
                            Case{k3, 1, 1, -1, 2}, Case{k4, 3, 1, 2, 2}, Case{k3, 1, 3, 1, 1}}) {
        Graph g;
        const int x = g.input("x", xs);
        g.mark_output(g.upfirdn2d("fir", x, c.k, c.up, c.down, c.pad0, c.pad1, EpilogueSpec::fused_lrelu(rnd({xs[1]}, 2))));
        INFO(shape_str(xs) << " up " << c.up << " down " << c.down << " pad " << c.pad0 << "," << c.pad1);
        compare(g, {rnd(xs, 3)}, GpuPrecision::FP16, {5e-3, 2e-3}, true);
      }
    }
  }
  SECTION("add, scale_bias_act into concat slices, broadcast") {
    for (int c : {5, 8}) {
      Graph g;
      const int a = g.input("a", {3, c, 7, 9}), b = g.input("b", {3, c, 7, 9});
      g.mark_output(g.add("sum", a, b));
      const int cat = g.buffer("cat", {3, 2 * c, 7, 9});
      g.scale_bias_act("sba_lo", a, 0.7f, EpilogueSpec::fused_lrelu(rnd({c}, 1)), g.channel_slice(cat, 0, c));
      g.scale_bias_act("sba_hi", g.channel_slice(cat, 0, c), -1.3f, EpilogueSpec::with_bias(rnd({c}, 2)),
                       g.channel_slice(cat, c, 2 * c));
      g.mark_output(cat);
      g.mark_output(g.broadcast("const", rnd({1, c - 1, 3, 5}, 3), 3));
      INFO(c << " channels");
      compare(g, {rnd({3, c, 7, 9}, 4), rnd({3, c, 7, 9}, 5)}, GpuPrecision::FP16, {5e-3, 2e-3}, true);
    }
  }
  SECTION("StyleGAN's upsampling: modulated transposed conv, then the blur applies its demodulation") {
    // Channel counts cuDNN has deterministic NHWC f16 backward-data algorithms for (the replay is
    // compared bit for bit); the one-channel kernels' path is covered by the elementwise section.
    for (const int C : {8, 16}) {
      Graph g;
      const int n = 2, K = C + 2;
      const int x = g.input("x", {n, C, 9, 7}), s = g.input("s", {n, C}), d = g.input("d", {n, K});
      const int t = g.conv2d("up", x, conv_desc(C, K, 3, 2, 0, 1, true), rnd({K, C, 3, 3}, 1, -0.3f, 0.3f),
                             EpilogueSpec{}, s, d);
      const int cat = g.buffer("cat", {n, 2 * K, 18, 14});
      const Tensor k4 = Tensor::from_floats({4, 4}, {1, 3, 3, 1, 3, 9, 9, 3, 3, 9, 9, 3, 1, 3, 3, 1});
      g.upfirdn2d("blur", t, k4, 1, 1, 1, 1, EpilogueSpec::fused_lrelu(rnd({K}, 2)), g.channel_slice(cat, 0, K));
      g.scale_bias_act("noise", g.input("f", {n, K, 18, 14}), 0.3f, EpilogueSpec{}, g.channel_slice(cat, K, 2 * K));
      g.mark_output(cat);
      if (cuda_present()) {
        test::ScopedEnv mode("GPEN_CUDA_NHWC16", "1");
        auto exe = CudaModule::instance().make_backend(0, GpuPrecision::FP16)->compile(g, CompileOptions{});
        bool moved = false;
        for (const NodeProfile& p : exe->profile()) moved |= p.kernel.find("+demod") != std::string::npos;
        CHECK(moved);
      }
      INFO(C << " input channels");
      compare(g, {rnd({n, C, 9, 7}, 3), rnd({n, C}, 4, 0.5f, 1.5f), rnd({n, K}, 5, 0.1f, 0.3f), rnd({n, K, 18, 14}, 6)},
              GpuPrecision::FP16, f16, true);
    }
  }
  SECTION("a convolution, then a ScaleBiasAct in place on its result (one fused pass)") {
    for (const int k : {1, 3}) {  // the direct 1x1 kernel, and cuDNN with the epilogue kernel
      Graph g;
      const int x = g.input("x", {2, 3, 13, 11});
      const int cat = g.buffer("cat", {2, 16, 13, 11});
      const int hi = g.channel_slice(cat, 8, 16);
      g.conv2d("feature", x, conv_desc(3, 8, k, 1, k / 2), rnd({8, 3, k, k}, 1), EpilogueSpec::fused_lrelu(rnd({8}, 2)),
               -1, -1, hi);
      g.scale_bias_act("noise", hi, 0.4f, EpilogueSpec::fused_lrelu(rnd({8}, 3)), hi);
      g.scale_bias_act("lo", g.input("f", {2, 8, 13, 11}), 1.f, EpilogueSpec{}, g.channel_slice(cat, 0, 8));
      g.mark_output(cat);
      INFO("kernel " << k);
      compare(g, {rnd({2, 3, 13, 11}, 4), rnd({2, 8, 13, 11}, 5)}, GpuPrecision::FP16, f16, true);
    }
  }
  SECTION("modulated convolutions on large images: per-sample filters, and x * style without them") {
    for (const int n : {3, 1})
    for (const char* per_sample : {"1", "0"}) {
      test::ScopedEnv filters("GPEN_CUDA_PER_SAMPLE", per_sample);
      INFO("batch " << n << ", GPEN_CUDA_PER_SAMPLE=" << per_sample);
      const LargeModulated m(n);
      if (cuda_present())
        CHECK(count_f16_kernels(m.g, "+per_sample") == (per_sample[0] == '1' ? 2 : 0));
      compare(m.g, m.inputs, GpuPrecision::FP16, f16, true);
    }
  }
  SECTION("the fallbacks only a cuDNN refusal reaches (GPEN_CUDA_REFUSE): x * style, NCHW operands") {
    // The large-image graph compiled with per-sample filters refused (-> x * style on NHWC
    // operands), and with NHWC operands refused as well (-> NCHW operands, re-laid out).
    for (const char* refuse : {"per_sample", "per_sample,nhwc"}) {
      test::ScopedEnv filters("GPEN_CUDA_PER_SAMPLE", "1");
      test::ScopedEnv refused("GPEN_CUDA_REFUSE", refuse);
      INFO("GPEN_CUDA_REFUSE=" << refuse);
      const LargeModulated m(2);
      if (cuda_present()) {
        CHECK(count_f16_kernels(m.g, "+per_sample") == 0);
        const int nchw = std::string(refuse).find("nhwc") != std::string::npos ? 2 : 0;
        CHECK(count_f16_kernels(m.g, "_fp16_nchw") == nchw);  // cuDNN on NCHW operands (kernel_name())
      }
      compare(m.g, m.inputs, GpuPrecision::FP16, f16, true);
    }
  }
  SECTION("runs of Linears and of demodulation factors, one launch each") {
    Graph g;
    const int latent = g.input("w", {3, 37});
    const int a = g.linear("style_a", latent, rnd({29, 37}, 1), EpilogueSpec::with_bias(rnd({29}, 2)));
    const int b = g.linear("style_b", latent, rnd({5, 37}, 3), EpilogueSpec::with_bias(rnd({5}, 4)));
    const int c = g.linear("style_c", latent, rnd({7, 37}, 5), EpilogueSpec{});
    g.mark_output(c);
    g.mark_output(g.demod_factors("demod_a", a, rnd({11, 29}, 6, 0.f, 2.f), 1e-8f));
    g.mark_output(g.demod_factors("demod_b", b, rnd({13, 5}, 7, 0.f, 2.f), 1e-8f));
    g.mark_output(a);
    g.mark_output(g.scale_bias_act("image", g.input("x", {3, 4, 5, 6}), 2.f, EpilogueSpec{}));  // an f16 value too
    if (cuda_present()) {
      test::ScopedEnv mode("GPEN_CUDA_NHWC16", "1");
      auto exe = CudaModule::instance().make_backend(0, GpuPrecision::FP16)->compile(g, CompileOptions{});
      std::string kernels;
      for (const NodeProfile& p : exe->profile()) kernels += p.kernel + ";";
      INFO(kernels);
      CHECK(kernels.find("grouped_linear x3") != std::string::npos);
      CHECK(kernels.find("grouped_demod_factors x2") != std::string::npos);
    }
    compare(g, {rnd({3, 37}, 8), rnd({3, 4, 5, 6}, 9)}, GpuPrecision::FP16, {1e-3, 0}, true);  // (the image is f16)
  }
  SECTION("a Linear on a reshaped image (flattened in NCHW order)") {
    Graph g;
    const int x = g.input("x", {2, 6, 3, 5});
    const int img = g.scale_bias_act("img", x, 1.f, EpilogueSpec::with_bias(rnd({6}, 1)));
    g.mark_output(g.linear("fc", g.reshape(img, {2, 90}), rnd({7, 90}, 2), EpilogueSpec::fused_lrelu(rnd({7}, 3))));
    compare(g, {rnd({2, 6, 3, 5}, 4)}, GpuPrecision::FP16, {5e-3, 2e-3}, true);
  }
}

// --- whole models ---

namespace {

std::vector<uint8_t> to_uint8(const float* v, size_t n) {
  std::vector<uint8_t> u(n);
  for (size_t i = 0; i < n; ++i) u[i] = uint8_t(std::lround(std::clamp((v[i] + 1.f) * 127.5f, 0.f, 255.f)));
  return u;
}

void check_gpen(int size, int batch) {
  auto model = std::make_shared<GpenModel>(GpenModel::from_state_dict(gpen_random_state_dict(gpen_official_config(size), 11)));
  const Tensor x = rnd({batch, 3, size, size}, 12);
  CompileOptions opt;
  GpenRunner cpu(model, std::shared_ptr<Backend>(make_cpu_backend()), opt);
  const Tensor want = cpu.forward(x);
  const size_t n = size_t(want.numel());
  {
    GpenRunner gpu(model, std::shared_ptr<Backend>(CudaModule::instance().make_backend(0, GpuPrecision::FP32)), opt);
    const Tensor got = gpu.forward(x);
    const double err = test::max_abs_diff(got.data<float>(), want.data<float>(), n);
    INFO("GPEN-" << size << " fp32 max abs err " << err);
    CHECK(err <= 1e-3);
  }
  // f32 activations, then f16 NHWC ones; each with timed algorithms, then with cuDNN's heuristic
  // ones (quick_algorithms, as gpen enhance compiles first; no algorithm file, a fresh backend).
  for (const bool f16_nhwc : {false, true})
    for (const bool quick : {false, true}) {
      test::ScopedEnv mode("GPEN_CUDA_NHWC16", f16_nhwc ? "1" : "0");
      std::optional<test::ScopedEnv> no_file;
      if (quick) no_file.emplace("GPEN_CUDA_ALGO_CACHE", "off");
      CompileOptions gopt = opt;
      gopt.quick_algorithms = quick;
      GpenRunner gpu(model, std::shared_ptr<Backend>(CudaModule::instance().make_backend(0, GpuPrecision::FP16)), gopt);
      REQUIRE(runs_f16_nhwc(gpu.executable(batch)) == f16_nhwc);
      CHECK(gpu.executable(batch).has_untimed_algorithms() == quick);
      const Tensor got = gpu.forward(x);
      const double rel = test::rel_l2(got.data<float>(), want.data<float>(), n);
      const auto a = to_uint8(got.data<float>(), n), b = to_uint8(want.data<float>(), n);
      size_t close = 0;
      for (size_t i = 0; i < n; ++i) close += std::abs(int(a[i]) - int(b[i])) <= 2;
      INFO("GPEN-" << size << " fp16" << (f16_nhwc ? " (f16 NHWC activations)" : "") << (quick ? ", heuristic" : "")
                   << " rel L2 " << rel << ", uint8 within 2: " << double(close) / double(n));
      CHECK(std::isfinite(rel));  // f16 storage overflowing to inf would show here first
      CHECK(rel <= 1e-2);
      CHECK(double(close) >= 0.99 * double(n));
    }
}

}  // namespace

TEST_CASE("cuda GPEN-256 matches the CPU (fp32 1e-3 max abs; fp16 1e-2 rel L2, uint8 +-2 on 99%)", "[cuda][large]") {
  if (!cuda_or_skip()) return;
  check_gpen(256, 2);
}

TEST_CASE("cuda GPEN-512 matches the CPU (fp32 1e-3 max abs; fp16 1e-2 rel L2, uint8 +-2 on 99%)", "[cuda][large]") {
  if (!cuda_or_skip()) return;
  check_gpen(512, 2);
}

TEST_CASE("cuda RetinaFace finds the CPU's faces (MobileNet0.25, the Solvay photo, fp32)", "[cuda][large]") {
  if (!cuda_or_skip()) return;
  auto model = std::make_shared<const RetinaFaceModel>(
      RetinaFaceModel::load(test::shared_path("weights/retinaface_mobilenet0.25.pth")));
  const Image photo = load_image(test::shared_path("images/group_solvay_1927.png"));
  FaceDetector cpu(model, std::shared_ptr<Backend>(make_cpu_backend()), CompileOptions{});
  FaceDetector gpu(model, std::shared_ptr<Backend>(CudaModule::instance().make_backend(0, GpuPrecision::FP32)),
                   CompileOptions{});
  const DetectOptions opt;  // multi-scale, as gpen enhance runs it
  const std::vector<Detection> want = cpu.detect(photo, opt);
  REQUIRE(want.size() >= 20);
  // Each size compiles with cuDNN's heuristic algorithms at its first use and timed at its third
  // (FaceDetector::kTimedAfterUses): both must find the CPU's faces.
  for (int use = 1; use <= 3; ++use) {
    const std::vector<Detection> got = gpu.detect(photo, opt);
    REQUIRE(got.size() == want.size());
    float worst_px = 0, worst_score = 0;
    for (size_t i = 0; i < want.size(); ++i) {
      for (int k = 0; k < 4; ++k) worst_px = std::max(worst_px, std::abs(got[i].box[k] - want[i].box[k]));
      for (int k = 0; k < 10; ++k)
        worst_px = std::max(worst_px, std::abs(got[i].landmarks[k] - want[i].landmarks[k]));
      worst_score = std::max(worst_score, std::abs(got[i].score - want[i].score));
    }
    INFO("use " << use << ": " << want.size() << " faces; worst box/landmark difference " << worst_px << " px, score "
                << worst_score);
    CHECK(worst_px < 0.05f);
    CHECK(worst_score < 1e-4f);
  }
}

// --- benchmark driver (hidden; timings are printed, never asserted) ---
// For tools/bench/gpu_session.sh when `gpen bench` has no --device yet, e.g.
//   GPEN_BENCH_MODEL=W.safetensors GPEN_BENCH_BATCHES=1,16 GPEN_BENCH_PRECISIONS=fp16 gpen_tests "[cuda-bench]"

namespace {

std::string env_or(const char* name, const std::string& fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

}  // namespace

TEST_CASE("cuda GPEN benchmark (JSON lines on stdout)", "[.][cuda-bench]") {
  if (!cuda_or_skip()) return;
  cli::DeviceBenchOptions o;
  o.model = env_or("GPEN_BENCH_MODEL", "");
  o.size = std::stoi(env_or("GPEN_BENCH_SIZE", "512"));
  o.batches = cli::parse_int_list(env_or("GPEN_BENCH_BATCHES", "1,4,8,16"), "GPEN_BENCH_BATCHES");
  o.precisions = cli::split_list(env_or("GPEN_BENCH_PRECISIONS", "fp32,fp16"));
  o.runs = std::stoi(env_or("GPEN_BENCH_RUNS", "20"));
  o.json = true;
  CHECK(cli::run_device_bench(o) == 0);
}

TEST_CASE("cuda twin runners forwarding at once on their own streams give the faces of one runner", "[cuda][large]") {
  if (!cuda_or_skip()) return;
  auto model = std::make_shared<GpenModel>(GpenModel::from_state_dict(gpen_random_state_dict(gpen_official_config(256), 13)));
  const Tensor a = rnd({4, 3, 256, 256}, 14), b = rnd({4, 3, 256, 256}, 15);
  GpenRunner one(model, std::shared_ptr<Backend>(CudaModule::instance().make_backend(0, GpuPrecision::FP16)), {});
  const Tensor want_a = one.forward(a), want_b = one.forward(b);
  const std::shared_ptr<GpenRunner> twin = one.twin();  // shares the uploaded weights
  Tensor got_a, got_b;
  for (int round = 0; round < 3; ++round) {  // several rounds: the CUDA graphs replay concurrently
    std::thread t([&] { got_a = one.forward(a); });
    got_b = twin->forward(b);
    t.join();
    INFO("round " << round);
    // The same algorithms on the same inputs (deterministic ones preferred): equal up to the last
    // bits should a shape have had only a non-deterministic algorithm.
    CHECK(test::max_abs_diff(got_a.data<float>(), want_a.data<float>(), size_t(want_a.numel())) < 1e-3);
    CHECK(test::max_abs_diff(got_b.data<float>(), want_b.data<float>(), size_t(want_b.numel())) < 1e-3);
  }

  // The shared, coalescing runner of gpen serve: 2 streams, requests from 6 threads.
  GpenRunner shared(model, std::shared_ptr<Backend>(CudaModule::instance().make_backend(0, GpuPrecision::FP16)), {});
  shared.share_between_threads(4, 2);
  std::vector<Tensor> outs(6);
  std::vector<std::thread> ts;
  for (int i = 0; i < 6; ++i) ts.emplace_back([&, i] { outs[size_t(i)] = shared.forward(i % 2 ? b : a); });
  for (std::thread& t : ts) t.join();
  for (int i = 0; i < 6; ++i) {
    const Tensor& want = i % 2 ? want_b : want_a;
    INFO("request " << i);
    CHECK(test::rel_l2(outs[size_t(i)].data<float>(), want.data<float>(), size_t(want.numel())) < 1e-3);
  }
  CHECK(shared.sharing_stats().samples == 24);
}

TEST_CASE("cuda faces in and out as bytes give the float path's bytes (GPEN-256, fp32 and fp16)", "[cuda][large]") {
  if (!cuda_or_skip()) return;
  auto model = std::make_shared<GpenModel>(GpenModel::from_state_dict(gpen_random_state_dict(gpen_official_config(256), 16)));
  std::mt19937 rng(17);
  std::vector<Image> faces(3, Image(256, 256, 3));
  for (Image& f : faces)
    for (uint8_t& v : f.pixels) v = uint8_t(rng());
  std::vector<const Image*> ptrs;
  for (const Image& f : faces) ptrs.push_back(&f);
  // fp32, fp16, and fp16 with f16 NHWC activations (whose bytes kernels read NHWC views).
  for (int variant = 0; variant < 3; ++variant) {
    const GpuPrecision p = variant == 0 ? GpuPrecision::FP32 : GpuPrecision::FP16;
    test::ScopedEnv mode("GPEN_CUDA_NHWC16", variant == 2 ? "1" : "0");
    GpenRunner gpu(model, std::shared_ptr<Backend>(CudaModule::instance().make_backend(0, p)), {});
    const std::vector<Image> want = tensor_to_faces(gpu.forward(faces_to_tensor(ptrs)));
    // Directly: the executable takes bytes (this is the path forward_faces uses).
    std::vector<Image> direct(3, Image(256, 256, 3));
    std::vector<const uint8_t*> in;
    std::vector<uint8_t*> out;
    for (int i = 0; i < 3; ++i) in.push_back(faces[size_t(i)].pixels.data()), out.push_back(direct[size_t(i)].pixels.data());
    REQUIRE(gpu.executable(3).run_rgb_bytes(gpen_rgb_bytes_io(), in.data(), 3, out.data()));
    for (int round = 0; round < 2; ++round) {  // the second replays the captured graph
      Tensor scratch;
      const std::vector<Image> got = round == 0 ? direct : gpu.forward_faces(ptrs, scratch);
      REQUIRE(got.size() == want.size());
      size_t differ = 0, total = 0;
      int worst = 0;
      for (size_t i = 0; i < got.size(); ++i)
        for (size_t k = 0; k < got[i].pixels.size(); ++k, ++total) {
          const int d = std::abs(int(got[i].pixels[k]) - int(want[i].pixels[k]));
          differ += d != 0;
          worst = std::max(worst, d);
        }
      INFO(gpu_precision_name(p) << (variant == 2 ? " f16 NHWC" : "") << ", round " << round << ": " << differ << " of " << total << " bytes differ, worst "
                                 << worst);
      // The same forward on the same device: equal, but for a shape with only a non-deterministic
      // algorithm (then a last-bit float difference may flip a truncation).
      CHECK(worst <= 1);
      CHECK(differ * 1000 <= total);
    }
  }
}

// Out of device memory for real (cudaMalloc failing), not through a fake backend: only the
// emulated module (libgpen_cuda_emu.so) can cap its memory (GPEN_CUDA_EMU_MEMORY); on a GPU
// this test says so and checks nothing.
TEST_CASE("cuda out of device memory: the runner halves the batch, then moves to the CPU, same faces", "[cuda]") {
  if (!cuda_or_skip()) return;
  const CudaModule& m = CudaModule::instance();
  if (std::string(m.device_info(0).name).find("emulator") == std::string::npos) {
    WARN("SKIPPED: only the emulated CUDA module can cap its device memory");
    return;
  }
  test::TinyGpenFaces t(5, 6);
  std::shared_ptr<Backend> gpu(m.make_backend(0, GpuPrecision::FP32));

  // What a runner of batch 1 adds on the device once the backend holds the weights (uploaded
  // once per backend), measured with memory to spare.
  size_t batch1 = 0;
  {
    GpenRunner probe(t.model, gpu, t.opt);
    const size_t before = m.memory_stats(0).device_used_bytes;
    probe.executable(1);
    batch1 = m.memory_stats(0).device_used_bytes - before;
  }
  const size_t before = m.memory_stats(0).device_used_bytes;
  REQUIRE(batch1 > 0);
  struct Case {
    size_t cap_bytes;
    std::vector<int> device_batches;  // the executables the runner keeps on the device
  };
  for (const Case& c : {Case{before + batch1 + batch1 / 4, {1}}, Case{before + 1024, {}}}) {
    test::ScopedEnv cap("GPEN_CUDA_EMU_MEMORY", std::to_string(c.cap_bytes).c_str());
    INFO("device memory capped at " << c.cap_bytes << " bytes, " << before << " in use (batch 1 needs " << batch1
                                    << " more)");
    GpenRunner runner(t.model, gpu, t.opt);
    std::vector<std::string> warnings;
    runner.enable_oom_fallback([&](const std::string& w) { warnings.push_back(w); });
    const Tensor y = runner.forward(t.x);
    REQUIRE(y.shape() == t.expected.shape());
    CHECK(test::max_abs_diff(y.data<float>(), t.expected.data<float>(), size_t(y.numel())) < 1e-3);
    REQUIRE_FALSE(warnings.empty());
    CHECK(runner.compiled_batches() == c.device_batches);
    if (c.device_batches.empty()) CHECK_THAT(warnings.back(), Catch::Contains("running on the CPU"));
  }
}

// The whole command on the device -- RetinaFace, GPEN fp16 in the f16 activation mode with the
// faces crossing as bytes, two streams, paste-back -- against the same command on the CPU. The
// child inherits GPEN_CUDA_MODULE (the emulated module in ctest's cuda_backend_emulated).
TEST_CASE("cuda gpen enhance on the device gives the CPU's photo (fp16, f16 activations; +-2 on 99.9%)", "[cuda]") {
  if (!cuda_or_skip()) return;
  const std::string dir = test::fresh_scratch("cuda_ops", "enhance");
  const std::string args = " enhance " + test::shared_path("images/aligned_ffhq_00002.png") +
                           " --model random:256 --detector " +
                           test::shared_path("weights/retinaface_mobilenet0.25.pth") + " --threads 2";
  const std::string quiet = " >" + dir + "/log.txt 2>&1";
  REQUIRE(std::system((test::cli_path() + args + " --device cpu -o " + dir + "/cpu.png" + quiet).c_str()) == 0);
  const std::string on_device = "env GPEN_CUDA_NHWC16=1 GPEN_CUDA_ALGO_CACHE=off " + test::cli_path() + args +
                                " --device cuda --precision fp16 --batch-size 4 -o " + dir + "/cuda.png" + quiet;
  REQUIRE(std::system(on_device.c_str()) == 0);
  const Image a = load_image(dir + "/cpu.png"), b = load_image(dir + "/cuda.png");
  REQUIRE(a.width == b.width);
  REQUIRE(a.height == b.height);
  REQUIRE(a.pixels.size() == b.pixels.size());
  size_t close = 0, same = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) {
    const int d = std::abs(int(a.pixels[i]) - int(b.pixels[i]));
    close += d <= 2;
    same += d == 0;
  }
  INFO("identical " << double(same) / double(a.pixels.size()) << ", within 2 " << double(close) / double(a.pixels.size()));
  CHECK(double(close) >= 0.999 * double(a.pixels.size()));
  // An fp16 device result is never bit-identical to the CPU's f32 one: this fails if the command
  // quietly ran on the CPU.
  CHECK(same < a.pixels.size());
}
