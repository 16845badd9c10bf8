// The direct 1x1 convolution (conv1x1_direct.cuh: GPEN's ToRGB, C -> 3, and its first encoder
// layer, 3 -> C) on f16 NHWC views, accumulated in f32 with modulation, demodulation and the
// epilogue fused: one read of x, one write of y. Takes what conv1x1_direct_fits takes.
#pragma once
#include <cuda_runtime.h>

#include "kernels/cuda/types.cuh"

namespace gpen::cuda {

// y[n][p][k] = then(ep(out_scale[n][k] * sum_c w[k][c] * in_scale[n][c] * x[n][p][c])); weight
// [K][C] f32 on the device; in_scale / out_scale may be null; `then` usually off.
cudaError_t launch_f16_nhwc_conv1x1_direct(const DevView16& x, const float* in_scale, const float* weight,
                                           const float* out_scale, const DevEpilogue& ep, const DevThen& then,
                                           const DevView16& y, cudaStream_t stream);

}  // namespace gpen::cuda
