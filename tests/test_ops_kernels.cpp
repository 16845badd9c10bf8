// Vectorised non-conv ops (upfirdn2d, scale_bias_act, add, linear) and the row paths of the data
// movement ops (upsample_nearest, reflect_pad2d) against the generic reference,
// for every ISA implementation this machine can run (called directly) and through the dispatcher.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/generic.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/ops_internal.h"

using namespace gpen;
using namespace gpen::cpu;

namespace {

std::vector<float> rand_vec(std::mt19937& rng, size_t n, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& f : v) f = u(rng);
  return v;
}

struct OpsIsa {
  const char* name;
  Isa need;
  decltype(&upfirdn2d_avx512) upfirdn;
  decltype(&scale_bias_act_avx512) sba;
  decltype(&add_avx512) add;
  decltype(&linear_avx512) linear;
};
std::vector<OpsIsa> op_paths() {
  std::vector<OpsIsa> p;
  set_isa_cap(Isa::AVX512_BF16);
  const Isa have = active_isa();  // what the CPU has, capped by GPEN_ISA
  if (have >= Isa::AVX2) p.push_back({"avx2", Isa::AVX2, upfirdn2d_avx2, scale_bias_act_avx2, add_avx2, linear_avx2});
  if (have >= Isa::AVX512)
    p.push_back({"avx512", Isa::AVX512, upfirdn2d_avx512, scale_bias_act_avx512, add_avx512, linear_avx512});
  return p;
}

// A (n, c, h, w) view placed as channels [1, 1+c) of a (c+2)-channel buffer filled with `fill`.
struct SlicedBuf {
  std::vector<float> buf;
  View v;
  SlicedBuf(int n, int c, int h, int w, float fill) : buf(size_t(n) * (c + 2) * h * w, fill) {
    v = View{buf.data() + int64_t(h) * w, n, c, h, w, int64_t(c + 2) * h * w};
  }
  bool outside_untouched(float fill) const {
    const int64_t plane = v.plane();
    for (int n = 0; n < v.n; ++n)
      for (int c : {0, v.c + 1})
        for (int64_t i = 0; i < plane; ++i)
          if (buf[size_t((int64_t(n) * (v.c + 2) + c) * plane + i)] != fill) return false;
    return true;
  }
};

double max_rel_diff(const View& a, const View& b) {
  double err = 0, scale = 1e-30;
  for (int n = 0; n < a.n; ++n)
    for (int c = 0; c < a.c; ++c)
      for (int64_t i = 0; i < a.plane(); ++i) {
        const float x = a.at(n, c)[i], y = b.at(n, c)[i];
        err = std::max(err, double(std::fabs(x - y)));
        scale = std::max(scale, double(std::fabs(y)));
      }
  return err / std::max(1.0, scale);
}

Epilogue make_ep(int variant, const std::vector<float>& bias) {
  Epilogue ep;
  if (variant % 2) ep.bias = bias.data();
  if (variant >= 2) ep.slope = 0.2f, ep.gain = std::sqrt(2.f);
  return ep;
}

}  // namespace

TEST_CASE("upfirdn2d fast paths match reference", "[kernels]") {
  std::mt19937 rng(7);
  ThreadPool pool(3);
  // (kh, kw, up, pad0, pad1): GPEN's three uses first, then odd ones.
  const int cfgs[][5] = {{4, 4, 1, 1, 1}, {4, 4, 2, 2, 1}, {4, 4, 1, 2, 2}, {3, 3, 1, 1, 1},
                         {4, 4, 2, 1, 2}, {2, 5, 1, 0, 3}, {4, 4, 1, -1, 2}, {3, 2, 3, 2, 1}};
  const int sizes[][2] = {{1, 1}, {2, 3}, {5, 7}, {13, 13}, {31, 17}, {65, 65}};
  auto blur = std::vector<float>{1, 3, 3, 1};
  int iter = 0;
  for (const auto& cfg : cfgs)
    for (const auto& sz : sizes) {
      const int kh = cfg[0], kw = cfg[1], up = cfg[2], p0 = cfg[3], p1 = cfg[4], h = sz[0], w = sz[1];
      const int oh = ref::upfirdn2d_out(h, kh, up, 1, p0, p1), ow = ref::upfirdn2d_out(w, kw, up, 1, p0, p1);
      if (oh < 1 || ow < 1) continue;
      const int n = iter % 3 == 0 ? 2 : 1, c = 1 + iter % 5;
      ++iter;
      std::vector<float> k(size_t(kh) * kw);
      if (kh == 4 && kw == 4) {  // the [1,3,3,1] outer product (what GPEN uses), scaled
        for (int i = 0; i < 16; ++i) k[size_t(i)] = blur[size_t(i / 4)] * blur[size_t(i % 4)] / 16.f;
        if (iter % 2) k = rand_vec(rng, 16);  // and a non-separable one
      } else {
        k = rand_vec(rng, k.size());
      }
      auto xv = rand_vec(rng, size_t(n) * c * h * w);
      auto bias = rand_vec(rng, size_t(c));
      const Epilogue ep = make_ep(iter % 4, bias);
      View x = make_view(xv.data(), n, c, h, w);
      std::vector<float> want(size_t(n) * c * oh * ow);
      View yr = make_view(want.data(), n, c, oh, ow);
      ref::upfirdn2d(x, yr, k.data(), kh, kw, up, 1, p0, p1, ep, nullptr);
      for (const OpsIsa& p : op_paths()) {
        INFO(p.name << " k=" << kh << "x" << kw << " up=" << up << " pad=" << p0 << "," << p1 << " in " << h << "x" << w
                    << " n=" << n << " c=" << c);
        SlicedBuf out(n, c, oh, ow, 777.f);
        REQUIRE(p.upfirdn(x, out.v, k.data(), kh, kw, up, 1, p0, ep, iter % 2 ? &pool : nullptr));
        CHECK(max_rel_diff(out.v, yr) < 1e-5);
        CHECK(out.outside_untouched(777.f));
      }
    }
  // down != 1 is not handled by the fast path; the dispatcher falls back to the reference.
  for (const OpsIsa& p : op_paths()) {
    std::vector<float> xv(16, 1.f), yv(4), k(4, 0.25f);
    CHECK_FALSE(p.upfirdn(make_view(xv.data(), 1, 1, 4, 4), make_view(yv.data(), 1, 1, 2, 2), k.data(), 2, 2, 1, 2, 0,
                          Epilogue{}, nullptr));
  }
}

TEST_CASE("upfirdn2d dispatcher matches reference for every ISA cap", "[kernels]") {
  std::mt19937 rng(3);
  auto xv = rand_vec(rng, 2 * 3 * 9 * 11);
  std::vector<float> k(16);
  for (int i = 0; i < 16; ++i) k[size_t(i)] = float((i / 4 == 0 || i / 4 == 3 ? 1 : 3) * (i % 4 == 0 || i % 4 == 3 ? 1 : 3)) / 16.f;
  View x = make_view(xv.data(), 2, 3, 9, 11);
  for (int down : {1, 2}) {
    const int oh = ref::upfirdn2d_out(9, 4, 2, down, 2, 1), ow = ref::upfirdn2d_out(11, 4, 2, down, 2, 1);
    std::vector<float> want(size_t(2) * 3 * oh * ow), got(want.size());
    ref::upfirdn2d(x, make_view(want.data(), 2, 3, oh, ow), k.data(), 4, 4, 2, down, 2, 1, Epilogue{}, nullptr);
    set_isa_cap(Isa::AVX512_BF16);
    const Isa have = active_isa();
    for (Isa cap : {Isa::Generic, Isa::AVX2, Isa::AVX512}) {
      if (cap > have) continue;
      set_isa_cap(cap);
      upfirdn2d(x, make_view(got.data(), 2, 3, oh, ow), k.data(), 4, 4, 2, down, 2, 1, Epilogue{}, nullptr);
      CHECK(max_rel_diff(make_view(got.data(), 2, 3, oh, ow), make_view(want.data(), 2, 3, oh, ow)) < 1e-5);
    }
    set_isa_cap(Isa::AVX512_BF16);
  }
}

TEST_CASE("profile names say which non-conv kernel runs for the ISA cap and the arguments", "[kernels]") {
  std::vector<float> blur(16), ridge(9, 0.f);
  for (int i = 0; i < 16; ++i) blur[size_t(i)] = float((i / 4 == 0 || i / 4 == 3 ? 1 : 3) * (i % 4 == 0 || i % 4 == 3 ? 1 : 3));
  ridge[1] = ridge[3] = ridge[4] = 1.f;  // a plus sign: no outer product
  set_isa_cap(Isa::AVX512_BF16);
  const Isa have = active_isa();
  for (Isa cap : {Isa::Generic, Isa::AVX2, Isa::AVX512}) {
    if (cap > have) continue;
    set_isa_cap(cap);
    const std::string isa = cap == Isa::Generic ? "generic" : cap == Isa::AVX2 ? "avx2" : "avx512";
    INFO(isa);
    if (cap == Isa::Generic) {
      CHECK(upfirdn2d_kernel_name(blur.data(), 4, 4, 2, 1) == "f32_upfirdn2d__generic");
    } else {
      CHECK(upfirdn2d_kernel_name(blur.data(), 4, 4, 2, 1) == "f32_upfirdn2d_separable__" + isa);
      CHECK(upfirdn2d_kernel_name(ridge.data(), 3, 3, 1, 1) == "f32_upfirdn2d_rows__" + isa);
    }
    CHECK(upfirdn2d_kernel_name(blur.data(), 4, 4, 1, 2) == "f32_upfirdn2d__generic");  // down 2: the reference
    CHECK(vector_op_kernel_name("add") == "f32_add__" + isa);
  }
  set_isa_cap(Isa::AVX512_BF16);
}

TEST_CASE("scale_bias_act and add fast paths match reference", "[kernels]") {
  std::mt19937 rng(11);
  ThreadPool pool(2);
  const int shapes[][4] = {{1, 1, 1, 1}, {1, 3, 5, 7}, {3, 5, 13, 1}, {2, 17, 9, 9}, {1, 2, 64, 33}};
  int iter = 0;
  for (const auto& s : shapes) {
    const int n = s[0], c = s[1], h = s[2], w = s[3];
    auto xv = rand_vec(rng, size_t(n) * c * h * w), bv = rand_vec(rng, size_t(n) * c * h * w);
    auto bias = rand_vec(rng, size_t(c));
    for (int variant = 0; variant < 4; ++variant, ++iter) {
      const Epilogue ep = make_ep(variant, bias);
      SlicedBuf xin(n, c, h, w, 0.f);  // input as a channel slice too
      for (int b = 0; b < n; ++b)
        for (int ch = 0; ch < c; ++ch)
          std::copy_n(xv.data() + (int64_t(b) * c + ch) * h * w, h * w, xin.v.at(b, ch));
      std::vector<float> want(xv.size());
      ref::scale_bias_act(make_view(xv.data(), n, c, h, w), make_view(want.data(), n, c, h, w), 0.7f, ep, nullptr);
      std::vector<float> sum(xv.size());
      ref::add(make_view(xv.data(), n, c, h, w), make_view(bv.data(), n, c, h, w), make_view(sum.data(), n, c, h, w),
               nullptr);
      for (const OpsIsa& p : op_paths()) {
        INFO(p.name << " " << n << "x" << c << "x" << h << "x" << w << " variant " << variant);
        SlicedBuf out(n, c, h, w, 5.f);
        p.sba(xin.v, out.v, 0.7f, ep, iter % 2 ? &pool : nullptr);
        CHECK(max_rel_diff(out.v, make_view(want.data(), n, c, h, w)) < 1e-6);
        CHECK(out.outside_untouched(5.f));
        // add, in place (y aliases a)
        std::vector<float> a = xv;
        p.add(make_view(a.data(), n, c, h, w), make_view(bv.data(), n, c, h, w), make_view(a.data(), n, c, h, w),
              &pool);
        CHECK(max_rel_diff(make_view(a.data(), n, c, h, w), make_view(sum.data(), n, c, h, w)) == 0.0);
      }
    }
  }
}

TEST_CASE("linear fast paths match reference", "[kernels]") {
  std::mt19937 rng(5);
  ThreadPool pool(2);
  const int shapes[][3] = {{1, 1, 1}, {1, 7, 3}, {3, 33, 19}, {2, 512, 512}, {1, 8192, 17}, {2, 100, 5}};
  for (const auto& s : shapes) {
    const int n = s[0], in = s[1], out = s[2];
    auto x = rand_vec(rng, size_t(n) * in), w = rand_vec(rng, size_t(out) * in), bias = rand_vec(rng, size_t(out));
    for (int variant = 0; variant < 4; ++variant) {
      const Epilogue ep = make_ep(variant, bias);
      std::vector<float> want(size_t(n) * out);
      ref::linear(x.data(), w.data(), want.data(), n, in, out, ep, nullptr);
      for (const OpsIsa& p : op_paths()) {
        std::vector<float> got(want.size());
        p.linear(x.data(), w.data(), got.data(), n, in, out, ep, variant % 2 ? &pool : nullptr);
        for (size_t i = 0; i < got.size(); ++i) {
          // f32 accumulation against the reference's double: relative to sum |x_i w_i|.
          double mag = 0;
          const int b = int(i / size_t(out)), o = int(i % size_t(out));
          for (int j = 0; j < in; ++j) mag += std::fabs(double(x[size_t(b * in + j)]) * w[size_t(o * in + j)]);
          INFO(p.name << " n=" << n << " in=" << in << " out=" << out << " variant " << variant << " i=" << i);
          CHECK(std::fabs(got[i] - want[i]) <= 1e-5 * std::max(1.0, mag) * ep.gain);
        }
      }
    }
  }
}

TEST_CASE("demodulation factors through the vector linear kernel match the double reference", "[kernels]") {
  std::mt19937 rng(23);
  ThreadPool pool(2);
  // (n, C, K): odd sizes, one channel, and GPEN's widest (1024 -> 512).
  const int shapes[][3] = {{1, 1, 1}, {1, 7, 3}, {3, 33, 19}, {2, 1024, 512}, {4, 513, 65}};
  for (const auto& s : shapes) {
    const int n = s[0], C = s[1], K = s[2];
    auto style = rand_vec(rng, size_t(n) * C), wsq = rand_vec(rng, size_t(K) * C);
    for (float& v : wsq) v = v * v;  // sums of squared weights: never negative
    std::vector<float> want(size_t(n) * K);
    ref::demod_factors(style.data(), wsq.data(), want.data(), n, C, K, 1e-8f);
    for (const Isa cap : {Isa::Generic, Isa::AVX2, Isa::AVX512}) {
      set_isa_cap(cap);
      if (active_isa() != cap) continue;  // the CPU lacks it
      std::vector<float> got(want.size(), -1.f);
      demod_factors(style.data(), wsq.data(), got.data(), n, C, K, 1e-8f, K % 2 ? &pool : nullptr);
      for (size_t i = 0; i < got.size(); ++i) {
        INFO(isa_name(cap) << " n=" << n << " C=" << C << " K=" << K << " i=" << i);
        CHECK(std::fabs(got[i] - want[i]) <= 1e-5 * want[i]);
      }
    }
    set_isa_cap(Isa::AVX512_BF16);
  }
}

TEST_CASE("upsample_nearest and reflect_pad2d row paths match the reference, into channel slices", "[kernels]") {
  std::mt19937 rng(17);
  ThreadPool pool(3);
  const int shapes[][4] = {{1, 1, 1, 1}, {2, 3, 5, 7}, {1, 4, 13, 2}, {3, 2, 9, 33}, {1, 5, 2, 17}};
  int iter = 0;
  for (const auto& s : shapes) {
    const int n = s[0], c = s[1], h = s[2], w = s[3];
    auto xv = rand_vec(rng, size_t(n) * c * h * w);
    const View x = make_view(xv.data(), n, c, h, w);
    ThreadPool* tp = iter++ % 2 ? &pool : nullptr;
    // Upsampling: x2, other integer factors, RetinaFace's FPN ratio (2n - 1 <- n), other ratios,
    // and shrinking.
    const int sizes[][2] = {{2 * h, 2 * w}, {3 * h, w},         {h, 4 * w},
                            {2 * h + 1, 3 * w - 1}, {2 * h - 1, 2 * w - 1}, {(h + 1) / 2, (w + 2) / 3}};
    for (const auto& o : sizes) {
      const int oh = o[0], ow = o[1];
      if (oh < 1 || ow < 1) continue;
      INFO("upsample " << n << "x" << c << "x" << h << "x" << w << " -> " << oh << "x" << ow);
      std::vector<float> want(size_t(n) * c * oh * ow);
      ref::upsample_nearest(x, make_view(want.data(), n, c, oh, ow), nullptr);
      SlicedBuf got(n, c, oh, ow, 777.f);
      upsample_nearest(x, got.v, tp);
      CHECK(max_rel_diff(got.v, make_view(want.data(), n, c, oh, ow)) == 0);
      CHECK(got.outside_untouched(777.f));
    }
    for (int pad = 0; pad < std::min(h, w) && pad <= 3; ++pad) {
      const int oh = h + 2 * pad, ow = w + 2 * pad;
      INFO("reflect pad " << pad << " of " << n << "x" << c << "x" << h << "x" << w);
      std::vector<float> want(size_t(n) * c * oh * ow);
      ref::reflect_pad2d(x, make_view(want.data(), n, c, oh, ow), pad, nullptr);
      SlicedBuf got(n, c, oh, ow, 777.f);
      reflect_pad2d(x, got.v, pad, tp);
      CHECK(max_rel_diff(got.v, make_view(want.data(), n, c, oh, ow)) == 0);
      CHECK(got.outside_untouched(777.f));
    }
  }
}
