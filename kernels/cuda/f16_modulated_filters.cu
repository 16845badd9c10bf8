#include <cuda_fp16.h>

#include "kernels/cuda/f16_modulated_filters.cuh"
#include "kernels/cuda/launch.cuh"

namespace gpen::cuda {
namespace {

// One thread per filter element of one sample; grid.y is the sample.
__global__ void modulated_filters(const float* __restrict__ w, int Kf, int R, int Cf, bool transposed,
                                  const float* __restrict__ style, const float* __restrict__ demod,
                                  __half* __restrict__ out) {
  const int n = blockIdx.y;
  const int64_t per_sample = int64_t(Kf) * R * Cf;
  const int C = transposed ? Kf : Cf, K = transposed ? Cf : Kf;
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < per_sample; i += int64_t(gridDim.x) * blockDim.x) {
    const int cf = int(i % Cf), kf = int(i / (int64_t(R) * Cf));
    const int c_in = transposed ? kf : cf, k_out = transposed ? cf : kf;
    const float s = style[int64_t(n) * C + c_in] * (demod ? demod[int64_t(n) * K + k_out] : 1.f);
    out[n * per_sample + i] = __float2half_rn(w[i] * s);
  }
}

}  // namespace

cudaError_t launch_f16_modulated_filters(const float* w, int Kf, int R, int Cf, bool transposed, const float* style,
                                         const float* demod, int n, uint16_t* out, cudaStream_t stream) {
  const int64_t per_sample = int64_t(Kf) * R * Cf;
  if (per_sample == 0 || n == 0) return cudaSuccess;
  if (n > 65535) return cudaErrorInvalidValue;
  int64_t bx = (per_sample + kThreads - 1) / kThreads;
  bx = bx > 4096 ? 4096 : bx;
  GPEN_LAUNCH(dim3(unsigned(bx), unsigned(n)), kThreads, 0, stream, modulated_filters)(
      w, Kf, R, Cf, transposed, style, demod, reinterpret_cast<__half*>(out));
  return cudaGetLastError();
}

}  // namespace gpen::cuda
