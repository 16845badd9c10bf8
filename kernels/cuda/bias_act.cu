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

// Address of element i (in packed n, c, p order) of a view: samples are batch_stride apart.
__device__ __forceinline__ int64_t view_offset(const DevView& v, int64_t i, int64_t per_sample) {
  return (i / per_sample) * v.batch_stride + i % per_sample;
}


template <class T>
__global__ void epilogue_nchw(const T* __restrict__ acc, const float* __restrict__ os, DevEpilogue ep, DevView y) {
  const int64_t P = y.plane(), per_sample = int64_t(y.c) * P;
  GPEN_GRID_STRIDE(i, int64_t(y.n) * per_sample) {
    const int64_t n = i / per_sample;
    const int k = int(i % per_sample / P);
    const float s = os ? os[n * y.c + k] : 1.f;
    y.data[view_offset(y, i, per_sample)] = apply(ep, to_float(acc[i]) * s, k);
  }
}

// [P][K] -> [K][P] per sample through a shared tile: reads along channels, writes along pixels.
template <class T>
__global__ void epilogue_nhwc(const T* __restrict__ acc, const float* __restrict__ os, DevEpilogue ep, DevView y) {
  __shared__ float tile[kTile][kTile + 1];
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

__global__ void scale_bias_act_kernel(DevView x, DevView y, float scale, DevEpilogue ep) {
  const int64_t P = x.plane(), per_sample = int64_t(x.c) * P;
  GPEN_GRID_STRIDE(i, int64_t(x.n) * per_sample) {
    const int c = int(i % per_sample / P);
    y.data[view_offset(y, i, per_sample)] = apply(ep, x.data[view_offset(x, i, per_sample)] * scale, c);
  }
}

__global__ void add_kernel(DevView a, DevView b, DevView y) {
  const int64_t per_sample = int64_t(a.c) * a.plane();
  GPEN_GRID_STRIDE(i, int64_t(a.n) * per_sample) {
    y.data[view_offset(y, i, per_sample)] =
        a.data[view_offset(a, i, per_sample)] + b.data[view_offset(b, i, per_sample)];
  }
}

__global__ void broadcast_kernel(const float* __restrict__ param, DevView y) {
  const int64_t per_sample = int64_t(y.c) * y.plane();
  GPEN_GRID_STRIDE(i, int64_t(y.n) * per_sample) { y.data[view_offset(y, i, per_sample)] = param[i % per_sample]; }
}

template <class T>
cudaError_t epilogue(const T* acc, ScratchLayout layout, const float* os, const DevEpilogue& ep, const DevView& y,
                     cudaStream_t stream) {
  if (layout == ScratchLayout::NCHW) {
    epilogue_nchw<T><<<grid_blocks(y.numel()), kThreads, 0, stream>>>(acc, os, ep, y);
  } else {
    const dim3 grid(unsigned((y.plane() + kTile - 1) / kTile), unsigned((y.c + kTile - 1) / kTile), unsigned(y.n));
    epilogue_nhwc<T><<<grid, dim3(kTile, kTileRows), 0, stream>>>(acc, os, ep, y);
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
  scale_bias_act_kernel<<<grid_blocks(x.numel()), kThreads, 0, stream>>>(x, y, scale, ep);
  return cudaGetLastError();
}

cudaError_t launch_add(const DevView& a, const DevView& b, const DevView& y, cudaStream_t stream) {
  if (a.numel() == 0) return cudaSuccess;
  add_kernel<<<grid_blocks(a.numel()), kThreads, 0, stream>>>(a, b, y);
  return cudaGetLastError();
}

cudaError_t launch_broadcast(const float* param, const DevView& y, cudaStream_t stream) {
  if (y.numel() == 0) return cudaSuccess;
  broadcast_kernel<<<grid_blocks(y.numel()), kThreads, 0, stream>>>(param, y);
  return cudaGetLastError();
}

}  // namespace gpen::cuda
