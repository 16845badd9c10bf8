// Direct ("tap") convolution as an implicit GEMM, templated on an element policy P so that the
// AVX2, AVX-512 and AVX-512-BF16 files share it. Include inside the per-ISA namespace after
// simd_internal.h and buffers_internal.h (and <algorithm>, <string>, <vector>).
//
// Idea. The input of one sample is repacked (once per run, with the modulation in_scale folded in)
// into zero-padded planes of width Wh, so that output position (oy, ox) of a pass sits at flat grid
// index p = oy*Wh + ox and EVERY tap (ky, kx) reads the packed input at p + offs[t]: a conv is then
//   acc[k][p] = sum_{c,t} w[k][c][t] * in[c][p + offs[t]]
// i.e. a GEMM whose B operand is addressed by offsets -- no im2col, and any H, W works (grid
// columns >= OW are computed and dropped: 2 of W+2 for a 3x3 pad-1 conv).
//   * stride s > 1: the padded input is split into s*s phase planes (row/col parity for s = 2); tap
//     (ky, kx) reads phase (ky%s, kx%s) at offset (ky/s, kx/s), so the grid is again dense.
//   * transposed stride s: output phase (py, px) = (oy%s, ox%s) only receives taps with
//     ky = py + pad (mod s); each phase is a small dense conv (2x2, 2x1, 1x2, 1x1 taps for 3x3/s2)
//     over the input padded by one, written to every s-th output.
// Blocking (GotoBLAS-like): a work item is (sample, pass, block of NB grid points, block of KB
// output channels); inside it the reduction is split in chunks of kc channels so that a KT x kc x T
// weight panel stays in L1 while the NB-point input panel (kc x ~NB floats) stays in L2 -- or, for
// policies with input_stationary (AVX2), so that one tile's input, copied into a contiguous panel,
// stays in L1 while the weight panels stream from L2 (on Zen 3 the L2 could not feed the input at
// the FMA rate, and the tap-offset loop cost load slots). Partial sums
// live in a per-thread KB x NB scratch; the epilogue (demodulation, bias, activation) runs once at
// the end and writes the valid grid points into the (possibly channel-sliced) NCHW output.
//
// Policy P provides: S (vector traits of the epilogue), elem (float, or uint32 = a bf16 channel
// pair), CU (channels per reduction unit: 1 or 2), KT, NV, W (pixels per vector), input_stationary
// (the loop order of compute()), micro<KT,NV>() (the tap-offset micro-kernel, weight-stationary
// policies) or micro_packed<KT,NV>() and micro_strided<KT,NV>() (packed panels and one-tap planes
// read in place, input-stationary ones), packed_gemm,
// pack_w(w0, w1) -> elem, pack_rows(elem*, const float* r0, const float* r1, n), and names.

inline int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// dst[j] = x[s*j + b - padL] * scale for j in [0, Wh) (0 outside the row); src null: zero row.
inline void fill_row(float* dst, const float* src, int W, int Wh, int s, int b, int padL, float scale) {
  if (!src) {
    std::memset(dst, 0, sizeof(float) * size_t(Wh));
    return;
  }
  const int j0 = std::min(Wh, std::max(0, floor_div(padL - b + s - 1, s)));
  const int j1 = std::max(j0, std::min(Wh, floor_div(W - 1 + padL - b, s) + 1));
  std::memset(dst, 0, sizeof(float) * size_t(j0));
  const float* sp = src + b - padL;
  if (s == 1) {
    if (scale == 1.f)
      std::memcpy(dst + j0, sp + j0, sizeof(float) * size_t(j1 - j0));
    else
      for (int j = j0; j < j1; ++j) dst[j] = sp[j] * scale;
  } else {
    for (int j = j0; j < j1; ++j) dst[j] = sp[s * j] * scale;
  }
  std::memset(dst + j1, 0, sizeof(float) * size_t(Wh - j1));
}

template <class P>
class DirectConv final : public ConvKernel {
  using E = typename P::elem;
  static constexpr int KT = P::KT, NV = P::NV, TILE = P::W * NV, CU = P::CU;

 public:
  // Returns false (kernel unusable) for shapes this family does not handle.
  static bool supports(const ConvDesc& d) {
    if (d.groups != 1 || d.C < 1 || d.K < 1 || d.kh < 1 || d.kw < 1 || d.stride < 1 || d.pad < 0) return false;
    if (d.kh * d.kw > 64) return false;
    // Transposed: every output phase must get at least one tap (else it is just the epilogue of 0).
    if (d.transposed && (d.stride > d.kh || d.stride > d.kw)) return false;
    return true;
  }

  DirectConv(const ConvDesc& d, const float* w) : d_(d), units_(int(div_up(d.C, CU))), ktiles_(int(div_up(d.K, KT))) {
    name_ = std::string(P::dtype) + (d.transposed ? "_convT_subpixel_" : "_conv_direct_") + std::to_string(KT) + "x" +
            std::to_string(TILE) + "__" + P::isa;
    const int s = d.stride;
    if (!d.transposed) {
      passes_.emplace_back();
      for (int ky = 0; ky < d.kh; ++ky)
        for (int kx = 0; kx < d.kw; ++kx) passes_[0].taps.push_back({ky, kx, 0, 0});
    } else {
      for (int py = 0; py < s; ++py)
        for (int px = 0; px < s; ++px) {
          Pass p;
          p.py = py, p.px = px;
          for (int ky = 0; ky < d.kh; ++ky)
            for (int kx = 0; kx < d.kw; ++kx)
              if ((py + d.pad - ky) % s == 0 && (px + d.pad - kx) % s == 0)
                p.taps.push_back({ky, kx, floor_div(py + d.pad - ky, s), floor_div(px + d.pad - kx, s)});
          passes_.push_back(std::move(p));
        }
    }
    for (Pass& p : passes_) pack_weights(p, w);
    pointwise_ = !d.transposed && d.kh == 1 && d.kw == 1 && d.stride == 1 && d.pad == 0;
  }

  std::string name() const override { return name_; }

  // The padded, modulated copy of the input (none for plain 1x1 convs, which read it in place).
  size_t scratch_bytes(int n, int h, int w) const override {
    if (d_.out_h(h) <= 0 || d_.out_w(w) <= 0 || n <= 0 || (CU == 1 && pointwise_)) return 0;
    return size_t(n) * units_ * size_t(geometry(h, w).cs) * sizeof(E);
  }

  void run(const ConvRun& r) const override {
    if (d_.out_h(r.x.h) <= 0 || d_.out_w(r.x.w) <= 0 || r.x.n <= 0) return;  // empty output
    const Geo g = geometry(r.x.h, r.x.w);
    const int N = r.x.n;
    // Plain 1x1 convs (f32) read the NCHW input in place: no padding is needed and the modulation
    // goes into per-sample copies of the (small, K x C) weights instead of a copy of the input.
    const bool in_place = CU == 1 && pointwise_;
    const E* in = nullptr;
    int64_t in_stride = 0;  // elements between samples
    const E* wn = nullptr;  // per-sample scaled weights (in_place with in_scale)
    if (in_place) {
      in = reinterpret_cast<const E*>(r.x.data), in_stride = r.x.batch_stride;
      if (r.in_scale) wn = scale_weights(r);
    } else {
      E* buf = r.scratch ? static_cast<E*>(r.scratch) : thread_scratch<E>(0, size_t(N) * units_ * g.cs);
      pack_input(r, g, buf);
      in = buf, in_stride = int64_t(units_) * g.cs;
    }

    // Work items: (sample, pass group, grid block, channel block), sized so that every thread gets
    // several (the pool balances uneven ones). A transposed stride-2 conv groups the two column
    // phases of an output row parity, so that their results are interleaved into whole rows.
    const int threads = r.pool ? r.pool->size() : 1;
    const int gsize = pair_phases() ? 2 : 1, groups = int(passes_.size()) / gsize;
    std::vector<int> gpoints(size_t(groups), 0);
    for (int gi = 0; gi < groups; ++gi)
      for (int j = 0; j < gsize; ++j) gpoints[size_t(gi)] = std::max(gpoints[size_t(gi)], g.pass[size_t(gi * gsize + j)].points);
    // Input-stationary: up to 256 output channels per item, so that the input panel comes from
    // memory once for (nearly) all of them (3-12% on Zen 3 over 32).
    int nb = 4 * TILE, kb = std::min(ktiles_, P::input_stationary ? 256 / KT : 8);
    auto count = [&] {
      int64_t items = 0;
      for (int pts : gpoints) items += div_up(pts, nb);
      return items * N * div_up(ktiles_, kb);
    };
    while (count() < 3 * threads && (kb > 1 || nb > TILE)) {
      if (kb > 2 || (kb > 1 && nb == TILE))
        kb = (kb + 1) / 2;
      else
        nb -= TILE;
    }
    struct Item {
      int n, group, p0, p1, kt0, kt1;
    };
    std::vector<Item> items;
    for (int n = 0; n < N; ++n)
      for (int gi = 0; gi < groups; ++gi)
        for (int p0 = 0; p0 < gpoints[size_t(gi)]; p0 += nb)
          for (int kt0 = 0; kt0 < ktiles_; kt0 += kb)
            items.push_back({n, gi, p0, std::min(gpoints[size_t(gi)], p0 + nb), kt0, std::min(ktiles_, kt0 + kb)});

    parallel_for(r.pool, int64_t(items.size()), 1, [&](int64_t b, int64_t e) {
      float* acc = thread_scratch<float>(1, size_t(gsize) * kb * KT * nb);
      for (int64_t i = b; i < e; ++i) {
        const Item& it = items[size_t(i)];
        const int64_t acc_size = int64_t(kb) * KT * nb;
        for (int j = 0; j < gsize; ++j) {
          const int pi = it.group * gsize + j;
          const E* w = wn ? wn + int64_t(it.n) * passes_[0].w.size() : passes_[size_t(pi)].w.data();
          compute(pi, g, w, in + int64_t(it.n) * in_stride, in_place, it.p0, it.p1, it.kt0, it.kt1, acc + j * acc_size,
                  nb);
        }
        if (gsize == 2)
          epilogue_pair(r, g, it.n, it.group * 2, it.p0, it.p1, it.kt0, it.kt1, acc, acc + acc_size, nb);
        else
          epilogue(r, g, it.n, it.group, it.p0, it.p1, it.kt0, it.kt1, acc, nb);
      }
    });
  }

 private:
  struct Tap {
    int ky, kx, dy, dx;  // dy, dx: transposed only -- input row/col offset relative to the grid point
  };
  struct Pass {
    int py = 0, px = 0;  // output phase (transposed); 0 for a normal conv
    std::vector<Tap> taps;
    AlignedArray<E> w;  // [ktiles][units][T][KT], zero for k >= K or c >= C
  };
  struct PassGeo {
    int gh = 0, gw = 0, points = 0;  // grid rows, valid columns, grid points to compute
    std::vector<int> offs;          // per tap, in elements of one channel unit
  };
  struct Geo {
    int OH, OW, Hh, Wh, padT, padL;
    std::vector<int> phase;  // normal conv: (a*s + b) -> packed phase index or -1
    std::vector<int> phase_ab;
    int64_t plane, cs;  // elements per phase plane / per channel unit
    std::vector<PassGeo> pass;
  };

  void pack_weights(Pass& p, const float* w) {
    const int T = int(p.taps.size()), C = d_.C, K = d_.K, khw = d_.kh * d_.kw;
    p.w.resize(size_t(ktiles_) * units_ * T * KT);
    E* dst = p.w.data();
    for (int kt = 0; kt < ktiles_; ++kt)
      for (int u = 0; u < units_; ++u)
        for (int t = 0; t < T; ++t)
          for (int kk = 0; kk < KT; ++kk) {
            const int k = kt * KT + kk, tap = p.taps[size_t(t)].ky * d_.kw + p.taps[size_t(t)].kx;
            float v[2] = {0.f, 0.f};
            for (int j = 0; j < CU; ++j) {
              const int c = u * CU + j;
              if (k < K && c < C) v[j] = w[(int64_t(k) * C + c) * khw + tap];
            }
            *dst++ = P::pack_w(v[0], v[1]);
          }
  }

  // Per-sample copies of the packed weights times in_scale[n][c] (in_place 1x1 convs only).
  const E* scale_weights(const ConvRun& r) const {
    const size_t per = passes_[0].w.size();
    E* wn = thread_scratch<E>(2, per * size_t(r.x.n));
    for (int n = 0; n < r.x.n; ++n)
      for (int kt = 0; kt < ktiles_; ++kt)
        for (int u = 0; u < units_; ++u) {
          const float s = r.in_scale[int64_t(n) * d_.C + u];
          const E* src = passes_[0].w.data() + (int64_t(kt) * units_ + u) * KT;
          E* dst = wn + per * size_t(n) + (int64_t(kt) * units_ + u) * KT;
          if constexpr (CU == 1)
            for (int kk = 0; kk < KT; ++kk) dst[kk] = src[kk] * s;
        }
    return wn;
  }

  Geo geometry(int H, int W) const {
    Geo g;
    g.OH = d_.out_h(H), g.OW = d_.out_w(W);
    const int s = d_.stride;
    if (!d_.transposed) {
      g.Hh = g.OH + (d_.kh - 1) / s, g.Wh = g.OW + (d_.kw - 1) / s, g.padT = g.padL = d_.pad;
      g.phase.assign(size_t(s) * s, -1);
      for (const Tap& t : passes_[0].taps) {
        int& ph = g.phase[size_t((t.ky % s) * s + t.kx % s)];
        if (ph < 0) ph = int(g.phase_ab.size()), g.phase_ab.push_back((t.ky % s) * s + t.kx % s);
      }
    } else {
      int minr = 0, minc = 0, rows = H, cols = W;
      for (const Pass& p : passes_)
        for (const Tap& t : p.taps) minr = std::min(minr, t.dy), minc = std::min(minc, t.dx);
      g.padT = -minr, g.padL = -minc;
      for (const Pass& p : passes_) {
        const int gh = div_out(g.OH, p.py), gw = div_out(g.OW, p.px);
        for (const Tap& t : p.taps) {
          if (gh > 0) rows = std::max(rows, gh - 1 + t.dy + g.padT + 1);
          if (gw > 0) cols = std::max(cols, gw - 1 + t.dx + g.padL + 1);
        }
      }
      g.Hh = std::max(rows, H + g.padT), g.Wh = std::max(cols, W + g.padL);
      g.phase_ab = {0};
    }
    g.plane = round_up(int64_t(g.Hh) * g.Wh + TILE + g.Wh, 16);
    g.cs = g.plane * int64_t(g.phase_ab.size());
    if (CU == 1 && pointwise_) g.plane = g.cs = int64_t(H) * W;  // reads the input in place
    for (const Pass& p : passes_) {
      PassGeo pg;
      pg.gh = d_.transposed ? div_out(g.OH, p.py) : g.OH;
      pg.gw = d_.transposed ? div_out(g.OW, p.px) : g.OW;
      pg.points = pg.gh > 0 && pg.gw > 0 ? (pg.gh - 1) * g.Wh + pg.gw : 0;
      for (const Tap& t : p.taps) {
        if (!d_.transposed)
          pg.offs.push_back(int(g.phase[size_t((t.ky % s) * s + t.kx % s)] * g.plane + (t.ky / s) * g.Wh + t.kx / s));
        else
          pg.offs.push_back((t.dy + g.padT) * g.Wh + t.dx + g.padL);
      }
      g.pass.push_back(std::move(pg));
    }
    return g;
  }
  // Number of outputs o in [0, out) with o % s == phase.
  int div_out(int out, int phase) const { return out > phase ? (out - phase + d_.stride - 1) / d_.stride : 0; }

  // Packed input of sample n, channel unit u: phase planes of Hh x Wh, zero padded, times in_scale.
  void pack_input(const ConvRun& r, const Geo& g, E* in) const {
    const int N = r.x.n, H = r.x.h, W = r.x.w, s = d_.transposed ? 1 : d_.stride;
    parallel_for(r.pool, int64_t(N) * units_, 0, [&](int64_t b, int64_t e) {
      float* rows = thread_scratch<float>(2, size_t(CU) * g.Wh);
      for (int64_t i = b; i < e; ++i) {
        const int n = int(i / units_), u = int(i % units_);
        E* dst = in + i * g.cs;
        for (size_t q = 0; q < g.phase_ab.size(); ++q) {
          const int a = d_.transposed ? 0 : g.phase_ab[q] / s, bb = d_.transposed ? 0 : g.phase_ab[q] % s;
          E* pl = dst + int64_t(q) * g.plane;
          for (int y = 0; y < g.Hh; ++y) {
            const int sy = s * y + a - g.padT;
            for (int j = 0; j < CU; ++j) {
              const int c = u * CU + j;
              const bool live = c < d_.C && sy >= 0 && sy < H;
              const float sc = r.in_scale && c < d_.C ? r.in_scale[int64_t(n) * d_.C + c] : 1.f;
              float* row = CU == 1 ? reinterpret_cast<float*>(pl + int64_t(y) * g.Wh) : rows + j * g.Wh;
              fill_row(row, live ? r.x.at(n, c) + int64_t(sy) * W : nullptr, W, g.Wh, s, bb, g.padL, sc);
            }
            if (CU == 2) P::pack_rows(pl + int64_t(y) * g.Wh, rows, rows + g.Wh, g.Wh);
          }
          std::memset(static_cast<void*>(pl + int64_t(g.Hh) * g.Wh), 0,
                      sizeof(E) * size_t(g.plane - int64_t(g.Hh) * g.Wh));
        }
      }
    });
  }

  // acc[kk][p - p0] = sum over all channels and taps, for ktiles [kt0, kt1) and points [p0, p1).
  // in_place (1x1 read from the NCHW input): the tile that runs past the end of the plane is copied
  // into a zero-padded scratch first, so that no load leaves the input tensor.
  void compute(int pi, const Geo& g, const E* w, const E* in, bool in_place, int p0, int p1, int kt0, int kt1,
               float* acc, int ld) const {
    const Pass& p = passes_[size_t(pi)];
    const int T = int(p.taps.size());
    const int* offs = g.pass[size_t(pi)].offs.data();
    const int points = g.pass[size_t(pi)].points;
    // Prefetch the taps that start new cache lines (a new row or phase plane), not their neighbours.
    uint64_t pf = 1;
    for (int t = 1; t < T; ++t)
      if (offs[t] < offs[t - 1] || offs[t] > offs[t - 1] + P::W) pf |= uint64_t(1) << t;
    int q_tail = -1;
    E* tail = nullptr;
    if (in_place && p1 == points && points % TILE) {
      q_tail = p0 + (p1 - p0 - 1) / TILE * TILE;
      tail = thread_scratch<E>(3, size_t(units_) * TILE);
      for (int u = 0; u < units_; ++u) {
        std::memcpy(tail + int64_t(u) * TILE, in + u * g.cs + q_tail, sizeof(E) * size_t(points - q_tail));
        std::memset(static_cast<void*>(tail + int64_t(u) * TILE + (points - q_tail)), 0,
                    sizeof(E) * size_t(TILE - (points - q_tail)));
      }
    }
    if constexpr (P::input_stationary) {
      // One grid tile's input is copied into a contiguous panel [unit][tap][TILE] (an im2col of
      // the tile, ~16 KB, L1 resident) while the weight panels of every channel tile stream past
      // it from L2 (contiguous, so the hardware prefetcher follows). The GEMM over the panel is
      // one flat loop of nu * T steps: no tap offsets, per-unit loop or software prefetch
      // (micro_f32_packed). On Zen 3, GPEN-512's direct and transposed layers ran 15-20 % faster
      // than with the micro-kernel reading the padded planes through tap offsets (session 16).
      // One tap and at most 2 channel tiles (GPEN's ToRGB, 3 outputs): a panel would be used once
      // or twice, so the planes are read in place, prefetching 8 units ahead (packing cost ~10 %
      // on torgb_128-3@512); same channel chunks as with a panel.
      const bool in_place_planes = T == 1 && kt1 - kt0 <= 2;
      const int kc = std::max(1, std::min(units_, 16384 / (T * TILE * int(sizeof(E)))));
      E* panel = in_place_planes ? nullptr : thread_scratch<E>(4, size_t(kc) * T * TILE);
      for (int u0 = 0; u0 < units_; u0 += kc) {
        const int nu = std::min(kc, units_ - u0);
        for (int q = p0; q < p1; q += TILE) {
          if (in_place_planes) {
            const bool t = q == q_tail;
            const E* x = t ? tail + int64_t(u0) * TILE : in + u0 * g.cs + q + offs[0];
            for (int kt = kt0; kt < kt1; ++kt)
              P::template micro_strided<KT, NV>(w + (int64_t(kt) * units_ + u0) * KT, x, t ? TILE : g.cs, nu,
                                                acc + int64_t(kt - kt0) * KT * ld + (q - p0), ld, u0 > 0);
            continue;
          }
          if (q == q_tail)
            pack_panel(tail + int64_t(u0) * TILE, offs, T, 0, TILE, nu, panel);
          else
            pack_panel(in + int64_t(u0) * g.cs + q, offs, T, pf, g.cs, nu, panel);
          for (int kt = kt0; kt < kt1; ++kt)
            P::template micro_packed<KT, NV>(w + (int64_t(kt) * units_ + u0) * T * KT, panel, TILE, nu * T,
                                             acc + int64_t(kt - kt0) * KT * ld + (q - p0), ld, u0 > 0);
        }
      }
    } else {
      // Weight-stationary: kc channel units per chunk so that one KT x kc x T weight panel is
      // ~16 KB (L1 resident) while the tiles of the block's input stream past it from L2.
      const int kc = std::max(1, std::min(units_, 16384 / int(T * KT * sizeof(E))));
      for (int u0 = 0; u0 < units_; u0 += kc) {
        const int nu = std::min(kc, units_ - u0);
        for (int kt = kt0; kt < kt1; ++kt) {
          const E* wp = w + (int64_t(kt) * units_ + u0) * T * KT;
          float* a = acc + int64_t(kt - kt0) * KT * ld - p0;
          for (int q = p0; q < p1; q += TILE) {
            if (q == q_tail)
              P::template micro<KT, NV>(wp, tail + u0 * TILE, offs, T, 1, TILE, nu, a + q, ld, u0 > 0);
            else
              P::template micro<KT, NV>(wp, in + u0 * g.cs + q, offs, T, pf, g.cs, nu, a + q, ld, u0 > 0);
          }
        }
      }
    }
  }

  // panel[(u * T + t) * TILE + i] = x[u * cs + offs[t] + i] for u < nu, t < T, i < TILE. Bit t of
  // pf marks the taps that start new cache lines: their lines 8 units ahead are prefetched (the
  // planes are far apart, the hardware prefetchers do not follow).
  static void pack_panel(const E* x, const int* offs, int T, uint64_t pf, int64_t cs, int nu, E* panel) {
    for (int u = 0; u < nu; ++u, x += cs)
      for (int t = 0; t < T; ++t, panel += TILE) {
        const E* src = x + offs[t];
        if (u + 8 < nu && (pf >> t & 1))
          for (int v = 0; v <= TILE * int(sizeof(E)) / 64; ++v)
            _mm_prefetch(reinterpret_cast<const char*>(src + 8 * cs) + 64 * v, _MM_HINT_T0);
        std::memcpy(panel, src, sizeof(E) * TILE);
      }
  }

  void epilogue(const ConvRun& r, const Geo& g, int n, int pi, int p0, int p1, int kt0, int kt1, const float* acc,
                int ld) const {
    const Pass& p = passes_[size_t(pi)];
    const PassGeo& pg = g.pass[size_t(pi)];
    const int s = d_.transposed ? d_.stride : 1, OW = g.OW;
    const Epilogue& ep = r.ep;
    for (int k = kt0 * KT; k < std::min(d_.K, kt1 * KT); ++k) {
      const float os = r.out_scale ? r.out_scale[int64_t(n) * d_.K + k] : 1.f;
      const float* bias = ep.bias ? ep.bias + k : nullptr;
      const float* a = acc + int64_t(k - kt0 * KT) * ld - p0;
      float* out = r.y.at(n, k);
      for (int gy = p0 / g.Wh; gy <= (p1 - 1) / g.Wh; ++gy) {
        const int x0 = std::max(0, p0 - gy * g.Wh), x1 = std::min(pg.gw, p1 - gy * g.Wh);
        if (x1 <= x0) continue;
        const float* src = a + int64_t(gy) * g.Wh;
        if (s == 1) {
          epilogue_span<typename P::S>(out + int64_t(gy) * OW + x0, src + x0, x1 - x0, os, bias, ep.slope, ep.gain);
        } else {
          float* row = out + int64_t(p.py + s * gy) * OW + p.px;
          for (int x = x0; x < x1; ++x) {
            float v = src[x] * os;
            if (bias) v += *bias;
            if (v < 0) v *= ep.slope;
            row[s * x] = v * ep.gain;
          }
        }
      }
    }
  }

  // Transposed stride 2: passes (py, 0) and (py, 1) are computed together (see run()).
  bool pair_phases() const { return d_.transposed && d_.stride == 2; }

  // Epilogue of passes pi (px = 0) and pi + 1 (px = 1) of a transposed stride-2 conv: output row
  // 2*gy + py gets both phases interleaved, written with whole vectors.
  void epilogue_pair(const ConvRun& r, const Geo& g, int n, int pi, int p0, int p1, int kt0, int kt1, const float* acc0,
                     const float* acc1, int ld) const {
    using S = typename P::S;
    using V = typename S::V;
    const int py = passes_[size_t(pi)].py, OW = g.OW;
    const Epilogue& ep = r.ep;
    for (int k = kt0 * KT; k < std::min(d_.K, kt1 * KT); ++k) {
      const VecEpilogue<S> f(r.out_scale ? r.out_scale[int64_t(n) * d_.K + k] : 1.f, ep.bias ? ep.bias + k : nullptr,
                             ep.slope, ep.gain);
      const float* a0 = acc0 + int64_t(k - kt0 * KT) * ld - p0;
      const float* a1 = acc1 + int64_t(k - kt0 * KT) * ld - p0;
      float* out = r.y.at(n, k);
      for (int gy = p0 / g.Wh; gy <= (p1 - 1) / g.Wh; ++gy) {
        if (py + 2 * gy >= g.OH) continue;
        // Grid columns [x0, x1) of this block -> output columns [2*x0, min(OW, 2*x1)).
        const int x0 = std::max(0, p0 - gy * g.Wh), x1 = std::min(p1 - gy * g.Wh, (OW + 1) / 2);
        const float* s0 = a0 + int64_t(gy) * g.Wh;
        const float* s1 = a1 + int64_t(gy) * g.Wh;
        float* row = out + int64_t(py + 2 * gy) * OW;
        for (int x = x0; x < x1; x += S::W) {
          const int m = std::min(S::W, x1 - x);
          const V e0 = f(S::load_n(s0 + x, m)), e1 = f(S::load_n(s1 + x, m));
          S::store_interleave2(row + 2 * x, e0, e1, std::min(2 * m, OW - 2 * x));
        }
      }
    }
  }

  ConvDesc d_;
  int units_, ktiles_;
  bool pointwise_ = false;  // 1x1, stride 1, pad 0, not transposed
  std::string name_;
  std::vector<Pass> passes_;
};
