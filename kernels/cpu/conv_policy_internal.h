// Element policies of the templated conv kernels (conv_direct_impl_internal.h,
// conv_winograd_impl_internal.h): vector width, register tile, element type of the packed operands,
// the micro-kernel, and the strided-load / interleaved-store helpers of the Winograd transforms.
// Include inside a per-ISA namespace after simd_internal.h; the policies the unit's flags allow are
// defined.

#if defined(__AVX512F__)
// f32, AVX-512: tile 6 output channels x 4 zmm (64 grid points / Winograd tiles).
struct F32Avx512 {
  using S = SimdAvx512;
  using elem = float;
  static constexpr int CU = 1, KT = 6, NV = 4, W = 16;
  static constexpr bool input_stationary = false;  // tuned on Zen 5 (not re-timed since)
  static constexpr bool packed_gemm = false;       // prefetching micro-kernel (Zen 5)
  static constexpr const char* dtype = "f32";
  static constexpr const char* isa = "avx512";
  template <int KT_, int NV_>
  static void micro(const float* w, const float* x, const int* offs, int T, uint64_t pf, int64_t cs, int nu,
                    float* acc, int64_t ld, bool accumulate) {
    micro_f32<S, KT_, NV_>(w, x, offs, T, pf, cs, nu, acc, ld, accumulate);
  }
  static float pack_w(float w0, float) { return w0; }
  static void pack_rows(float*, const float*, const float*, int) {}

  // e[j][t] = rp[4t + j], t < 16, j < 6 (reads rp[0..65]): the 6 columns of 16 adjacent 4-wide tiles.
  static void extract6(const float* rp, __m512 (&e)[6]) {
    const __m512 b0 = _mm512_loadu_ps(rp), b1 = _mm512_loadu_ps(rp + 16), b2 = _mm512_loadu_ps(rp + 32),
                 b3 = _mm512_loadu_ps(rp + 48);
    const __m512i base = _mm512_setr_epi32(0, 4, 8, 12, 16, 20, 24, 28, 0, 4, 8, 12, 16, 20, 24, 28);
    for (int j = 0; j < 4; ++j) {
      // Lanes 0-7 of lo/hi gather every 4th float of (b0,b1) / (b2,b3); one 256-bit shuffle joins them.
      const __m512i idx = _mm512_add_epi32(base, _mm512_set1_epi32(j));
      const __m512 lo = _mm512_permutex2var_ps(b0, idx, b1), hi = _mm512_permutex2var_ps(b2, idx, b3);
      e[j] = _mm512_shuffle_f32x4(lo, hi, _MM_SHUFFLE(1, 0, 1, 0));
    }
    // Columns 4 and 5 are columns 0 and 1 of the next tile: shift by one lane, append rp[64], rp[65].
    const __m512i n4 = _mm512_castps_si512(_mm512_maskz_loadu_ps(1, rp + 64));
    const __m512i n5 = _mm512_castps_si512(_mm512_maskz_loadu_ps(1, rp + 65));
    e[4] = _mm512_castsi512_ps(_mm512_alignr_epi32(n4, _mm512_castps_si512(e[0]), 1));
    e[5] = _mm512_castsi512_ps(_mm512_alignr_epi32(n5, _mm512_castps_si512(e[1]), 1));
  }

  // dst[4t + j] = o[j][t] for the first n of 64 floats: 4 output columns of 16 tiles -> one row.
  static void interleave4(const __m512 (&o)[4], float* dst, int n) {
    const __m512i base = _mm512_setr_epi32(0, 16, 0, 16, 1, 17, 1, 17, 2, 18, 2, 18, 3, 19, 3, 19);
    for (int q = 0; q < 4 && 16 * q < n; ++q) {
      const __m512i idx = _mm512_add_epi32(base, _mm512_set1_epi32(4 * q));
      const __m512 a = _mm512_permutex2var_ps(o[0], idx, o[1]), b = _mm512_permutex2var_ps(o[2], idx, o[3]);
      const __m512 r = _mm512_mask_blend_ps(0xCCCC, a, b);
      if (16 * q + 16 <= n)
        _mm512_storeu_ps(dst + 16 * q, r);
      else
        SimdAvx512::store_n(dst + 16 * q, r, n - 16 * q);
    }
  }
};
#endif

#if defined(__AVX512BF16__)
// bf16 operands with f32 accumulation: a reduction unit is a PAIR of input channels, stored as one
// 32-bit word (even channel in the low half) so that _mm512_dpbf16_ps does 2 MACs per lane:
//   acc[p] += x[c][p] * w[k][c] + x[c+1][p] * w[k][c+1].
template <int KT, int NV>
inline void micro_bf16(const uint32_t* __restrict w, const uint32_t* __restrict x, const int* offs, int T,
                       uint64_t pf, int64_t cs, int nu, float* __restrict acc, int64_t ld, bool accumulate) {
  __m512 c[KT][NV];
#pragma GCC unroll 16
  for (int k = 0; k < KT; ++k)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) c[k][v] = accumulate ? _mm512_loadu_ps(acc + k * ld + v * 16) : _mm512_setzero_ps();
  for (int u = 0; u < nu; ++u, x += cs) {
    for (int t = 0; t < T; ++t, w += KT) {
      const uint32_t* xp = x + offs[t];
      if (u + 8 < nu && (pf >> t & 1))  // far-apart planes: prefetch 8 units ahead (see micro_f32)
#pragma GCC unroll 8
        for (int v = 0; v <= NV; ++v) _mm_prefetch(reinterpret_cast<const char*>(xp + 8 * cs + v * 16), _MM_HINT_T0);
      __m512bh b[NV];
#pragma GCC unroll 8
      for (int v = 0; v < NV; ++v) b[v] = (__m512bh)_mm512_loadu_si512(xp + v * 16);
#pragma GCC unroll 16
      for (int k = 0; k < KT; ++k) {
        const __m512bh a = (__m512bh)_mm512_set1_epi32(int(w[k]));
#pragma GCC unroll 8
        for (int v = 0; v < NV; ++v) c[k][v] = _mm512_dpbf16_ps(c[k][v], a, b[v]);
      }
    }
  }
#pragma GCC unroll 16
  for (int k = 0; k < KT; ++k)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) _mm512_storeu_ps(acc + k * ld + v * 16, c[k][v]);
}

struct Bf16Avx512 {
  using S = SimdAvx512;
  using elem = uint32_t;
  static constexpr int CU = 2, KT = 6, NV = 4, W = 16;
  static constexpr bool input_stationary = false;  // tuned on Zen 5 (not re-timed since)
  static constexpr bool packed_gemm = false;       // prefetching micro-kernel (Zen 5)
  static constexpr const char* dtype = "bf16";
  static constexpr const char* isa = "avx512bf16";
  template <int KT_, int NV_>
  static void micro(const uint32_t* w, const uint32_t* x, const int* offs, int T, uint64_t pf, int64_t cs, int nu,
                    float* acc, int64_t ld, bool accumulate) {
    micro_bf16<KT_, NV_>(w, x, offs, T, pf, cs, nu, acc, ld, accumulate);
  }
  static uint32_t pack_w(float w0, float w1) { return uint32_t(f32_to_bf16(w0)) | uint32_t(f32_to_bf16(w1)) << 16; }
  // dst[i] = bf16(r0[i]) | bf16(r1[i]) << 16 (round to nearest even, like f32_to_bf16).
  static void pack_rows(uint32_t* dst, const float* r0, const float* r1, int n) {
    const __m512i idx = _mm512_setr_epi32(0x00100000, 0x00110001, 0x00120002, 0x00130003, 0x00140004, 0x00150005,
                                          0x00160006, 0x00170007, 0x00180008, 0x00190009, 0x001a000a, 0x001b000b,
                                          0x001c000c, 0x001d000d, 0x001e000e, 0x001f000f);
    for (int i = 0; i < n; i += 16) {
      const __mmask16 m = SimdAvx512::mask(n - i);
      const __m512 a = _mm512_maskz_loadu_ps(m, r0 + i), b = _mm512_maskz_loadu_ps(m, r1 + i);
      // cvtne2ps: words 0-15 = bf16(a), 16-31 = bf16(b); vpermw interleaves them pairwise.
      const __m512i p = _mm512_permutexvar_epi16(idx, (__m512i)_mm512_cvtne2ps_pbh(b, a));
      _mm512_mask_storeu_epi32(dst + i, m, p);
    }
  }
};
#endif

#if defined(__AVX2__) && !defined(__AVX512F__)
// f32, AVX2 (16 ymm): tile 4 output channels x 3 ymm (24 points) -> 12 accumulators + 3 + 1.
struct F32Avx2 {
  using S = SimdAvx2;
  using elem = float;
  static constexpr int CU = 1, KT = 4, NV = 3, W = 8;
  // Input-stationary loop order: on Zen 3 the transposed and stride-2 convs ran 15-20% faster
  // (docs/BENCHMARKS.md, session 14).
  static constexpr bool input_stationary = true;
  // Its GEMMs read packed panels with micro_packed (no software prefetch: on Zen 3 the micro-kernel
  // is bound by its loads and a prefetch takes a load slot; docs/BENCHMARKS.md, session 16).
  static constexpr bool packed_gemm = true;
  static constexpr const char* dtype = "f32";
  static constexpr const char* isa = "avx2";
  template <int KT_, int NV_>
  static void micro_packed(const float* w, const float* x, int64_t ldx, int steps, float* acc, int64_t ld,
                           bool accumulate) {
    micro_f32_packed<S, KT_, NV_>(w, x, ldx, steps, acc, ld, accumulate);
  }
  // The same over far-apart steps (one-tap convs reading their planes in place), prefetching 8 ahead.
  template <int KT_, int NV_>
  static void micro_strided(const float* w, const float* x, int64_t ldx, int steps, float* acc, int64_t ld,
                            bool accumulate) {
    micro_f32_packed<S, KT_, NV_, 8>(w, x, ldx, steps, acc, ld, accumulate);
  }
  static float pack_w(float w0, float) { return w0; }
  static void pack_rows(float*, const float*, const float*, int) {}

  template <int J>
  static __m256 column(__m256 v0, __m256 v1, __m256 v2, __m256 v3) {
    // shuffle_ps picks element J of every 128-bit lane: order t = 0,2,4,6,1,3,5,7; permute fixes it.
    const __m256 a = _mm256_shuffle_ps(v0, v1, _MM_SHUFFLE(J, J, J, J));
    const __m256 b = _mm256_shuffle_ps(v2, v3, _MM_SHUFFLE(J, J, J, J));
    const __m256 c = _mm256_shuffle_ps(a, b, _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_permutevar8x32_ps(c, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
  }
  // e[j][t] = rp[4t + j], t < 8, j < 6 (reads rp[0..33]).
  static void extract6(const float* rp, __m256 (&e)[6]) {
    const __m256 v0 = _mm256_loadu_ps(rp), v1 = _mm256_loadu_ps(rp + 8), v2 = _mm256_loadu_ps(rp + 16),
                 v3 = _mm256_loadu_ps(rp + 24);
    e[0] = column<0>(v0, v1, v2, v3);
    e[1] = column<1>(v0, v1, v2, v3);
    e[2] = column<2>(v0, v1, v2, v3);
    e[3] = column<3>(v0, v1, v2, v3);
    const __m256i shift = _mm256_setr_epi32(1, 2, 3, 4, 5, 6, 7, 7);
    e[4] = _mm256_blend_ps(_mm256_permutevar8x32_ps(e[0], shift), _mm256_broadcast_ss(rp + 32), 0x80);
    e[5] = _mm256_blend_ps(_mm256_permutevar8x32_ps(e[1], shift), _mm256_broadcast_ss(rp + 33), 0x80);
  }
  // dst[4t + j] = o[j][t] for the first n of 32 floats.
  static void interleave4(const __m256 (&o)[4], float* dst, int n) {
    const __m256 u0 = _mm256_unpacklo_ps(o[0], o[1]), u1 = _mm256_unpackhi_ps(o[0], o[1]);
    const __m256 u2 = _mm256_unpacklo_ps(o[2], o[3]), u3 = _mm256_unpackhi_ps(o[2], o[3]);
    const __m256 s0 = _mm256_shuffle_ps(u0, u2, _MM_SHUFFLE(1, 0, 1, 0));  // tiles 0 | 4
    const __m256 s1 = _mm256_shuffle_ps(u0, u2, _MM_SHUFFLE(3, 2, 3, 2));  // tiles 1 | 5
    const __m256 s2 = _mm256_shuffle_ps(u1, u3, _MM_SHUFFLE(1, 0, 1, 0));  // tiles 2 | 6
    const __m256 s3 = _mm256_shuffle_ps(u1, u3, _MM_SHUFFLE(3, 2, 3, 2));  // tiles 3 | 7
    const __m256 r[4] = {_mm256_permute2f128_ps(s0, s1, 0x20), _mm256_permute2f128_ps(s2, s3, 0x20),
                         _mm256_permute2f128_ps(s0, s1, 0x31), _mm256_permute2f128_ps(s2, s3, 0x31)};
    for (int q = 0; q < 4 && 8 * q < n; ++q) {
      if (8 * q + 8 <= n)
        _mm256_storeu_ps(dst + 8 * q, r[q]);
      else
        SimdAvx2::store_n(dst + 8 * q, r[q], n - 8 * q);
    }
  }
};
#endif
