// Optimized convolution kernels against the generic reference (ref::conv2d), for every ISA path this
// machine has, on odd shapes, with/without modulation scales, with epilogues and channel-slice outputs.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/generic.h"
#include "kernels/cpu/isa.h"
#include "tests/test_util.h"

using namespace gpen;
using namespace gpen::cpu;

namespace {

struct IsaCapGuard {
  ~IsaCapGuard() { set_isa_cap(Isa::AVX512_BF16); }
};

std::vector<float> random_vec(std::mt19937& rng, size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = u(rng);
  return v;
}

// Which kernel paths to exercise: (isa cap, precision, substring the kernel name must contain).
struct Path {
  Isa isa;
  Precision prec;
  const char* tag;
};
std::vector<Path> available_paths() {
  std::vector<Path> p;
  set_isa_cap(Isa::AVX512_BF16);
  const Isa have = active_isa();  // what the CPU has, capped by GPEN_ISA
  if (have >= Isa::AVX2) p.push_back({Isa::AVX2, Precision::F32, "__avx2"});
  if (have >= Isa::AVX512) p.push_back({Isa::AVX512, Precision::F32, "__avx512"});
  if (have >= Isa::AVX512_BF16) p.push_back({Isa::AVX512_BF16, Precision::BF16, "__avx512bf16"});
  return p;
}

struct Case {
  ConvDesc d;
  int n = 1, h = 1, w = 1;
  bool in_scale = false, out_scale = false, bias = false, lrelu = false, slice = false;
};

std::string describe(const Case& c, const Path& p, const std::string& name) {
  return "C=" + std::to_string(c.d.C) + " K=" + std::to_string(c.d.K) + " k=" + std::to_string(c.d.kh) + "x" +
         std::to_string(c.d.kw) + " s=" + std::to_string(c.d.stride) + " p=" + std::to_string(c.d.pad) +
         (c.d.transposed ? " T" : "") + " N=" + std::to_string(c.n) + " HxW=" + std::to_string(c.h) + "x" +
         std::to_string(c.w) + (c.in_scale ? " in_s" : "") + (c.out_scale ? " out_s" : "") + (c.bias ? " bias" : "") +
         (c.lrelu ? " lrelu" : "") + (c.slice ? " slice" : "") + " isa=" + isa_name(p.isa) + " " +
         precision_name(p.prec) + " kernel=" + name;
}

// Runs one case on one path and compares with the reference. `name_must` is checked against the
// kernel's name; returns the name for callers that want to see which algorithm ran.
std::string check_case(const Case& c, const Path& p, ThreadPool* pool, const char* name_must = nullptr,
                       WinogradWeights winograd = WinogradWeights::Auto, bool winograd_allowed = true) {
  std::mt19937 rng(uint32_t(c.d.C * 131 + c.d.K * 7 + c.h * 13 + c.w));
  const ConvDesc& d = c.d;
  const int OH = d.out_h(c.h), OW = d.out_w(c.w);
  auto wv = random_vec(rng, size_t(d.K) * (d.C / d.groups) * d.kh * d.kw, -1.f, 1.f);
  auto xv = random_vec(rng, size_t(c.n) * d.C * c.h * c.w, -1.f, 1.f);
  auto isv = random_vec(rng, size_t(c.n) * d.C, 0.5f, 1.5f);
  auto osv = random_vec(rng, size_t(c.n) * d.K, 0.5f, 1.5f);
  auto bv = random_vec(rng, size_t(d.K), -0.5f, 0.5f);
  Epilogue ep;
  if (c.bias) ep.bias = bv.data();
  if (c.lrelu) ep.slope = 0.2f, ep.gain = std::sqrt(2.f);

  // With `slice`, the input is also a channel slice (channels [1, 1+C) of a C+3 channel buffer),
  // as when a conv reads part of a concat.
  std::vector<float> xbuf;
  View x = make_view(xv.data(), c.n, d.C, c.h, c.w);
  if (c.slice) {
    const int64_t xplane = int64_t(c.h) * c.w;
    xbuf.assign(size_t(c.n) * (d.C + 3) * xplane, 1e30f);  // huge values would show up if read
    for (int n = 0; n < c.n; ++n)
      std::copy_n(xv.data() + int64_t(n) * d.C * xplane, d.C * xplane, xbuf.data() + (n * (d.C + 3) + 1) * xplane);
    x = View{xbuf.data() + xplane, c.n, d.C, c.h, c.w, (d.C + 3) * xplane};
  }
  std::vector<float> ref_out(size_t(c.n) * d.K * OH * OW);
  View yr = make_view(ref_out.data(), c.n, d.K, OH, OW);
  ref::conv2d(d, wv.data(), x, yr, c.in_scale ? isv.data() : nullptr, c.out_scale ? osv.data() : nullptr, ep, nullptr);

  // Output: channels [2, 2+K) of a (K+5)-channel buffer when slicing; the rest must stay untouched.
  const int ktot = c.slice ? d.K + 5 : d.K, k0 = c.slice ? 2 : 0;
  const int64_t plane = int64_t(OH) * OW;
  std::vector<float> buf(size_t(c.n) * ktot * plane, 12345.f);
  View y{buf.data() + k0 * plane, c.n, d.K, OH, OW, ktot * plane};

  set_isa_cap(p.isa);
  KernelOptions opt;
  opt.isa = p.isa;
  opt.precision = p.prec;
  opt.winograd_weights = winograd;
  opt.winograd = winograd_allowed;
  Tensor wt = Tensor::from_floats({d.K, d.C / d.groups, d.kh, d.kw}, wv);
  auto kern = make_conv_kernel(d, wt, opt);
  const std::string name = kern->name();
  INFO(describe(c, p, name));
  // Winograd kernels name their small-map fallback too ("winograd...|direct..."); in bf16 precision
  // that fallback is the bf16 direct kernel (Winograd itself stays f32, bf16 would be too lossy).
  // Plain 1x1 convs stay f32 in bf16 mode (memory bound; the f32 kernel reads the input in place).
  const bool pointwise = !d.transposed && d.kh == 1 && d.kw == 1 && d.stride == 1 && d.pad == 0;
  const bool depthwise = d.groups > 1 && d.groups == d.C && d.groups == d.K;
  const bool small_channels = !d.transposed && d.groups == 1 && d.C <= 4 &&
                              ((pointwise && d.K <= 64) || (d.K <= 16 && d.kh * d.kw >= 4 && d.kh <= 7 && d.kw <= 7 &&
                                                            d.stride >= 2 && d.stride <= 4 && d.pad < std::max(d.kh, d.kw)));
  if (p.prec == Precision::BF16 && depthwise)  // f32 in every precision, like pointwise
    CHECK(name == "f32_conv_depthwise__avx512");
  else if (small_channels)
    CHECK(name == std::string("f32_conv_smallc_rows") + (p.isa == Isa::AVX2 ? "__avx2" : "__avx512"));
  else if (p.prec == Precision::BF16 && pointwise)
    CHECK(name == "f32_conv_direct_6x64__avx512");
  else
    CHECK(name.find(p.tag) != std::string::npos);
  if (name_must) CHECK(name.find(name_must) != std::string::npos);
  ConvRun run{x, y, c.in_scale ? isv.data() : nullptr, c.out_scale ? osv.data() : nullptr, ep, pool};
  kern->run(run);
  kern->run(run);  // twice: scratch reuse must not leak state between runs

  double max_ref = 0, max_err = 0, se = 0, sr = 0;
  bool untouched = true;
  for (int n = 0; n < c.n; ++n)
    for (int k = 0; k < ktot; ++k)
      for (int64_t i = 0; i < plane; ++i) {
        const float got = buf[(size_t(n) * ktot + k) * plane + i];
        if (k < k0 || k >= k0 + d.K) {
          untouched &= got == 12345.f;
          continue;
        }
        const float want = ref_out[(size_t(n) * d.K + (k - k0)) * plane + i];
        max_ref = std::max(max_ref, double(std::fabs(want)));
        max_err = std::max(max_err, double(std::fabs(got - want)));
        se += double(got - want) * (got - want);
        sr += double(want) * want;
      }
  CHECK(untouched);
  if (p.prec == Precision::BF16 && name.find("bf16") != std::string::npos) {
    const double rel_l2 = std::sqrt(se / std::max(sr, 1e-30));
    INFO("relative L2 error " << rel_l2);
    CHECK(rel_l2 <= 1e-2);
  } else {
    // Relative to the output scale; Winograd's transforms add rounding (its constants reach 1/24).
    const double tol = name.find("winograd") != std::string::npos ? 1e-4 : 1e-5;
    INFO("max abs error " << max_err << " max |ref| " << max_ref);
    CHECK(max_err <= tol * std::max(1.0, max_ref));
  }
  return name;
}

// Deterministic variety of flags for case i.
Case with_flags(Case c, int i) {
  c.in_scale = i % 2 == 0;
  c.out_scale = (i / 2) % 2 == 0;
  c.bias = i % 3 != 1;
  c.lrelu = i % 3 == 0;
  c.slice = (i / 3) % 2 == 0;
  c.n = i % 4 == 1 ? 3 : 1;
  return c;
}

ConvDesc conv(int C, int K, int k, int s, int p, bool t = false) {
  ConvDesc d;
  d.C = C, d.K = K, d.kh = d.kw = k, d.stride = s, d.pad = p, d.transposed = t;
  return d;
}

}  // namespace

TEST_CASE("direct conv 3x3 stride 1 matches reference on odd shapes", "[kernels]") {
  IsaCapGuard guard;
  ThreadPool pool(3);
  const int Cs[] = {3, 5, 17, 33}, Ks[] = {1, 7, 19, 35};
  const int HW[][2] = {{1, 1}, {2, 2}, {5, 7}, {7, 5}, {13, 13}, {31, 2}, {2, 31}, {9, 13}};
  int i = 0;
  for (const Path& p : available_paths())
    for (int ci = 0; ci < 4; ++ci)
      for (int ki = 0; ki < 4; ++ki, ++i) {
        Case c;
        c.d = conv(Cs[ci], Ks[ki], 3, 1, 1);
        c.h = HW[i % 8][0], c.w = HW[i % 8][1];
        check_case(with_flags(c, i), p, i % 2 ? &pool : nullptr);
      }
}

TEST_CASE("direct conv 1x1 and other kernel sizes match reference", "[kernels]") {
  IsaCapGuard guard;
  ThreadPool pool(2);
  const Case cases[] = {
      {conv(3, 35, 1, 1, 0), 1, 13, 31},  {conv(33, 3, 1, 1, 0), 1, 31, 13}, {conv(17, 19, 1, 1, 0), 1, 1, 1},
      {conv(5, 7, 1, 1, 1), 1, 5, 7},     {conv(17, 7, 5, 1, 2), 1, 13, 9}, {conv(5, 19, 3, 1, 0), 1, 7, 13},
      {conv(3, 64, 1, 1, 0), 1, 40, 40},  {conv(64, 3, 1, 1, 0), 1, 33, 33},
  };
  int i = 0;
  for (const Path& p : available_paths())
    for (const Case& c : cases) {
      check_case(with_flags(c, i), p, i % 2 ? &pool : nullptr);
      ++i;
    }
}

TEST_CASE("direct conv stride 2 (encoder) matches reference", "[kernels]") {
  IsaCapGuard guard;
  ThreadPool pool(2);
  const Case cases[] = {
      {conv(3, 7, 3, 2, 0), 1, 13, 13},  {conv(17, 35, 3, 2, 0), 1, 31, 7}, {conv(5, 19, 3, 2, 0), 1, 3, 3},
      {conv(33, 7, 3, 2, 0), 1, 7, 31},  {conv(5, 7, 3, 2, 1), 1, 13, 5},   {conv(5, 7, 3, 2, 1), 1, 2, 2},
      {conv(3, 5, 1, 2, 0), 1, 13, 13},  {conv(17, 19, 4, 2, 1), 1, 13, 9}, {conv(5, 7, 3, 3, 1), 1, 13, 13},
  };
  int i = 0;
  for (const Path& p : available_paths())
    for (const Case& c : cases) {
      check_case(with_flags(c, i), p, i % 2 ? &pool : nullptr);
      ++i;
    }
}

TEST_CASE("transposed stride-2 conv (sub-pixel) matches reference", "[kernels]") {
  IsaCapGuard guard;
  ThreadPool pool(2), pool16(16);
  const Case cases[] = {
      {conv(3, 7, 3, 2, 0, true), 1, 1, 1},    {conv(17, 19, 3, 2, 0, true), 1, 2, 2},
      {conv(5, 35, 3, 2, 0, true), 1, 5, 7},   {conv(33, 7, 3, 2, 0, true), 1, 13, 13},
      {conv(17, 1, 3, 2, 0, true), 1, 7, 2},   {conv(5, 7, 3, 2, 1, true), 1, 7, 5},
      {conv(5, 7, 4, 2, 1, true), 1, 5, 7},    {conv(3, 5, 2, 2, 0, true), 1, 5, 5},
      {conv(5, 7, 3, 1, 1, true), 1, 5, 7},    {conv(3, 5, 3, 3, 0, true), 1, 5, 4},
      {conv(35, 19, 3, 2, 0, true), 1, 31, 13},
  };
  int i = 0;
  for (const Path& p : available_paths())
    for (const Case& c : cases) {
      // The direct sub-pixel kernel itself (the 3x3 stride-2 pad-0 shapes would take Winograd).
      check_case(with_flags(c, i), p, i % 3 == 2 ? &pool16 : i % 2 ? &pool : nullptr, "convT_subpixel",
                 WinogradWeights::Auto, false);
      ++i;
    }
}

TEST_CASE("winograd F(4,2) per sub-pixel phase (transposed 3x3 stride 2) matches reference", "[kernels]") {
  IsaCapGuard guard;
  ThreadPool pool(3), pool16(16);
  // The phase grid is (H+1) x (W+1) in 4x4 tiles: wide maps (>= 8 tiles a row on AVX2, >= 16 on
  // AVX-512: W >= 31 / 63) take the permute path, narrow ones the gather path; odd sizes leave
  // partial tiles, partial vectors and the shorter odd phases on both.
  const Case cases[] = {
      {conv(5, 7, 3, 2, 0, true), 1, 13, 67},   {conv(17, 19, 3, 2, 0, true), 1, 8, 8},
      {conv(3, 35, 3, 2, 0, true), 1, 31, 13},  {conv(33, 1, 3, 2, 0, true), 1, 7, 130},
      {conv(17, 7, 3, 2, 0, true), 1, 70, 65},  {conv(6, 9, 3, 2, 0, true), 1, 32, 31},
      {conv(35, 33, 3, 2, 0, true), 1, 33, 31}, {conv(2, 3, 3, 2, 0, true), 1, 9, 200},
      {conv(9, 5, 3, 2, 0, true), 1, 16, 64},
  };
  int i = 0;
  for (const Path& p : available_paths())
    for (const Case& c : cases) {
      ThreadPool* tp = i % 3 == 2 ? &pool16 : i % 2 ? &pool : nullptr;
      check_case(with_flags(c, i), p, tp, "convT3x3s2_winograd", WinogradWeights::AtLoad);
      check_case(with_flags(c, i), p, tp, "_wt__", WinogradWeights::PerRun);
      ++i;
    }
}

// Long reductions: the AVX2 kernels split the input channels into chunks whose packed panel fits
// L1 (18 units for 9 taps, 42 for 4, 170 for one tap) and the output channels into blocks; these
// shapes span several of both, with tiles that run past the end of the grid (and, for the 1x1
// read in place, past the end of the plane), in every pass kind.
TEST_CASE("direct conv: reductions spanning several L1 chunks and output-channel blocks", "[kernels]") {
  IsaCapGuard guard;
  ThreadPool pool(2);
  const Case cases[] = {
      {conv(150, 37, 1, 1, 0), 1, 13, 11},      {conv(70, 37, 3, 2, 1), 1, 21, 19},
      {conv(363, 37, 1, 1, 0), 1, 13, 11},
      {conv(150, 37, 3, 2, 0, true), 1, 9, 7},  {conv(61, 70, 3, 1, 1), 1, 9, 13},
      {conv(77, 33, 3, 2, 1, true), 1, 11, 6},
  };
  int i = 0;
  for (const Path& p : available_paths())
    for (const Case& c : cases) {
      check_case(with_flags(c, i), p, i % 2 ? &pool : nullptr);
      ++i;
    }
}

TEST_CASE("winograd F(4,3) matches reference on wide, narrow and odd maps", "[kernels]") {
  IsaCapGuard guard;
  ThreadPool pool(3), pool16(16);  // 16 threads: more items than blocks (channel groups)
  // Wide maps (>= 16 tiles per row on AVX-512, >= 8 on AVX2) take the permute path, narrow ones the
  // gather path; odd sizes leave partial tiles and partial vectors on both.
  const Case cases[] = {
      {conv(5, 7, 3, 1, 1), 1, 13, 67},   {conv(17, 19, 3, 1, 1), 1, 17, 17}, {conv(3, 35, 3, 1, 1), 1, 31, 13},
      {conv(33, 1, 3, 1, 1), 1, 7, 130},  {conv(17, 7, 3, 1, 1), 1, 70, 65},  {conv(5, 19, 3, 1, 0), 1, 19, 66},
      {conv(7, 5, 3, 1, 2), 1, 15, 15},   {conv(3, 7, 3, 1, 1), 1, 64, 64},   {conv(35, 33, 3, 1, 1), 1, 33, 31},
      {conv(2, 3, 3, 1, 1), 1, 9, 200},
  };
  int i = 0;
  for (const Path& p : available_paths())
    for (const Case& c : cases) {
      ThreadPool* tp = i % 3 == 2 ? &pool16 : i % 2 ? &pool : nullptr;
      check_case(with_flags(c, i), p, tp, "winograd", WinogradWeights::AtLoad);
      // The same with the weights transformed in every run, in chunks of output channels.
      if (p.isa != Isa::Generic) check_case(with_flags(c, i), p, tp, "_wt", WinogradWeights::PerRun);
      ++i;
    }
}

TEST_CASE("depthwise conv (MobileNet's conv_dw) matches reference: strides 1-3, kernels 1-5, odd maps", "[kernels]") {
  IsaCapGuard guard;
  ThreadPool pool(2);
  auto depthwise = [](int C, int k, int s, int p) {
    ConvDesc d = conv(C, C, k, s, p);
    d.groups = C;
    return d;
  };
  const std::vector<Case> cases = {
      {depthwise(8, 3, 1, 1), 1, 17, 23},  {depthwise(5, 3, 2, 1), 1, 19, 37}, {depthwise(3, 3, 2, 1), 1, 2, 3},
      {depthwise(7, 5, 1, 2), 1, 11, 40},  {depthwise(4, 3, 3, 0), 1, 13, 29}, {depthwise(6, 1, 1, 0), 1, 9, 33},
      {depthwise(16, 3, 1, 1), 1, 1, 1},   {depthwise(9, 2, 2, 0), 1, 10, 18}, {depthwise(32, 3, 2, 1), 1, 36, 64},
      {depthwise(4, 1, 2, 0), 1, 5, 1},    {depthwise(3, 3, 3, 1), 1, 4, 2},  // phases past a 1-2 column map
      // rows of several 4-vector blocks plus a tail; stride-2 rows read as vector pairs
      {depthwise(3, 3, 1, 1), 2, 7, 157},  {depthwise(5, 3, 2, 1), 1, 9, 211}, {depthwise(2, 3, 2, 0), 1, 6, 140},
  };
  int i = 0;
  for (const Path& p : available_paths())
    for (const Case& c : cases) check_case(with_flags(c, i++), p, &pool, "depthwise");
}

TEST_CASE("small-channel conv (MobileNet's first layer, GPEN's 3 -> 64 1x1) matches reference: strides 2-4, "
          "kernels 2-7, 1x1, odd maps",
          "[kernels]") {
  IsaCapGuard guard;
  ThreadPool pool(3);
  auto dense = [](int C, int K, int k, int s, int p) { return conv(C, K, k, s, p); };
  const std::vector<Case> cases = {
      {dense(3, 8, 3, 2, 1), 1, 37, 61},   {dense(3, 8, 3, 2, 1), 2, 18, 131},  // MobileNet's, rows of 4+ vectors
      {dense(1, 1, 2, 2, 0), 1, 9, 17},    {dense(4, 16, 5, 2, 2), 1, 11, 40},  {dense(2, 11, 7, 3, 3), 2, 23, 29},
      {dense(3, 9, 3, 4, 1), 1, 30, 45},   {dense(4, 5, 4, 2, 1), 1, 3, 2},     {dense(3, 8, 3, 2, 1), 1, 1, 1},
      {dense(2, 3, 3, 2, 1), 3, 64, 16},   {dense(3, 16, 3, 3, 0), 1, 8, 70},
      // 1x1 (GPEN's encoder input and its recomputations: 3 -> 64 into a channel slice)
      {dense(3, 64, 1, 1, 0), 1, 33, 47},  {dense(3, 35, 1, 1, 0), 2, 5, 130},  {dense(1, 1, 1, 1, 0), 1, 3, 3},
      {dense(4, 17, 1, 1, 0), 1, 16, 16},
  };
  int i = 0;
  for (const Path& p : available_paths())
    for (const Case& c : cases) {
      check_case(with_flags(c, i), p, i % 2 ? &pool : nullptr, "smallc_rows");
      ++i;
    }
}

TEST_CASE("bf16 asked without AVX-512-BF16 runs f32, and the note says so", "[kernels]") {
  IsaCapGuard guard;
  CHECK(precision_in_effect(Precision::F32) == Precision::F32);
  CHECK(precision_note(Precision::F32).empty());
  CHECK(precision_in_effect(Precision::BF16, Isa::AVX2) == Precision::F32);
  const std::string note = precision_note(Precision::BF16, Isa::AVX2);
  CHECK(note.find("fp32 runs") != std::string::npos);
  CHECK(note.find(std::string("in use: ") + isa_name(std::min(Isa::AVX2, active_isa())) + ")") != std::string::npos);
  const bool has_bf16 = active_isa() >= Isa::AVX512_BF16;
  CHECK((precision_in_effect(Precision::BF16) == Precision::BF16) == has_bf16);
  CHECK(precision_note(Precision::BF16).empty() == has_bf16);
  set_isa_cap(Isa::AVX512);  // the process-wide cap counts too
  CHECK(precision_in_effect(Precision::BF16) == Precision::F32);
  CHECK_FALSE(precision_note(Precision::BF16).empty());
}

TEST_CASE("conv dispatch honours the ISA cap and falls back to generic", "[kernels]") {
  IsaCapGuard guard;
  Tensor w = Tensor::zeros(DType::F32, {4, 3, 3, 3});
  KernelOptions opt;
  opt.isa = Isa::AVX512_BF16;
  set_isa_cap(Isa::Generic);
  CHECK(make_conv_kernel(conv(3, 4, 3, 1, 1), w, opt)->name() == "f32_conv_direct__generic");
  set_isa_cap(Isa::AVX512_BF16);
  opt.isa = Isa::Generic;  // the default options ask for the reference
  CHECK(make_conv_kernel(conv(3, 4, 3, 1, 1), w, opt)->name() == "f32_conv_direct__generic");
  ConvDesc grouped = conv(4, 4, 3, 1, 1);
  grouped.groups = 2;
  opt.isa = Isa::AVX512_BF16;
  CHECK(make_conv_kernel(grouped, Tensor::zeros(DType::F32, {4, 2, 3, 3}), opt)->name() == "f32_conv_direct__generic");
  std::vector<std::string> names;
  for (const Path& p : available_paths()) {
    set_isa_cap(p.isa);
    opt.isa = p.isa;
    opt.precision = p.prec;
    names.push_back(make_conv_kernel(conv(3, 4, 3, 1, 1), w, opt)->name());
    CHECK(names.back().find(p.tag) != std::string::npos);
  }
  for (size_t i = 1; i < names.size(); ++i) CHECK(names[i] != names[i - 1]);
}

TEST_CASE("map-size hint builds only the algorithm that runs, with the same results", "[kernels]") {
  if (gpen::cpu::detect_isa() < gpen::cpu::Isa::AVX2) return;  // no optimized kernels on this CPU
  using namespace gpen;
  using namespace gpen::cpu;
  ConvDesc d;
  d.C = 9, d.K = 21, d.kh = d.kw = 3, d.pad = 1;
  Tensor w = Tensor::from_floats({21, 9, 3, 3}, std::vector<float>(21 * 9 * 9, 0.f));
  for (int64_t i = 0; i < w.numel(); ++i) w.data<float>()[i] = float((i * 7919) % 13) / 13.f - 0.5f;
  for (int size : {5, 40}) {
    KernelOptions o;
    o.isa = detect_isa() >= Isa::AVX512 ? Isa::AVX512 : Isa::AVX2;
    auto unsized = make_conv_kernel(d, w, o);
    o.map_h = o.map_w = size;
    auto sized = make_conv_kernel(d, w, o);
    INFO(size << ": " << unsized->name() << " vs " << sized->name());
    CHECK(sized->name().find('|') == std::string::npos);  // one algorithm, no fallback copy
    CHECK((sized->name().find("winograd") != std::string::npos) == (size == 40));
    std::vector<float> x(size_t(2) * 9 * size * size), y1(size_t(2) * 21 * size * size), y2(y1.size());
    for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 104729) % 17) / 17.f - 0.5f;
    ConvRun r;
    r.x = make_view(x.data(), 2, 9, size, size);
    r.y = make_view(y1.data(), 2, 21, size, size);
    unsized->run(r);
    r.y = make_view(y2.data(), 2, 21, size, size);
    sized->run(r);
    for (size_t i = 0; i < y1.size(); ++i) REQUIRE(y2[i] == Approx(y1[i]).margin(1e-4));
  }
}

TEST_CASE("Winograd weights: per run where they pass 8 MiB or outweigh a one-block map, or everywhere with lean memory", "[kernels]") {
  if (gpen::cpu::detect_isa() < gpen::cpu::Isa::AVX2) return;  // no optimized kernels on this CPU
  using namespace gpen;
  using namespace gpen::cpu;
  // C = 37: 36 * C = 1332 > 2 * 16 * 16 = 512 and 4 x 4 tiles (one block on AVX2 and AVX-512): per
  // run at 16 x 16 by default; at 40 x 40 (3200 > 1332) the weights are transformed at load.
  // C = 300 at 44 x 44: 10800 > 3872 but 121 tiles (every block would transform again): at load.
  // C = 256, K = 240 at 36 x 36 (81 tiles): transformed weights of 8.4 MiB > 8 MiB: per run.
  struct Size { int C, K, size; bool per_run; };
  for (const Size& sz : {Size{37, 11, 16, true}, Size{37, 11, 40, false}, Size{300, 11, 44, false},
                         Size{256, 240, 36, true}}) {
    const int K = sz.K;
    ConvDesc d;
    d.C = sz.C, d.K = K, d.kh = d.kw = 3, d.pad = 1;
    Tensor w = test::random_tensor({K, sz.C, 3, 3}, 4, -0.2f, 0.2f);
    KernelOptions o;
    o.isa = detect_isa() >= Isa::AVX512 ? Isa::AVX512 : Isa::AVX2;
    o.map_h = o.map_w = sz.size;
    o.winograd_weights = WinogradWeights::AtLoad;
    auto at_load = make_conv_kernel(d, w, o);
    o.winograd_weights = WinogradWeights::Auto;
    auto fast = make_conv_kernel(d, w, o);
    o.lean_memory = true;
    auto lean = make_conv_kernel(d, w, o);
    INFO(sz.C << " channels, " << sz.size << " px: " << at_load->name() << " / " << fast->name() << " / " << lean->name());
    CHECK(at_load->name().find("winograd") != std::string::npos);
    CHECK(at_load->name().find("_wt") == std::string::npos);
    CHECK((fast->name().find("_wt") != std::string::npos) == sz.per_run);
    CHECK(lean->name().find("_wt") != std::string::npos);
    Tensor x = test::random_tensor({2, sz.C, sz.size, sz.size}, 5);
    const size_t out = size_t(2) * K * sz.size * sz.size;
    std::vector<float> y1(out), y2(out), y3(out);
    ConvRun r;
    r.x = make_view(x.data<float>(), 2, sz.C, sz.size, sz.size);
    r.y = make_view(y1.data(), 2, K, sz.size, sz.size);
    at_load->run(r);
    r.y = make_view(y2.data(), 2, K, sz.size, sz.size);
    fast->run(r);
    r.y = make_view(y3.data(), 2, K, sz.size, sz.size);
    lean->run(r);
    for (size_t i = 0; i < out; ++i) {
      REQUIRE(y2[i] == Approx(y1[i]).margin(1e-4));
      REQUIRE(y3[i] == Approx(y1[i]).margin(1e-4));
    }
  }
}

TEST_CASE("direct conv uses caller-provided scratch and gives the same result", "[kernels]") {
  if (gpen::cpu::detect_isa() < gpen::cpu::Isa::AVX2) return;
  using namespace gpen;
  using namespace gpen::cpu;
  ConvDesc d;
  d.C = 13, d.K = 7, d.kh = d.kw = 3, d.pad = 1, d.stride = 2;
  Tensor w = test::random_tensor({7, 13, 3, 3}, 6, -0.2f, 0.2f);
  KernelOptions o;
  o.isa = detect_isa() >= Isa::AVX512 ? Isa::AVX512 : Isa::AVX2;
  auto k = make_conv_kernel(d, w, o);
  const int H = 19;
  const size_t need = k->scratch_bytes(2, H, H);
  REQUIRE(need > 0);  // the padded phase planes of 2 x 13 channels
  Tensor x = test::random_tensor({2, 13, H, H}, 7);
  const int OH = d.out_h(H);
  std::vector<float> y1(size_t(2) * 7 * OH * OH), y2(y1.size());
  // Scratch filled with garbage: the kernel must overwrite everything it reads.
  std::vector<float> scratch(need / sizeof(float) + 16, 1e30f);
  ConvRun r;
  r.x = make_view(x.data<float>(), 2, 13, H, H);
  r.y = make_view(y1.data(), 2, 7, OH, OH);
  k->run(r);
  r.y = make_view(y2.data(), 2, 7, OH, OH);
  r.scratch = scratch.data();
  k->run(r);
  for (size_t i = 0; i < y1.size(); ++i) REQUIRE(y2[i] == y1[i]);
  // Plain 1x1 convs read their input in place: no scratch.
  ConvDesc p;
  p.C = 5, p.K = 3;
  REQUIRE(make_conv_kernel(p, test::random_tensor({3, 5, 1, 1}, 8), o)->scratch_bytes(1, 9, 9) == 0);
}

// The fused depthwise + pointwise kernel against the two reference convolutions one after the
// other, on odd maps (rows of several vector pairs plus tails), 1-32 channels, with each conv's
// bias and activation, the input a channel slice and the output one too (its neighbours untouched).
TEST_CASE("depthwise + pointwise kernel matches the two reference convs", "[kernels]") {
  IsaCapGuard guard;
  ThreadPool pool(3);
  struct FusedCase {
    int C, K, k, s, n, h, w;
  };
  const std::vector<FusedCase> cases = {
      {8, 16, 3, 1, 1, 13, 71}, {16, 32, 3, 1, 2, 17, 97}, {3, 5, 3, 1, 1, 1, 1},  {31, 24, 5, 1, 1, 9, 40},
      {32, 64, 3, 1, 1, 6, 33}, {8, 9, 3, 1, 3, 20, 130},  {2, 7, 3, 1, 2, 5, 200},
  };
  std::mt19937 rng(5);
  int i = 0;
  for (const Path& p : available_paths())
    for (const FusedCase& fc : cases) {
      ConvDesc dw = conv(fc.C, fc.C, fc.k, fc.s, fc.k / 2);
      dw.groups = fc.C;
      const ConvDesc pw = conv(fc.C, fc.K, 1, 1, 0);
      const int OH = dw.out_h(fc.h), OW = dw.out_w(fc.w);
      const int64_t in_plane = int64_t(fc.h) * fc.w, plane = int64_t(OH) * OW;
      auto dww = random_vec(rng, size_t(fc.C) * fc.k * fc.k, -1.f, 1.f);
      auto pww = random_vec(rng, size_t(fc.K) * fc.C, -1.f, 1.f);
      auto dwb = random_vec(rng, size_t(fc.C), -0.5f, 0.5f), pwb = random_vec(rng, size_t(fc.K), -0.5f, 0.5f);
      // x: channels [2, 2 + C) of C + 4; y: channels [1, 1 + K) of K + 3.
      auto xbuf = random_vec(rng, size_t(fc.n) * (fc.C + 4) * in_plane, -1.f, 1.f);
      const View x{xbuf.data() + 2 * in_plane, fc.n, fc.C, fc.h, fc.w, (fc.C + 4) * in_plane};
      Epilogue dep, pep;
      dep.bias = dwb.data(), dep.slope = 0.1f;
      if (i % 2) pep.bias = pwb.data(), pep.slope = 0.2f, pep.gain = 1.5f;
      std::vector<float> mid(size_t(fc.n) * fc.C * plane), want(size_t(fc.n) * fc.K * plane);
      ref::conv2d(dw, dww.data(), x, make_view(mid.data(), fc.n, fc.C, OH, OW), nullptr, nullptr, dep, nullptr);
      ref::conv2d(pw, pww.data(), make_view(mid.data(), fc.n, fc.C, OH, OW), make_view(want.data(), fc.n, fc.K, OH, OW),
                  nullptr, nullptr, pep, nullptr);
      std::vector<float> ybuf(size_t(fc.n) * (fc.K + 3) * plane, 777.f);
      const View y{ybuf.data() + plane, fc.n, fc.K, OH, OW, (fc.K + 3) * plane};

      set_isa_cap(p.isa);
      KernelOptions opt;
      opt.isa = p.isa;
      opt.precision = p.prec;
      auto k = make_conv_dw_pw(dw, Tensor::from_floats({fc.C, 1, fc.k, fc.k}, dww), dep, pw,
                               Tensor::from_floats({fc.K, fc.C, 1, 1}, pww), opt);
      REQUIRE(k);
      INFO("C=" << fc.C << " K=" << fc.K << " k=" << fc.k << " s=" << fc.s << " N=" << fc.n << " " << fc.h << "x"
                << fc.w << " " << k->name());
      CHECK(k->name().find(p.isa == Isa::AVX2 ? "__avx2" : "__avx512") != std::string::npos);
      ConvRun run{x, y, nullptr, nullptr, pep, i % 2 ? &pool : nullptr};
      k->run(run);
      k->run(run);  // twice: nothing carried over between runs
      double err = 0, ref_max = 0;
      bool untouched = true;
      for (int n = 0; n < fc.n; ++n)
        for (int c = 0; c < fc.K + 3; ++c)
          for (int64_t q = 0; q < plane; ++q) {
            const float got = ybuf[(size_t(n) * (fc.K + 3) + c) * plane + q];
            if (c < 1 || c > fc.K) {
              untouched &= got == 777.f;
              continue;
            }
            const float w = want[(size_t(n) * fc.K + c - 1) * plane + q];
            err = std::max(err, double(std::fabs(got - w)));
            ref_max = std::max(ref_max, double(std::fabs(w)));
          }
      CHECK(untouched);
      CHECK(err <= 1e-5 * std::max(1.0, ref_max));
      ++i;
    }
  // Where it is not faster (stride 2; over 32 channels), and with no vector ISA: no fused kernel
  // (the two convs run as they are).
  {
    KernelOptions opt;
    opt.isa = Isa::AVX512_BF16;
    ConvDesc s2 = conv(8, 8, 3, 2, 1), wide = conv(64, 64, 3, 1, 1);
    s2.groups = 8, wide.groups = 64;
    CHECK_FALSE(make_conv_dw_pw(s2, Tensor::zeros(DType::F32, {8, 1, 3, 3}), Epilogue{}, conv(8, 4, 1, 1, 0),
                                Tensor::zeros(DType::F32, {4, 8, 1, 1}), opt));
    CHECK_FALSE(make_conv_dw_pw(wide, Tensor::zeros(DType::F32, {64, 1, 3, 3}), Epilogue{}, conv(64, 4, 1, 1, 0),
                                Tensor::zeros(DType::F32, {4, 64, 1, 1}), opt));
  }
  set_isa_cap(Isa::Generic);
  KernelOptions generic;
  generic.isa = Isa::Generic;
  ConvDesc dw = conv(8, 8, 3, 1, 1);
  dw.groups = 8;
  CHECK_FALSE(make_conv_dw_pw(dw, Tensor::zeros(DType::F32, {8, 1, 3, 3}), Epilogue{}, conv(8, 4, 1, 1, 0),
                              Tensor::zeros(DType::F32, {4, 8, 1, 1}), generic));
}

TEST_CASE("transposed 3x3 stride-2 convs take Winograd by default only where it pays", "[kernels]") {
  if (gpen::cpu::detect_isa() < gpen::cpu::Isa::AVX2) return;  // no optimized kernels on this CPU
  using namespace gpen;
  using namespace gpen::cpu;
  // Auto: AVX2 f32 (where it was timed), transformed weights (36 x K x C floats) of at most
  // 4 MiB and K >= 64 -- GPEN-512's 256 -> 64 upsampling conv at 256 px -- and never with lean
  // memory; an explicit AtLoad or PerRun takes it wherever it applies; pad 1 (not GPEN's) never.
  struct Shape { int C, K, pad; bool winograd; };
  for (const Shape& s : {Shape{256, 64, 0, true}, Shape{512, 128, 0, false}, Shape{64, 32, 0, false},
                         Shape{256, 64, 1, false}}) {
    ConvDesc d;
    d.C = s.C, d.K = s.K, d.kh = d.kw = 3, d.stride = 2, d.pad = s.pad, d.transposed = true;
    Tensor w = test::random_tensor({s.K, s.C, 3, 3}, 6, -0.2f, 0.2f);
    KernelOptions o;
    o.isa = Isa::AVX2;
    o.map_h = o.map_w = 40;
    auto fast = make_conv_kernel(d, w, o);
    if (detect_isa() >= Isa::AVX512) {  // not timed there: the direct kernel by default
      KernelOptions o512 = o;
      o512.isa = Isa::AVX512;
      CHECK(make_conv_kernel(d, w, o512)->name().find("convT_subpixel") != std::string::npos);
    }
    o.winograd_weights = WinogradWeights::AtLoad;
    auto forced = make_conv_kernel(d, w, o);
    o.winograd_weights = WinogradWeights::Auto;
    o.lean_memory = true;
    auto lean = make_conv_kernel(d, w, o);
    INFO(s.C << " -> " << s.K << " pad " << s.pad << ": " << fast->name() << " / " << forced->name() << " / "
              << lean->name());
    CHECK((fast->name().find("convT3x3s2_winograd") != std::string::npos) == s.winograd);
    CHECK((forced->name().find("convT3x3s2_winograd") != std::string::npos) == (s.pad == 0));
    CHECK(lean->name().find("convT_subpixel") != std::string::npos);
  }
}
