#include <cfloat>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/resample.cuh"

namespace gpen::cuda {
namespace {

__global__ void upsample_nearest_kernel(DevView x, DevView y) {
  const int64_t P = y.plane(), per_sample = int64_t(y.c) * P;
  GPEN_GRID_STRIDE(i, int64_t(y.n) * per_sample) {
    const int64_t n = i / per_sample;
    const int c = int(i % per_sample / P);
    const int oy = int(i % P / y.w), ox = int(i % y.w);
    const int sy = min(x.h - 1, int(int64_t(oy) * x.h / y.h));
    const int sx = min(x.w - 1, int(int64_t(ox) * x.w / y.w));
    y.data[n * y.batch_stride + i % per_sample] = x.data[n * x.batch_stride + c * x.plane() + int64_t(sy) * x.w + sx];
  }
}

__global__ void max_pool2d_kernel(DevView x, DevView y, int k, int stride, int pad) {
  const int64_t P = y.plane(), per_sample = int64_t(y.c) * P;
  GPEN_GRID_STRIDE(i, int64_t(y.n) * per_sample) {
    const int64_t n = i / per_sample;
    const int c = int(i % per_sample / P);
    const int oy = int(i % P / y.w), ox = int(i % y.w);
    const int y0 = max(0, oy * stride - pad), y1 = min(x.h, oy * stride - pad + k);
    const int x0 = max(0, ox * stride - pad), x1 = min(x.w, ox * stride - pad + k);
    const float* xp = x.data + n * x.batch_stride + c * x.plane();
    float m = -INFINITY;
    for (int sy = y0; sy < y1; ++sy)
      for (int sx = x0; sx < x1; ++sx) m = fmaxf(m, xp[int64_t(sy) * x.w + sx]);
    y.data[n * y.batch_stride + i % per_sample] = m;
  }
}

__device__ __forceinline__ int reflect_index(int p, int n) { return p < 0 ? -p : p >= n ? 2 * (n - 1) - p : p; }

__global__ void reflect_pad2d_kernel(DevView x, DevView y, int pad) {
  const int64_t P = y.plane(), per_sample = int64_t(y.c) * P;
  GPEN_GRID_STRIDE(i, int64_t(y.n) * per_sample) {
    const int64_t n = i / per_sample;
    const int c = int(i % per_sample / P);
    const int sy = reflect_index(int(i % P / y.w) - pad, x.h), sx = reflect_index(int(i % y.w) - pad, x.w);
    y.data[n * y.batch_stride + i % per_sample] = x.data[n * x.batch_stride + c * x.plane() + int64_t(sy) * x.w + sx];
  }
}

__global__ void pixel_unshuffle_kernel(DevView x, DevView y, int r) {
  const int64_t P = y.plane(), per_sample = int64_t(y.c) * P;
  GPEN_GRID_STRIDE(i, int64_t(y.n) * per_sample) {
    const int64_t n = i / per_sample;
    const int oc = int(i % per_sample / P);
    const int c = oc / (r * r), dy = oc / r % r, dx = oc % r;
    const int oy = int(i % P / y.w), ox = int(i % y.w);
    y.data[n * y.batch_stride + i % per_sample] =
        x.data[n * x.batch_stride + c * x.plane() + int64_t(oy * r + dy) * x.w + ox * r + dx];
  }
}

}  // namespace

cudaError_t launch_reflect_pad2d(const DevView& x, const DevView& y, int pad, cudaStream_t stream) {
  if (y.numel() == 0) return cudaSuccess;
  GPEN_LAUNCH(grid_blocks(y.numel()), kThreads, 0, stream, reflect_pad2d_kernel)(x, y, pad);
  return cudaGetLastError();
}

cudaError_t launch_pixel_unshuffle(const DevView& x, const DevView& y, int r, cudaStream_t stream) {
  if (y.numel() == 0) return cudaSuccess;
  GPEN_LAUNCH(grid_blocks(y.numel()), kThreads, 0, stream, pixel_unshuffle_kernel)(x, y, r);
  return cudaGetLastError();
}

cudaError_t launch_upsample_nearest(const DevView& x, const DevView& y, cudaStream_t stream) {
  if (y.numel() == 0) return cudaSuccess;
  GPEN_LAUNCH(grid_blocks(y.numel()), kThreads, 0, stream, upsample_nearest_kernel)(x, y);
  return cudaGetLastError();
}

cudaError_t launch_max_pool2d(const DevView& x, const DevView& y, int k, int stride, int pad, cudaStream_t stream) {
  if (y.numel() == 0) return cudaSuccess;
  GPEN_LAUNCH(grid_blocks(y.numel()), kThreads, 0, stream, max_pool2d_kernel)(x, y, k, stride, pad);
  return cudaGetLastError();
}

}  // namespace gpen::cuda
