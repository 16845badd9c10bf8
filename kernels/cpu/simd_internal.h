// Thin vector traits over AVX2 (8 floats) and AVX-512 (16 floats) used by the templated kernels
// (conv_direct_impl_internal.h, conv_winograd_impl_internal.h, ops_impl_internal.h).
//
// Include this only from a per-ISA translation unit, INSIDE that unit's own namespace
// (gpen::cpu::avx2, ::avx512, ::avx512bf16) and after <immintrin.h>: everything here is then a
// distinct symbol per ISA, so the linker can never merge an AVX-512 instantiation into the AVX2 path.
// The struct matching the unit's compile flags is defined; the other is skipped.

#if defined(__AVX512F__)
struct SimdAvx512 {
  using V = __m512;
  static constexpr int W = 16;
  static V zero() { return _mm512_setzero_ps(); }
  static V set1(float v) { return _mm512_set1_ps(v); }
  static V load(const float* p) { return _mm512_loadu_ps(p); }
  static void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static __mmask16 mask(int n) { return n >= 16 ? __mmask16(0xffff) : __mmask16((1u << n) - 1); }
  // First n (< W allowed) lanes; the rest read as zero / are not written.
  static V load_n(const float* p, int n) { return _mm512_maskz_loadu_ps(mask(n), p); }
  static void store_n(float* p, V v, int n) { _mm512_mask_storeu_ps(p, mask(n), v); }
  static V add(V a, V b) { return _mm512_add_ps(a, b); }
  static V sub(V a, V b) { return _mm512_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }    // a*b + c
  static V fnmadd(V a, V b, V c) { return _mm512_fnmadd_ps(a, b, c); }  // c - a*b
  // v >= 0 ? v : v * slope (exactly the reference's branch, also for slope > 1)
  static V lrelu(V v, V slope) {
    return _mm512_mask_mul_ps(v, _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ), v, slope);
  }
  static float hsum(V v) { return _mm512_reduce_add_ps(v); }
  // p[0], p[2], ..., p[2W - 2] (reads 2W floats): one phase of a stride-2 row.
  static V load_even2(const float* p) {
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    return _mm512_permutex2var_ps(_mm512_loadu_ps(p), even, _mm512_loadu_ps(p + 16));
  }
  // dst[2i] = a[i], dst[2i+1] = b[i], first n (<= 32) floats.
  static void store_interleave2(float* dst, V a, V b, int n) {
    const __m512i lo = _mm512_setr_epi32(0, 16, 1, 17, 2, 18, 3, 19, 4, 20, 5, 21, 6, 22, 7, 23);
    const __m512i hi = _mm512_setr_epi32(8, 24, 9, 25, 10, 26, 11, 27, 12, 28, 13, 29, 14, 30, 15, 31);
    const V l = _mm512_permutex2var_ps(a, lo, b), h = _mm512_permutex2var_ps(a, hi, b);
    if (n >= 32) {
      _mm512_storeu_ps(dst, l);
      _mm512_storeu_ps(dst + 16, h);
    } else {
      store_n(dst, l, n);
      if (n > 16) store_n(dst + 16, h, n - 16);
    }
  }
};
#endif

#if defined(__AVX2__)
struct SimdAvx2 {
  using V = __m256;
  static constexpr int W = 8;
  static V zero() { return _mm256_setzero_ps(); }
  static V set1(float v) { return _mm256_set1_ps(v); }
  static V load(const float* p) { return _mm256_loadu_ps(p); }
  static void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static __m256i mask(int n) {
    const __m256i lane = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), lane);
  }
  static V load_n(const float* p, int n) { return _mm256_maskload_ps(p, mask(n)); }
  static void store_n(float* p, V v, int n) { _mm256_maskstore_ps(p, mask(n), v); }
  static V add(V a, V b) { return _mm256_add_ps(a, b); }
  static V sub(V a, V b) { return _mm256_sub_ps(a, b); }
  static V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  static V fmadd(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static V fnmadd(V a, V b, V c) { return _mm256_fnmadd_ps(a, b, c); }
  static V lrelu(V v, V slope) {
    const V neg = _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_LT_OQ);
    return _mm256_blendv_ps(v, _mm256_mul_ps(v, slope), neg);
  }
  static float hsum(V v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
  }
  // p[0], p[2], ..., p[2W - 2] (reads 2W floats): one phase of a stride-2 row.
  static V load_even2(const float* p) {
    // (0 2 8 10 | 4 6 12 14) -> lanes reordered as 64-bit pairs 0, 2, 1, 3
    const V mixed = _mm256_shuffle_ps(_mm256_loadu_ps(p), _mm256_loadu_ps(p + 8), _MM_SHUFFLE(2, 0, 2, 0));
    return _mm256_castpd_ps(_mm256_permute4x64_pd(_mm256_castps_pd(mixed), _MM_SHUFFLE(3, 1, 2, 0)));
  }
  // dst[2i] = a[i], dst[2i+1] = b[i], first n (<= 16) floats.
  static void store_interleave2(float* dst, V a, V b, int n) {
    const V lo = _mm256_unpacklo_ps(a, b), hi = _mm256_unpackhi_ps(a, b);  // (0,1 | 4,5), (2,3 | 6,7)
    const V l = _mm256_permute2f128_ps(lo, hi, 0x20), h = _mm256_permute2f128_ps(lo, hi, 0x31);
    if (n >= 16) {
      _mm256_storeu_ps(dst, l);
      _mm256_storeu_ps(dst + 8, h);
    } else {
      store_n(dst, l, n);
      if (n > 8) store_n(dst + 8, h, n - 8);
    }
  }
};
#endif

// y[ox] = fin(sum_t w[t] * src[t][ox]) for ox < n (n rounded up to whole vectors when `full`,
// else the tail stored partially); 4 accumulators (4 vectors of ox) hide the FMA latency. NW > 0:
// that many taps, known at compile time (unrolled); else nw. The rows of FIR filters
// (ops_impl_internal.h) and of depthwise convolutions (conv_depthwise_impl_internal.h).
template <class S, int NW = 0, class Fin>
inline void tap_dot_row(float* y, const float* const* src, const typename S::V* w, int nw, int n, const Fin& fin,
                        bool full) {
  using V = typename S::V;
  const int taps = NW > 0 ? NW : nw;
  int ox = 0;
  for (; ox + 4 * S::W <= n; ox += 4 * S::W) {
    V a0 = S::zero(), a1 = S::zero(), a2 = S::zero(), a3 = S::zero();
    for (int t = 0; t < taps; ++t) {
      const float* r = src[t] + ox;
      a0 = S::fmadd(w[t], S::load(r), a0);
      a1 = S::fmadd(w[t], S::load(r + S::W), a1);
      a2 = S::fmadd(w[t], S::load(r + 2 * S::W), a2);
      a3 = S::fmadd(w[t], S::load(r + 3 * S::W), a3);
    }
    S::store(y + ox, fin(a0)), S::store(y + ox + S::W, fin(a1));
    S::store(y + ox + 2 * S::W, fin(a2)), S::store(y + ox + 3 * S::W, fin(a3));
  }
  for (; ox < n; ox += S::W) {
    V a = S::zero();
    for (int t = 0; t < taps; ++t) a = S::fmadd(w[t], S::load(src[t] + ox), a);
    if (full)
      S::store(y + ox, fin(a));
    else
      S::store_n(y + ox, fin(a), n - ox < S::W ? n - ox : S::W);
  }
}

// act(v * os + bias) * gain on whole vectors: the Epilogue of kernel_types.h for one output
// channel, with its demodulation factor os folded in (same operation order as the reference).
template <class S>
struct VecEpilogue {
  using V = typename S::V;
  VecEpilogue(float os, const float* bias, float slope, float gain)
      : vos(S::set1(os)), vb(S::set1(bias ? *bias : 0.f)), vs(S::set1(slope)), vg(S::set1(gain)),
        has_bias(bias != nullptr), has_act(slope != 1.f), has_gain(gain != 1.f) {}
  V operator()(V v) const {
    v = S::mul(v, vos);
    if (has_bias) v = S::add(v, vb);
    if (has_act) v = S::lrelu(v, vs);
    if (has_gain) v = S::mul(v, vg);
    return v;
  }
  V vos, vb, vs, vg;
  bool has_bias, has_act, has_gain;
};

// y = act(v * os + bias) * gain over n contiguous floats.
template <class S>
inline void epilogue_span(float* dst, const float* src, int n, float os, const float* bias, float slope,
                          float gain) {
  const VecEpilogue<S> f(os, bias, slope, gain);
  int i = 0;
  for (; i + S::W <= n; i += S::W) S::store(dst + i, f(S::load(src + i)));
  if (i < n) S::store_n(dst + i, f(S::load_n(src + i, n - i)), n - i);
}

// The register tile of the micro-kernels below: KT x NV accumulators, loaded from / stored to acc
// (row stride ldacc), and one reduction step c[k][v] += w[k] * x[v*W .. v*W + W).
template <class S, int KT, int NV>
inline void tile_load(typename S::V (&c)[KT][NV], const float* acc, int64_t ldacc, bool accumulate) {
#pragma GCC unroll 16
  for (int k = 0; k < KT; ++k)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) c[k][v] = accumulate ? S::load(acc + k * ldacc + v * S::W) : S::zero();
}
template <class S, int KT, int NV>
inline void tile_store(const typename S::V (&c)[KT][NV], float* acc, int64_t ldacc) {
#pragma GCC unroll 16
  for (int k = 0; k < KT; ++k)
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) S::store(acc + k * ldacc + v * S::W, c[k][v]);
}
template <class S, int KT, int NV>
inline void tile_fma(typename S::V (&c)[KT][NV], const float* w, const float* x) {
  typename S::V b[NV];
#pragma GCC unroll 8
  for (int v = 0; v < NV; ++v) b[v] = S::load(x + v * S::W);
#pragma GCC unroll 16
  for (int k = 0; k < KT; ++k) {
    const typename S::V a = S::set1(w[k]);
#pragma GCC unroll 8
    for (int v = 0; v < NV; ++v) c[k][v] = S::fmadd(a, b[v], c[k][v]);
  }
}

// The f32 register-blocked micro-kernel of every conv here: an implicit GEMM tile of KT output
// channels x NV vectors of pixels (the "pixels" are flattened grid positions for direct convs and
// Winograd tiles for the transformed GEMM).
//   acc[kk][p] (+)= sum_{u < nu} sum_{t < T} w[(u*T + t)*KT + kk] * x[u*cs + offs[t] + p]
// Bit t of pf marks the taps whose input lines are not those of tap t-1 (prefetched ahead).
// Why this shape: per reduction step it issues NV loads + KT broadcasts for KT*NV FMAs, and keeps
// KT*NV accumulators + NV inputs + 1 broadcast in registers (AVX-512: 6x4 -> 24+4+1 of 32 zmm,
// AVX2: 4x3 -> 12+3+1 of 16 ymm). Weights are prepacked so the broadcasts walk memory linearly.
template <class S, int KT, int NV>
inline void micro_f32(const float* __restrict w, const float* __restrict x, const int* offs, int T, uint64_t pf,
                      int64_t cs, int nu, float* __restrict acc, int64_t ldacc, bool accumulate) {
  typename S::V c[KT][NV];
  tile_load<S, KT, NV>(c, acc, ldacc, accumulate);
  for (int u = 0; u < nu; ++u, x += cs) {
    for (int t = 0; t < T; ++t, w += KT) {
      const float* xp = x + offs[t];
      // Successive units' planes are far apart (cs): prefetch 8 units ahead, the hardware
      // prefetchers do not follow this pattern (measured +40% on transposed convs, 1..16 tried).
      if (u + 8 < nu && (pf >> t & 1))
#pragma GCC unroll 8
        for (int v = 0; v <= NV; ++v) _mm_prefetch(reinterpret_cast<const char*>(xp + 8 * cs + v * S::W), _MM_HINT_T0);
      tile_fma<S, KT, NV>(c, w, xp);
    }
  }
  tile_store<S, KT, NV>(c, acc, ldacc);
}

// micro_f32 over a packed panel: acc[kk][p] (+)= sum_{r < steps} w[r*KT + kk] * x[r*ldx + p]: the
// input of a tile laid out contiguously (unit-major, tap-minor: the weights' order), so the
// reduction is one flat loop with no tap offsets and no software prefetch. Why: on Zen 3 this
// loop is bound by its loads (NV + KT per KT*NV FMAs), and every prefetch instruction takes a
// load slot; with the panel in L1 (or streamed from L2 in order) none is needed
// (docs/BENCHMARKS.md, session 16).
// PFD > 0: the steps are far apart (a one-tap conv reading its input planes in place, ldx = the
// plane size), so the lines PFD steps ahead are prefetched, as micro_f32 does.
template <class S, int KT, int NV, int PFD = 0>
inline void micro_f32_packed(const float* __restrict w, const float* __restrict x, int64_t ldx, int steps,
                             float* __restrict acc, int64_t ldacc, bool accumulate) {
  typename S::V c[KT][NV];
  tile_load<S, KT, NV>(c, acc, ldacc, accumulate);
  for (int r = 0; r < steps; ++r, w += KT, x += ldx) {
    if constexpr (PFD > 0)
      if (r + PFD < steps)
#pragma GCC unroll 8
        for (int v = 0; v <= NV; ++v) _mm_prefetch(reinterpret_cast<const char*>(x + PFD * ldx + v * S::W), _MM_HINT_T0);
    tile_fma<S, KT, NV>(c, w, x);
  }
  tile_store<S, KT, NV>(c, acc, ldacc);
}

