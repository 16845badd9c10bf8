// Plain reference kernels: readable loops, f32, NCHW. They are the oracle every optimized kernel
// (per ISA, Winograd, bf16, CUDA) is tested against, and the fallback when nothing faster applies.
// They parallelise over (batch, channel) with the given pool (null: serial) but are otherwise
// deliberately simple.
#pragma once
#include "core/thread_pool.h"
#include "kernels/cpu/kernel_types.h"

namespace gpen::cpu::ref {

// Convolution (normal or transposed, see ConvDesc), then y *= out_scale[n][k], then the epilogue.
// in_scale [N][C] and out_scale [N][K] may be null.
void conv2d(const ConvDesc& d, const float* weight, const View& x, const View& y, const float* in_scale,
            const float* out_scale, const Epilogue& ep, ThreadPool* pool);

// upfirdn2d: zero-insertion upsample by `up`, pad (pad0 before, pad1 after; negative crops),
// convolve with the FLIPPED kernel (a true convolution, as StyleGAN's upfirdn2d), keep every
// `down`-th sample. Per channel. Then the epilogue (bias per channel). kernel is [kh][kw].
void upfirdn2d(const View& x, const View& y, const float* kernel, int kh, int kw, int up, int down, int pad0,
               int pad1, const Epilogue& ep, ThreadPool* pool);
inline int upfirdn2d_out(int in, int k, int up, int down, int pad0, int pad1) {
  return (in * up + pad0 + pad1 - k) / down + 1;
}

// y[n][o] = ep(sum_i x[n][i] * w[o][i])  -- w is [out][in]
void linear(const float* x, const float* w, float* y, int n, int in, int out, const Epilogue& ep, ThreadPool* pool);

// x * rsqrt(mean over channels of x^2 + eps), per sample and position. x, y are [n][c][hw].
void pixel_norm(const float* x, float* y, int n, int c, int64_t hw, float eps);

// y = ep(x * scale): elementwise with a scalar scale; channel index for the bias (view shapes match).
void scale_bias_act(const View& x, const View& y, float scale, const Epilogue& ep, ThreadPool* pool);

// y = a + b (view shapes match; y may alias a or b).
void add(const View& a, const View& b, const View& y, ThreadPool* pool);

// StyleGAN2 demodulation factors without per-sample weights:
// d[n][k] = rsqrt(sum_c s[n][c]^2 * wsq[k][c] + eps) where wsq[k][c] = sum_{ky,kx} w[k][c][ky][kx]^2.
void demod_factors(const float* style, const float* wsq, float* d, int n, int C, int K, float eps);
// wsq[k][c] from a [K][C][kh][kw] weight.
void weight_sq_sums(const float* weight, float* wsq, int K, int C, int khkw);

// Nearest-neighbour resize of each plane to (y.h, y.w) with PyTorch's 'nearest' rule
// (src = floor(dst * in / out)).
void upsample_nearest(const View& x, const View& y, ThreadPool* pool);

// Max pooling of each plane over k x k windows (stride, pad: padded positions are skipped, as
// -inf). y's size is (x.h + 2 pad - k) / stride + 1 per axis.
void max_pool2d(const View& x, const View& y, int k, int stride, int pad, ThreadPool* pool);

// Reflection padding of each plane by `pad` on every side (torch ReflectionPad2d: index -1 reads
// 1, index h reads h - 2; needs pad < h, w). y is (h + 2 pad) x (w + 2 pad).
void reflect_pad2d(const View& x, const View& y, int pad, ThreadPool* pool);

// Space-to-depth (torch pixel_unshuffle): y[n][c*r*r + dy*r + dx][i][j] = x[n][c][i*r + dy][j*r + dx].
void pixel_unshuffle(const View& x, const View& y, int r, ThreadPool* pool);

}  // namespace gpen::cpu::ref
