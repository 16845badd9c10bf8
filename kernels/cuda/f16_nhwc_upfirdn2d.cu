#include "kernels/cuda/f16_nhwc_access.cuh"
#include "kernels/cuda/f16_nhwc_upfirdn2d.cuh"

namespace gpen::cuda {
namespace {

constexpr int kMaxTaps = 8;  // per axis

// The input index that sample j of the upsampled, padded signal comes from, or -1 for a zero.
template <int UP>
__device__ __forceinline__ int source_index(int j, int up, int pad, int in) {
  if (UP) up = UP;
  const int t = j - pad;
  if (t < 0 || t % up) return -1;
  return t / up < in ? t / up : -1;
}

// One thread per (output pixel, channel group of V). In NHWC the channels of one pixel are
// contiguous, so the threads of a warp read neighbouring channels of the same taps: every tap
// read is coalesced, and the neighbouring pixels' overlapping taps come from L1. The flipped
// taps sit in shared memory. grid: x = (pixel chunk, channel chunk), y = output row, z = sample.
// K: taps per axis known at compile time (4: GPEN's [1,3,3,1]; the tap loops then unroll), or 0.
template <int UP, int V, int K>
__global__ void upfirdn2d_nhwc(DevView16 x, DevView16 y, const float* __restrict__ kernel, int kh, int kw, int up,
                               int down, int pad0, const float* __restrict__ in_scale, DevEpilogue ep,
                               int channel_chunks) {
  GPEN_SHARED(float, taps, [kMaxTaps * kMaxTaps]);
  if (K) kh = kw = K;
  const int tid = threadIdx.y * blockDim.x + threadIdx.x;
  for (int i = tid; i < kh * kw; i += blockDim.x * blockDim.y)  // flipped: a true convolution
    taps[i] = kernel[(kh - 1 - i / kw) * kw + (kw - 1 - i % kw)];
  __syncthreads();
  const int g = (blockIdx.x % channel_chunks) * blockDim.x + threadIdx.x;
  const int ox = (blockIdx.x / channel_chunks) * blockDim.y + threadIdx.y;
  const int n = blockIdx.z, c = g * V;
  if (c >= y.c || ox >= y.w) return;
  float bias[V], scale[V];
#pragma unroll
  for (int j = 0; j < V; ++j) {
    bias[j] = ep.bias ? ep.bias[c + j] : 0.f;
    scale[j] = in_scale ? in_scale[int64_t(n) * y.c + c + j] : 1.f;
  }
  for (int oy = blockIdx.y; oy < y.h; oy += gridDim.y) {
    float acc[V] = {};
#pragma unroll
    for (int ky = 0; ky < (K ? K : kh); ++ky) {
      const int sy = source_index<UP>(oy * down + ky, up, pad0, x.h);
      if (sy < 0) continue;
#pragma unroll
      for (int kx = 0; kx < (K ? K : kw); ++kx) {
        const int sx = source_index<UP>(ox * down + kx, up, pad0, x.w);
        if (sx < 0) continue;
        float v[V];
        load_f16<V>(at(x, n, sy * x.w + sx, c), v);
        const float t = taps[ky * kw + kx];
#pragma unroll
        for (int j = 0; j < V; ++j) acc[j] += v[j] * t;
      }
    }
#pragma unroll
    for (int j = 0; j < V; ++j) {
      float a = acc[j] * scale[j] + bias[j];
      if (a < 0.f) a *= ep.slope;
      acc[j] = a * ep.gain;
    }
    store_f16<V>(at(y, n, oy * y.w + ox, c), acc);
  }
}

template <int UP>
void launch_up(const DevView16& x, const DevView16& y, const float* kernel, int kh, int kw, int up, int down, int pad0,
               const float* in_scale, const DevEpilogue& ep, cudaStream_t stream) {
  const bool two = x.pairs() && y.pairs();
  const int groups = two ? y.c / 2 : y.c;
  int bx = 1;
  while (bx < groups && bx < 32) bx *= 2;
  const int by = kThreads / bx;
  const int channel_chunks = (groups + bx - 1) / bx, pixel_chunks = (y.w + by - 1) / by;
  const dim3 grid(unsigned(channel_chunks * pixel_chunks), unsigned(y.h < 65535 ? y.h : 65535), unsigned(y.n));
  const dim3 block{unsigned(bx), unsigned(by)};
  const bool four = kh == 4 && kw == 4;
#define GPEN_FIR_LAUNCH(V, K)                                                                 \
  GPEN_LAUNCH(grid, block, 0, stream, upfirdn2d_nhwc<UP, V, K>)(x, y, kernel, kh, kw, up, down, pad0, \
                                                                in_scale, ep, channel_chunks)
  if (two && four)
    GPEN_FIR_LAUNCH(2, 4);
  else if (two)
    GPEN_FIR_LAUNCH(2, 0);
  else if (four)
    GPEN_FIR_LAUNCH(1, 4);
  else
    GPEN_FIR_LAUNCH(1, 0);
#undef GPEN_FIR_LAUNCH
}

}  // namespace

cudaError_t launch_f16_nhwc_upfirdn2d(const DevView16& x, const DevView16& y, const float* kernel, int kh, int kw,
                                      int up, int down, int pad0, const float* in_scale, const DevEpilogue& ep,
                                      cudaStream_t stream) {
  if (kh < 1 || kw < 1 || kh > kMaxTaps || kw > kMaxTaps || up < 1 || down < 1 || x.c != y.c || x.n != y.n)
    return cudaErrorInvalidValue;
  if (y.n == 0 || y.c == 0 || y.plane() == 0) return cudaSuccess;
  if (up == 1)
    launch_up<1>(x, y, kernel, kh, kw, up, down, pad0, in_scale, ep, stream);
  else if (up == 2)
    launch_up<2>(x, y, kernel, kh, kw, up, down, pad0, in_scale, ep, stream);
  else
    launch_up<0>(x, y, kernel, kh, kw, up, down, pad0, in_scale, ep, stream);
  return cudaGetLastError();
}

}  // namespace gpen::cuda
