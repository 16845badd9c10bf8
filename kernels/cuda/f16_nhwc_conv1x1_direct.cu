#include "kernels/cuda/conv1x1_direct.cuh"
#include "kernels/cuda/f16_nhwc_access.cuh"
#include "kernels/cuda/f16_nhwc_conv1x1_direct.cuh"

namespace gpen::cuda {
namespace {

// One thread per (pixel, group of V outputs); a block's threads share sample n's modulated
// weights ws[c * K + k] = w[k][c] * in_scale[n][c] in shared memory (k innermost: the threads
// along k read neighbouring words). XV: input channels loaded two at a time (__half2).
template <int V, int XV>
__global__ void conv1x1_nhwc(DevView16 x, const float* __restrict__ in_scale, const float* __restrict__ w,
                             const float* __restrict__ out_scale, DevEpilogue ep, DevThen then, DevView16 y) {
  GPEN_DYNAMIC_SHARED(float, ws);
  const int n = blockIdx.z, C = x.c, K = y.c, P = int(y.plane());
  const int tid = threadIdx.y * blockDim.x + threadIdx.x;
  for (int i = tid; i < C * K; i += blockDim.x * blockDim.y) {
    const int c = i / K, k = i % K;
    ws[i] = w[k * C + c] * (in_scale ? in_scale[int64_t(n) * C + c] : 1.f);
  }
  __syncthreads();
  const int k0 = GPEN_NHWC_GROUP() * V;
  if (k0 >= K) return;
  float scale[V], bias[V];
#pragma unroll
  for (int j = 0; j < V; ++j) {
    scale[j] = out_scale ? out_scale[int64_t(n) * K + k0 + j] : 1.f;
    bias[j] = ep.bias ? ep.bias[k0 + j] : 0.f;
  }
  GPEN_NHWC_PIXEL_LOOP(p, P) {
    const uint16_t* xp = at(x, n, p, 0);
    float acc[V] = {};
    for (int c = 0; c < C; c += XV) {
      float v[XV];
      load_f16<XV>(xp + int64_t(c) * x.channel_stride, v);  // XV = 2 only with channel_stride 1
#pragma unroll
      for (int i = 0; i < XV; ++i)
#pragma unroll
        for (int j = 0; j < V; ++j) acc[j] += ws[(c + i) * K + k0 + j] * v[i];
    }
#pragma unroll
    for (int j = 0; j < V; ++j) {
      float a = acc[j] * scale[j] + bias[j];
      if (a < 0.f) a *= ep.slope;
      acc[j] = apply_then(then, a * ep.gain, k0 + j);
    }
    store_f16<V>(at(y, n, p, k0), acc);
  }
}

template <int V>
void launch_v(const DevView16& x, const float* in_scale, const float* weight, const float* out_scale,
              const DevEpilogue& ep, const DevThen& then, const DevView16& y, cudaStream_t stream) {
  const NhwcGrid g = nhwc_grid(y.n, y.plane(), y.c / V);
  const size_t smem = size_t(x.c) * y.c * sizeof(float);
  if (x.pairs())
    GPEN_LAUNCH(g.grid, g.block, smem, stream, conv1x1_nhwc<V, 2>)(x, in_scale, weight, out_scale, ep, then, y);
  else
    GPEN_LAUNCH(g.grid, g.block, smem, stream, conv1x1_nhwc<V, 1>)(x, in_scale, weight, out_scale, ep, then, y);
}

}  // namespace

cudaError_t launch_f16_nhwc_conv1x1_direct(const DevView16& x, const float* in_scale, const float* weight,
                                           const float* out_scale, const DevEpilogue& ep, const DevThen& then,
                                           const DevView16& y, cudaStream_t stream) {
  if (!conv1x1_direct_fits(x.c, y.c) || x.n != y.n || x.h != y.h || x.w != y.w) return cudaErrorInvalidValue;
  if (y.n == 0 || y.c == 0 || x.c == 0 || y.plane() == 0) return cudaSuccess;
  if (y.pairs())
    launch_v<2>(x, in_scale, weight, out_scale, ep, then, y, stream);
  else
    launch_v<1>(x, in_scale, weight, out_scale, ep, then, y, stream);
  return cudaGetLastError();
}

}  // namespace gpen::cuda
