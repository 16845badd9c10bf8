// upfirdn2d (StyleGAN's FIR blur / upsample / downsample) with the fused epilogue, f32: zero-
// insertion upsample by `up`, pad (pad0 before; negative crops), true convolution with the
// [kh][kw] kernel (i.e. correlation with the flipped kernel), keep every `down`-th sample.
// Same definition as cpu::ref::upfirdn2d; y's size decides the implied pad1.
#pragma once
#include <cuda_runtime.h>

#include "kernels/cuda/types.cuh"

namespace gpen::cuda {

cudaError_t launch_upfirdn2d(const DevView& x, const DevView& y, const float* kernel, int kh, int kw, int up, int down,
                             int pad0, const DevEpilogue& ep, cudaStream_t stream);

}  // namespace gpen::cuda
