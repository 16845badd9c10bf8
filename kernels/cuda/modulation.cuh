// Modulated convolution, the two halves that are not the convolution itself (computed in f32 in
// every precision): filling the convolution's input operand with x * style (StyleGAN2's
// modulation in input-scaling form, converted to the operand's type and layout on the way) and
// the demodulation factors d[n][k] = rsqrt(sum_c style[n][c]^2 wsq[k][c] + eps).
// Launchers return cudaGetLastError() after the launch; the caller checks it.
#pragma once
#include <cuda_runtime.h>

#include "kernels/cuda/types.cuh"

namespace gpen::cuda {

// out[n][c][p] (NCHW) or out[n][p][c] (NHWC) = x[n][c][p] * in_scale[n][c] (in_scale may be null),
// packed, of type `type`.
cudaError_t launch_prepare_conv_input(const DevView& x, const float* in_scale, void* out, ScratchType type,
                                      ScratchLayout layout, cudaStream_t stream);

// d[n][k] = 1 / sqrt(sum_c style[n][c]^2 * wsq[k][c] + eps); style [N][C], wsq [K][C], d [N][K].
cudaError_t launch_demod_factors(const float* style, const float* wsq, float* d, int n, int C, int K, float eps,
                                 cudaStream_t stream);

}  // namespace gpen::cuda
