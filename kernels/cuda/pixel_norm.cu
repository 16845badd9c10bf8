#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/pixel_norm.cuh"

namespace gpen::cuda {
namespace {

// One thread per (sample, position), looping over channels: GPEN normalises [N][512] style
// vectors and [N][C][4][4] maps, so there are few positions but the loop is short.
__global__ void pixel_norm_kernel(const float* __restrict__ x, float* __restrict__ y, int n, int c, int64_t hw,
                                  float eps) {
  GPEN_GRID_STRIDE(i, int64_t(n) * hw) {
    const int64_t b = i / hw, p = i % hw;
    const float* xb = x + b * c * hw + p;
    float sum = 0.f;
    for (int ch = 0; ch < c; ++ch) sum += xb[ch * hw] * xb[ch * hw];
    const float r = 1.f / sqrtf(sum / c + eps);
    float* yb = y + b * c * hw + p;
    for (int ch = 0; ch < c; ++ch) yb[ch * hw] = xb[ch * hw] * r;
  }
}

}  // namespace

cudaError_t launch_pixel_norm(const float* x, float* y, int n, int c, int64_t hw, float eps, cudaStream_t stream) {
  if (int64_t(n) * hw == 0) return cudaSuccess;
  GPEN_LAUNCH(grid_blocks(int64_t(n) * hw), kThreads, 0, stream, pixel_norm_kernel)(x, y, n, c, hw, eps);
  return cudaGetLastError();
}

}  // namespace gpen::cuda
