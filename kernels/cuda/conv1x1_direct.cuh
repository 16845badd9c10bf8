// 1x1 convolutions with few input or few output channels (GPEN's ToRGB: 64 -> 3; its first
// encoder layer: 3 -> 64), computed directly on the f32 NCHW views in f32, with the modulation
// (in_scale, per sample and input channel), demodulation (out_scale, per sample and output
// channel) and the bias/activation epilogue fused: one read of x, one write of y.
//
// cuDNN runs these as a GEMM with a tiny dimension on tensor cores, and the backend would add a
// re-layout pass before and after; both are memory-bound and cost 5-10x this kernel.
#pragma once
#include <cuda_runtime.h>

#include "kernels/cuda/types.cuh"

namespace gpen::cuda {

constexpr int kConv1x1MaxSmall = 8;  // the small side (C or K) the direct kernel takes

// Whether the direct kernel takes a 1x1 convolution with C inputs and K outputs.
inline bool conv1x1_direct_fits(int C, int K) {
  return (C <= kConv1x1MaxSmall || K <= kConv1x1MaxSmall) && int64_t(C) * K <= 4096;
}

// y[n][k] = ep(out_scale[n][k] * sum_c w[k][c] * in_scale[n][c] * x[n][c]); weight [K][C] on the
// device; in_scale / out_scale may be null.
cudaError_t launch_f32_conv1x1_direct(const DevView& x, const float* in_scale, const float* weight,
                                      const float* out_scale, const DevEpilogue& ep, const DevView& y,
                                      cudaStream_t stream);

}  // namespace gpen::cuda
