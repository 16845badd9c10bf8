#include <cuda_fp16.h>

#include "kernels/cuda/launch.cuh"

#include "kernels/cuda/bias_act.cuh"

namespace gpen::cuda {
namespace {

constexpr int kTile = 32, kTileRows = 8;

__device__ __forceinline__ float apply(const DevEpilogue& ep, float v, int c) {
  if (ep.bias) v += ep.bias[c];
  if (v < 0.f) v *= ep.slope;
  return v * ep.gain;
}

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }



template <class T>
__global__ void epilogue_nchw(const T* __restrict__ acc, const float* __restrict__ os, DevEpilogue ep, DevView y) {
  const int P = int(y.plane());
  GPEN_PLANE_LOOP(plane, y.n * y.c) {
    const int n = plane / y.c, k = plane % y.c;
    const float s = os ? os[plane] : 1.f;
    const T* a = acc + int64_t(plane) * P;
    float* yp = y.data + n * y.batch_stride + int64_t(k) * P;
    GPEN_PIXEL_LOOP(p, P) yp[p] = apply(ep, to_float(a[p]) * s, k);
  }
}

// [P][K] -> [K][P] per sample through a shared tile: reads along channels, writes along pixels.
template <class T>
__global__ void epilogue_nhwc(const T* __restrict__ acc, const float* __restrict__ os, DevEpilogue ep, DevView y) {
  GPEN_SHARED(float, tile, [kTile][kTile + 1]);
  const int64_t P = y.plane();
  const int K = y.c;
  const int64_t p0 = int64_t(blockIdx.x) * kTile;
  const int k0 = blockIdx.y * kTile, n = blockIdx.z;
  for (int j = threadIdx.y; j < kTile; j += kTileRows) {
    const int64_t p = p0 + j;
    const int k = k0 + threadIdx.x;
    if (k < K && p < P) tile[j][threadIdx.x] = to_float(acc[(int64_t(n) * P + p) * K + k]);
  }
  __syncthreads();
  float* ys = y.data + n * y.batch_stride;
  for (int j = threadIdx.y; j < kTile; j += kTileRows) {
    const int k = k0 + j;
    const int64_t p = p0 + threadIdx.x;
    if (k < K && p < P) {
      const float s = os ? os[int64_t(n) * K + k] : 1.f;
      ys[k * P + p] = apply(ep, tile[threadIdx.x][j] * s, k);
    }
  }
}

__device__ __forceinline__ float* plane_ptr(const DevView& v, int n, int c) {
  return v.data + n * v.batch_stride + int64_t(c) * v.plane();
}

__global__ void scale_bias_act_kernel(DevView x, DevView y, float scale, DevEpilogue ep) {
  const int P = int(x.plane());
  GPEN_PLANE_LOOP(plane, x.n * x.c) {
    const int n = plane / x.c, c = plane % x.c;
    const float* xp = plane_ptr(x, n, c);
    float* yp = plane_ptr(y, n, c);
    GPEN_PIXEL_LOOP(p, P) yp[p] = apply(ep, xp[p] * scale, c);
  }
}

__global__ void add_kernel(DevView a, DevView b, DevView y) {
  const int P = int(a.plane());
  GPEN_PLANE_LOOP(plane, a.n * a.c) {
    const int n = plane / a.c, c = plane % a.c;
    const float *ap = plane_ptr(a, n, c), *bp = plane_ptr(b, n, c);
    float* yp = plane_ptr(y, n, c);
    GPEN_PIXEL_LOOP(p, P) yp[p] = ap[p] + bp[p];
  }
}

__global__ void broadcast_kernel(const float* __restrict__ param, DevView y) {
  const int P = int(y.plane());
  GPEN_PLANE_LOOP(plane, y.n * y.c) {
    const int n = plane / y.c, c = plane % y.c;
    const float* src = param + int64_t(c) * P;
    float* yp = plane_ptr(y, n, c);
    GPEN_PIXEL_LOOP(p, P) yp[p] = src[p];
  }
}

template <class T>
cudaError_t epilogue(const T* acc, ScratchLayout layout, const float* os, const DevEpilogue& ep, const DevView& y,
                     cudaStream_t stream) {
  if (layout == ScratchLayout::NCHW) {
    const PlaneGrid g = plane_grid(int64_t(y.n) * y.c, y.plane());
    GPEN_LAUNCH(g.grid, g.block, 0, stream, epilogue_nchw<T>)(acc, os, ep, y);
  } else {
    const dim3 grid(unsigned((y.plane() + kTile - 1) / kTile), unsigned((y.c + kTile - 1) / kTile), unsigned(y.n));
    GPEN_LAUNCH(grid, dim3(kTile, kTileRows), 0, stream, epilogue_nhwc<T>)(acc, os, ep, y);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_conv_epilogue(const void* acc, ScratchType type, ScratchLayout layout, const float* out_scale,
                                 const DevEpilogue& ep, const DevView& y, cudaStream_t stream) {
  if (y.numel() == 0) return cudaSuccess;
  if (type == ScratchType::F16) return epilogue(static_cast<const __half*>(acc), layout, out_scale, ep, y, stream);
  return epilogue(static_cast<const float*>(acc), layout, out_scale, ep, y, stream);
}

cudaError_t launch_scale_bias_act(const DevView& x, const DevView& y, float scale, const DevEpilogue& ep,
                                  cudaStream_t stream) {
  if (x.numel() == 0) return cudaSuccess;
  const PlaneGrid g = plane_grid(int64_t(x.n) * x.c, x.plane());
  GPEN_LAUNCH(g.grid, g.block, 0, stream, scale_bias_act_kernel)(x, y, scale, ep);
  return cudaGetLastError();
}

cudaError_t launch_add(const DevView& a, const DevView& b, const DevView& y, cudaStream_t stream) {
  if (a.numel() == 0) return cudaSuccess;
  const PlaneGrid g = plane_grid(int64_t(a.n) * a.c, a.plane());
  GPEN_LAUNCH(g.grid, g.block, 0, stream, add_kernel)(a, b, y);
  return cudaGetLastError();
}

cudaError_t launch_broadcast(const float* param, const DevView& y, cudaStream_t stream) {
  if (y.numel() == 0) return cudaSuccess;
  const PlaneGrid g = plane_grid(int64_t(y.n) * y.c, y.plane());
  GPEN_LAUNCH(g.grid, g.block, 0, stream, broadcast_kernel)(param, y);
  return cudaGetLastError();
}

}  // namespace gpen::cuda
