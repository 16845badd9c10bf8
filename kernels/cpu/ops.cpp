#include "kernels/cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/generic.h"
#include "kernels/cpu/ops_internal.h"

namespace gpen::cpu {

// Each op takes the best implementation active_isa() allows (GPEN_ISA / set_isa_cap cap it); the
// vectorised ones are identical in AVX2 and AVX-512 form (templates over the vector width).

bool separable_factors(const float* k, int kh, int kw, float* a, float* b) {
  int pivot = 0;
  for (int i = 1; i < kh * kw; ++i)
    if (std::fabs(k[i]) > std::fabs(k[pivot])) pivot = i;
  const float p = k[pivot];
  if (p == 0.f) return false;
  const int py = pivot / kw, px = pivot % kw;
  for (int ky = 0; ky < kh; ++ky) a[ky] = k[ky * kw + px];
  for (int kx = 0; kx < kw; ++kx) b[kx] = k[py * kw + kx] / p;
  for (int ky = 0; ky < kh; ++ky)
    for (int kx = 0; kx < kw; ++kx)
      if (std::fabs(a[ky] * b[kx] - k[ky * kw + kx]) > 1e-6f * std::fabs(p)) return false;
  return true;
}

namespace {
// The ISA part of a kernel name: the non-conv ops have AVX2 and AVX-512 instances only.
const char* ops_isa_suffix() {
  const Isa isa = active_isa();
  return isa >= Isa::AVX512 ? "avx512" : isa == Isa::AVX2 ? "avx2" : "generic";
}
}  // namespace

std::string upfirdn2d_kernel_name(const float* kernel, int kh, int kw, int up, int down) {
  if (active_isa() < Isa::AVX2 || !upfirdn2d_vector_case(kh, kw, up, down)) return "f32_upfirdn2d__generic";
  float a[64], b[64];  // the flip the kernels apply does not change separability
  const char* variant = separable_factors(kernel, kh, kw, a, b) ? "separable" : "rows";
  return std::string("f32_upfirdn2d_") + variant + "__" + ops_isa_suffix();
}

std::string vector_op_kernel_name(const char* op) { return std::string("f32_") + op + "__" + ops_isa_suffix(); }

void upfirdn2d(const View& x, const View& y, const float* kernel, int kh, int kw, int up, int down, int pad0,
               int pad1, const Epilogue& ep, ThreadPool* pool) {
  const Isa isa = active_isa();
  if (isa >= Isa::AVX512 && upfirdn2d_avx512(x, y, kernel, kh, kw, up, down, pad0, ep, pool)) return;
  if (isa == Isa::AVX2 && upfirdn2d_avx2(x, y, kernel, kh, kw, up, down, pad0, ep, pool)) return;
  ref::upfirdn2d(x, y, kernel, kh, kw, up, down, pad0, pad1, ep, pool);
}

void scale_bias_act(const View& x, const View& y, float scale, const Epilogue& ep, ThreadPool* pool) {
  const Isa isa = active_isa();
  if (isa >= Isa::AVX512) return scale_bias_act_avx512(x, y, scale, ep, pool);
  if (isa == Isa::AVX2) return scale_bias_act_avx2(x, y, scale, ep, pool);
  ref::scale_bias_act(x, y, scale, ep, pool);
}

void add(const View& a, const View& b, const View& y, ThreadPool* pool) {
  const Isa isa = active_isa();
  if (isa >= Isa::AVX512) return add_avx512(a, b, y, pool);
  if (isa == Isa::AVX2) return add_avx2(a, b, y, pool);
  ref::add(a, b, y, pool);
}

void linear(const float* x, const float* w, float* y, int n, int in, int out, const Epilogue& ep, ThreadPool* pool) {
  const Isa isa = active_isa();
  if (isa >= Isa::AVX512) return linear_avx512(x, w, y, n, in, out, ep, pool);
  if (isa == Isa::AVX2) return linear_avx2(x, w, y, n, in, out, ep, pool);
  ref::linear(x, w, y, n, in, out, ep, pool);
}

void demod_factors(const float* style, const float* wsq, float* d, int n, int C, int K, float eps, ThreadPool* pool) {
  if (active_isa() == Isa::Generic) return ref::demod_factors(style, wsq, d, n, C, K, eps);
  std::vector<float> s2(size_t(n) * C);  // a few KB: the squared styles
  for (size_t i = 0; i < s2.size(); ++i) s2[i] = style[i] * style[i];
  linear(s2.data(), wsq, d, n, C, K, Epilogue{}, pool);
  for (int64_t i = 0; i < int64_t(n) * K; ++i) d[i] = 1.f / std::sqrt(d[i] + eps);
}

namespace {
// f(x plane, y plane) for every (sample, channel), the planes spread over the pool.
template <class F>
void for_each_plane(const View& x, const View& y, ThreadPool* pool, F&& f) {
  parallel_for(pool, int64_t(x.n) * x.c, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) f(x.at(int(i / x.c), int(i % x.c)), y.at(int(i / x.c), int(i % x.c)));
  });
}
}  // namespace

// The reference's source indices (min(in - 1, out_index * in / out)), computed once per call:
// a column table, and output rows that repeat the previous one's source row copied whole.
// Integer factors and RetinaFace's FPN ratios (135 <- 68 rows at 1080p) both take this path.
void upsample_nearest(const View& x, const View& y, ThreadPool* pool) {
  if (x.h < 1 || x.w < 1) return ref::upsample_nearest(x, y, pool);
  std::vector<int> sx(size_t(y.w));
  for (int ox = 0; ox < y.w; ++ox) sx[size_t(ox)] = std::min(x.w - 1, int(int64_t(ox) * x.w / y.w));
  const bool twice = y.w == 2 * x.w;
  for_each_plane(x, y, pool, [&](const float* xp, float* yp) {
    int prev = -1;
    for (int oy = 0; oy < y.h; ++oy) {
      const int sy = std::min(x.h - 1, int(int64_t(oy) * x.h / y.h));
      float* row = yp + int64_t(oy) * y.w;
      if (sy == prev) {
        std::memcpy(row, row - y.w, sizeof(float) * size_t(y.w));
        continue;
      }
      prev = sy;
      const float* src = xp + int64_t(sy) * x.w;
      if (twice)
        for (int j = 0; j < x.w; ++j) row[2 * j] = row[2 * j + 1] = src[j];
      else
        for (int ox = 0; ox < y.w; ++ox) row[ox] = src[sx[size_t(ox)]];
    }
  });
}

// Reflection (PyTorch's ReflectionPad2d: the edge is not repeated); needs pad < h, w as the graph
// checks. Rows: the reflected left edge, the row itself, the reflected right edge.
void reflect_pad2d(const View& x, const View& y, int pad, ThreadPool* pool) {
  if (pad < 0 || pad >= x.h || pad >= x.w) return ref::reflect_pad2d(x, y, pad, pool);
  for_each_plane(x, y, pool, [&](const float* xp, float* yp) {
    for (int oy = 0; oy < y.h; ++oy) {
      const int sy = oy < pad ? pad - oy : oy - pad >= x.h ? 2 * (x.h - 1) - (oy - pad) : oy - pad;
      const float* row = xp + int64_t(sy) * x.w;
      float* out = yp + int64_t(oy) * y.w;
      for (int j = 0; j < pad; ++j) out[j] = row[pad - j];
      std::memcpy(out + pad, row, sizeof(float) * size_t(x.w));
      for (int j = 0; j < pad; ++j) out[pad + x.w + j] = row[x.w - 2 - j];
    }
  });
}

}  // namespace gpen::cpu
