// Depthwise convolution (groups == C == K: one kxk filter per channel; RetinaFace-MobileNet's
// conv_dw layers), templated over the vector traits of simd_internal.h. Include it inside a
// per-ISA namespace after simd_internal.h (see conv_depthwise_avx512.cpp).
//
// Per (sample, channel) plane, the input rows are copied, as the output rows need them, into a
// ring of kh padded rows split into `stride` phases: phase q holds columns q, q + s, q + 2s, ...
// of the padded row, so tap (ky, kx) of output column ox reads phase kx % s at column
// ox + kx / s -- a plain unaligned vector load for every stride, no bounds checks in the inner
// loop. The ring (a few KB) stays in L1 where a whole padded plane (2 MB at 960x540) did not.
// Each output row is then kh*kw vector FMAs per vector of W output columns, four vectors at once
// (independent sums, so the FMA latency is hidden), followed by the epilogue.
//
// The generic kernel (ref::conv2d) ran these at scalar speed: 40 % of RetinaFace's time on a
// 1920x1080 photo (perf, dev machine, 2026-11-26). The first vector version filled the whole
// plane first and looked taps up with a division per tap; 3x3 taps are now unrolled.

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
      Phases ph(d_, OW);
      for (int64_t i = begin; i < end; ++i) plane(r, int(i / d_.C), int(i % d_.C), OH, OW, ph);
    });
  }

 private:
  using V = typename S::V;

  // The last kh padded rows of one input plane, phase-split (per worker, reused across planes).
  struct Phases {
    Phases(const ConvDesc& d, int OW)
        : rows(d.kh),
          // Every vector load of a row stays inside it: OW rounded up to W, plus the taps' reach.
          cols(int((OW + S::W - 1) / S::W) * S::W + (d.kw - 1) / d.stride + 1),
          buf(size_t(d.stride) * rows * cols) {}
    int rows, cols;
    std::vector<float> buf;
    // Padded row r of phase q (r's slot in the ring).
    float* row(int phase, int r) { return buf.data() + (size_t(phase) * rows + size_t(r % rows)) * cols; }
  };

  // Padded row r into the ring: phase q, column j holds padded column j*s + q, i.e. input column
  // j*s + q - pad of input row r - pad (zero outside), times `scale`.
  void fill_row(const float* xp, int h, int w, float scale, int r, Phases& ph) const {
    const int s = d_.stride, pad = d_.pad, iy = r - pad;
    for (int q = 0; q < s; ++q) {
      float* dst = ph.row(q, r);
      if (iy < 0 || iy >= h) {
        std::fill(dst, dst + ph.cols, 0.f);
        continue;
      }
      const float* src = xp + int64_t(iy) * w + q - pad;  // src[j * s] is column j of this phase
      const int j0 = std::min(ph.cols, q >= pad ? 0 : (pad - q + s - 1) / s);
      const int last = w - 1 + pad - q;  // the last src index inside the input row
      const int j1 = last < 0 ? j0 : std::max(j0, std::min(ph.cols, last / s + 1));
      std::fill(dst, dst + j0, 0.f);
      const typename S::V vs = S::set1(scale);
      int j = j0;
      if (s == 1)
        for (; j + S::W <= j1; j += S::W) S::store(dst + j, S::mul(S::load(src + j), vs));
      else if (s == 2)
        for (; j + S::W <= j1 && 2 * (j + S::W) - 1 <= last; j += S::W) S::store(dst + j, S::mul(S::load_even2(src + 2 * j), vs));
      for (; j < j1; ++j) dst[j] = src[j * s] * scale;
      std::fill(dst + j1, dst + ph.cols, 0.f);
    }
  }

  struct RowEpilogue {
    V os, bias, slope, gain;
    V apply(V acc) const { return S::mul(S::lrelu(S::add(S::mul(acc, os), bias), slope), gain); }
  };

  void plane(const ConvRun& r, int n, int c, int OH, int OW, Phases& ph) const {
    const float scale = r.in_scale ? r.in_scale[int64_t(n) * d_.C + c] : 1.f;
    const float* xp = r.x.at(n, c);
    const float* wc = weight_.data() + size_t(c) * d_.kh * d_.kw;
    const int ntaps = d_.kh * d_.kw;
    V taps[kMaxTaps * kMaxTaps];
    for (int t = 0; t < ntaps; ++t) taps[t] = S::set1(wc[t]);
    RowEpilogue ep;
    ep.os = S::set1(r.out_scale ? r.out_scale[int64_t(n) * d_.K + c] : 1.f);
    ep.bias = S::set1(r.ep.bias ? r.ep.bias[c] : 0.f);
    ep.slope = S::set1(r.ep.slope);
    ep.gain = S::set1(r.ep.gain);
    const int s = d_.stride;
    float* out = r.y.at(n, c);
    const float* src[kMaxTaps * kMaxTaps];
    int filled = 0;  // padded rows [0, filled) have been through the ring
    for (int oy = 0; oy < OH; ++oy) {
      const int top = oy * s;  // this output row reads padded rows [top, top + kh)
      for (int pr = std::max(filled, top); pr < top + d_.kh; ++pr) fill_row(xp, r.x.h, r.x.w, scale, pr, ph);
      filled = std::max(filled, top + d_.kh);
      for (int ky = 0; ky < d_.kh; ++ky)
        for (int kx = 0; kx < d_.kw; ++kx) src[ky * d_.kw + kx] = ph.row(kx % s, top + ky) + kx / s;
      float* orow = out + int64_t(oy) * OW;
      const auto fin = [&ep](V acc) { return ep.apply(acc); };
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
