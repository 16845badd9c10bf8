// Depthwise convolution (groups == C == K: one kxk filter per channel; RetinaFace-MobileNet's
// conv_dw layers), templated over the vector traits of simd_internal.h. Include it inside a
// per-ISA namespace after simd_internal.h (see conv_depthwise_avx512.cpp).
//
// Per (sample, channel) plane, the input is first copied into `stride` phase planes with the
// zero padding built in: phase q holds columns q, q + s, q + 2s, ... of the padded row, so tap
// (ky, kx) of output column ox reads phase kx % s at column ox + kx / s -- a plain unaligned vector
// load for every stride, no bounds checks in the inner loop. Then each output row is a sum of
// kh*kw vector FMAs per vector of W output columns, followed by the epilogue.
//
// The generic kernel (ref::conv2d) ran these at scalar speed: 40 % of RetinaFace's time on a
// 1920x1080 photo (perf, dev machine, 2026-11-26).

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
      Phases ph(d_, OH, OW);
      for (int64_t i = begin; i < end; ++i) plane(r, int(i / d_.C), int(i % d_.C), OH, OW, ph);
    });
  }

 private:
  using V = typename S::V;

  // The padded, phase-split copy of one input plane (per worker, reused across its planes).
  struct Phases {
    Phases(const ConvDesc& d, int OH, int OW)
        : rows((OH - 1) * d.stride + d.kh),
          // Every vector load of a row stays inside it: OW rounded up to W, plus the taps' reach.
          cols(int((OW + S::W - 1) / S::W) * S::W + (d.kw - 1) / d.stride + 1),
          buf(size_t(d.stride) * rows * cols) {}
    int rows, cols;
    std::vector<float> buf;
    float* row(int phase, int r) { return buf.data() + (size_t(phase) * rows + r) * cols; }
  };

  // Phase q, column j holds padded column j*s + q, i.e. input column j*s + q - pad (zero outside).
  void fill(const float* xp, int h, int w, float scale, Phases& ph) const {
    const int s = d_.stride, pad = d_.pad;
    for (int r = 0; r < ph.rows; ++r) {
      const int iy = r - pad;
      for (int q = 0; q < s; ++q) {
        float* dst = ph.row(q, r);
        if (iy < 0 || iy >= h) {
          std::fill(dst, dst + ph.cols, 0.f);
          continue;
        }
        const float* src = xp + int64_t(iy) * w + q - pad;  // src[j * s] is column j of this phase
        const int j0 = std::min(ph.cols, q >= pad ? 0 : (pad - q + s - 1) / s);
        const int last = w - 1 + pad - q;  // padded column of the last input column, in phase q terms
        const int j1 = last < 0 ? j0 : std::max(j0, std::min(ph.cols, last / s + 1));
        std::fill(dst, dst + j0, 0.f);
        if (s == 1)
          for (int j = j0; j < j1; ++j) dst[j] = src[j] * scale;
        else
          for (int j = j0; j < j1; ++j) dst[j] = src[j * s] * scale;
        std::fill(dst + j1, dst + ph.cols, 0.f);
      }
    }
  }

  void plane(const ConvRun& r, int n, int c, int OH, int OW, Phases& ph) const {
    const float scale = r.in_scale ? r.in_scale[int64_t(n) * d_.C + c] : 1.f;
    fill(r.x.at(n, c), r.x.h, r.x.w, scale, ph);
    const float* wc = weight_.data() + size_t(c) * d_.kh * d_.kw;
    V taps[kMaxTaps * kMaxTaps];
    for (int t = 0; t < d_.kh * d_.kw; ++t) taps[t] = S::set1(wc[t]);
    const float os = r.out_scale ? r.out_scale[int64_t(n) * d_.K + c] : 1.f;
    const V vos = S::set1(os), vbias = S::set1(r.ep.bias ? r.ep.bias[c] : 0.f), vslope = S::set1(r.ep.slope),
            vgain = S::set1(r.ep.gain);
    const int s = d_.stride;
    float* out = r.y.at(n, c);
    for (int oy = 0; oy < OH; ++oy) {
      float* orow = out + int64_t(oy) * OW;
      for (int ox = 0; ox < OW; ox += S::W) {
        V acc = S::zero();
        for (int ky = 0; ky < d_.kh; ++ky)
          for (int kx = 0; kx < d_.kw; ++kx)
            acc = S::fmadd(taps[ky * d_.kw + kx], S::load(ph.row(kx % s, oy * s + ky) + ox + kx / s), acc);
        V v = S::add(S::mul(acc, vos), vbias);
        v = S::mul(S::lrelu(v, vslope), vgain);
        if (ox + S::W <= OW)
          S::store(orow + ox, v);
        else
          S::store_n(orow + ox, v, OW - ox);
      }
    }
  }

  ConvDesc d_;
  std::vector<float> weight_;
  std::string name_;
};
