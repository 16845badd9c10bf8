#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/upfirdn2d.cuh"

namespace gpen::cuda {
namespace {

// The input index that sample j of the upsampled, padded signal comes from, or -1 for a zero.
__device__ __forceinline__ int source_index(int j, int up, int pad, int in) {
  const int t = j - pad;
  if (t < 0 || t % up) return -1;
  return t / up < in ? t / up : -1;
}

// One thread per output element; the kernel taps (at most a few dozen) come from global memory
// through the read-only cache.
__global__ void upfirdn2d_kernel(DevView x, DevView y, const float* __restrict__ kernel, int kh, int kw, int up,
                                 int down, int pad0, DevEpilogue ep) {
  const int64_t P = y.plane(), per_sample = int64_t(y.c) * P;
  GPEN_GRID_STRIDE(i, int64_t(y.n) * per_sample) {
    const int64_t n = i / per_sample;
    const int c = int(i % per_sample / P);
    const int oy = int(i % P / y.w), ox = int(i % y.w);
    const float* xp = x.data + n * x.batch_stride + c * x.plane();
    float acc = 0.f;
    for (int ky = 0; ky < kh; ++ky) {
      const int sy = source_index(oy * down + ky, up, pad0, x.h);
      if (sy < 0) continue;
      for (int kx = 0; kx < kw; ++kx) {
        const int sx = source_index(ox * down + kx, up, pad0, x.w);
        if (sx < 0) continue;
        acc += xp[int64_t(sy) * x.w + sx] * __ldg(&kernel[(kh - 1 - ky) * kw + (kw - 1 - kx)]);
      }
    }
    if (ep.bias) acc += ep.bias[c];
    if (acc < 0.f) acc *= ep.slope;
    y.data[n * y.batch_stride + i % per_sample] = acc * ep.gain;
  }
}

}  // namespace

cudaError_t launch_upfirdn2d(const DevView& x, const DevView& y, const float* kernel, int kh, int kw, int up, int down,
                             int pad0, const DevEpilogue& ep, cudaStream_t stream) {
  if (y.numel() == 0) return cudaSuccess;
  upfirdn2d_kernel<<<grid_blocks(y.numel()), kThreads, 0, stream>>>(x, y, kernel, kh, kw, up, down, pad0, ep);
  return cudaGetLastError();
}

}  // namespace gpen::cuda
