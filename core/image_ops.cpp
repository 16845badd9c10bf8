#include "core/image_ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "core/error.h"
#include "core/rounding.h"
#include "core/thread_pool.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/warp_bilinear.h"

namespace gpen {

// ------------------------------------------------------------------------------------------------
// Basics

FloatImage::FloatImage(int w, int h, int c, float fill) : width(w), height(h), channels(c) {
  if (w < 0 || h < 0 || c <= 0) fail("float image shape ", w, "x", h, "x", c, " is invalid");
  pixels.assign(size_t(w) * size_t(h) * size_t(c), fill);
}

FloatImage to_float(const Image& img) {
  FloatImage out(img.width, img.height, img.channels);
  for (size_t i = 0; i < img.pixels.size(); ++i) out.pixels[i] = float(img.pixels[i]);
  return out;
}

Rect intersect(const Rect& a, const Rect& b) {
  int x0 = std::max(a.x, b.x), y0 = std::max(a.y, b.y);
  int x1 = std::min(a.right(), b.right()), y1 = std::min(a.bottom(), b.bottom());
  if (x1 <= x0 || y1 <= y0) return Rect{};
  return Rect{x0, y0, x1 - x0, y1 - y0};
}

Image crop_image(const Image& img, const Rect& r) {
  if (r.empty() || r.x < 0 || r.y < 0 || r.right() > img.width || r.bottom() > img.height)
    fail("crop_image: rectangle ", r.x, ",", r.y, " ", r.width, "x", r.height, " is not inside the ", img.width, "x",
         img.height, " image");
  Image out(r.width, r.height, img.channels);
  const size_t bytes = out.row_bytes();
  for (int y = 0; y < r.height; ++y) std::memcpy(out.row(y), img.row(r.y + y) + size_t(r.x) * img.channels, bytes);
  return out;
}

Rect unite(const Rect& a, const Rect& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  int x0 = std::min(a.x, b.x), y0 = std::min(a.y, b.y);
  int x1 = std::max(a.right(), b.right()), y1 = std::max(a.bottom(), b.bottom());
  return Rect{x0, y0, x1 - x0, y1 - y0};
}

Affine invert_affine(const Affine& m) {
  double det = m[0] * m[4] - m[1] * m[3];
  if (det == 0 || !std::isfinite(det)) fail("affine matrix is singular and cannot be inverted");
  double a = m[4] / det, b = -m[1] / det, d = -m[3] / det, e = m[0] / det;
  return Affine{a, b, -a * m[2] - b * m[5], d, e, -d * m[2] - e * m[5]};
}

void apply_affine(const Affine& m, double x, double y, double& out_x, double& out_y) {
  out_x = m[0] * x + m[1] * y + m[2];
  out_y = m[3] * x + m[4] * y + m[5];
}

namespace {

// ------------------------------------------------------------------------------------------------
// Bilinear resize

struct LinearTaps {
  std::vector<int> i0, i1;
  std::vector<float> w0, w1;
};

// PyTorch's compute_indices_weights_linear (align_corners=False), in float like its CPU kernel.
LinearTaps linear_taps(int in, int out) {
  LinearTaps t;
  t.i0.resize(size_t(out)); t.i1.resize(size_t(out));
  t.w0.resize(size_t(out)); t.w1.resize(size_t(out));
  const float scale = float(in) / float(out);
  for (int d = 0; d < out; ++d) {
    float real = scale * (float(d) + 0.5f) - 0.5f;
    if (real < 0.f) real = 0.f;  // clamp at the left/top edge
    int idx = std::min(int(std::floor(real)), in - 1);
    float lambda = std::clamp(real - float(idx), 0.f, 1.f);
    t.i0[size_t(d)] = idx;
    t.i1[size_t(d)] = idx + (idx < in - 1 ? 1 : 0);  // right/bottom edge repeats the last pixel
    t.w0[size_t(d)] = 1.f - lambda;
    t.w1[size_t(d)] = lambda;
  }
  return t;
}

// Interpolates one source row along x into `out` (dst_width * channels floats).
template <class T>
void resize_row_x(const T* src, int channels, const LinearTaps& tx, float* out) {
  const size_t n = tx.i0.size();
  for (size_t x = 0; x < n; ++x) {
    const T* a = src + size_t(tx.i0[x]) * channels;
    const T* b = src + size_t(tx.i1[x]) * channels;
    for (int c = 0; c < channels; ++c) out[x * channels + c] = float(a[c]) * tx.w0[x] + float(b[c]) * tx.w1[x];
  }
}

// Shared body: x pass per source row (cached for the two rows in use), then the y blend.
template <class T, class Store>
void resize_bilinear_impl(const T* src, int in_w, int in_h, int channels, int out_w, int out_h, Store store) {
  if (in_w <= 0 || in_h <= 0 || out_w <= 0 || out_h <= 0)
    fail("resize_bilinear: cannot resize ", in_w, "x", in_h, " to ", out_w, "x", out_h);
  const LinearTaps tx = linear_taps(in_w, out_w), ty = linear_taps(in_h, out_h);
  const size_t row_len = size_t(out_w) * size_t(channels);
  const size_t src_stride = size_t(in_w) * size_t(channels);
  std::vector<float> row_a(row_len), row_b(row_len), blended(row_len);
  int cached_a = -1, cached_b = -1;
  for (int y = 0; y < out_h; ++y) {
    int y0 = ty.i0[size_t(y)], y1 = ty.i1[size_t(y)];
    if (cached_a != y0) {
      if (cached_b == y0) { std::swap(row_a, row_b); std::swap(cached_a, cached_b); }
      else { resize_row_x(src + size_t(y0) * src_stride, channels, tx, row_a.data()); cached_a = y0; }
    }
    if (cached_b != y1) { resize_row_x(src + size_t(y1) * src_stride, channels, tx, row_b.data()); cached_b = y1; }
    const float w0 = ty.w0[size_t(y)], w1 = ty.w1[size_t(y)];
    for (size_t i = 0; i < row_len; ++i) blended[i] = row_a[i] * w0 + row_b[i] * w1;
    store(y, blended.data(), row_len);
  }
}

}  // namespace

FloatImage resize_bilinear(const FloatImage& src, int width, int height) {
  FloatImage out(std::max(width, 0), std::max(height, 0), src.channels);
  resize_bilinear_impl(src.pixels.data(), src.width, src.height, src.channels, width, height,
                       [&](int y, const float* row, size_t n) { std::memcpy(out.row(y), row, n * sizeof(float)); });
  return out;
}

Image resize_bilinear(const Image& src, int width, int height) {
  Image out(std::max(width, 0), std::max(height, 0), src.channels);
  resize_bilinear_impl(src.pixels.data(), src.width, src.height, src.channels, width, height,
                       [&](int y, const float* row, size_t n) {
                         uint8_t* dst = out.row(y);
                         for (size_t i = 0; i < n; ++i) dst[i] = saturate_round_u8(row[i])  /* half to even, as cvRound */;
                       });
  return out;
}

// ------------------------------------------------------------------------------------------------
// Affine warp, OpenCV-exact (cv::warpAffine -> WarpAffineInvoker -> remapBilinear / remapBicubic)

namespace {

constexpr int kInterBits = 5;                 // OpenCV INTER_BITS: 1/32 px sub-pixel positions
constexpr int kInterTabSize = 1 << kInterBits;
constexpr int kTabEntries = kInterTabSize * kInterTabSize;
constexpr int kAbBits = 10;                   // OpenCV AB_BITS: fixed-point coordinate precision
constexpr int kAbScale = 1 << kAbBits;
constexpr int kRoundDelta = kAbScale / kInterTabSize / 2;
constexpr int kCoefBits = 15;                 // OpenCV INTER_REMAP_COEF_BITS
constexpr int kCoefScale = 1 << kCoefBits;

void linear_coefficients(float x, float* c) {
  c[0] = 1.f - x;
  c[1] = x;
}

// OpenCV's interpolateCubic, float arithmetic and evaluation order kept.
void cubic_coefficients(float x, float* c) {
  const float A = -0.75f;
  c[0] = ((A * (x + 1) - 5 * A) * (x + 1) + 8 * A) * (x + 1) - 4 * A;
  c[1] = ((A + 2) * x - (A + 3)) * x * x + 1;
  c[2] = ((A + 2) * (1 - x) - (A + 3)) * (1 - x) * (1 - x) + 1;
  c[3] = 1.f - c[0] - c[1] - c[2];
}

int16_t saturate_short(float v) {
  long r = std::lrint(v);
  return int16_t(std::clamp<long>(r, std::numeric_limits<int16_t>::min(), std::numeric_limits<int16_t>::max()));
}

// K x K weights for each of the 32 x 32 sub-pixel positions (index fy * 32 + fx), built like
// OpenCV's initInterTab2D: float outer products, and 15-bit integers whose sum is forced to
// exactly 1 << 15 by nudging one tap.
template <int K>
struct WeightTables {
  float real[kTabEntries][K * K];
  int16_t fixed[kTabEntries][K * K];
};

template <int K>
void make_fixed_point_weights(const float* real, int16_t* fixed) {
  int sum = 0;
  for (int k = 0; k < K * K; ++k) sum += fixed[k] = saturate_short(real[k] * kCoefScale);
  if (sum == kCoefScale) return;  // always the case for bilinear (exact products of 1/32 steps)
  int diff = sum - kCoefScale;
  // OpenCV searches rows/columns K/2 .. K/2+1 (taps (2,2)..(3,3) for bicubic), not the true
  // centre; kept, since it is what makes its uint8 output what it is.
  const int half = K / 2;
  int min_k = half * K + half, max_k = min_k;
  for (int k1 = half; k1 < half + 2 && k1 < K; ++k1)
    for (int k2 = half; k2 < half + 2 && k2 < K; ++k2) {
      int k = k1 * K + k2;
      if (fixed[k] < fixed[min_k]) min_k = k;
      else if (fixed[k] > fixed[max_k]) max_k = k;
    }
  if (diff < 0) fixed[max_k] = int16_t(fixed[max_k] - diff);
  else fixed[min_k] = int16_t(fixed[min_k] - diff);
}

template <int K>
const WeightTables<K>& weight_tables() {
  static const WeightTables<K>* tables = [] {
    auto* t = new WeightTables<K>;
    float taps[kInterTabSize][K];
    for (int i = 0; i < kInterTabSize; ++i) {
      const float x = float(i) * (1.f / kInterTabSize);
      if (K == 2) linear_coefficients(x, taps[i]);
      else cubic_coefficients(x, taps[i]);
    }
    for (int fy = 0; fy < kInterTabSize; ++fy)
      for (int fx = 0; fx < kInterTabSize; ++fx) {
        const int idx = fy * kInterTabSize + fx;
        for (int k1 = 0; k1 < K; ++k1)
          for (int k2 = 0; k2 < K; ++k2) t->real[idx][k1 * K + k2] = taps[fy][k1] * taps[fx][k2];
        make_fixed_point_weights<K>(t->real[idx], t->fixed[idx]);
      }
    return t;
  }();
  return *tables;
}

// cv::warpAffine's own inversion (kept rather than invert_affine so the rounding matches);
// a singular matrix gives all zeros, as in OpenCV.
Affine invert_like_opencv(const Affine& M) {
  Affine m = M;
  double D = m[0] * m[4] - m[1] * m[3];
  D = D != 0 ? 1. / D : 0;
  double A11 = m[4] * D, A22 = m[0] * D;
  m[0] = A11; m[1] *= -D;
  m[3] *= -D; m[4] = A22;
  double b1 = -m[0] * m[2] - m[1] * m[5];
  double b2 = -m[3] * m[2] - m[4] * m[5];
  m[2] = b1; m[5] = b2;
  return m;
}

int64_t round_to_int(double v) {  // saturate_cast<int>(double): round half to even
  if (!(v > -2147483648.0)) return std::numeric_limits<int32_t>::min();
  if (!(v < 2147483647.0)) return std::numeric_limits<int32_t>::max();
  return std::llrint(v);
}

// uint8: 15-bit integer weights, (sum + 2^14) >> 15, saturated. float: float weights, sum as is.
struct U8Traits {
  using Pixel = uint8_t;
  using Acc = int;
  using Weight = int16_t;
  template <int K> static const int16_t* weights() { return &weight_tables<K>().fixed[0][0]; }
  static uint8_t store(int sum) { return uint8_t(std::clamp((sum + (1 << (kCoefBits - 1))) >> kCoefBits, 0, 255)); }
};
struct F32Traits {
  using Pixel = float;
  using Acc = float;
  using Weight = float;
  template <int K> static const float* weights() { return &weight_tables<K>().real[0][0]; }
  static float store(float sum) { return sum; }
};

struct WarpSource {
  int width, height, channels;
  size_t stride;  // elements per row
};

// remapBilinear: taps (ix, iy) .. (ix + 1, iy + 1); outside taps count as the border value 0.
// CN: the channel count when known at compile time (1, 3, 4: unrolled channel loops), else 0.
template <class Traits, int CN>
void bilinear_pixel(const typename Traits::Pixel* src, const WarpSource& s, int ix, int iy,
                    const typename Traits::Weight* w, typename Traits::Pixel* dst) {
  using Acc = typename Traits::Acc;
  using Pixel = typename Traits::Pixel;
  const int cn = CN > 0 ? CN : s.channels;
  if (unsigned(ix) < unsigned(std::max(s.width - 1, 0)) && unsigned(iy) < unsigned(std::max(s.height - 1, 0))) {
    const Pixel* p = src + size_t(iy) * s.stride + size_t(ix) * cn;
    for (int c = 0; c < cn; ++c, ++p)
      dst[c] = Traits::store(Acc(p[0] * w[0] + p[cn] * w[1] + p[s.stride] * w[2] + p[s.stride + cn] * w[3]));
    return;
  }
  if (ix >= s.width || ix + 1 < 0 || iy >= s.height || iy + 1 < 0) {
    for (int c = 0; c < cn; ++c) dst[c] = 0;
    return;
  }
  const bool x0 = ix >= 0, x1 = ix + 1 < s.width, y0 = iy >= 0, y1 = iy + 1 < s.height;
  const Pixel* r0 = src + size_t(std::max(iy, 0)) * s.stride;
  const Pixel* r1 = src + size_t(std::min(iy + 1, s.height - 1)) * s.stride;
  const size_t c0 = size_t(std::max(ix, 0)) * cn, c1 = size_t(std::min(ix + 1, s.width - 1)) * cn;
  for (int c = 0; c < cn; ++c) {
    const Pixel v0 = x0 && y0 ? r0[c0 + c] : Pixel(0), v1 = x1 && y0 ? r0[c1 + c] : Pixel(0);
    const Pixel v2 = x0 && y1 ? r1[c0 + c] : Pixel(0), v3 = x1 && y1 ? r1[c1 + c] : Pixel(0);
    dst[c] = Traits::store(Acc(v0 * w[0] + v1 * w[1] + v2 * w[2] + v3 * w[3]));
  }
}

// remapBicubic: taps (ix - 1, iy - 1) .. (ix + 2, iy + 2). Fast path when all 16 are inside;
// otherwise outside taps count as 0, with OpenCV's per-tap summation order.
template <class Traits, int CN>
void bicubic_pixel(const typename Traits::Pixel* src, const WarpSource& s, int ix, int iy,
                   const typename Traits::Weight* w, typename Traits::Pixel* dst) {
  using Acc = typename Traits::Acc;
  using Pixel = typename Traits::Pixel;
  const int sx = ix - 1, sy = iy - 1, cn = CN > 0 ? CN : s.channels;
  if (unsigned(sx) < unsigned(std::max(s.width - 3, 0)) && unsigned(sy) < unsigned(std::max(s.height - 3, 0))) {
    const Pixel* p0 = src + size_t(sy) * s.stride + size_t(sx) * cn;
    for (int c = 0; c < cn; ++c) {
      const Pixel* p = p0 + c;
      Acc sum = p[0] * w[0] + p[cn] * w[1] + p[cn * 2] * w[2] + p[cn * 3] * w[3];
      p += s.stride;
      sum += p[0] * w[4] + p[cn] * w[5] + p[cn * 2] * w[6] + p[cn * 3] * w[7];
      p += s.stride;
      sum += p[0] * w[8] + p[cn] * w[9] + p[cn * 2] * w[10] + p[cn * 3] * w[11];
      p += s.stride;
      sum += p[0] * w[12] + p[cn] * w[13] + p[cn * 2] * w[14] + p[cn * 3] * w[15];
      dst[c] = Traits::store(sum);
    }
    return;
  }
  if (sx >= s.width || sx + 4 <= 0 || sy >= s.height || sy + 4 <= 0) {
    for (int c = 0; c < cn; ++c) dst[c] = 0;
    return;
  }
  for (int c = 0; c < cn; ++c) {
    Acc sum = 0;
    for (int i = 0; i < 4; ++i) {
      int y = sy + i;
      if (y < 0 || y >= s.height) continue;
      const Pixel* row = src + size_t(y) * s.stride + c;
      for (int j = 0; j < 4; ++j) {
        int x = sx + j;
        if (x >= 0 && x < s.width) sum += row[size_t(x) * cn] * w[i * 4 + j];
      }
    }
    dst[c] = Traits::store(sum);
  }
}

// One destination pixel i of a row whose fixed-point start is (X0, Y0). Source positions follow
// cv::WarpAffineInvoker: X = (round((m1*y + m2) * 1024) + 16 + round(m0*x * 1024)) >> 5
// (1/32 px), then the integer part and the 5-bit fraction that picks the weight table.
template <class Traits, int K, int CN>
void warp_pixel(const typename Traits::Pixel* src, const WarpSource& s, const AffineWarper& w, int64_t X0,
                int64_t Y0, int i, typename Traits::Pixel* dst) {
  const typename Traits::Weight* weights = Traits::template weights<K>();  // [32 * 32][K * K]
  const int64_t X = (X0 + w.adelta()[size_t(i)]) >> (kAbBits - kInterBits);
  const int64_t Y = (Y0 + w.bdelta()[size_t(i)]) >> (kAbBits - kInterBits);
  const int ix = int(std::clamp<int64_t>(X >> kInterBits, INT16_MIN, INT16_MAX));  // saturate_cast<short>
  const int iy = int(std::clamp<int64_t>(Y >> kInterBits, INT16_MIN, INT16_MAX));
  const int table = int((Y & (kInterTabSize - 1)) * kInterTabSize + (X & (kInterTabSize - 1)));
  const typename Traits::Weight* wt = weights + table * K * K;
  if (K == 2) bilinear_pixel<Traits, CN>(src, s, ix, iy, wt, dst);
  else bicubic_pixel<Traits, CN>(src, s, ix, iy, wt, dst);
}

// The AVX2 row kernel for this warp, when there is one (bilinear RGB uint8 and 1-channel float:
// paste-back's face and mask) and the CPU has AVX2; nullptr otherwise.
template <class Traits, int K, int CN>
auto vector_row_kernel() {
  using Pixel = typename Traits::Pixel;
  using Kernel = int (*)(const Pixel*, const cpu::BilinearRow&, const typename Traits::Weight*, Pixel*, int32_t*);
  Kernel k = nullptr;
  if constexpr (K == 2 && CN == 3 && std::is_same_v<Pixel, uint8_t>) k = cpu::warp_bilinear_u8c3_row_avx2;
  if constexpr (K == 2 && CN == 1 && std::is_same_v<Pixel, float>) k = cpu::warp_bilinear_f32c1_row_avx2;
  return k && cpu::active_isa() >= cpu::Isa::AVX2 ? k : nullptr;
}

// Destination rows [y_begin, y_end) of the warper's region, written from `out` on (row y_begin
// first). Rows go through the vector row kernel where there is one and its int32 arithmetic
// cannot overflow; the pixels it leaves (groups touching the border) and all other warps are
// computed per pixel.
template <class Traits, int K, int CN>
void warp_rows(const typename Traits::Pixel* src, const WarpSource& s, const AffineWarper& w,
               typename Traits::Pixel* out, int y_begin, int y_end) {
  const int cn = CN > 0 ? CN : s.channels;
  const Affine& inv = w.inverse();
  const Rect& roi = w.roi();
  const auto vector_rows = vector_row_kernel<Traits, K, CN>();
  const size_t src_elems = size_t(s.height) * s.stride;
  const bool vector_ok = vector_rows && w.has_int32_deltas() && src_elems < (size_t(1) << 31);
  std::vector<int32_t> left(vector_ok ? size_t(roi.width) : 0);
  for (int r = y_begin; r < y_end; ++r) {
    const int y = roi.y + r;
    const int64_t X0 = round_to_int((inv[1] * y + inv[2]) * kAbScale) + kRoundDelta;
    const int64_t Y0 = round_to_int((inv[4] * y + inv[5]) * kAbScale) + kRoundDelta;
    typename Traits::Pixel* dst = out + size_t(r - y_begin) * size_t(roi.width) * cn;
    if (vector_ok && std::abs(X0) < (int64_t(1) << 30) && std::abs(Y0) < (int64_t(1) << 30)) {
      const cpu::BilinearRow row{s.width,      s.height,     s.stride, src_elems, int32_t(X0),
                                 int32_t(Y0), w.adelta32(), w.bdelta32(), roi.width};
      const int n = vector_rows(src, row, Traits::template weights<K>(), dst, left.data());
      for (int k = 0; k < n; ++k)
        warp_pixel<Traits, K, CN>(src, s, w, X0, Y0, left[size_t(k)], dst + size_t(left[size_t(k)]) * cn);
      continue;
    }
    for (int i = 0; i < roi.width; ++i) warp_pixel<Traits, K, CN>(src, s, w, X0, Y0, i, dst + size_t(i) * cn);
  }
}

template <class Traits>
void warp_band(const AffineWarper& w, const typename Traits::Pixel* src, const WarpSource& s, int row_begin,
               int row_end, typename Traits::Pixel* out) {
  if (s.width <= 0 || s.height <= 0) fail("warp_affine: source image is empty");
  const auto rows = [&](auto k, auto cn) {
    warp_rows<Traits, decltype(k)::value, decltype(cn)::value>(src, s, w, out, row_begin, row_end);
  };
  const auto with_channels = [&](auto k) {
    switch (s.channels) {
      case 1: return rows(k, std::integral_constant<int, 1>{});
      case 3: return rows(k, std::integral_constant<int, 3>{});
      case 4: return rows(k, std::integral_constant<int, 4>{});
      default: return rows(k, std::integral_constant<int, 0>{});
    }
  };
  if (w.interpolation() == WarpInterpolation::Linear)
    with_channels(std::integral_constant<int, 2>{});
  else
    with_channels(std::integral_constant<int, 4>{});
}

template <class Traits>
void warp_affine_into(const typename Traits::Pixel* src, const WarpSource& s, const Affine& M, const Rect& roi,
                      WarpInterpolation interpolation, typename Traits::Pixel* out, ThreadPool* pool) {
  if (s.width <= 0 || s.height <= 0) fail("warp_affine: source image is empty");
  if (roi.empty()) return;
  const AffineWarper w(M, roi, interpolation);
  const int64_t grain = std::max<int64_t>(1, 65536 / std::max(roi.width, 1));
  parallel_for(pool, roi.height, grain, [&](int64_t begin, int64_t end) {
    warp_band<Traits>(w, src, s, int(begin), int(end), out + size_t(begin) * size_t(roi.width) * s.channels);
  });
}

void check_roi(const Rect& roi) {
  if (roi.width < 0 || roi.height < 0) fail("warp_affine: negative region size ", roi.width, "x", roi.height);
}

}  // namespace

AffineWarper::AffineWarper(const Affine& M, const Rect& roi, WarpInterpolation interpolation)
    : inv_(invert_like_opencv(M)), roi_(roi), interpolation_(interpolation) {
  check_roi(roi);
  adelta_.resize(size_t(roi.width));
  bdelta_.resize(size_t(roi.width));
  for (int i = 0; i < roi.width; ++i) {
    const int x = roi.x + i;
    adelta_[size_t(i)] = round_to_int(inv_[0] * x * kAbScale);
    bdelta_[size_t(i)] = round_to_int(inv_[3] * x * kAbScale);
  }
  // int32 copies for the vector row kernels, when every term is small enough that adding a
  // row's start (also checked under 2^30) cannot overflow.
  const auto small = [](int64_t v) { return std::abs(v) < (int64_t(1) << 30); };
  if (std::all_of(adelta_.begin(), adelta_.end(), small) && std::all_of(bdelta_.begin(), bdelta_.end(), small)) {
    adelta32_.assign(adelta_.begin(), adelta_.end());
    bdelta32_.assign(bdelta_.begin(), bdelta_.end());
  }
}

void AffineWarper::check_band(int row_begin, int row_end) const {
  if (row_begin < 0 || row_end > roi_.height || row_begin > row_end)
    fail("warp_affine: rows ", row_begin, "..", row_end, " outside the region's ", roi_.height);
}

void AffineWarper::rows(const Image& src, int row_begin, int row_end, uint8_t* out) const {
  check_band(row_begin, row_end);
  warp_band<U8Traits>(*this, src.pixels.data(), WarpSource{src.width, src.height, src.channels, src.row_bytes()},
                      row_begin, row_end, out);
}

void AffineWarper::rows(const FloatImage& src, int row_begin, int row_end, float* out) const {
  check_band(row_begin, row_end);
  warp_band<F32Traits>(*this, src.pixels.data(), WarpSource{src.width, src.height, src.channels, src.row_size()},
                       row_begin, row_end, out);
}

Image warp_affine_roi(const Image& src, const Affine& M, const Rect& roi, WarpInterpolation interpolation,
                      ThreadPool* pool) {
  check_roi(roi);
  Image out(roi.width, roi.height, src.channels);
  WarpSource s{src.width, src.height, src.channels, src.row_bytes()};
  warp_affine_into<U8Traits>(src.pixels.data(), s, M, roi, interpolation, out.pixels.data(), pool);
  return out;
}

FloatImage warp_affine_roi(const FloatImage& src, const Affine& M, const Rect& roi, WarpInterpolation interpolation,
                           ThreadPool* pool) {
  check_roi(roi);
  FloatImage out(roi.width, roi.height, src.channels);
  WarpSource s{src.width, src.height, src.channels, src.row_size()};
  warp_affine_into<F32Traits>(src.pixels.data(), s, M, roi, interpolation, out.pixels.data(), pool);
  return out;
}

Image warp_affine(const Image& src, const Affine& M, int dst_width, int dst_height, WarpInterpolation interpolation,
                  ThreadPool* pool) {
  Image out(dst_width, dst_height, src.channels);
  Rect support = warp_affine_support(M, src.width, src.height, dst_width, dst_height);
  Image part = warp_affine_roi(src, M, support, interpolation, pool);
  for (int y = 0; y < support.height; ++y)
    std::memcpy(out.row(support.y + y) + size_t(support.x) * out.channels, part.row(y), part.row_bytes());
  return out;
}

FloatImage warp_affine(const FloatImage& src, const Affine& M, int dst_width, int dst_height,
                       WarpInterpolation interpolation, ThreadPool* pool) {
  FloatImage out(dst_width, dst_height, src.channels);
  Rect support = warp_affine_support(M, src.width, src.height, dst_width, dst_height);
  FloatImage part = warp_affine_roi(src, M, support, interpolation, pool);
  for (int y = 0; y < support.height; ++y)
    std::memcpy(out.row(support.y + y) + size_t(support.x) * out.channels, part.row(y),
                part.row_size() * sizeof(float));
  return out;
}

Rect warp_affine_support(const Affine& M, int src_width, int src_height, int dst_width, int dst_height) {
  const Rect whole{0, 0, dst_width, dst_height};
  const double det = M[0] * M[4] - M[1] * M[3];
  if (det == 0 || !std::isfinite(det)) return whole;
  // A destination pixel can be non-zero only if its (1/32-quantised) source position x lies in
  // [-2, W + 1): there the 4x4 footprint [floor(x) - 1, floor(x) + 2] touches the image.
  // Map that source box, widened for the quantisation, forward; one extra pixel of safety.
  const double xs[2] = {-2.25, src_width + 1.25}, ys[2] = {-2.25, src_height + 1.25};
  double min_x = INFINITY, min_y = INFINITY, max_x = -INFINITY, max_y = -INFINITY;
  for (double sx : xs)
    for (double sy : ys) {
      double dx, dy;
      apply_affine(M, sx, sy, dx, dy);
      min_x = std::min(min_x, dx); max_x = std::max(max_x, dx);
      min_y = std::min(min_y, dy); max_y = std::max(max_y, dy);
    }
  auto clamp_int = [](double v) { return int(std::clamp(v, -1e9, 1e9)); };
  Rect box;
  box.x = clamp_int(std::floor(min_x)) - 1;
  box.y = clamp_int(std::floor(min_y)) - 1;
  box.width = clamp_int(std::ceil(max_x)) + 2 - box.x;
  box.height = clamp_int(std::ceil(max_y)) + 2 - box.y;
  return intersect(box, whole);
}

// ------------------------------------------------------------------------------------------------
// Filters

namespace {

// BORDER_REFLECT_101: ... 2 1 | 0 1 2 ... n-1 | n-2 n-3 ...
int reflect101(int i, int n) {
  if (n == 1) return 0;
  while (i < 0 || i >= n) i = i < 0 ? -i : 2 * n - 2 - i;
  return i;
}

}  // namespace

std::vector<float> gaussian_kernel(int ksize, double sigma) {
  if (ksize <= 0 || ksize % 2 == 0) fail("gaussian_kernel: size must be odd and positive, got ", ksize);
  // cv::getGaussianKernel (OpenCV 4.x: getGaussianKernelBitExact, in double, then cast to float).
  // Without sigma, sizes up to 9 use fixed binomial-like tables (in 1/256).
  static const int kFixed[5][9] = {{256},
                                   {64, 128, 64},
                                   {16, 64, 96, 64, 16},
                                   {8, 28, 56, 72, 56, 28, 8},
                                   {4, 13, 30, 51, 60, 51, 30, 13, 4}};
  std::vector<float> k(static_cast<size_t>(ksize));
  if (sigma <= 0 && ksize <= 9) {
    for (int i = 0; i < ksize; ++i) k[size_t(i)] = float(kFixed[ksize / 2][i]) / 256.f;
    return k;
  }
  const double s = sigma > 0 ? sigma : std::fma(double(ksize), 0.15, 0.35);  // ((n-1)/2 - 1) * 0.3 + 0.8
  const double scale2 = -0.125 / (s * s);  // exp(-(2d)^2 / (8 s^2)) = exp(-d^2 / (2 s^2))
  const int half = (ksize - 1) / 2;
  std::vector<double> values(static_cast<size_t>(half));
  double sum = 0;
  for (int i = 0, x = 1 - ksize; i < half; ++i, x += 2) {
    values[size_t(i)] = std::exp(double(x * x) * scale2);
    sum += values[size_t(i)];
  }
  sum = sum * 2 + 1;  // both sides plus the centre tap exp(0)
  const double norm = 1.0 / sum;
  for (int i = 0; i < half; ++i) k[size_t(i)] = k[size_t(ksize - 1 - i)] = float(values[size_t(i)] * norm);
  k[size_t(half)] = float(norm);
  return k;
}

namespace {

// a * b + c with a single rounding, like the fused multiply-adds of OpenCV's AVX2 filter kernels.
// The product of two floats is exact in double, so only the final add can round twice, which
// needs the double sum to land exactly on a float rounding midpoint (about 1 in 2^29).
inline float fused_multiply_add(float a, float b, float c) { return float(double(a) * double(b) + double(c)); }

}  // namespace

FloatImage gaussian_blur(const FloatImage& src, int ksize, double sigma) {
  const std::vector<float> k = gaussian_kernel(ksize, sigma);
  const int r = ksize / 2, W = src.width, H = src.height, C = src.channels;
  if (W <= 0 || H <= 0) return src;
  const size_t row_len = src.row_size();

  // Row pass, as OpenCV's RowVec_32f (AVX2): s = k0 * x0, then s = fma(x_i, k_i, s) in tap order.
  FloatImage tmp(W, H, C);
  std::vector<float> padded(size_t(W + 2 * r) * C);
  for (int y = 0; y < H; ++y) {
    const float* s = src.row(y);
    for (int x = -r; x < W + r; ++x)
      std::memcpy(&padded[size_t(x + r) * C], s + size_t(reflect101(x, W)) * C, sizeof(float) * C);
    float* t = tmp.row(y);
    for (size_t j = 0; j < row_len; ++j) t[j] = k[0] * padded[j];
    for (int i = 1; i < ksize; ++i) {
      const float w = k[size_t(i)];
      const float* p = &padded[size_t(i) * C];
      for (size_t j = 0; j < row_len; ++j) t[j] = fused_multiply_add(p[j], w, t[j]);
    }
  }
  // Column pass, as SymmColumnVec_32f (AVX2): s = k_centre * centre, then
  // s = fma(below + above, k_d, s) for d = 1 .. r.
  FloatImage out(W, H, C);
  for (int y = 0; y < H; ++y) {
    float* o = out.row(y);
    const float* centre = tmp.row(y);
    for (size_t j = 0; j < row_len; ++j) o[j] = k[size_t(r)] * centre[j];
    for (int d = 1; d <= r; ++d) {
      const float w = k[size_t(r + d)];
      const float* up = tmp.row(reflect101(y - d, H));
      const float* down = tmp.row(reflect101(y + d, H));
      for (size_t j = 0; j < row_len; ++j) o[j] = fused_multiply_add(down[j] + up[j], w, o[j]);
    }
  }
  return out;
}

Image filter2d_3x3(const Image& src, const std::array<int, 9>& kernel, int divisor) {
  if (divisor <= 0) fail("filter2d_3x3: divisor must be positive, got ", divisor);
  const int W = src.width, H = src.height, C = src.channels;
  Image out(W, H, C);
  for (int y = 0; y < H; ++y) {
    const uint8_t* rows[3] = {src.row(reflect101(y - 1, H)), src.row(y), src.row(reflect101(y + 1, H))};
    uint8_t* dst = out.row(y);
    for (int x = 0; x < W; ++x) {
      const int xs[3] = {reflect101(x - 1, W), x, reflect101(x + 1, W)};
      for (int c = 0; c < C; ++c) {
        int sum = 0;
        for (int i = 0; i < 3; ++i)
          for (int j = 0; j < 3; ++j) sum += kernel[size_t(i * 3 + j)] * rows[i][xs[j] * C + c];
        // sum / divisor rounded half to even (floor division, so negative sums work too).
        int q = sum >= 0 ? sum / divisor : -((-sum + divisor - 1) / divisor);
        int rem2 = 2 * (sum - q * divisor);
        if (rem2 > divisor || (rem2 == divisor && (q & 1))) ++q;
        dst[x * C + c] = uint8_t(std::clamp(q, 0, 255));
      }
    }
  }
  return out;
}

Image smooth_3x3(const Image& src) { return filter2d_3x3(src, {1, 2, 1, 2, 4, 2, 1, 2, 1}, 16); }

void fill_rectangle(FloatImage& plane, int x0, int y0, int x1, int y1, float value) {
  if (x0 > x1) std::swap(x0, x1);
  if (y0 > y1) std::swap(y0, y1);
  x0 = std::max(x0, 0); y0 = std::max(y0, 0);
  x1 = std::min(x1, plane.width - 1); y1 = std::min(y1, plane.height - 1);
  for (int y = y0; y <= y1; ++y)
    for (int x = x0; x <= x1; ++x)
      for (int c = 0; c < plane.channels; ++c) plane.at(x, y, c) = value;
}

// ------------------------------------------------------------------------------------------------
// Area downscale

namespace {

// For each output index along one axis: the source indices it covers and their weights (summing
// to 1), flattened.
struct AreaWeights {
  std::vector<int> first, count;  // per output index
  std::vector<int> src;
  std::vector<float> weight;
};

AreaWeights area_weights(int out, int in) {
  AreaWeights a;
  const double scale = double(in) / out;
  for (int o = 0; o < out; ++o) {
    const double lo = o * scale, hi = std::min(double(in), (o + 1) * scale);
    a.first.push_back(int(a.src.size()));
    for (int i = int(std::floor(lo)); i < int(std::ceil(hi)) && i < in; ++i) {
      const double w = std::min(hi, double(i + 1)) - std::max(lo, double(i));
      if (w <= 0) continue;
      a.src.push_back(i);
      a.weight.push_back(float(w / (hi - lo)));
    }
    a.count.push_back(int(a.src.size()) - a.first.back());
  }
  return a;
}

// One output row from `col` (the source row span averaged vertically, in float): each output
// pixel the weighted sum of the source columns it covers. CN: the channel count when known at
// compile time, else 0.
template <int CN>
void area_row(const AreaWeights& ax, const float* col, int channels, uint8_t* out, int width) {
  const int C = CN > 0 ? CN : channels;
  for (int x = 0; x < width; ++x) {
    const size_t t0 = size_t(ax.first[size_t(x)]), n = size_t(ax.count[size_t(x)]);
    float v[4] = {0.f, 0.f, 0.f, 0.f};
    for (int c0 = 0; c0 < C; c0 += 4) {
      const int cn = std::min(4, C - c0);
      for (size_t j = 0; j < n; ++j) {
        const float w = ax.weight[t0 + j];
        const float* p = col + size_t(ax.src[t0 + j]) * C + c0;
        for (int c = 0; c < cn; ++c) v[c] += w * p[c];
      }
      for (int c = 0; c < cn; ++c) {
        out[size_t(x) * C + c0 + c] = saturate_round_u8(v[c]);
        v[c] = 0.f;
      }
    }
  }
}

}  // namespace

// Vertical first: each output row's source rows are averaged into one float row (contiguous,
// vectorised), then resampled horizontally once. Horizontal first would resample every source
// row (3x the rows for a 3x reduction) with the costlier per-pixel tap loop.
Image downscale_area(const Image& src, int width, int height, ThreadPool* pool) {
  if (width <= 0 || height <= 0 || width > src.width || height > src.height)
    fail("downscale_area: ", src.width, "x", src.height, " -> ", width, "x", height, " is not a downscale");
  const int C = src.channels;
  const AreaWeights ax = area_weights(width, src.width), ay = area_weights(height, src.height);
  Image out(width, height, C);
  const size_t in_len = src.row_bytes();
  parallel_for(pool, height, 8, [&](int64_t y0, int64_t y1) {
    std::vector<float> col(in_len);
    for (int y = int(y0); y < int(y1); ++y) {
      const size_t t0 = size_t(ay.first[size_t(y)]);
      for (int k = 0; k < ay.count[size_t(y)]; ++k) {
        const uint8_t* s = src.row(ay.src[t0 + size_t(k)]);
        const float wy = ay.weight[t0 + size_t(k)];
        if (k == 0)
          for (size_t i = 0; i < in_len; ++i) col[i] = wy * float(s[i]);
        else
          for (size_t i = 0; i < in_len; ++i) col[i] += wy * float(s[i]);
      }
      uint8_t* o = out.row(y);
      switch (C) {
        case 1: area_row<1>(ax, col.data(), C, o, width); break;
        case 3: area_row<3>(ax, col.data(), C, o, width); break;
        case 4: area_row<4>(ax, col.data(), C, o, width); break;
        default: area_row<0>(ax, col.data(), C, o, width); break;
      }
    }
  });
  return out;
}

Image fit_on_noise(const Image& src, int width, int height) {
  const double s = std::min(double(width) / src.width, double(height) / src.height);
  const int sw = std::min(width, int(src.width * s + 0.5)), sh = std::min(height, int(src.height * s + 0.5));
  const Image rgb = to_rgb(src);
  const Image scaled = s < 1 ? downscale_area(rgb, sw, sh) : resize_bilinear(rgb, sw, sh);
  Image out(width, height, 3);
  uint32_t state = 12345;
  for (uint8_t& v : out.pixels) {
    state = state * 1664525u + 1013904223u;
    v = uint8_t(68 + (state >> 24) % 120);
  }
  const int x0 = (width - sw) / 2, y0 = (height - sh) / 2;
  for (int y = 0; y < sh; ++y) std::copy(scaled.row(y), scaled.row(y) + size_t(sw) * 3, out.row(y0 + y) + size_t(x0) * 3);
  return out;
}

}  // namespace gpen
