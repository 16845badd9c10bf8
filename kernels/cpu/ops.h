// Fast entry points for the non-convolution ops, used by the CPU backend. Each picks the best
// implementation for the active ISA and falls back to the reference in generic.h; the
// reference stays the oracle for tests.
#pragma once
#include <string>

#include "core/thread_pool.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/kernel_types.h"

namespace gpen::cpu {

void upfirdn2d(const View& x, const View& y, const float* kernel, int kh, int kw, int up, int down, int pad0,
               int pad1, const Epilogue& ep, ThreadPool* pool);
void scale_bias_act(const View& x, const View& y, float scale, const Epilogue& ep, ThreadPool* pool);
void add(const View& a, const View& b, const View& y, ThreadPool* pool);
void linear(const float* x, const float* w, float* y, int n, int in, int out, const Epilogue& ep, ThreadPool* pool);
// StyleGAN2's demodulation d[b][k] = 1 / sqrt(sum_c style[b][c]^2 wsq[k][c] + eps): the squared
// styles through the vector linear kernel (wsq is its [K][C] weight), in f32 where the reference
// sums in double (tested within 1e-5 relative, C up to 1024).
void demod_factors(const float* style, const float* wsq, float* d, int n, int C, int K, float eps, ThreadPool* pool);
// Data movement (ParseNet's and RealESRNet's decoders, RetinaFace's FPN): whole rows copied or
// widened once and repeated, instead of an index computed per output value.
void upsample_nearest(const View& x, const View& y, ThreadPool* pool);
void reflect_pad2d(const View& x, const View& y, int pad, ThreadPool* pool);

// What the functions above run for these arguments, named for profiles as the conv kernels are
// (dtype, op, variant, ISA): "f32_upfirdn2d_separable__avx512", "f32_upfirdn2d__generic", ...
std::string upfirdn2d_kernel_name(const float* kernel, int kh, int kw, int up, int down);
std::string vector_op_kernel_name(const char* op);  // scale_bias_act, add, linear, demod_factors: "f32_add__avx2"

}  // namespace gpen::cpu
