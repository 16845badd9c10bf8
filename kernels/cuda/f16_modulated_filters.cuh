// Per-sample modulated filters (StyleGAN2's modulation in weight form, as its paper writes it),
// for the f16 activation mode's large modulated convolutions: with one filter per sample cuDNN
// convolves the activation in place, sample by sample, and neither the x * style pass nor the
// demodulation pass runs. Computed in f32, rounded once to f16.
// Launchers return cudaGetLastError() after the launch; the caller checks it.
#pragma once
#include <cuda_runtime.h>

#include "kernels/cuda/types.cuh"

namespace gpen::cuda {

// out[n][kf][r][cf] = w[kf][r][cf] * style[n][c_in] * demod[n][k_out], w f32 in cuDNN's NHWC
// filter layout [Kf][R][Cf] (R = kh * kw). Forward conv: Kf = K (outputs, k_out = kf), Cf = C
// (inputs, c_in = cf); transposed (cuDNN backward data): Kf = C (c_in = kf), Cf = K (k_out = cf).
// style [n][C], demod [n][K] (may be null); out f16, n filters one after another.
cudaError_t launch_f16_modulated_filters(const float* w, int Kf, int R, int Cf, bool transposed, const float* style,
                                         const float* demod, int n, uint16_t* out, cudaStream_t stream);

}  // namespace gpen::cuda
