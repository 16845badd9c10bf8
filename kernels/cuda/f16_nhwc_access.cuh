// Device helpers shared by the f16 NHWC kernels (nvcc only): element addresses in a DevView16,
// loads and stores of V = 1 or 2 channels (V = 2: one __half2), and the launch grid.
#pragma once
#include <cuda_fp16.h>

#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/types.cuh"

namespace gpen::cuda {

// Threads: x along channel groups of V channels, y along pixels; grid.z the sample. Up to 32
// threads share a pixel (a warp covers 64 channels of one pixel as __half2), the rest of the
// block takes the next pixels.
struct NhwcGrid {
  dim3 grid, block;
};
inline NhwcGrid nhwc_grid(int n, int64_t pixels, int groups) {
  int bx = 1;
  while (bx < groups && bx < 32) bx *= 2;
  const int by = kThreads / bx;
  const int64_t gx = (groups + bx - 1) / bx;
  int64_t gy = (pixels + by - 1) / by;
  gy = gy < 1 ? 1 : gy > 16384 ? 16384 : gy;  // kernels loop over the rest
  return {dim3(unsigned(gx), unsigned(gy), unsigned(n < 1 ? 1 : n)), dim3(unsigned(bx), unsigned(by))};
}

// The channel group of this thread (g * V is its first channel) and its pixels, grid-strided.
#define GPEN_NHWC_GROUP() (blockIdx.x * blockDim.x + threadIdx.x)
#define GPEN_NHWC_PIXEL_LOOP(p, P) \
  for (int p = blockIdx.y * blockDim.y + threadIdx.y; p < (P); p += gridDim.y * blockDim.y)

__device__ __forceinline__ uint16_t* at(const DevView16& v, int n, int p, int c) {
  return v.data + n * v.batch_stride + int64_t(p) * v.pixel_stride + int64_t(c) * v.channel_stride;
}

template <int V>
__device__ __forceinline__ void load_f16(const uint16_t* p, float* out) {
  if constexpr (V == 2) {
    const float2 f = __half22float2(*reinterpret_cast<const __half2*>(p));
    out[0] = f.x;
    out[1] = f.y;
  } else {
    out[0] = __half2float(*reinterpret_cast<const __half*>(p));
  }
}

template <int V>
__device__ __forceinline__ void store_f16(uint16_t* p, const float* v) {
  if constexpr (V == 2)
    *reinterpret_cast<__half2*>(p) = __floats2half2_rn(v[0], v[1]);
  else
    *reinterpret_cast<__half*>(p) = __float2half_rn(v[0]);
}

// The f32 kernels' epilogue: act(v + bias[c]) * gain.
__device__ __forceinline__ float apply_epilogue(const DevEpilogue& ep, float v, int c) {
  if (ep.bias) v += ep.bias[c];
  if (v < 0.f) v *= ep.slope;
  return v * ep.gain;
}

// The optional second stage (DevThen) on an epilogue's result.
__device__ __forceinline__ float apply_then(const DevThen& t, float v, int c) {
  return t.on ? apply_epilogue(t.ep, v * t.scale, c) : v;
}

}  // namespace gpen::cuda
