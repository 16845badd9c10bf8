// Row-ring convolutions, templated over the vector traits of simd_internal.h (include inside a
// per-ISA namespace after simd_internal.h; see conv_depthwise_avx512.cpp):
//  * DepthwiseConv: groups == C == K, one kxk filter per channel (RetinaFace-MobileNet's conv_dw);
//  * SmallChannelConv: a dense conv of few input channels (MobileNet's first layer, 3 -> 8, 3x3
//    stride 2 on the whole photo; GPEN's 3 -> 64 1x1 encoder input), where the direct kernel's
//    packed copy of the input, or its scratch pass, costs more than the arithmetic.
//
// Input rows are copied, as the output rows need them, into a ring of kh padded rows per input
// channel, split into `stride` phases: phase q holds columns q, q + s, q + 2s, ... of the padded
// row, so tap (ky, kx) of output column ox reads phase kx % s at column ox + kx / s -- a plain
// unaligned vector load for every stride, no bounds checks in the inner loop. A ring (a few KB)
// stays in L1 where a whole padded plane (2 MB at 960x540) did not.
//
// The generic kernel (ref::conv2d) ran the depthwise layers at scalar speed: 40 % of RetinaFace's
// time on a 1920x1080 photo (perf, dev machine, 2026-11-26). The first vector version filled the
// whole plane first and looked taps up with a division per tap; 3x3 taps are now unrolled.

// The last kh padded rows of one input plane, phase-split (per worker, reused across planes).
template <class S>
struct RowRing {
  RowRing(const ConvDesc& d, int OW)
      : s(d.stride),
        pad(d.pad),
        rows(d.kh),
        // Every vector load of a row stays inside it: OW rounded up to W, plus the taps' reach.
        cols(int((OW + S::W - 1) / S::W) * S::W + (d.kw - 1) / d.stride + 1),
        buf(size_t(d.stride) * rows * cols) {}
  int s, pad, rows, cols;
  std::vector<float> buf;

  // Padded row r of phase q (r's slot in the ring).
  float* row(int phase, int r) { return buf.data() + (size_t(phase) * rows + size_t(r % rows)) * cols; }

  // Padded row r into the ring: phase q, column j holds padded column j*s + q, i.e. input column
  // j*s + q - pad of input row r - pad (zero outside), times `scale`.
  void fill(const float* xp, int h, int w, float scale, int r) {
    const int iy = r - pad;
    for (int q = 0; q < s; ++q) {
      float* dst = row(q, r);
      if (iy < 0 || iy >= h) {
        std::fill(dst, dst + cols, 0.f);
        continue;
      }
      const float* src = xp + int64_t(iy) * w + q - pad;  // src[j * s] is column j of this phase
      const int j0 = std::min(cols, q >= pad ? 0 : (pad - q + s - 1) / s);
      const int last = w - 1 + pad - q;  // the last src index inside the input row
      const int j1 = last < 0 ? j0 : std::max(j0, std::min(cols, last / s + 1));
      std::fill(dst, dst + j0, 0.f);
      const typename S::V vs = S::set1(scale);
      int j = j0;
      if (s == 1)
        for (; j + S::W <= j1; j += S::W) S::store(dst + j, S::mul(S::load(src + j), vs));
      else if (s == 2)
        for (; j + S::W <= j1 && 2 * (j + S::W) - 1 <= last; j += S::W)
          S::store(dst + j, S::mul(S::load_even2(src + 2 * j), vs));
      for (; j < j1; ++j) dst[j] = src[j * s] * scale;
      std::fill(dst + j1, dst + cols, 0.f);
    }
  }

  // Makes padded rows [top, top + kh) present, filling those not yet in (`filled`: the next row
  // to fill; rows are needed in increasing order).
  void advance(const float* xp, int h, int w, float scale, int top, int* filled) {
    for (int pr = std::max(*filled, top); pr < top + rows; ++pr) fill(xp, h, w, scale, pr);
    *filled = std::max(*filled, top + rows);
  }

  // src[ky * kw + kx]: the row tap (ky, kx) of the output row at padded row `top` reads.
  void tap_rows(int top, int kw, const float** src) {
    for (int ky = 0; ky < rows; ++ky)
      for (int kx = 0; kx < kw; ++kx) src[ky * kw + kx] = row(kx % s, top + ky) + kx / s;
  }
};

// v -> act(v * os + bias) * gain (the order of the reference's epilogue with demodulation).
template <class S>
struct RowEpilogue {
  using V = typename S::V;
  V os, bias, slope, gain;
  RowEpilogue() = default;
  RowEpilogue(const ConvRun& r, int n, int K, int k)
      : os(S::set1(r.out_scale ? r.out_scale[int64_t(n) * K + k] : 1.f)),
        bias(S::set1(r.ep.bias ? r.ep.bias[k] : 0.f)),
        slope(S::set1(r.ep.slope)),
        gain(S::set1(r.ep.gain)) {}
  V apply(V acc) const { return S::mul(S::lrelu(S::add(S::mul(acc, os), bias), slope), gain); }
};

template <class S>
class DepthwiseConv final : public ConvKernel {
 public:
  static constexpr int kMaxTaps = 7;  // per axis; MobileNet uses 3x3

  static bool supports(const ConvDesc& d) {
    return !d.transposed && d.groups > 1 && d.groups == d.C && d.groups == d.K && d.kh <= kMaxTaps &&
           d.kw <= kMaxTaps && d.stride >= 1 && d.stride <= 4 && d.pad >= 0 && d.pad < std::max(d.kh, d.kw);
  }

  DepthwiseConv(const ConvDesc& d, const float* weight, const char* isa)
      : d_(d), weight_(weight, weight + size_t(d.C) * d.kh * d.kw), name_(std::string("f32_conv_depthwise__") + isa) {}

  std::string name() const override { return name_; }

  void run(const ConvRun& r) const override {
    const int OH = d_.out_h(r.x.h), OW = d_.out_w(r.x.w);
    parallel_for(r.pool, int64_t(r.x.n) * d_.C, 1, [&](int64_t begin, int64_t end) {
      RowRing<S> ring(d_, OW);
      for (int64_t i = begin; i < end; ++i) plane(r, int(i / d_.C), int(i % d_.C), OH, OW, ring);
    });
  }

 private:
  using V = typename S::V;

  void plane(const ConvRun& r, int n, int c, int OH, int OW, RowRing<S>& ring) const {
    const float scale = r.in_scale ? r.in_scale[int64_t(n) * d_.C + c] : 1.f;
    const float* xp = r.x.at(n, c);
    const float* wc = weight_.data() + size_t(c) * d_.kh * d_.kw;
    const int ntaps = d_.kh * d_.kw;
    V taps[kMaxTaps * kMaxTaps];
    for (int t = 0; t < ntaps; ++t) taps[t] = S::set1(wc[t]);
    const RowEpilogue<S> ep(r, n, d_.K, c);
    const auto fin = [&ep](V acc) { return ep.apply(acc); };
    float* out = r.y.at(n, c);
    const float* src[kMaxTaps * kMaxTaps];
    int filled = 0;
    for (int oy = 0; oy < OH; ++oy) {
      const int top = oy * d_.stride;  // this output row reads padded rows [top, top + kh)
      ring.advance(xp, r.x.h, r.x.w, scale, top, &filled);
      ring.tap_rows(top, d_.kw, src);
      float* orow = out + int64_t(oy) * OW;
      if (ntaps == 9)  // 3x3, MobileNet's: unrolled
        tap_dot_row<S, 9>(orow, src, taps, ntaps, OW, fin, false);
      else
        tap_dot_row<S>(orow, src, taps, ntaps, OW, fin, false);
    }
  }

  ConvDesc d_;
  std::vector<float> weight_;
  std::string name_;
};

// A dense conv with C <= 4 inputs: K <= 16 outputs with kernels 2x2..7x7 and stride 2..4 (other
// stride-1 kxk convs stay with Winograd / the direct kernel: not measured against this), or a 1x1
// with K <= 64 (GPEN's 3 -> 64 encoder input at 512 px: 7.1 -> 4.6 ms on AVX-512, 11.4 -> 5.0 ms
// on AVX2, one thread; the direct kernel's scratch and epilogue pass cost more than the sums):
// per output row, every input channel's ring rows are read once per vector of columns and
// multiplied into 8 output channels at a time (8 independent sums), then each channel's
// epilogue. Work is split over (sample, output row) ranges; a range refills its rings from its
// first row.
template <class S>
class SmallChannelConv final : public ConvKernel {
 public:
  static constexpr int kMaxC = 4, kMaxK = 16, kMaxTaps = 7, kKB = 8;

  static bool supports(const ConvDesc& d) {
    const bool pointwise = d.kh == 1 && d.kw == 1 && d.stride == 1 && d.pad == 0 && d.K <= 64;
    return !d.transposed && d.groups == 1 && d.C >= 1 && d.C <= kMaxC && d.K >= 1 &&
           (pointwise || (d.K <= kMaxK && d.kh * d.kw >= 4 && d.kh <= kMaxTaps && d.kw <= kMaxTaps && d.stride >= 2 &&
                          d.stride <= 4 && d.pad >= 0 && d.pad < std::max(d.kh, d.kw)));
  }

  // Weights as [K rounded up to 8][C * kh * kw]; the padding outputs have zero weights.
  SmallChannelConv(const ConvDesc& d, const float* weight, const char* isa)
      : d_(d), taps_(d.C * d.kh * d.kw), name_(std::string("f32_conv_smallc_rows__") + isa) {
    const int kpad = (d.K + kKB - 1) / kKB * kKB;
    weight_.assign(size_t(kpad) * taps_, 0.f);
    std::copy(weight, weight + size_t(d.K) * taps_, weight_.begin());
  }

  std::string name() const override { return name_; }

  void run(const ConvRun& r) const override {
    const int OH = d_.out_h(r.x.h), OW = d_.out_w(r.x.w);
    parallel_for(r.pool, int64_t(r.x.n) * OH, 8, [&](int64_t begin, int64_t end) {
      std::vector<RowRing<S>> rings(size_t(d_.C), RowRing<S>(d_, OW));
      int n = -1, filled[kMaxC] = {};
      for (int64_t i = begin; i < end; ++i) {
        const int ni = int(i / OH), oy = int(i % OH);
        if (ni != n || i == begin) {
          n = ni;
          std::fill(filled, filled + d_.C, oy * d_.stride);
        }
        output_row(r, n, oy, OW, rings, filled);
      }
    });
  }

 private:
  using V = typename S::V;

  void output_row(const ConvRun& r, int n, int oy, int OW, std::vector<RowRing<S>>& rings, int* filled) const {
    const int top = oy * d_.stride, kk = d_.kh * d_.kw;
    const float* src[kMaxC * kMaxTaps * kMaxTaps];
    for (int c = 0; c < d_.C; ++c) {
      const float scale = r.in_scale ? r.in_scale[int64_t(n) * d_.C + c] : 1.f;
      rings[size_t(c)].advance(r.x.at(n, c), r.x.h, r.x.w, scale, top, &filled[c]);
      rings[size_t(c)].tap_rows(top, d_.kw, src + c * kk);
    }
    for (int k0 = 0; k0 < d_.K; k0 += kKB) block_row(r, n, oy, OW, src, k0);
  }

  // Output channels [k0, k0 + 8) of row oy (those >= K are computed on zero weights, not stored).
  void block_row(const ConvRun& r, int n, int oy, int OW, const float* const* src, int k0) const {
    const int kb = std::min(kKB, d_.K - k0);
    const float* w = weight_.data() + size_t(k0) * taps_;
    float* out[kKB];
    RowEpilogue<S> ep[kKB];
    for (int j = 0; j < kb; ++j) {
      out[j] = r.y.at(n, k0 + j) + int64_t(oy) * OW;
      ep[j] = RowEpilogue<S>(r, n, d_.K, k0 + j);
    }
    for (int ox = 0; ox < OW; ox += S::W) {
      V acc[kKB];
      for (int j = 0; j < kKB; ++j) acc[j] = S::zero();
      for (int t = 0; t < taps_; ++t) {
        const V x = S::load(src[t] + ox);
        for (int j = 0; j < kKB; ++j) acc[j] = S::fmadd(S::set1(w[size_t(j) * taps_ + t]), x, acc[j]);
      }
      const int m = std::min(S::W, OW - ox);
      for (int j = 0; j < kb; ++j) {
        const V v = ep[j].apply(acc[j]);
        if (m == S::W)
          S::store(out[j] + ox, v);
        else
          S::store_n(out[j] + ox, v, m);
      }
    }
  }

  ConvDesc d_;
  int taps_;
  std::vector<float> weight_;
  std::string name_;
};

// A depthwise conv and the 1x1 conv that alone reads its output (MobileNet's conv_dw block:
// dw kxk + BN + act, then pw 1x1 + BN + act), one output row at a time: the row's depthwise
// result (C x OW floats) is made in a buffer that stays in L1/L2 and multiplied into 8 output
// channels x 2 vectors at a time, so the depthwise map (16.6 MB for RetinaFace's 960x540 x 8
// layer) never goes to memory and back. No modulation scales (ConvRun::in_scale / out_scale are
// not read); ConvRun: x the depthwise input, y the pointwise output, ep the pointwise epilogue.
template <class S>
class DepthwisePointwiseConv final : public ConvKernel {
 public:
  static constexpr int kKB = 8;

  static bool supports(const ConvDesc& dw, const ConvDesc& pw) {
    return DepthwiseConv<S>::supports(dw) && !pw.transposed && pw.groups == 1 && pw.C == dw.K && pw.K >= 1 &&
           pw.kh == 1 && pw.kw == 1 && pw.stride == 1 && pw.pad == 0;
  }

  DepthwisePointwiseConv(const ConvDesc& dw, const float* dw_weight, const Epilogue& dw_ep, const ConvDesc& pw,
                         const float* pw_weight, const char* isa)
      : dw_(dw),
        pw_(pw),
        dw_weight_(dw_weight, dw_weight + size_t(dw.C) * dw.kh * dw.kw),
        dw_bias_(dw_ep.bias ? std::vector<float>(dw_ep.bias, dw_ep.bias + dw.C) : std::vector<float>(size_t(dw.C), 0.f)),
        dw_slope_(dw_ep.slope),
        dw_gain_(dw_ep.gain),
        name_(std::string("f32_conv_depthwise_pointwise_rows__") + isa) {
    const int kpad = (pw.K + kKB - 1) / kKB * kKB;
    pw_weight_.assign(size_t(kpad) * pw.C, 0.f);
    std::copy(pw_weight, pw_weight + size_t(pw.K) * pw.C, pw_weight_.begin());
  }

  std::string name() const override { return name_; }

  void run(const ConvRun& r) const override {
    const int OH = dw_.out_h(r.x.h), OW = dw_.out_w(r.x.w);
    const int OWp = (OW + 2 * S::W - 1) / (2 * S::W) * (2 * S::W);  // whole pairs of vectors
    parallel_for(r.pool, int64_t(r.x.n) * OH, 4, [&](int64_t begin, int64_t end) {
      std::vector<RowRing<S>> rings(size_t(dw_.C), RowRing<S>(dw_, OWp));
      std::vector<int> filled(size_t(dw_.C));
      std::vector<float> mid(size_t(dw_.C) * OWp);  // this row's depthwise result, channel by channel
      int n = -1;
      for (int64_t i = begin; i < end; ++i) {
        const int ni = int(i / OH), oy = int(i % OH);
        if (ni != n || i == begin) {
          n = ni;
          std::fill(filled.begin(), filled.end(), oy * dw_.stride);
        }
        depthwise_row(r, n, oy, OWp, rings, filled.data(), mid.data());
        for (int k0 = 0; k0 < pw_.K; k0 += kKB) pointwise_block(r, n, oy, OW, OWp, mid.data(), k0);
      }
    });
  }

 private:
  using V = typename S::V;

  void depthwise_row(const ConvRun& r, int n, int oy, int OWp, std::vector<RowRing<S>>& rings, int* filled,
                     float* mid) const {
    const int top = oy * dw_.stride, ntaps = dw_.kh * dw_.kw;
    const float* src[DepthwiseConv<S>::kMaxTaps * DepthwiseConv<S>::kMaxTaps];
    V taps[DepthwiseConv<S>::kMaxTaps * DepthwiseConv<S>::kMaxTaps];
    const V slope = S::set1(dw_slope_), gain = S::set1(dw_gain_);
    for (int c = 0; c < dw_.C; ++c) {
      RowRing<S>& ring = rings[size_t(c)];
      ring.advance(r.x.at(n, c), r.x.h, r.x.w, 1.f, top, &filled[c]);
      ring.tap_rows(top, dw_.kw, src);
      const float* wc = dw_weight_.data() + size_t(c) * ntaps;
      for (int t = 0; t < ntaps; ++t) taps[t] = S::set1(wc[t]);
      const V bias = S::set1(dw_bias_[size_t(c)]);
      const auto fin = [&](V acc) { return S::mul(S::lrelu(S::add(acc, bias), slope), gain); };
      if (ntaps == 9)
        tap_dot_row<S, 9>(mid + size_t(c) * OWp, src, taps, ntaps, OWp, fin, true);
      else
        tap_dot_row<S>(mid + size_t(c) * OWp, src, taps, ntaps, OWp, fin, true);
    }
  }

  // Output channels [k0, k0 + 8) of row oy from the row's depthwise result (those >= K are
  // computed on zero weights and not stored). (The output rows and epilogues are set up here as in
  // SmallChannelConv::block_row, not through a shared helper: one, tried, cost the loops 40-75 %
  // -- GCC kept less of the block in registers.)
  void pointwise_block(const ConvRun& r, int n, int oy, int OW, int OWp, const float* mid, int k0) const {
    const int kb = std::min(kKB, pw_.K - k0), C = pw_.C;
    const float* w = pw_weight_.data() + size_t(k0) * C;
    float* out[kKB];
    RowEpilogue<S> ep[kKB];
    for (int j = 0; j < kb; ++j) {
      out[j] = r.y.at(n, k0 + j) + int64_t(oy) * OW;
      ep[j] = RowEpilogue<S>(r, n, pw_.K, k0 + j);
    }
    for (int ox = 0; ox < OW; ox += 2 * S::W) {
      V a[kKB][2];
      for (int j = 0; j < kKB; ++j) a[j][0] = a[j][1] = S::zero();
      for (int c = 0; c < C; ++c) {
        const V x0 = S::load(mid + size_t(c) * OWp + ox), x1 = S::load(mid + size_t(c) * OWp + ox + S::W);
        for (int j = 0; j < kKB; ++j) {
          const V wj = S::set1(w[size_t(j) * C + c]);
          a[j][0] = S::fmadd(wj, x0, a[j][0]);
          a[j][1] = S::fmadd(wj, x1, a[j][1]);
        }
      }
      for (int j = 0; j < kb; ++j)
        for (int h = 0; h < 2; ++h) {
          const int x = ox + h * S::W, m = std::min(S::W, OW - x);
          if (m <= 0) break;
          const V v = ep[j].apply(a[j][h]);
          if (m == S::W)
            S::store(out[j] + x, v);
          else
            S::store_n(out[j] + x, v, m);
        }
    }
  }

  ConvDesc dw_, pw_;
  std::vector<float> dw_weight_, dw_bias_, pw_weight_;
  float dw_slope_, dw_gain_;
  std::string name_;
};
