// Elementwise ops with the fused epilogue y = act(v + bias[c]) * gain (StyleGAN's bias +
// leaky-ReLU(0.2) * sqrt(2) when slope = 0.2, gain = sqrt(2)), all f32:
//  - the convolution epilogue: drains the convolution's packed output operand (f32 or f16, NCHW
//    or NHWC) into the destination view (often a channel slice: concat in place), multiplying by
//    the demodulation factor out_scale[n][k] first;
//  - scale_bias_act, add and broadcast on views.
// Launchers return cudaGetLastError() after the launch; the caller checks it.
#pragma once
#include <cuda_runtime.h>

#include "kernels/cuda/types.cuh"

namespace gpen::cuda {

// y[n][k][p] = ep(acc[n][k][p] * out_scale[n][k], k); acc is packed [N][K][P] (NCHW) or [N][P][K]
// (NHWC) of type `type`; out_scale may be null; y has y.n x y.c(=K) x P.
cudaError_t launch_conv_epilogue(const void* acc, ScratchType type, ScratchLayout layout, const float* out_scale,
                                 const DevEpilogue& ep, const DevView& y, cudaStream_t stream);

// y = ep(x * scale) (shapes match; y may alias x).
cudaError_t launch_scale_bias_act(const DevView& x, const DevView& y, float scale, const DevEpilogue& ep,
                                  cudaStream_t stream);

// y = a + b (shapes match; y may alias a or b).
cudaError_t launch_add(const DevView& a, const DevView& b, const DevView& y, cudaStream_t stream);

// y[n] = param for every sample n; param holds y.c * y.h * y.w values.
cudaError_t launch_broadcast(const float* param, const DevView& y, cudaStream_t stream);

}  // namespace gpen::cuda
