#include "kernels/cuda/conv1x1_direct.cuh"
#include "kernels/cuda/launch.cuh"

namespace gpen::cuda {
namespace {

// The modulated weights of sample n, ws[k * C + c] = w[k][c] * in_scale[n][c], in shared memory.
__device__ void stage_weights(float* ws, const float* __restrict__ w, const float* __restrict__ in_scale, int n,
                              int C, int K) {
  __syncthreads();  // the previous sample's reads are done
  for (int i = threadIdx.x; i < C * K; i += blockDim.x) ws[i] = w[i] * (in_scale ? in_scale[n * C + i % C] : 1.f);
  __syncthreads();
}

__device__ __forceinline__ float finish(const DevEpilogue& ep, const float* out_scale, float acc, int n, int K, int k) {
  if (out_scale) acc *= out_scale[n * K + k];
  if (ep.bias) acc += ep.bias[k];
  if (acc < 0.f) acc *= ep.slope;
  return acc * ep.gain;
}

// Few outputs (K <= 8): each thread keeps K accumulators and streams over the C input planes.
__global__ void conv1x1_few_outputs(DevView x, const float* __restrict__ in_scale, const float* __restrict__ w,
                                    const float* __restrict__ out_scale, DevEpilogue ep, DevView y) {
  GPEN_DYNAMIC_SHARED(float, ws);
  const int C = x.c, K = y.c, P = int(x.plane());
  for (int n = blockIdx.y; n < x.n; n += gridDim.y) {
    stage_weights(ws, w, in_scale, n, C, K);
    const float* xs = x.data + n * x.batch_stride;
    float* ys = y.data + n * y.batch_stride;
    GPEN_PIXEL_LOOP(p, P) {
      float acc[kConv1x1MaxSmall] = {};
      for (int c = 0; c < C; ++c) {
        const float v = xs[int64_t(c) * P + p];
#pragma unroll
        for (int k = 0; k < kConv1x1MaxSmall; ++k)
          if (k < K) acc[k] += ws[k * C + c] * v;
      }
#pragma unroll
      for (int k = 0; k < kConv1x1MaxSmall; ++k)
        if (k < K) ys[int64_t(k) * P + p] = finish(ep, out_scale, acc[k], n, K, k);
    }
  }
}

// Few inputs (C <= 8): each thread loads its pixel's C inputs once and writes all K outputs.
__global__ void conv1x1_few_inputs(DevView x, const float* __restrict__ in_scale, const float* __restrict__ w,
                                   const float* __restrict__ out_scale, DevEpilogue ep, DevView y) {
  GPEN_DYNAMIC_SHARED(float, ws);
  const int C = x.c, K = y.c, P = int(x.plane());
  for (int n = blockIdx.y; n < x.n; n += gridDim.y) {
    stage_weights(ws, w, in_scale, n, C, K);
    const float* xs = x.data + n * x.batch_stride;
    float* ys = y.data + n * y.batch_stride;
    GPEN_PIXEL_LOOP(p, P) {
      float v[kConv1x1MaxSmall];
#pragma unroll
      for (int c = 0; c < kConv1x1MaxSmall; ++c) v[c] = c < C ? xs[int64_t(c) * P + p] : 0.f;
      for (int k = 0; k < K; ++k) {
        float acc = 0.f;
#pragma unroll
        for (int c = 0; c < kConv1x1MaxSmall; ++c)
          if (c < C) acc += ws[k * C + c] * v[c];
        ys[int64_t(k) * P + p] = finish(ep, out_scale, acc, n, K, k);
      }
    }
  }
}

}  // namespace

cudaError_t launch_f32_conv1x1_direct(const DevView& x, const float* in_scale, const float* weight,
                                      const float* out_scale, const DevEpilogue& ep, const DevView& y,
                                      cudaStream_t stream) {
  if (y.numel() == 0) return cudaSuccess;
  const PlaneGrid g = plane_grid(x.n, x.plane());
  const size_t smem = size_t(x.c) * y.c * sizeof(float);
  if (y.c <= kConv1x1MaxSmall)
    GPEN_LAUNCH(g.grid, g.block, smem, stream, conv1x1_few_outputs)(x, in_scale, weight, out_scale, ep, y);
  else
    GPEN_LAUNCH(g.grid, g.block, smem, stream, conv1x1_few_inputs)(x, in_scale, weight, out_scale, ep, y);
  return cudaGetLastError();
}

}  // namespace gpen::cuda
