// Argument types shared by every CPU kernel (generic and per-ISA).
#pragma once
#include <cstdint>

namespace gpen::cpu {

// An NCHW f32 tensor in memory. batch_stride (in elements) may exceed c*h*w: that is how a kernel
// writes one channel slice of a larger buffer, i.e. a concat done in place with no copy.
struct View {
  float* data = nullptr;
  int n = 0, c = 0, h = 0, w = 0;
  int64_t batch_stride = 0;

  int64_t plane() const { return int64_t(h) * w; }
  float* at(int b, int ch) const { return data + b * batch_stride + ch * plane(); }
};

inline View make_view(float* data, int n, int c, int h, int w) {
  return View{data, n, c, h, w, int64_t(c) * h * w};
}

// What every producing op applies to each output value before storing it:
//   y = act(y + bias[channel]) * gain,  act(v) = v >= 0 ? v : v * slope
// slope 1 = identity, 0 = ReLU, 0.2 with gain sqrt(2) = StyleGAN's fused leaky-ReLU.
struct Epilogue {
  const float* bias = nullptr;
  float slope = 1.f;
  float gain = 1.f;

  float apply(float v, int channel) const {
    if (bias) v += bias[channel];
    if (v < 0) v *= slope;
    return v * gain;
  }
  bool is_identity() const { return !bias && slope == 1.f && gain == 1.f; }
};

// A convolution's static description (weights are fixed at load; N, H, W come at run time).
// Normal:     y[n,k,oy,ox] = sum_{c,ky,kx} w[k,c,ky,kx] x[n,c, oy*stride+ky-pad, ox*stride+kx-pad]
// Transposed: y[n,k, iy*stride+ky-pad, ix*stride+kx-pad] += w[k,c,ky,kx] x[n,c,iy,ix]
// Weights are always [K][C/groups][kh][kw] (out, in) -- for transposed too (PyTorch stores
// ConvTranspose2d as [in][out]; loaders transpose once).
// Optional per-sample scales implement StyleGAN's modulated convolution without per-sample
// weights: x is scaled by in_scale[n][c] (the style) and y by out_scale[n][k] (demodulation).
struct ConvDesc {
  int C = 0, K = 0, kh = 1, kw = 1, stride = 1, pad = 0, groups = 1;
  bool transposed = false;

  int out_h(int h) const { return transposed ? (h - 1) * stride - 2 * pad + kh : (h + 2 * pad - kh) / stride + 1; }
  int out_w(int w) const { return transposed ? (w - 1) * stride - 2 * pad + kw : (w + 2 * pad - kw) / stride + 1; }
  int64_t flops(int n, int h, int w) const {
    int64_t spatial = transposed ? int64_t(h) * w : int64_t(out_h(h)) * out_w(w);
    return 2 * int64_t(n) * spatial * K * (C / groups) * kh * kw;
  }
};

// Where a Winograd conv keeps its transformed weights (36/9 = 4x the 3x3 weights): transformed
// once at load, or kept as 3x3 weights and transformed in every run (KernelOptions).
enum class WinogradWeights { Auto, AtLoad, PerRun };

}  // namespace gpen::cpu
