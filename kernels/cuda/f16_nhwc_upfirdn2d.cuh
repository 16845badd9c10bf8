// upfirdn2d on f16 NHWC views (the f16 activation mode): the same definition as upfirdn2d.cuh
// and cpu::ref::upfirdn2d (zero-insertion upsample by `up`, pad0 before, true convolution with
// the [kh][kw] taps, every `down`-th sample kept, then the epilogue), accumulated in f32.
// in_scale (optional, [n][c]): the result is multiplied by it before the epilogue -- the
// demodulation of the convolution before it (F16ActivationPlan::demod_fir), which commutes
// with the FIR.
#pragma once
#include <cuda_runtime.h>

#include "kernels/cuda/types.cuh"

namespace gpen::cuda {

cudaError_t launch_f16_nhwc_upfirdn2d(const DevView16& x, const DevView16& y, const float* kernel, int kh, int kw,
                                      int up, int down, int pad0, const float* in_scale, const DevEpilogue& ep,
                                      cudaStream_t stream);

}  // namespace gpen::cuda
