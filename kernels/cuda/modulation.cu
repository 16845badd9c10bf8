#include <cuda_fp16.h>

#include "kernels/cuda/launch.cuh"

#include "kernels/cuda/modulation.cuh"

namespace gpen::cuda {
namespace {

constexpr int kTile = 32, kTileRows = 8;

template <class T> __device__ T from_float(float v);
template <> __device__ float from_float<float>(float v) { return v; }
template <> __device__ __half from_float<__half>(float v) { return __float2half_rn(v); }

// NCHW -> NCHW: one plane per grid row.
template <class T>
__global__ void prepare_nchw(DevView x, const float* __restrict__ scale, T* __restrict__ out) {
  const int P = int(x.plane());
  GPEN_PLANE_LOOP(plane, x.n * x.c) {
    const int n = plane / x.c, c = plane % x.c;
    const float s = scale ? scale[plane] : 1.f;
    const float* xp = x.data + n * x.batch_stride + int64_t(c) * P;
    T* o = out + int64_t(plane) * P;
    GPEN_PIXEL_LOOP(p, P) o[p] = from_float<T>(xp[p] * s);
  }
}

// NCHW -> NHWC: per sample a [C][P] -> [P][C] transpose through a shared-memory tile, so that
// both the reads (along pixels) and the writes (along channels) are coalesced.
template <class T>
__global__ void prepare_nhwc(DevView x, const float* __restrict__ scale, T* __restrict__ out) {
  GPEN_SHARED(float, tile, [kTile][kTile + 1]);  // +1: no bank conflicts on the transposed read
  const int64_t P = x.plane();
  const int C = x.c;
  const int64_t p0 = int64_t(blockIdx.x) * kTile;
  const int c0 = blockIdx.y * kTile, n = blockIdx.z;
  const float* xs = x.data + n * x.batch_stride;
  for (int j = threadIdx.y; j < kTile; j += kTileRows) {
    const int c = c0 + j;
    const int64_t p = p0 + threadIdx.x;
    if (c < C && p < P) tile[j][threadIdx.x] = xs[c * P + p] * (scale ? scale[int64_t(n) * C + c] : 1.f);
  }
  __syncthreads();
  for (int j = threadIdx.y; j < kTile; j += kTileRows) {
    const int64_t p = p0 + j;
    const int c = c0 + threadIdx.x;
    if (c < C && p < P) out[(int64_t(n) * P + p) * C + c] = from_float<T>(tile[threadIdx.x][j]);
  }
}

// One warp per (n, k): lanes stride over c, then a shuffle reduction.
__global__ void demod_factors_kernel(const float* __restrict__ style, const float* __restrict__ wsq,
                                     float* __restrict__ d, int n, int C, int K, float eps) {
  const int64_t warp = (blockIdx.x * int64_t(blockDim.x) + threadIdx.x) / 32;
  const int lane = threadIdx.x % 32;
  if (warp >= int64_t(n) * K) return;
  const int b = int(warp / K), k = int(warp % K);
  float sum = 0.f;
  for (int c = lane; c < C; c += 32) {
    const float s = style[int64_t(b) * C + c];
    sum += s * s * wsq[int64_t(k) * C + c];
  }
  for (int off = 16; off > 0; off /= 2) sum += __shfl_down_sync(0xffffffffu, sum, off);
  if (lane == 0) d[warp] = 1.f / sqrtf(sum + eps);
}


template <class T>
cudaError_t prepare(const DevView& x, const float* scale, T* out, ScratchLayout layout, cudaStream_t stream) {
  if (layout == ScratchLayout::NCHW) {
    const PlaneGrid g = plane_grid(int64_t(x.n) * x.c, x.plane());
    GPEN_LAUNCH(g.grid, g.block, 0, stream, prepare_nchw<T>)(x, scale, out);
  } else {
    const dim3 grid(unsigned((x.plane() + kTile - 1) / kTile), unsigned((x.c + kTile - 1) / kTile), unsigned(x.n));
    GPEN_LAUNCH(grid, dim3(kTile, kTileRows), 0, stream, prepare_nhwc<T>)(x, scale, out);
  }
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_prepare_conv_input(const DevView& x, const float* in_scale, void* out, ScratchType type,
                                      ScratchLayout layout, cudaStream_t stream) {
  if (x.numel() == 0) return cudaSuccess;
  if (type == ScratchType::F16) return prepare(x, in_scale, static_cast<__half*>(out), layout, stream);
  return prepare(x, in_scale, static_cast<float*>(out), layout, stream);
}

cudaError_t launch_demod_factors(const float* style, const float* wsq, float* d, int n, int C, int K, float eps,
                                 cudaStream_t stream) {
  const int64_t threads = int64_t(n) * K * 32;
  if (threads == 0) return cudaSuccess;
  GPEN_LAUNCH(unsigned((threads + 255) / 256), 256, 0, stream, demod_factors_kernel)(style, wsq, d, n, C, K, eps);
  return cudaGetLastError();
}

}  // namespace gpen::cuda
