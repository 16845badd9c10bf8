// AVX2 rows of the bilinear affine warp (warp_bilinear.h). Eight destination pixels a step:
// their fixed-point source positions, integer taps and weight-table rows in int32 lanes; when
// all eight have their four taps inside the source, the taps and weights are gathered and
// summed exactly as the scalar code does (uint8: int16 x int16 pairs via madd, then
// (sum + 2^14) >> 15 saturated; float: ((p00 w0 + p01 w1) + p10 w2) + p11 w3, no FMA).
#include <immintrin.h>

#include <cstring>

#include "kernels/cpu/warp_bilinear.h"

namespace gpen::cpu {
namespace {

constexpr int kInterBits = 5;  // 1/32 px

struct Taps {
  __m256i offset, table;  // element offset of the top-left tap; weight-table row
  bool inside;            // all eight pixels have their four taps inside the source
  bool outside;           // none of the eight has a tap inside: all are 0 (the border value)
};

// Group [i, i + 8): top-left tap offsets, table rows and whether every tap is inside (with no
// top-left offset above max_offset: what the gathers read past the taps stays in the buffer).
Taps taps_of(const BilinearRow& r, int i, int max_offset, int channels) {
  const __m256i X = _mm256_srai_epi32(
      _mm256_add_epi32(_mm256_set1_epi32(r.x0), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.adelta + i))), 5);
  const __m256i Y = _mm256_srai_epi32(
      _mm256_add_epi32(_mm256_set1_epi32(r.y0), _mm256_loadu_si256(reinterpret_cast<const __m256i*>(r.bdelta + i))), 5);
  Taps t;
  const __m256i ix = _mm256_srai_epi32(X, kInterBits), iy = _mm256_srai_epi32(Y, kInterBits);
  const __m256i frac = _mm256_set1_epi32((1 << kInterBits) - 1);
  t.table = _mm256_add_epi32(_mm256_slli_epi32(_mm256_and_si256(Y, frac), kInterBits), _mm256_and_si256(X, frac));
  const __m256i minus1 = _mm256_set1_epi32(-1);
  __m256i ok = _mm256_and_si256(_mm256_cmpgt_epi32(ix, minus1), _mm256_cmpgt_epi32(_mm256_set1_epi32(r.src_width - 1), ix));
  ok = _mm256_and_si256(ok, _mm256_and_si256(_mm256_cmpgt_epi32(iy, minus1),
                                             _mm256_cmpgt_epi32(_mm256_set1_epi32(r.src_height - 1), iy)));
  // Inside taps give offsets below src_elems (< 2^31, checked by the caller): no int32 overflow.
  t.offset = _mm256_add_epi32(_mm256_mullo_epi32(iy, _mm256_set1_epi32(int(r.stride))),
                              _mm256_mullo_epi32(ix, _mm256_set1_epi32(channels)));
  ok = _mm256_and_si256(ok, _mm256_cmpgt_epi32(_mm256_set1_epi32(max_offset + 1), t.offset));
  t.inside = _mm256_movemask_ps(_mm256_castsi256_ps(ok)) == 0xFF;
  // As the scalar code: no tap inside when ix >= W, ix + 1 < 0, iy >= H or iy + 1 < 0.
  const __m256i minus2 = _mm256_set1_epi32(-2);
  const __m256i out = _mm256_or_si256(
      _mm256_or_si256(_mm256_cmpgt_epi32(ix, _mm256_set1_epi32(r.src_width - 1)), _mm256_cmpgt_epi32(minus2, ix)),
      _mm256_or_si256(_mm256_cmpgt_epi32(iy, _mm256_set1_epi32(r.src_height - 1)), _mm256_cmpgt_epi32(minus2, iy)));
  t.outside = _mm256_movemask_ps(_mm256_castsi256_ps(out)) == 0xFF;
  return t;
}

int leave(int i, int n, int32_t* left, int count) {
  for (int k = i; k < n; ++k) left[count++] = k;
  return count;
}

// The fixed-point bilinear weights of table rows `table` (fy * 32 + fx), computed: 32 (32 - f or
// f)(32 - f or f), which is what the table holds (exact products of 1/32 steps times 2^15) for
// every row but 0, where OpenCV's saturation and sum correction left (32767, 0, 0, 1): that row
// comes from the table (`row0_01`, `row0_23`, packed like the results).
inline void fixed_weights(__m256i table, __m256i row0_01, __m256i row0_23, __m256i* w01, __m256i* w23) {
  const __m256i fx = _mm256_and_si256(table, _mm256_set1_epi32(31)), fy = _mm256_srli_epi32(table, 5);
  const __m256i n32 = _mm256_set1_epi32(32);
  const __m256i gx = _mm256_sub_epi32(n32, fx), gy = _mm256_sub_epi32(n32, fy);
  const __m256i w0 = _mm256_slli_epi32(_mm256_mullo_epi32(gy, gx), 5), w1 = _mm256_slli_epi32(_mm256_mullo_epi32(gy, fx), 5);
  const __m256i w2 = _mm256_slli_epi32(_mm256_mullo_epi32(fy, gx), 5), w3 = _mm256_slli_epi32(_mm256_mullo_epi32(fy, fx), 5);
  const __m256i row0 = _mm256_cmpeq_epi32(table, _mm256_setzero_si256());
  *w01 = _mm256_blendv_epi8(_mm256_or_si256(w0, _mm256_slli_epi32(w1, 16)), row0_01, row0);
  *w23 = _mm256_blendv_epi8(_mm256_or_si256(w2, _mm256_slli_epi32(w3, 16)), row0_23, row0);
}

// Runs body(i, taps) on each group of 8 pixels whose taps are all inside, zeroes the 8 * channels
// values of `dst` of each group wholly outside (the parts of a face's bounding box beyond its
// rotated crop), lists the others (and the row's last width % 8 pixels) in `left`; returns how
// many it listed.
template <class T, class Body>
int for_inside_groups(const BilinearRow& r, int max_offset, int channels, T* dst, int32_t* left, Body body) {
  int count = 0, i = 0;
  for (; i + 8 <= r.width; i += 8) {
    const Taps t = taps_of(r, i, max_offset, channels);
    if (t.inside)
      body(i, t);
    else if (t.outside)
      std::memset(dst + size_t(i) * channels, 0, sizeof(T) * 8 * size_t(channels));
    else
      count = leave(i, i + 8, left, count);
  }
  return leave(i, r.width, left, count);
}

// Channel c of four packed RGBx pixels per lane: (byte c of lo) | (byte c of hi) << 16.
inline __m256i channel_pair(__m256i lo, __m256i hi, int shift) {
  const __m256i byte = _mm256_set1_epi32(0xFF);
  return _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi32(lo, shift), byte),
                         _mm256_slli_epi32(_mm256_and_si256(_mm256_srli_epi32(hi, shift), byte), 16));
}

}  // namespace

int warp_bilinear_u8c3_row_avx2(const uint8_t* src, const BilinearRow& r, const int16_t* weights, uint8_t* dst,
                                int32_t* left) {
  // The gathers read 4 bytes at each tap: the right-hand taps read one byte past their pixel.
  const int max_offset = int(r.src_elems - r.stride) - 7;
  const int* base = reinterpret_cast<const int*>(src);
  const __m256i row0_01 = _mm256_set1_epi32(int(uint16_t(weights[0])) | int(uint32_t(uint16_t(weights[1])) << 16));
  const __m256i row0_23 = _mm256_set1_epi32(int(uint16_t(weights[2])) | int(uint32_t(uint16_t(weights[3])) << 16));
  const __m256i round = _mm256_set1_epi32(1 << 14), zero = _mm256_setzero_si256(), top = _mm256_set1_epi32(255);
  // Per 128-bit half: four pixels of 4 bytes (R, G, B, 0) -> 12 bytes.
  const __m256i compact = _mm256_setr_epi8(0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1,  //
                                           0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, -1, -1, -1, -1);
  return for_inside_groups(r, max_offset, 3, dst, left, [&](int i, const Taps& t) {
    const __m256i off = t.offset;
    const __m256i off_below = _mm256_add_epi32(off, _mm256_set1_epi32(int(r.stride)));
    const __m256i three = _mm256_set1_epi32(3);
    const __m256i p00 = _mm256_i32gather_epi32(base, off, 1);
    const __m256i p01 = _mm256_i32gather_epi32(base, _mm256_add_epi32(off, three), 1);
    const __m256i p10 = _mm256_i32gather_epi32(base, off_below, 1);
    const __m256i p11 = _mm256_i32gather_epi32(base, _mm256_add_epi32(off_below, three), 1);
    __m256i w01, w23;  // int16 w0 | w1 << 16, w2 | w3 << 16
    fixed_weights(t.table, row0_01, row0_23, &w01, &w23);
    __m256i rgb = zero;
    for (int c = 0; c < 3; ++c) {
      const __m256i sum = _mm256_add_epi32(_mm256_madd_epi16(channel_pair(p00, p01, 8 * c), w01),
                                           _mm256_madd_epi16(channel_pair(p10, p11, 8 * c), w23));
      __m256i v = _mm256_srai_epi32(_mm256_add_epi32(sum, round), 15);
      v = _mm256_max_epi32(_mm256_min_epi32(v, top), zero);
      rgb = _mm256_or_si256(rgb, _mm256_slli_epi32(v, 8 * c));
    }
    alignas(32) uint8_t packed[32];
    _mm256_store_si256(reinterpret_cast<__m256i*>(packed), _mm256_shuffle_epi8(rgb, compact));
    std::memcpy(dst + size_t(i) * 3, packed, 12);
    std::memcpy(dst + size_t(i) * 3 + 12, packed + 16, 12);
  });
}

int warp_bilinear_f32c1_row_avx2(const float* src, const BilinearRow& r, const float* /*weights*/, float* dst,
                                 int32_t* left) {
  const int max_offset = int(r.src_elems - r.stride) - 2;
  return for_inside_groups(r, max_offset, 1, dst, left, [&](int i, const Taps& t) {
    const __m256i off = t.offset;
    const __m256 p00 = _mm256_i32gather_ps(src, off, 4);
    const __m256 p01 = _mm256_i32gather_ps(src + 1, off, 4);
    const __m256 p10 = _mm256_i32gather_ps(src + r.stride, off, 4);
    const __m256 p11 = _mm256_i32gather_ps(src + r.stride + 1, off, 4);
    // The table's weights, computed: (1 - fy, fy) x (1 - fx, fx) with f = k / 32, every product
    // exact in float (k1 k2 / 1024), so equal to the table entries bit for bit.
    const __m256 step = _mm256_set1_ps(1.f / 32), one = _mm256_set1_ps(1.f);
    const __m256 fx = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_and_si256(t.table, _mm256_set1_epi32(31))), step);
    const __m256 fy = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_srli_epi32(t.table, 5)), step);
    const __m256 gx = _mm256_sub_ps(one, fx), gy = _mm256_sub_ps(one, fy);
    __m256 sum = _mm256_add_ps(_mm256_mul_ps(p00, _mm256_mul_ps(gy, gx)), _mm256_mul_ps(p01, _mm256_mul_ps(gy, fx)));
    sum = _mm256_add_ps(sum, _mm256_mul_ps(p10, _mm256_mul_ps(fy, gx)));
    sum = _mm256_add_ps(sum, _mm256_mul_ps(p11, _mm256_mul_ps(fy, fx)));
    _mm256_storeu_ps(dst + i, sum);
  });
}

}  // namespace gpen::cpu
