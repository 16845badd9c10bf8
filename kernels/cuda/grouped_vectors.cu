#include "kernels/cuda/grouped_vectors.cuh"
#include "kernels/cuda/launch.cuh"

namespace gpen::cuda {
namespace {

__device__ __forceinline__ float warp_sum(float v) {
  for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
  return v;  // in lane 0
}

// One warp per output row: its weights are read once (from L1 for samples after the first).
__global__ void grouped_linear(const float* __restrict__ x, int n, int x_stride, GroupedLinearRows g) {
  const int64_t row = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= g.rows) return;
  const float* w = g.weight + row * g.in;
  for (int b = 0; b < n; ++b) {
    const float* xb = x + int64_t(b) * x_stride;
    float sum = 0.f;
    for (int k = lane; k < g.in; k += 32) sum += w[k] * xb[k];
    sum = warp_sum(sum);
    if (lane == 0) {
      float v = sum + (g.bias ? g.bias[row] : 0.f);
      if (v < 0.f) v *= g.slope;
      g.dst[row][int64_t(b) * g.dst_stride[row]] = v * g.gain;
    }
  }
}

__global__ void grouped_demod(int n, GroupedDemodRows g) {
  const int64_t row = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (row >= g.rows) return;
  const float* wsq = g.wsq[row];
  const int C = g.C[row];
  for (int b = 0; b < n; ++b) {
    const float* s = g.style[row] + int64_t(b) * g.style_stride[row];
    float sum = 0.f;
    for (int c = lane; c < C; c += 32) sum += s[c] * s[c] * wsq[c];
    sum = warp_sum(sum);
    if (lane == 0) g.dst[row][int64_t(b) * g.dst_stride[row]] = 1.f / sqrtf(sum + g.eps);
  }
}

unsigned warp_blocks(int64_t rows) { return unsigned((rows * 32 + kThreads - 1) / kThreads); }

}  // namespace

cudaError_t launch_grouped_linear(const float* x, int n, int x_stride, const GroupedLinearRows& g,
                                  cudaStream_t stream) {
  if (g.rows == 0 || n == 0) return cudaSuccess;
  GPEN_LAUNCH(warp_blocks(g.rows), kThreads, 0, stream, grouped_linear)(x, n, x_stride, g);
  return cudaGetLastError();
}

cudaError_t launch_grouped_demod(int n, const GroupedDemodRows& g, cudaStream_t stream) {
  if (g.rows == 0 || n == 0) return cudaSuccess;
  GPEN_LAUNCH(warp_blocks(g.rows), kThreads, 0, stream, grouped_demod)(n, g);
  return cudaGetLastError();
}

}  // namespace gpen::cuda
