// The generic kernels are the oracle for every optimized path, so they are checked here against
// independent definitions (double precision, written differently) on odd sizes.
#include <catch2/catch.hpp>

#include "kernels/cpu/generic.h"
#include "tests/test_util.h"

using namespace gpen;
using namespace gpen::cpu;
using gpen::test::random_floats;

namespace {

// Straight from the definition: gather form, double accumulation, explicit bounds checks.
std::vector<double> conv_definition(const ConvDesc& d, const std::vector<float>& w, const std::vector<float>& x,
                                    int N, int H, int W) {
  const int OH = d.out_h(H), OW = d.out_w(W), cpg = d.C / d.groups, kpg = d.K / d.groups;
  std::vector<double> y(size_t(N) * d.K * OH * OW, 0.0);
  for (int n = 0; n < N; ++n)
    for (int k = 0; k < d.K; ++k)
      for (int oy = 0; oy < OH; ++oy)
        for (int ox = 0; ox < OW; ++ox) {
          double acc = 0;
          for (int ci = 0; ci < cpg; ++ci)
            for (int ky = 0; ky < d.kh; ++ky)
              for (int kx = 0; kx < d.kw; ++kx) {
                const int c = (k / kpg) * cpg + ci;
                const int iy = oy * d.stride + ky - d.pad, ix = ox * d.stride + kx - d.pad;
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                acc += double(w[((size_t(k) * cpg + ci) * d.kh + ky) * d.kw + kx]) *
                       x[((size_t(n) * d.C + c) * H + iy) * W + ix];
              }
          y[((size_t(n) * d.K + k) * OH + oy) * OW + ox] = acc;
        }
  return y;
}

struct ConvCase {
  int N, C, K, H, W, k, stride, pad, groups;
};

}  // namespace

TEST_CASE("generic conv2d matches the definition on odd shapes", "[kernels][generic]") {
  const ConvCase cases[] = {{1, 3, 5, 7, 9, 3, 1, 1, 1},  {2, 5, 7, 13, 11, 3, 2, 0, 1}, {3, 4, 6, 5, 5, 1, 1, 0, 1},
                            {1, 6, 9, 8, 7, 3, 2, 1, 3},  {2, 8, 8, 9, 6, 3, 1, 1, 8},   {1, 1, 1, 1, 1, 1, 1, 0, 1},
                            {1, 7, 3, 17, 5, 3, 1, 1, 1}, {1, 3, 2, 4, 4, 5, 1, 2, 1}};
  for (const ConvCase& t : cases) {
    ConvDesc d;
    d.C = t.C, d.K = t.K, d.kh = d.kw = t.k, d.stride = t.stride, d.pad = t.pad, d.groups = t.groups;
    const int OH = d.out_h(t.H), OW = d.out_w(t.W);
    auto w = random_floats(size_t(t.K) * (t.C / t.groups) * t.k * t.k, 1);
    auto x = random_floats(size_t(t.N) * t.C * t.H * t.W, 2);
    auto bias = random_floats(size_t(t.K), 3);
    // Write into the upper channel slice of a buffer with 2K channels, as an in-place concat.
    std::vector<float> ybuf(size_t(t.N) * 2 * t.K * OH * OW, 123.f);
    View xv = make_view(x.data(), t.N, t.C, t.H, t.W);
    View yv{ybuf.data() + size_t(t.K) * OH * OW, t.N, t.K, OH, OW, int64_t(2) * t.K * OH * OW};
    Epilogue ep;
    ep.bias = bias.data();
    ep.slope = 0.2f;
    ep.gain = 1.5f;
    ref::conv2d(d, w.data(), xv, yv, nullptr, nullptr, ep, nullptr);
    auto expect = conv_definition(d, w, x, t.N, t.H, t.W);
    for (int n = 0; n < t.N; ++n)
      for (int k = 0; k < t.K; ++k)
        for (int i = 0; i < OH * OW; ++i) {
          double e = expect[(size_t(n) * t.K + k) * OH * OW + i] + bias[size_t(k)];
          e = (e < 0 ? e * 0.2 : e) * 1.5;
          REQUIRE(yv.at(n, k)[i] == Approx(e).margin(1e-4));
          REQUIRE(ybuf[(size_t(n) * 2 * t.K + k) * OH * OW + i] == 123.f);  // lower slice untouched
        }
  }
}

TEST_CASE("generic transposed conv equals zero-insertion then a flipped normal conv", "[kernels][generic]") {
  for (int pad : {0, 1}) {
    const int N = 2, C = 5, K = 3, H = 4, W = 7, k = 3, s = 2;
    ConvDesc dt;
    dt.C = C, dt.K = K, dt.kh = dt.kw = k, dt.stride = s, dt.pad = pad, dt.transposed = true;
    auto w = random_floats(size_t(K) * C * k * k, 4);
    auto x = random_floats(size_t(N) * C * H * W, 5);
    const int OH = dt.out_h(H), OW = dt.out_w(W);
    std::vector<float> y(size_t(N) * K * OH * OW);
    ref::conv2d(dt, w.data(), make_view(x.data(), N, C, H, W), make_view(y.data(), N, K, OH, OW), nullptr, nullptr,
                Epilogue{}, nullptr);
    // Zero-insert x by the stride, pad by k-1-pad, convolve with the spatially flipped kernel.
    const int UH = (H - 1) * s + 1, UW = (W - 1) * s + 1;
    std::vector<float> xu(size_t(N) * C * UH * UW, 0.f);
    for (int n = 0; n < N; ++n)
      for (int c = 0; c < C; ++c)
        for (int iy = 0; iy < H; ++iy)
          for (int ix = 0; ix < W; ++ix)
            xu[((size_t(n) * C + c) * UH + iy * s) * UW + ix * s] = x[((size_t(n) * C + c) * H + iy) * W + ix];
    std::vector<float> wf(w.size());
    for (int o = 0; o < K; ++o)
      for (int c = 0; c < C; ++c)
        for (int ky = 0; ky < k; ++ky)
          for (int kx = 0; kx < k; ++kx)
            wf[((size_t(o) * C + c) * k + ky) * k + kx] = w[((size_t(o) * C + c) * k + (k - 1 - ky)) * k + (k - 1 - kx)];
    ConvDesc dn;
    dn.C = C, dn.K = K, dn.kh = dn.kw = k, dn.pad = k - 1 - pad;
    REQUIRE(dn.out_h(UH) == OH);
    auto expect = conv_definition(dn, wf, xu, N, UH, UW);
    for (size_t i = 0; i < y.size(); ++i) REQUIRE(y[i] == Approx(expect[i]).margin(1e-4));
  }
}

TEST_CASE("generic upfirdn2d matches an explicit upsample-pad-convolve-decimate", "[kernels][generic]") {
  struct Case { int H, W, up, down, p0, p1; };
  for (const Case t : {Case{5, 7, 2, 1, 2, 1}, Case{6, 5, 1, 1, 1, 1}, Case{7, 9, 1, 2, 2, 2}, Case{4, 4, 1, 1, -1, 2},
                       Case{3, 5, 2, 2, 1, 0}}) {
    const int N = 2, C = 3, kh = 4, kw = 4;
    auto kern = random_floats(kh * kw, 6);  // deliberately asymmetric: the flip matters
    auto x = random_floats(size_t(N) * C * t.H * t.W, 7);
    const int OH = ref::upfirdn2d_out(t.H, kh, t.up, t.down, t.p0, t.p1);
    const int OW = ref::upfirdn2d_out(t.W, kw, t.up, t.down, t.p0, t.p1);
    std::vector<float> y(size_t(N) * C * OH * OW);
    ref::upfirdn2d(make_view(x.data(), N, C, t.H, t.W), make_view(y.data(), N, C, OH, OW), kern.data(), kh, kw,
                   t.up, t.down, t.p0, t.p1, Epilogue{}, nullptr);
    // Build the upsampled, padded plane explicitly (PyTorch's upfirdn2d_native), then correlate
    // with the flipped kernel.
    const int PH = t.H * t.up + t.p0 + t.p1, PW = t.W * t.up + t.p0 + t.p1;
    for (int n = 0; n < N; ++n)
      for (int c = 0; c < C; ++c) {
        std::vector<double> p(size_t(PH) * PW, 0.0);
        for (int iy = 0; iy < t.H; ++iy)
          for (int ix = 0; ix < t.W; ++ix) {
            const int py = iy * t.up + t.p0, px = ix * t.up + t.p0;
            if (py >= 0 && py < PH && px >= 0 && px < PW)
              p[size_t(py) * PW + px] = x[((size_t(n) * C + c) * t.H + iy) * t.W + ix];
          }
        for (int oy = 0; oy < OH; ++oy)
          for (int ox = 0; ox < OW; ++ox) {
            double acc = 0;
            for (int ky = 0; ky < kh; ++ky)
              for (int kx = 0; kx < kw; ++kx)
                acc += p[size_t(oy * t.down + ky) * PW + ox * t.down + kx] * kern[size_t(kh - 1 - ky) * kw + (kw - 1 - kx)];
            REQUIRE(y[((size_t(n) * C + c) * OH + oy) * OW + ox] == Approx(acc).margin(1e-5));
          }
      }
  }
}

TEST_CASE("modulated conv: input-scaling form equals per-sample demodulated weights", "[kernels][generic]") {
  const int N = 3, C = 7, K = 5, H = 6, W = 5;
  for (bool transposed : {false, true}) {
    ConvDesc d;
    d.C = C, d.K = K, d.kh = d.kw = 3, d.pad = transposed ? 0 : 1, d.stride = transposed ? 2 : 1;
    d.transposed = transposed;
    auto w = random_floats(size_t(K) * C * 9, 8);
    auto x = random_floats(size_t(N) * C * H * W, 9);
    auto style = random_floats(size_t(N) * C, 10, 0.5f, 1.5f);
    std::vector<float> wsq(size_t(K) * C), dem(size_t(N) * K);
    ref::weight_sq_sums(w.data(), wsq.data(), K, C, 9);
    ref::demod_factors(style.data(), wsq.data(), dem.data(), N, C, K, 1e-8f);
    const int OH = d.out_h(H), OW = d.out_w(W);
    std::vector<float> y(size_t(N) * K * OH * OW);
    ref::conv2d(d, w.data(), make_view(x.data(), N, C, H, W), make_view(y.data(), N, K, OH, OW), style.data(),
                dem.data(), Epilogue{}, nullptr);
    for (int n = 0; n < N; ++n) {
      // StyleGAN2 as written: w' = w * s[c]; w'' = w' * rsqrt(sum w'^2 + eps); conv sample n alone.
      std::vector<float> wn(w.size());
      for (int k = 0; k < K; ++k) {
        double ss = 0;
        for (int c = 0; c < C; ++c)
          for (int j = 0; j < 9; ++j) {
            const double v = double(w[(size_t(k) * C + c) * 9 + j]) * style[size_t(n) * C + c];
            ss += v * v;
          }
        const double dk = 1.0 / std::sqrt(ss + 1e-8);
        for (int c = 0; c < C; ++c)
          for (int j = 0; j < 9; ++j)
            wn[(size_t(k) * C + c) * 9 + j] = float(w[(size_t(k) * C + c) * 9 + j] * style[size_t(n) * C + c] * dk);
      }
      std::vector<float> yn(size_t(K) * OH * OW);
      ref::conv2d(d, wn.data(), make_view(x.data() + size_t(n) * C * H * W, 1, C, H, W),
                  make_view(yn.data(), 1, K, OH, OW), nullptr, nullptr, Epilogue{}, nullptr);
      for (size_t i = 0; i < yn.size(); ++i) REQUIRE(y[size_t(n) * K * OH * OW + i] == Approx(yn[i]).margin(1e-5));
    }
  }
}

TEST_CASE("generic linear, pixel_norm, scale_bias_act, add, nearest", "[kernels][generic]") {
  const int N = 3, IN = 37, OUT = 11;
  auto x = random_floats(size_t(N) * IN, 11), w = random_floats(size_t(OUT) * IN, 12), b = random_floats(OUT, 13);
  std::vector<float> y(size_t(N) * OUT);
  Epilogue ep;
  ep.bias = b.data();
  ep.slope = 0.2f;
  ep.gain = std::sqrt(2.f);
  ref::linear(x.data(), w.data(), y.data(), N, IN, OUT, ep, nullptr);
  for (int n = 0; n < N; ++n)
    for (int o = 0; o < OUT; ++o) {
      double acc = b[size_t(o)];
      for (int i = 0; i < IN; ++i) acc += double(x[size_t(n) * IN + i]) * w[size_t(o) * IN + i];
      REQUIRE(y[size_t(n) * OUT + o] == Approx((acc < 0 ? 0.2 * acc : acc) * std::sqrt(2.0)).margin(1e-5));
    }

  std::vector<float> pn(x.size());
  ref::pixel_norm(x.data(), pn.data(), N, IN, 1, 1e-8f);
  for (int n = 0; n < N; ++n) {
    double ms = 0;
    for (int i = 0; i < IN; ++i) ms += double(pn[size_t(n) * IN + i]) * pn[size_t(n) * IN + i];
    REQUIRE(ms / IN == Approx(1.0).epsilon(1e-5));
  }

  const int C = 3, H = 5, W = 3;
  auto a = random_floats(size_t(N) * C * H * W, 14), c = random_floats(size_t(N) * C * H * W, 15);
  std::vector<float> out(a.size());
  auto va = make_view(a.data(), N, C, H, W), vc = make_view(c.data(), N, C, H, W), vo = make_view(out.data(), N, C, H, W);
  ref::add(va, vc, vo, nullptr);
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(out[i] == a[i] + c[i]);
  Epilogue e2;
  e2.bias = b.data();
  ref::scale_bias_act(va, vo, 0.5f, e2, nullptr);
  for (size_t i = 0; i < a.size(); ++i) REQUIRE(out[i] == Approx(a[i] * 0.5f + b[(i / (H * W)) % C]));

  std::vector<float> up(size_t(N) * C * 10 * 6);
  ref::upsample_nearest(va, make_view(up.data(), N, C, 10, 6), nullptr);
  for (int y = 0; y < 10; ++y)
    for (int xx = 0; xx < 6; ++xx) REQUIRE(up[size_t(y) * 6 + xx] == a[size_t(y / 2) * W + xx / 2]);
}
