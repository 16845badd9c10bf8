// Vectorised non-conv ops, templated on the vector traits S (simd_internal.h). Include inside the
// per-ISA namespace after simd_internal.h and buffers_internal.h. Semantics are those of generic.h.

// row[j] = x[(j - pad0) / up] where j - pad0 is a multiple of up inside the input, else 0.
inline void expand_row(float* row, const float* src, int W, int up, int pad0, int ew) {
  if (up == 1) {  // a shifted copy: zeros, the row (cropped to [0, ew)), zeros
    const int j0 = std::max(0, pad0), j1 = std::min(ew, W + pad0);
    if (j1 <= j0) {
      std::memset(row, 0, sizeof(float) * size_t(ew));
      return;
    }
    std::memset(row, 0, sizeof(float) * size_t(j0));
    std::memcpy(row + j0, src + (j0 - pad0), sizeof(float) * size_t(j1 - j0));
    std::memset(row + j1, 0, sizeof(float) * size_t(ew - j1));
    return;
  }
  std::memset(row, 0, sizeof(float) * size_t(ew));
  for (int i = 0; i < W; ++i) {
    const int j = i * up + pad0;
    if (j >= ew) break;
    if (j >= 0) row[j] = src[i];
  }
}

// One item of upfirdn2d work: (plane, band of output rows) -- bands so that a 3-channel ToRGB
// upsample still uses every thread.
struct FirBand {
  int n, c, oy0, oy1;
};
template <class F>
void for_each_fir_band(const View& x, int OH, ThreadPool* pool, F&& f) {
  const int band = std::max(1, std::min(OH, 32)), bands = int(div_up(OH, band));
  parallel_for(pool, int64_t(x.n) * x.c * bands, 1, [&](int64_t b, int64_t e) {
    for (int64_t item = b; item < e; ++item) {
      const int plane = int(item / bands), oy0 = int(item % bands) * band;
      f(FirBand{plane / x.c, plane % x.c, oy0, std::min(OH, oy0 + band)});
    }
  });
}

// The upfirdn2d epilogue on one vector, in the reference's order.
template <class S>
struct FirEpilogue {
  typename S::V vb, vs, vg;
  const Epilogue& ep;
  FirEpilogue(const Epilogue& e, int c)
      : vb(S::set1(e.bias ? e.bias[c] : 0.f)), vs(S::set1(e.slope)), vg(S::set1(e.gain)), ep(e) {}
  typename S::V operator()(typename S::V v) const {
    if (ep.bias) v = S::add(v, vb);
    if (ep.slope != 1.f) v = S::lrelu(v, vs);
    if (ep.gain != 1.f) v = S::mul(v, vg);
    return v;
  }
};

// The source rows (and their kernel rows ky) that output row oy reads: rows of the upsampled,
// padded input that are all zero are left out.
inline int fir_taps(int oy, int kh, int up, int pad0, int H, int* src_rows, int* taps) {
  int nt = 0;
  for (int ky = 0; ky < kh; ++ky) {
    const int t = oy + ky - pad0;
    if (t < 0 || t % up || t / up >= H) continue;
    src_rows[nt] = t / up;
    taps[nt++] = ky;
  }
  return nt;
}

// upfirdn2d with down == 1 (every use in GPEN: the blur after a transposed conv, pad (1,1); the
// ToRGB skip upsample, up 2 pad (2,1); the blur before a stride-2 encoder conv, pad (2,2)).
// Output row oy is a correlation of the zero-inserted, padded input with the flipped kernel:
//   y[oy][ox] = sum_{ky,kx} kf[ky][kx] * E_{oy+ky}[ox+kx]
// where E_r is the "expanded" source row r (zeros inserted for up > 1, pad0 zeros in front); all-zero
// rows are skipped. Vectorised over ox, all taps of a row accumulated in registers.
//  * separable kernels (kf = a b^T, GPEN's blurs): each source row is filtered along x once
//    (H_r = b * E_r, kw FMAs per vector), cached while the kh output rows that read it are made
//    (y_oy = sum_ky a[ky] H_{oy+ky}, kh FMAs): 8 instead of 16 FMAs per vector for a 4x4 blur;
//  * any other kernel: each expanded row is cached the same way and all kh x kw taps applied.
template <class S>
void upfirdn2d_separable_t(const View& x, const View& y, const float* a, const float* b, int kh, int kw, int up,
                           int pad0, const Epilogue& ep, ThreadPool* pool) {
  using V = typename S::V;
  const int OH = y.h, OW = y.w, H = x.h, W = x.w;
  const int ew = int(round_up(OW + kw - 1, S::W)) + S::W;  // expanded row width, with vector slack
  const int hw = int(round_up(OW, S::W));                   // x-filtered row width, whole vectors
  V bv[64], av[64];
  for (int kx = 0; kx < kw; ++kx) bv[kx] = S::set1(b[kx]);
  for (int ky = 0; ky < kh; ++ky) av[ky] = S::set1(a[ky]);
  const auto identity = [](V v) { return v; };
  for_each_fir_band(x, OH, pool, [&](const FirBand& fb) {
    float* expanded = thread_scratch<float>(0, size_t(ew) + size_t(kh) * hw);
    float* cache = expanded + ew;
    int tag[64];
    for (int i = 0; i < kh; ++i) tag[i] = -1;
    const float* xp = x.at(fb.n, fb.c);
    float* yp = y.at(fb.n, fb.c);
    const FirEpilogue<S> fin(ep, fb.c);
    const float* taps_x[64];
    for (int kx = 0; kx < kw; ++kx) taps_x[kx] = expanded + kx;
    for (int oy = fb.oy0; oy < fb.oy1; ++oy) {
      int src_rows[64], taps[64];
      const int nt = fir_taps(oy, kh, up, pad0, H, src_rows, taps);
      const float* rows[64];
      V wv[64];
      for (int i = 0; i < nt; ++i) {
        const int sy = src_rows[i], slot = sy % kh;
        float* row = cache + int64_t(slot) * hw;
        if (tag[slot] != sy) {  // filter the new source row along x
          expand_row(expanded, xp + int64_t(sy) * W, W, up, pad0, ew);
          tap_dot_row<S>(row, taps_x, bv, kw, OW, identity, true);
          tag[slot] = sy;
        }
        rows[i] = row;
        wv[i] = av[taps[i]];
      }
      tap_dot_row<S>(yp + int64_t(oy) * OW, rows, wv, nt, OW, fin, false);
    }
  });
}

template <class S>
bool upfirdn2d_t(const View& x, const View& y, const float* kernel, int kh, int kw, int up, int down, int pad0,
                 const Epilogue& ep, ThreadPool* pool) {
  using V = typename S::V;
  if (!upfirdn2d_vector_case(kh, kw, up, down)) return false;
  const int OH = y.h, OW = y.w, H = x.h, W = x.w;
  float kf[64], a[64], b[64];
  for (int ky = 0; ky < kh; ++ky)
    for (int kx = 0; kx < kw; ++kx) kf[ky * kw + kx] = kernel[(kh - 1 - ky) * kw + (kw - 1 - kx)];
  if (separable_factors(kf, kh, kw, a, b)) {
    upfirdn2d_separable_t<S>(x, y, a, b, kh, kw, up, pad0, ep, pool);
    return true;
  }
  const int ew = int(round_up(OW + kw - 1, S::W)) + S::W;
  for_each_fir_band(x, OH, pool, [&](const FirBand& fb) {
    float* cache = thread_scratch<float>(0, size_t(kh) * ew);
    int tag[64];
    for (int i = 0; i < kh; ++i) tag[i] = -1;
    const float* xp = x.at(fb.n, fb.c);
    float* yp = y.at(fb.n, fb.c);
    const FirEpilogue<S> fin(ep, fb.c);
    for (int oy = fb.oy0; oy < fb.oy1; ++oy) {
      int src_rows[64], taps[64];
      const int nt = fir_taps(oy, kh, up, pad0, H, src_rows, taps);
      // Broadcast this row's taps once.
      V wv[64];
      const float* src[64];
      int nw = 0;
      for (int i = 0; i < nt; ++i) {
        const int sy = src_rows[i], slot = sy % kh;
        float* row = cache + int64_t(slot) * ew;
        if (tag[slot] != sy) {
          expand_row(row, xp + int64_t(sy) * W, W, up, pad0, ew);
          tag[slot] = sy;
        }
        for (int kx = 0; kx < kw; ++kx) wv[nw] = S::set1(kf[taps[i] * kw + kx]), src[nw++] = row + kx;
      }
      tap_dot_row<S>(yp + int64_t(oy) * OW, src, wv, nw, OW, fin, false);
    }
  });
  return true;
}

template <class S>
void scale_bias_act_t(const View& x, const View& y, float scale, const Epilogue& ep, ThreadPool* pool) {
  const int64_t plane = x.plane();
  parallel_for(pool, int64_t(x.n) * x.c, 1, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      const int n = int(i / x.c), c = int(i % x.c);
      const float* xp = x.at(n, c);
      float* yp = y.at(n, c);
      // epilogue_span takes int counts: walk big planes in chunks.
      for (int64_t j = 0; j < plane; j += 1 << 30)
        epilogue_span<S>(yp + j, xp + j, int(std::min<int64_t>(plane - j, 1 << 30)), scale,
                         ep.bias ? ep.bias + c : nullptr, ep.slope, ep.gain);
    }
  });
}

template <class S>
void add_t(const View& a, const View& b, const View& y, ThreadPool* pool) {
  const int64_t plane = a.plane();
  parallel_for(pool, int64_t(a.n) * a.c, 1, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const int n = int(i / a.c), c = int(i % a.c);
      const float *ap = a.at(n, c), *bp = b.at(n, c);
      float* yp = y.at(n, c);
      int64_t j = 0;
      for (; j + S::W <= plane; j += S::W) S::store(yp + j, S::add(S::load(ap + j), S::load(bp + j)));
      for (; j < plane; ++j) yp[j] = ap[j] + bp[j];
    }
  });
}

// y[b][o] = ep(dot(x[b], w[o])): f32 dot products with 4 independent vector accumulators.
template <class S>
void linear_t(const float* x, const float* w, float* y, int n, int in, int out, const Epilogue& ep,
              ThreadPool* pool) {
  using V = typename S::V;
  parallel_for(pool, int64_t(n) * out, 0, [&](int64_t lo, int64_t hi) {
    for (int64_t i = lo; i < hi; ++i) {
      const int b = int(i / out), o = int(i % out);
      const float* xr = x + int64_t(b) * in;
      const float* wr = w + int64_t(o) * in;
      V a0 = S::zero(), a1 = S::zero(), a2 = S::zero(), a3 = S::zero();
      int j = 0;
      for (; j + 4 * S::W <= in; j += 4 * S::W) {
        a0 = S::fmadd(S::load(xr + j), S::load(wr + j), a0);
        a1 = S::fmadd(S::load(xr + j + S::W), S::load(wr + j + S::W), a1);
        a2 = S::fmadd(S::load(xr + j + 2 * S::W), S::load(wr + j + 2 * S::W), a2);
        a3 = S::fmadd(S::load(xr + j + 3 * S::W), S::load(wr + j + 3 * S::W), a3);
      }
      for (; j + S::W <= in; j += S::W) a0 = S::fmadd(S::load(xr + j), S::load(wr + j), a0);
      if (j < in) a1 = S::fmadd(S::load_n(xr + j, in - j), S::load_n(wr + j, in - j), a1);
      y[i] = ep.apply(S::hsum(S::add(S::add(a0, a1), S::add(a2, a3))), o);
    }
  });
}
