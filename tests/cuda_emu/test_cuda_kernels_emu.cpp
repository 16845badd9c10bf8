// Our CUDA kernels (kernels/cuda/*.cu), run on the CPU by the emulator (kernels/cuda/emu), each
// against the generic CPU kernel or a plain loop, on odd sizes, channel slices of larger buffers
// (concat in place: what lies outside the slice must be left as it was), and both the paired
// (__half2) and single-channel f16 paths. The executable runs under ASan + UBSan, so a read or
// write past a buffer or a misaligned __half2 fails the test. The same kernels run on a GPU in
// tests/test_cuda_ops.cpp; these tests need neither a GPU nor a driver.
#include <catch2/catch.hpp>

#include <algorithm>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/generic.h"
#include "kernels/cuda/bias_act.cuh"
#include "kernels/cuda/emu/cuda_emu.h"
#include "kernels/cuda/conv1x1_direct.cuh"
#include "kernels/cuda/f16_modulated_filters.cuh"
#include "kernels/cuda/f16_nhwc.cuh"
#include "kernels/cuda/f16_nhwc_conv1x1_direct.cuh"
#include "kernels/cuda/f16_nhwc_upfirdn2d.cuh"
#include "kernels/cuda/grouped_vectors.cuh"
#include "kernels/cuda/modulation.cuh"
#include "kernels/cuda/pixel_norm.cuh"
#include "kernels/cuda/resample.cuh"
#include "kernels/cuda/rgb_bytes.cuh"
#include "kernels/cuda/upfirdn2d.cuh"
#include "tests/cuda_emu/emu_selftest_kernels.h"
#include "tests/test_util.h"

using namespace gpen;
using cuda::DevEpilogue;
using cuda::DevView;
using cuda::DevView16;

namespace {

using test::random_floats;

double max_abs(const std::vector<float>& v) { return test::max_abs(v.data(), v.size()); }

// Every element within tol * max(1, largest reference magnitude); the first miss is reported.
void require_close(const std::vector<float>& got, const std::vector<float>& want, double tol) {
  REQUIRE(got.size() == want.size());
  const double scale = std::max(1.0, max_abs(want));
  for (size_t i = 0; i < want.size(); ++i) {
    if (std::fabs(double(got[i]) - want[i]) <= tol * scale) continue;
    FAIL("element " << i << ": got " << got[i] << ", want " << want[i] << " (tolerance " << tol * scale << ")");
  }
}

// An NCHW f32 tensor [n][c][h][w] as channels [c0, c0 + c) of a [n][c_total][h][w] buffer,
// the rest of which holds other values that must stay untouched.
struct Slice {
  std::vector<float> buf;
  int n, c, h, w, c_total, c0;

  Slice(int n_, int c_, int h_, int w_, int c_total_, int c0_, uint32_t seed)
      : buf(random_floats(size_t(n_) * c_total_ * h_ * w_, seed)), n(n_), c(c_), h(h_), w(w_), c_total(c_total_),
        c0(c0_) {}
  int64_t batch_stride() const { return int64_t(c_total) * h * w; }
  float* first() { return buf.data() + int64_t(c0) * h * w; }
  cpu::View cpu() { return cpu::View{first(), n, c, h, w, batch_stride()}; }
  DevView dev() { return DevView{first(), n, c, h, w, batch_stride()}; }
};
Slice packed(int n, int c, int h, int w, uint32_t seed) { return Slice(n, c, h, w, c, 0, seed); }

// f16 through gpen's own conversions (core/dtype.h): an oracle independent of cuda_fp16.h, which
// the kernels use.
struct Rounding {
  static uint16_t bits(float v) { return f32_to_f16(v); }
  static float value(uint16_t b) { return f16_to_f32(b); }
  static float round(float v) { return value(bits(v)); }
};

// An f16 NHWC tensor [n][h][w][c] as channels [c0, c0 + c) of pixels with c_total channels,
// after `lead` halves of padding (lead odd: the data is only 2-byte aligned). c, c_total, c0
// and lead all even gives the paired (__half2) kernels, anything else the single-channel ones.
struct Nhwc16 {
  std::vector<uint16_t> buf;
  int n, c, h, w, c_total, c0, lead;

  Nhwc16(int n_, int c_, int h_, int w_, int c_total_, int c0_, int lead_, uint32_t seed)
      : n(n_), c(c_), h(h_), w(w_), c_total(c_total_), c0(c0_), lead(lead_) {
    const std::vector<float> v = random_floats(size_t(lead) + size_t(n) * h * w * c_total, seed);
    buf.resize(v.size());
    for (size_t i = 0; i < v.size(); ++i) buf[i] = Rounding::bits(v[i]);
  }
  int64_t plane() const { return int64_t(h) * w; }
  size_t index(int b, int ch, int64_t p) const {
    return size_t(lead) + (size_t(b) * plane() + size_t(p)) * c_total + size_t(c0 + ch);
  }
  DevView16 view() {
    DevView16 v;
    v.data = buf.data() + index(0, 0, 0);
    v.n = n, v.c = c, v.h = h, v.w = w;
    v.pixel_stride = c_total, v.channel_stride = 1;
    v.batch_stride = plane() * c_total;
    return v;
  }
  // The slice's values as packed NCHW f32.
  std::vector<float> nchw() const {
    std::vector<float> out(size_t(n) * c * plane());
    for (int b = 0; b < n; ++b)
      for (int ch = 0; ch < c; ++ch)
        for (int64_t p = 0; p < plane(); ++p) out[(size_t(b) * c + ch) * plane() + p] = Rounding::value(buf[index(b, ch, p)]);
    return out;
  }
  // Every half outside the slice, in order: must be the same before and after a kernel.
  std::vector<uint16_t> outside() const {
    std::vector<uint16_t> out;
    std::vector<bool> inside(buf.size(), false);
    for (int b = 0; b < n; ++b)
      for (int ch = 0; ch < c; ++ch)
        for (int64_t p = 0; p < plane(); ++p) inside[index(b, ch, p)] = true;
    for (size_t i = 0; i < buf.size(); ++i)
      if (!inside[i]) out.push_back(buf[i]);
    return out;
  }
};

// f16 results against an f32 reference computed from the same (rounded) inputs: within a few
// units in the last place of f16, relative to each value, plus a small absolute floor.
void require_close_f16(const std::vector<float>& got, const std::vector<float>& want) {
  REQUIRE(got.size() == want.size());
  const double floor = 1e-3 * std::max(1.0, max_abs(want));
  for (size_t i = 0; i < want.size(); ++i) {
    const double tol = std::fabs(want[i]) * (1.0 / 512) + floor;
    if (std::fabs(double(got[i]) - want[i]) <= tol) continue;
    FAIL("element " << i << ": got " << got[i] << ", want " << want[i] << " (tolerance " << tol << ")");
  }
}

DevEpilogue dev(const cpu::Epilogue& e) { return DevEpilogue{e.bias, e.slope, e.gain}; }

std::vector<uint8_t> random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> v(n);
  for (uint8_t& b : v) b = uint8_t(rng() & 255);
  return v;
}

// The bytes the RGB output kernels must write for packed NCHW planes [n][3][P]: the host's
// rounding steps (x * scale, + offset, clip, * 255, truncate), each on its own.
std::vector<uint8_t> expected_rgb_bytes(const std::vector<float>& planes, int n, int64_t P, float scale, float offset) {
  std::vector<uint8_t> out(size_t(n) * P * 3);
  for (int b = 0; b < n; ++b)
    for (int64_t p = 0; p < P; ++p)
      for (int c = 0; c < 3; ++c) {
        float v = planes[(size_t(b) * 3 + c) * P + p] * scale;
        v = v + offset;
        v = v < 0.f ? 0.f : v > 1.f ? 1.f : v;
        out[(size_t(b) * P + p) * 3 + c] = uint8_t(int(v * 255.f));
      }
  return out;
}

struct FirCase {
  int up, down, kh, kw, pad0, pad1;
};

}  // namespace

TEST_CASE("cuda emulator: barriers, shuffles, dynamic shared memory and launch errors as on a GPU", "[cuda-emu]") {
  SECTION("a block's threads meet at __syncthreads()") {
    const int block = 96, blocks = 3;
    std::vector<int> in(block * blocks), out(in.size(), -1);
    for (size_t i = 0; i < in.size(); ++i) in[i] = int(i);
    REQUIRE(cuda::emu_test::reverse_in_blocks(in.data(), out.data(), blocks, block) == cudaSuccess);
    for (int b = 0; b < blocks; ++b)
      for (int t = 0; t < block; ++t) REQUIRE(out[b * block + t] == in[b * block + block - 1 - t]);
  }
  SECTION("warp shuffles exchange lanes (a warp sum)") {
    const int warps = 11;
    const std::vector<float> in = random_floats(size_t(warps) * 32, 5);
    std::vector<float> out(warps, 0.f);
    REQUIRE(cuda::emu_test::warp_sums(in.data(), out.data(), warps, 128) == cudaSuccess);
    for (int w = 0; w < warps; ++w) {
      double want = 0;
      for (int l = 0; l < 32; ++l) want += in[w * 32 + l];
      REQUIRE(std::fabs(out[w] - want) < 1e-5);
    }
  }
  SECTION("dynamic shared memory of the launch's size; over 48 KB the launch fails") {
    const int count = 300;
    std::vector<int> in(count), out(count, -1);
    for (int i = 0; i < count; ++i) in[i] = 7 * i;
    REQUIRE(cuda::emu_test::dynamic_shared_reverse(in.data(), out.data(), count, count * sizeof(int)) == cudaSuccess);
    for (int i = 0; i < count; ++i) REQUIRE(out[i] == in[count - 1 - i]);
    REQUIRE(cuda::emu_test::dynamic_shared_reverse(in.data(), out.data(), count, 64 * 1024) == cudaErrorInvalidValue);
  }
  SECTION("threads waiting at barriers the others never reach fail the launch, not the process") {
    std::vector<int> out(64, 0);
    REQUIRE(cuda::emu_test::divergent_barriers(out.data()) == cudaErrorLaunchFailure);
  }
  SECTION("reverse order exposes races that forward order hides (missing barrier, block dependence)") {
    const cuda::emu::Order saved = cuda::emu::order();
    const int n = 64;
    std::vector<int> in(n), out(n, -1);
    for (int i = 0; i < n; ++i) in[i] = 3 * i + 1;
    auto neighbours_right = [&] {
      for (int t = 1; t < n; ++t)
        if (out[t] != in[t - 1]) return false;
      return true;
    };
    auto chain_right = [](const std::vector<int>& d) {
      for (size_t b = 0; b < d.size(); ++b)
        if (d[b] != int(b)) return false;
      return true;
    };
    std::vector<int> chain(9, 0);
    cuda::emu::set_order(cuda::emu::Order::Forward);
    REQUIRE(cuda::emu_test::unsynchronised_neighbour(in.data(), out.data(), n) == cudaSuccess);
    CHECK(neighbours_right());  // hidden: each lower thread ran before its neighbour read
    REQUIRE(cuda::emu_test::previous_block_chain(chain.data(), 8) == cudaSuccess);
    CHECK(chain_right(chain));
    cuda::emu::set_order(cuda::emu::Order::Reverse);
    for (int& v : in) v += 1000;  // (a static __shared__ array keeps the last launch's values)
    REQUIRE(cuda::emu_test::unsynchronised_neighbour(in.data(), out.data(), n) == cudaSuccess);
    CHECK_FALSE(neighbours_right());
    std::fill(chain.begin(), chain.end(), 0);
    REQUIRE(cuda::emu_test::previous_block_chain(chain.data(), 8) == cudaSuccess);
    CHECK_FALSE(chain_right(chain));
    cuda::emu::set_order(saved);
  }
  SECTION("each block starts with fresh static shared memory (0xFF bytes), not the last block's") {
    std::vector<int> out(3, 0);
    REQUIRE(cuda::emu_test::unwritten_shared(out.data(), 3) == cudaSuccess);
    CHECK(out[0] == 100);
    CHECK(out[1] == -1);
    CHECK(out[2] == -1);
  }
  SECTION("more than 1024 threads a block is an invalid configuration; the error is cleared once read") {
    std::vector<int> out(2048, 0);
    REQUIRE(cuda::emu_test::one_block(1024, out.data()) == cudaSuccess);
    REQUIRE(cuda::emu_test::one_block(1025, out.data()) == cudaErrorInvalidConfiguration);
    REQUIRE(cuda::emu_test::one_block(32, out.data()) == cudaSuccess);
  }
}

TEST_CASE("cuda upfirdn2d (f32): the tiled and general kernels match the generic kernel", "[cuda-emu]") {
  const std::vector<float> taps = random_floats(7 * 7, 11, 0.f, 1.f);
  const std::vector<float> bias = random_floats(16, 12);
  const cpu::Epilogue ep{bias.data(), 0.2f, 1.41421356f};
  const FirCase cases[] = {
      {1, 1, 4, 4, 1, 2},  // GPEN's blur
      {2, 1, 4, 4, 2, 1},  // upsample
      {1, 2, 4, 4, 1, 1},  // downsample
      {1, 1, 3, 5, 2, 1},  // non-square taps (tiled, taps not a template argument)
      {2, 1, 1, 3, 0, 1},
      {3, 1, 4, 4, 2, 2},  // general kernel
      {2, 2, 5, 3, 1, 2},
      {1, 3, 2, 2, 0, 0},
  };
  for (const FirCase& k : cases)
    for (int size : {0, 1}) {
      const int h = size ? 37 : 5, w = size ? 70 : 9;
      INFO("up " << k.up << " down " << k.down << " taps " << k.kh << "x" << k.kw << " pad " << k.pad0 << "," << k.pad1
                 << " input " << h << "x" << w);
      const int oh = cpu::ref::upfirdn2d_out(h, k.kh, k.up, k.down, k.pad0, k.pad1);
      const int ow = cpu::ref::upfirdn2d_out(w, k.kw, k.up, k.down, k.pad0, k.pad1);
      Slice x(2, 5, h, w, 7, 1, 21);
      Slice want(2, 5, oh, ow, 8, 3, 22), got = want;
      cpu::ref::upfirdn2d(x.cpu(), want.cpu(), taps.data(), k.kh, k.kw, k.up, k.down, k.pad0, k.pad1, ep, nullptr);
      REQUIRE(cuda::launch_upfirdn2d(x.dev(), got.dev(), taps.data(), k.kh, k.kw, k.up, k.down, k.pad0, dev(ep),
                                     nullptr) == cudaSuccess);
      require_close(got.buf, want.buf, 1e-5);
    }
}

TEST_CASE("cuda elementwise kernels (f32): conv epilogue, scale_bias_act, add, broadcast", "[cuda-emu]") {
  const int n = 2, K = 6, h = 7, w = 13;
  const int64_t P = int64_t(h) * w;
  const std::vector<float> bias = random_floats(K, 31), out_scale = random_floats(size_t(n) * K, 32, 0.5f, 2.f);
  const cpu::Epilogue ep{bias.data(), 0.2f, 1.41421356f};

  SECTION("conv epilogue from every operand type and layout into a channel slice") {
    const std::vector<float> acc = random_floats(size_t(n) * K * P, 33);
    for (cuda::ScratchType type : {cuda::ScratchType::F32, cuda::ScratchType::F16})
      for (cuda::ScratchLayout layout : {cuda::ScratchLayout::NCHW, cuda::ScratchLayout::NHWC}) {
        const bool nhwc = layout == cuda::ScratchLayout::NHWC, f16 = type == cuda::ScratchType::F16;
        INFO((f16 ? "f16 " : "f32 ") << (nhwc ? "NHWC" : "NCHW"));
        std::vector<float> acc32(acc.size());
        std::vector<uint16_t> acc16(acc.size());
        for (int b = 0; b < n; ++b)
          for (int k = 0; k < K; ++k)
            for (int64_t p = 0; p < P; ++p) {
              const float v = acc[(size_t(b) * K + k) * P + p];
              const size_t at = nhwc ? (size_t(b) * P + p) * K + k : (size_t(b) * K + k) * P + p;
              acc32[at] = f16 ? Rounding::round(v) : v;
              acc16[at] = Rounding::bits(v);
            }
        Slice want(n, K, h, w, K + 3, 2, 34), got = want;
        cpu::View y = want.cpu();
        for (int b = 0; b < n; ++b)
          for (int k = 0; k < K; ++k)
            for (int64_t p = 0; p < P; ++p) {
              const size_t at = nhwc ? (size_t(b) * P + p) * K + k : (size_t(b) * K + k) * P + p;
              y.at(b, k)[p] = ep.apply(acc32[at] * out_scale[size_t(b) * K + k], k);
            }
        const void* operand = f16 ? static_cast<const void*>(acc16.data()) : acc32.data();
        REQUIRE(cuda::launch_conv_epilogue(operand, type, layout, out_scale.data(), dev(ep), got.dev(), nullptr) ==
                cudaSuccess);
        require_close(got.buf, want.buf, 1e-6);
      }
  }
  SECTION("scale_bias_act, add and broadcast on views (in place too)") {
    Slice x(n, K, h, w, K + 1, 1, 35);
    Slice want(n, K, h, w, K + 2, 2, 36), got = want;
    cpu::ref::scale_bias_act(x.cpu(), want.cpu(), 0.7f, ep, nullptr);
    REQUIRE(cuda::launch_scale_bias_act(x.dev(), got.dev(), 0.7f, dev(ep), nullptr) == cudaSuccess);
    require_close(got.buf, want.buf, 1e-6);

    Slice a(n, K, h, w, K, 0, 37), want_sum = a, got_sum = a;
    cpu::ref::add(want_sum.cpu(), x.cpu(), want_sum.cpu(), nullptr);
    REQUIRE(cuda::launch_add(got_sum.dev(), x.dev(), got_sum.dev(), nullptr) == cudaSuccess);
    require_close(got_sum.buf, want_sum.buf, 1e-6);

    const std::vector<float> param = random_floats(size_t(K) * P, 38);
    Slice want_b(n, K, h, w, K + 1, 1, 39), got_b = want_b;
    for (int b = 0; b < n; ++b)
      for (int k = 0; k < K; ++k) std::memcpy(want_b.cpu().at(b, k), param.data() + k * P, P * sizeof(float));
    REQUIRE(cuda::launch_broadcast(param.data(), got_b.dev(), nullptr) == cudaSuccess);
    require_close(got_b.buf, want_b.buf, 0);
  }
}

TEST_CASE("cuda modulation (f32): conv input operands and demodulation factors", "[cuda-emu]") {
  const int n = 3, C = 5, h = 9, w = 11;
  const int64_t P = int64_t(h) * w;
  Slice x(n, C, h, w, C + 2, 1, 41);
  const std::vector<float> style = random_floats(size_t(n) * C, 42);
  for (cuda::ScratchType type : {cuda::ScratchType::F32, cuda::ScratchType::F16})
    for (cuda::ScratchLayout layout : {cuda::ScratchLayout::NCHW, cuda::ScratchLayout::NHWC}) {
      const bool nhwc = layout == cuda::ScratchLayout::NHWC, f16 = type == cuda::ScratchType::F16;
      INFO((f16 ? "f16 " : "f32 ") << (nhwc ? "NHWC" : "NCHW"));
      std::vector<float> want(size_t(n) * C * P), got(want.size());
      std::vector<uint16_t> got16(want.size());
      for (int b = 0; b < n; ++b)
        for (int c = 0; c < C; ++c)
          for (int64_t p = 0; p < P; ++p) {
            const float v = x.cpu().at(b, c)[p] * style[size_t(b) * C + c];
            want[nhwc ? (size_t(b) * P + p) * C + c : (size_t(b) * C + c) * P + p] = f16 ? Rounding::round(v) : v;
          }
      void* out = f16 ? static_cast<void*>(got16.data()) : got.data();
      REQUIRE(cuda::launch_prepare_conv_input(x.dev(), style.data(), out, type, layout, nullptr) == cudaSuccess);
      if (f16)
        for (size_t i = 0; i < got.size(); ++i) got[i] = Rounding::value(got16[i]);
      require_close(got, want, 1e-6);
    }

  const int K = 37, Cd = 70;  // more than a warp's worth of channels
  const std::vector<float> s = random_floats(size_t(n) * Cd, 43), wsq = random_floats(size_t(K) * Cd, 44, 0.f, 1.f);
  std::vector<float> want(size_t(n) * K), got(want.size());
  cpu::ref::demod_factors(s.data(), wsq.data(), want.data(), n, Cd, K, 1e-8f);
  REQUIRE(cuda::launch_demod_factors(s.data(), wsq.data(), got.data(), n, Cd, K, 1e-8f, nullptr) == cudaSuccess);
  require_close(got, want, 1e-5);
}

TEST_CASE("cuda grouped vector runs: every Linear row and demodulation row of a run in one launch", "[cuda-emu]") {
  const int n = 3, in = 45, rows = 41;  // rows: two Linears of 23 and 18 outputs
  const std::vector<float> x = random_floats(size_t(n) * (in + 3), 51);
  const std::vector<float> weight = random_floats(size_t(rows) * in, 52), bias = random_floats(rows, 53);
  std::vector<float> out_a(size_t(n) * 23 + 5, 0.f), out_b(size_t(n) * 20, 0.f);
  std::vector<float*> dst(rows);
  std::vector<int> dst_stride(rows);
  for (int r = 0; r < rows; ++r) {
    dst[r] = r < 23 ? out_a.data() + 5 + r : out_b.data() + (r - 23);
    dst_stride[r] = r < 23 ? 23 : 20;
  }
  cuda::GroupedLinearRows g;
  g.weight = weight.data(), g.bias = bias.data(), g.dst = dst.data(), g.dst_stride = dst_stride.data();
  g.rows = rows, g.in = in, g.slope = 0.2f, g.gain = 1.41421356f;
  REQUIRE(cuda::launch_grouped_linear(x.data(), n, in + 3, g, nullptr) == cudaSuccess);
  for (int b = 0; b < n; ++b) {
    std::vector<float> xb(x.begin() + b * (in + 3), x.begin() + b * (in + 3) + in), want(rows);
    cpu::ref::linear(xb.data(), weight.data(), want.data(), 1, in, rows, cpu::Epilogue{bias.data(), 0.2f, 1.41421356f},
                     nullptr);
    for (int r = 0; r < rows; ++r) REQUIRE(std::fabs(dst[r][b * dst_stride[r]] - want[r]) < 1e-5);
  }

  // Demodulation rows of two layers with different channel counts and style strides.
  const int C0 = 40, C1 = 7, K0 = 3, K1 = 5;
  const std::vector<float> style0 = random_floats(size_t(n) * (C0 + 2), 54), style1 = random_floats(size_t(n) * C1, 55);
  const std::vector<float> wsq0 = random_floats(size_t(K0) * C0, 56, 0, 1), wsq1 = random_floats(size_t(K1) * C1, 57, 0, 1);
  std::vector<float> d0(size_t(n) * K0, 0.f), d1(size_t(n) * K1, 0.f);
  std::vector<const float*> wsq_rows, style_rows;
  std::vector<int> Cs, style_strides, d_strides;
  std::vector<float*> d_rows;
  for (int k = 0; k < K0 + K1; ++k) {
    const bool first = k < K0;
    wsq_rows.push_back(first ? wsq0.data() + k * C0 : wsq1.data() + (k - K0) * C1);
    style_rows.push_back(first ? style0.data() : style1.data());
    Cs.push_back(first ? C0 : C1);
    style_strides.push_back(first ? C0 + 2 : C1);
    d_rows.push_back(first ? d0.data() + k : d1.data() + (k - K0));
    d_strides.push_back(first ? K0 : K1);
  }
  cuda::GroupedDemodRows gd;
  gd.wsq = wsq_rows.data(), gd.style = style_rows.data(), gd.C = Cs.data(), gd.style_stride = style_strides.data();
  gd.dst = d_rows.data(), gd.dst_stride = d_strides.data(), gd.rows = K0 + K1, gd.eps = 1e-8f;
  REQUIRE(cuda::launch_grouped_demod(n, gd, nullptr) == cudaSuccess);
  std::vector<float> s0(size_t(n) * C0), want0(d0.size()), want1(d1.size());
  for (int b = 0; b < n; ++b) std::memcpy(s0.data() + b * C0, style0.data() + b * (C0 + 2), C0 * sizeof(float));
  cpu::ref::demod_factors(s0.data(), wsq0.data(), want0.data(), n, C0, K0, 1e-8f);
  cpu::ref::demod_factors(style1.data(), wsq1.data(), want1.data(), n, C1, K1, 1e-8f);
  require_close(d0, want0, 1e-5);
  require_close(d1, want1, 1e-5);
}

TEST_CASE("cuda direct 1x1 convolution (f32): few outputs and few inputs, modulated", "[cuda-emu]") {
  for (auto [C, K] : {std::pair{20, 3}, std::pair{3, 17}, std::pair{8, 8}}) {
    INFO("C " << C << " K " << K);
    REQUIRE(cuda::conv1x1_direct_fits(C, K));
    const int n = 2, h = 5, w = 23;
    Slice x(n, C, h, w, C + 1, 1, 61);
    Slice want(n, K, h, w, K + 2, 0, 62), got = want;
    const std::vector<float> weight = random_floats(size_t(K) * C, 63), bias = random_floats(K, 64);
    const std::vector<float> in_scale = random_floats(size_t(n) * C, 65), out_scale = random_floats(size_t(n) * K, 66);
    const cpu::Epilogue ep{bias.data(), 0.2f, 1.41421356f};
    cpu::ConvDesc d;
    d.C = C, d.K = K;
    cpu::ref::conv2d(d, weight.data(), x.cpu(), want.cpu(), in_scale.data(), out_scale.data(), ep, nullptr);
    REQUIRE(cuda::launch_f32_conv1x1_direct(x.dev(), in_scale.data(), weight.data(), out_scale.data(), dev(ep),
                                            got.dev(), nullptr) == cudaSuccess);
    require_close(got.buf, want.buf, 1e-5);
  }
}

TEST_CASE("cuda pixel norm and resampling kernels (f32)", "[cuda-emu]") {
  const int n = 2, c = 37, hw = 29;
  Slice x = packed(n, c, 1, hw, 71);
  std::vector<float> want(x.buf.size()), got(x.buf.size());
  cpu::ref::pixel_norm(x.buf.data(), want.data(), n, c, hw, 1e-8f);
  REQUIRE(cuda::launch_pixel_norm(x.buf.data(), got.data(), n, c, hw, 1e-8f, nullptr) == cudaSuccess);
  require_close(got, want, 1e-5);

  Slice src(2, 3, 11, 14, 5, 2, 72);
  SECTION("upsample nearest (integer and fractional factors)") {
    for (auto [oh, ow] : {std::pair{22, 28}, std::pair{17, 9}}) {
      Slice w1(2, 3, oh, ow, 4, 1, 73), w2 = w1;
      cpu::ref::upsample_nearest(src.cpu(), w1.cpu(), nullptr);
      REQUIRE(cuda::launch_upsample_nearest(src.dev(), w2.dev(), nullptr) == cudaSuccess);
      require_close(w2.buf, w1.buf, 0);
    }
  }
  SECTION("max pool") {
    Slice w1(2, 3, (11 + 2 - 3) / 2 + 1, (14 + 2 - 3) / 2 + 1, 3, 0, 74), w2 = w1;
    cpu::ref::max_pool2d(src.cpu(), w1.cpu(), 3, 2, 1, nullptr);
    REQUIRE(cuda::launch_max_pool2d(src.dev(), w2.dev(), 3, 2, 1, nullptr) == cudaSuccess);
    require_close(w2.buf, w1.buf, 0);
  }
  SECTION("reflection padding") {
    Slice w1(2, 3, 11 + 6, 14 + 6, 6, 3, 75), w2 = w1;
    cpu::ref::reflect_pad2d(src.cpu(), w1.cpu(), 3, nullptr);
    REQUIRE(cuda::launch_reflect_pad2d(src.dev(), w2.dev(), 3, nullptr) == cudaSuccess);
    require_close(w2.buf, w1.buf, 0);
  }
  SECTION("pixel unshuffle") {
    Slice even(2, 3, 12, 14, 3, 0, 76);
    Slice w1(2, 12, 6, 7, 13, 1, 77), w2 = w1;
    cpu::ref::pixel_unshuffle(even.cpu(), w1.cpu(), 2, nullptr);
    REQUIRE(cuda::launch_pixel_unshuffle(even.dev(), w2.dev(), 2, nullptr) == cudaSuccess);
    require_close(w2.buf, w1.buf, 0);
  }
}

TEST_CASE("cuda RGB bytes to planes and back (f32)", "[cuda-emu]") {
  const int n = 2, h = 7, w = 19;
  const int64_t P = int64_t(h) * w;
  const std::vector<uint8_t> bytes = random_bytes(size_t(n) * P * 3, 81);
  const std::vector<float> levels = random_floats(3 * 256, 82);
  for (bool reverse : {false, true}) {
    INFO("reverse channels " << reverse);
    Slice want(n, 3, h, w, 5, 1, 83), got = want;
    for (int b = 0; b < n; ++b)
      for (int64_t p = 0; p < P; ++p)
        for (int c = 0; c < 3; ++c)
          want.cpu().at(b, c)[p] = levels[c * 256 + bytes[(size_t(b) * P + p) * 3 + (reverse ? 2 - c : c)]];
    REQUIRE(cuda::launch_rgb_bytes_to_planes(bytes.data(), levels.data(), reverse, got.dev(), nullptr) == cudaSuccess);
    require_close(got.buf, want.buf, 0);
  }
  Slice x(n, 3, h, w, 4, 1, 84);
  std::vector<float> planes(size_t(n) * 3 * P);
  for (int b = 0; b < n; ++b)
    for (int c = 0; c < 3; ++c) std::memcpy(planes.data() + (size_t(b) * 3 + c) * P, x.cpu().at(b, c), P * sizeof(float));
  std::vector<uint8_t> out(bytes.size(), 0);
  REQUIRE(cuda::launch_planes_to_rgb_bytes(x.dev(), 0.5f, 0.5f, out.data(), nullptr) == cudaSuccess);
  REQUIRE(out == expected_rgb_bytes(planes, n, P, 0.5f, 0.5f));
}

namespace {

// The f16 layouts every NHWC test runs on: paired channels, an odd channel count, an odd pixel
// stride, and paired strides on data only 2-byte aligned (a __half2 there faults on a GPU).
struct F16Layout {
  const char* name;
  int c, c_total, c0, lead;
  bool pairs;
};
constexpr F16Layout kF16Layouts[] = {
    {"pairs (c 6 of 10 at 2)", 6, 10, 2, 0, true},
    {"odd channels (c 5 of 7 at 1)", 5, 7, 1, 0, false},
    {"odd pixel stride (c 6 of 9 at 3)", 6, 9, 3, 1, false},
    {"2-byte aligned (c 6 of 10 at 2, after 1 half)", 6, 10, 2, 1, false},
};

Nhwc16 nhwc(const F16Layout& l, int n, int h, int w, uint32_t seed, int c = -1) {
  return Nhwc16(n, c < 0 ? l.c : c, h, w, c < 0 ? l.c_total : c + (l.c_total - l.c), l.c0, l.lead, seed);
}

}  // namespace

TEST_CASE("cuda f16 NHWC kernels: edges, modulation halves, elementwise ops", "[cuda-emu]") {
  const int n = 2, h = 5, w = 11;
  for (const F16Layout& l : kF16Layouts) {
    INFO(l.name);
    const int C = l.c;
    const int64_t P = int64_t(h) * w;
    Nhwc16 x = nhwc(l, n, h, w, 91);
    REQUIRE(x.view().pairs() == l.pairs);
    const std::vector<float> xv = x.nchw();
    const std::vector<float> bias = random_floats(C, 92), scale = random_floats(size_t(n) * C, 93, 0.5f, 2.f);
    const cpu::Epilogue ep{bias.data(), 0.2f, 1.41421356f};

    SECTION("NCHW f32 in and out") {
      const std::vector<float> in = random_floats(size_t(n) * C * P, 94);
      Nhwc16 y = nhwc(l, n, h, w, 95);
      const std::vector<uint16_t> around = y.outside();
      REQUIRE(cuda::launch_f16_nhwc_from_f32_nchw(in.data(), y.view(), nullptr) == cudaSuccess);
      std::vector<float> rounded(in.size());
      for (size_t i = 0; i < in.size(); ++i) rounded[i] = Rounding::round(in[i]);
      require_close(y.nchw(), rounded, 0);
      REQUIRE(y.outside() == around);
      std::vector<float> back(in.size(), 0.f);
      REQUIRE(cuda::launch_f16_nhwc_to_f32_nchw(y.view(), back.data(), nullptr) == cudaSuccess);
      require_close(back, rounded, 0);
    }
    SECTION("prepare conv input (x * style) into packed NHWC and NCHW operands") {
      for (cuda::ScratchLayout layout : {cuda::ScratchLayout::NHWC, cuda::ScratchLayout::NCHW}) {
        const bool nh = layout == cuda::ScratchLayout::NHWC;
        std::vector<uint16_t> out(size_t(n) * C * P, 0);
        REQUIRE(cuda::launch_f16_nhwc_prepare_conv_input(x.view(), scale.data(), out.data(), layout, nullptr) ==
                cudaSuccess);
        std::vector<float> got(out.size()), want(out.size());
        for (int b = 0; b < n; ++b)
          for (int c = 0; c < C; ++c)
            for (int64_t p = 0; p < P; ++p) {
              const size_t at = nh ? (size_t(b) * P + p) * C + c : (size_t(b) * C + c) * P + p;
              got[at] = Rounding::value(out[at]);
              want[at] = xv[(size_t(b) * C + c) * P + p] * scale[size_t(b) * C + c];
            }
        require_close_f16(got, want);
      }
    }
    SECTION("conv epilogue from packed operands, with and without a fused second stage") {
      for (cuda::ScratchLayout layout : {cuda::ScratchLayout::NHWC, cuda::ScratchLayout::NCHW})
        for (bool then_on : {false, true}) {
          const bool nh = layout == cuda::ScratchLayout::NHWC;
          std::vector<uint16_t> acc(size_t(n) * C * P);
          const std::vector<float> accv = random_floats(acc.size(), 96);
          for (size_t i = 0; i < acc.size(); ++i) acc[i] = Rounding::bits(accv[i]);
          const std::vector<float> bias2 = random_floats(C, 97);
          cuda::DevThen then;
          then.on = then_on, then.scale = 0.8f, then.ep = DevEpilogue{bias2.data(), 0.f, 2.f};
          Nhwc16 y = nhwc(l, n, h, w, 98);
          const std::vector<uint16_t> around = y.outside();
          REQUIRE(cuda::launch_f16_nhwc_conv_epilogue(acc.data(), layout, scale.data(), dev(ep), then, y.view(),
                                                      nullptr) == cudaSuccess);
          std::vector<float> want(size_t(n) * C * P);
          const cpu::Epilogue ep2{bias2.data(), 0.f, 2.f};
          for (int b = 0; b < n; ++b)
            for (int c = 0; c < C; ++c)
              for (int64_t p = 0; p < P; ++p) {
                const size_t at = nh ? (size_t(b) * P + p) * C + c : (size_t(b) * C + c) * P + p;
                float v = ep.apply(Rounding::value(acc[at]) * scale[size_t(b) * C + c], c);
                if (then_on) v = ep2.apply(v * 0.8f, c);
                want[(size_t(b) * C + c) * P + p] = v;
              }
          INFO((nh ? "NHWC" : "NCHW") << " operand, then " << then_on);
          require_close_f16(y.nchw(), want);
          REQUIRE(y.outside() == around);
        }
    }
    SECTION("scale_bias_act, add (in place), broadcast") {
      Nhwc16 y = nhwc(l, n, h, w, 99);
      const std::vector<uint16_t> around = y.outside();
      REQUIRE(cuda::launch_f16_nhwc_scale_bias_act(x.view(), y.view(), 0.6f, dev(ep), nullptr) == cudaSuccess);
      std::vector<float> want(xv.size());
      for (size_t i = 0; i < xv.size(); ++i) want[i] = ep.apply(xv[i] * 0.6f, int(i / P % C));
      require_close_f16(y.nchw(), want);
      REQUIRE(y.outside() == around);

      const std::vector<float> before = y.nchw();
      REQUIRE(cuda::launch_f16_nhwc_add(y.view(), x.view(), y.view(), nullptr) == cudaSuccess);
      for (size_t i = 0; i < xv.size(); ++i) want[i] = before[i] + xv[i];
      require_close_f16(y.nchw(), want);
      REQUIRE(y.outside() == around);

      std::vector<uint16_t> param(size_t(P) * C + 1);
      const std::vector<float> pv = random_floats(param.size(), 100);
      for (size_t i = 0; i < param.size(); ++i) param[i] = Rounding::bits(pv[i]);
      for (int misaligned : {0, 1}) {
        REQUIRE(cuda::launch_f16_nhwc_broadcast(param.data() + misaligned, y.view(), nullptr) == cudaSuccess);
        for (int b = 0; b < n; ++b)
          for (int c = 0; c < C; ++c)
            for (int64_t p = 0; p < P; ++p)
              want[(size_t(b) * C + c) * P + p] = Rounding::value(param[misaligned + p * C + c]);
        require_close(y.nchw(), want, 0);
        REQUIRE(y.outside() == around);
      }
    }
  }
}

TEST_CASE("cuda f16 NHWC upfirdn2d matches the generic kernel (demodulation folded in)", "[cuda-emu]") {
  const std::vector<float> taps = random_floats(7 * 7, 111, 0.f, 1.f);
  const FirCase cases[] = {
      {1, 1, 4, 4, 1, 2}, {2, 1, 4, 4, 2, 1}, {1, 2, 4, 4, 1, 1}, {1, 1, 3, 5, 2, 1}, {3, 1, 4, 4, 2, 2}, {2, 2, 3, 2, 1, 0},
  };
  for (const F16Layout& l : kF16Layouts)
    for (const FirCase& k : cases) {
      const int n = 2, h = 9, w = 13;
      INFO(l.name << "; up " << k.up << " down " << k.down << " taps " << k.kh << "x" << k.kw << " pad " << k.pad0
                  << "," << k.pad1);
      const int oh = cpu::ref::upfirdn2d_out(h, k.kh, k.up, k.down, k.pad0, k.pad1);
      const int ow = cpu::ref::upfirdn2d_out(w, k.kw, k.up, k.down, k.pad0, k.pad1);
      Nhwc16 x = nhwc(l, n, h, w, 112);
      Nhwc16 y = nhwc(l, n, oh, ow, 113);
      const std::vector<uint16_t> around = y.outside();
      const std::vector<float> bias = random_floats(l.c, 114), in_scale = random_floats(size_t(n) * l.c, 115, 0.5f, 2.f);
      const cpu::Epilogue ep{bias.data(), 0.2f, 1.41421356f};
      REQUIRE(cuda::launch_f16_nhwc_upfirdn2d(x.view(), y.view(), taps.data(), k.kh, k.kw, k.up, k.down, k.pad0,
                                              in_scale.data(), dev(ep), nullptr) == cudaSuccess);
      // Reference: the FIR without the epilogue, then * in_scale, then the epilogue.
      std::vector<float> xv = x.nchw(), want(size_t(n) * l.c * oh * ow);
      cpu::ref::upfirdn2d(cpu::make_view(xv.data(), n, l.c, h, w), cpu::make_view(want.data(), n, l.c, oh, ow),
                          taps.data(), k.kh, k.kw, k.up, k.down, k.pad0, k.pad1, cpu::Epilogue{}, nullptr);
      const int64_t P = int64_t(oh) * ow;
      for (size_t i = 0; i < want.size(); ++i) {
        const int b = int(i / (P * l.c)), c = int(i / P % l.c);
        want[i] = ep.apply(want[i] * in_scale[size_t(b) * l.c + c], c);
      }
      require_close_f16(y.nchw(), want);
      REQUIRE(y.outside() == around);
    }
}

TEST_CASE("cuda f16 NHWC direct 1x1 convolution matches the generic conv", "[cuda-emu]") {
  for (const F16Layout& l : kF16Layouts)
    for (auto [C, K] : {std::pair{l.c, 3}, std::pair{3, l.c}}) {
      INFO(l.name << "; C " << C << " K " << K);
      const int n = 2, h = 3, w = 17;
      Nhwc16 x = nhwc(l, n, h, w, 121, C);
      Nhwc16 y = nhwc(l, n, h, w, 122, K);
      const std::vector<uint16_t> around = y.outside();
      const std::vector<float> weight = random_floats(size_t(K) * C, 123), bias = random_floats(K, 124);
      const std::vector<float> in_scale = random_floats(size_t(n) * C, 125), out_scale = random_floats(size_t(n) * K, 126);
      const cpu::Epilogue ep{bias.data(), 0.2f, 1.41421356f};
      REQUIRE(cuda::launch_f16_nhwc_conv1x1_direct(x.view(), in_scale.data(), weight.data(), out_scale.data(), dev(ep),
                                                   cuda::DevThen{}, y.view(), nullptr) == cudaSuccess);
      std::vector<float> xv = x.nchw(), want(size_t(n) * K * h * w);
      cpu::ConvDesc d;
      d.C = C, d.K = K;
      cpu::ref::conv2d(d, weight.data(), cpu::make_view(xv.data(), n, C, h, w), cpu::make_view(want.data(), n, K, h, w),
                       in_scale.data(), out_scale.data(), ep, nullptr);
      require_close_f16(y.nchw(), want);
      REQUIRE(y.outside() == around);
    }
}

TEST_CASE("cuda f16 modulated filters (forward and transposed layouts)", "[cuda-emu]") {
  const int n = 3, Kf = 5, R = 9, Cf = 7;
  const std::vector<float> w = random_floats(size_t(Kf) * R * Cf, 131);
  for (bool transposed : {false, true})
    for (bool with_demod : {false, true}) {
      INFO("transposed " << transposed << " demod " << with_demod);
      const int C = transposed ? Kf : Cf, K = transposed ? Cf : Kf;
      const std::vector<float> style = random_floats(size_t(n) * C, 132), demod = random_floats(size_t(n) * K, 133);
      std::vector<uint16_t> out(size_t(n) * Kf * R * Cf, 0);
      REQUIRE(cuda::launch_f16_modulated_filters(w.data(), Kf, R, Cf, transposed, style.data(),
                                                 with_demod ? demod.data() : nullptr, n, out.data(),
                                                 nullptr) == cudaSuccess);
      for (int b = 0; b < n; ++b)
        for (int kf = 0; kf < Kf; ++kf)
          for (int r = 0; r < R; ++r)
            for (int cf = 0; cf < Cf; ++cf) {
              const int c_in = transposed ? kf : cf, k_out = transposed ? cf : kf;
              const size_t i = (size_t(kf) * R + r) * Cf + cf;
              const float s = style[size_t(b) * C + c_in] * (with_demod ? demod[size_t(b) * K + k_out] : 1.f);
              REQUIRE(out[size_t(b) * w.size() + i] == Rounding::bits(w[i] * s));
            }
    }
}

TEST_CASE("cuda f16 NHWC RGB bytes in and out", "[cuda-emu]") {
  const int n = 2, h = 6, w = 9;
  const int64_t P = int64_t(h) * w;
  const std::vector<uint8_t> bytes = random_bytes(size_t(n) * P * 3, 141);
  const std::vector<float> levels = random_floats(3 * 256, 142);
  for (int lead : {0, 1})
    for (bool reverse : {false, true}) {
      INFO("lead " << lead << " reverse " << reverse);
      Nhwc16 y(n, 3, h, w, 4, 1, lead, 143);
      const std::vector<uint16_t> around = y.outside();
      REQUIRE(cuda::launch_f16_nhwc_from_rgb_bytes(bytes.data(), levels.data(), reverse, y.view(), nullptr) ==
              cudaSuccess);
      std::vector<float> want(size_t(n) * 3 * P);
      for (int b = 0; b < n; ++b)
        for (int c = 0; c < 3; ++c)
          for (int64_t p = 0; p < P; ++p)
            want[(size_t(b) * 3 + c) * P + p] =
                Rounding::round(levels[c * 256 + bytes[(size_t(b) * P + p) * 3 + (reverse ? 2 - c : c)]]);
      require_close(y.nchw(), want, 0);
      REQUIRE(y.outside() == around);

      std::vector<uint8_t> out(bytes.size(), 0);
      REQUIRE(cuda::launch_f16_nhwc_to_rgb_bytes(y.view(), 0.5f, 0.5f, out.data(), nullptr) == cudaSuccess);
      REQUIRE(out == expected_rgb_bytes(y.nchw(), n, P, 0.5f, 0.5f));
    }
}
