#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/upfirdn2d.cuh"

namespace gpen::cuda {
namespace {

// --- tiled kernel: every FIR of GPEN (4x4 taps, up 1 or 2, down 1 or 2) ---
//
// One block computes a kTileW x tile_h(DOWN) tile of one (sample, channel) plane. It first
// stages the input samples the tile needs (zeros outside the image) and the flipped taps in
// shared memory; then each thread computes a column of consecutive output rows from shared
// memory. Global memory is read about once and written once, where the one-thread-per-output
// kernel below re-read every input up to kh*kw times and spent its time in 64-bit division.
// With the tap count a template argument (K = 4, GPEN's [1,3,3,1]) the tap loops unroll, the taps
// stay in registers, and the rows a thread reads overlap between its outputs.
constexpr int kTileW = 32, kBlockRows = 8;
constexpr int kMaxTaps = 8;  // per dimension

__host__ __device__ constexpr int tile_h(int down) { return down == 1 ? 64 : 32; }
__host__ __device__ constexpr int staged_extent(int tile, int up, int down, int taps) {
  return ((tile - 1) * down + taps - 1) / up + 2;
}

// floor(a / b) for b > 0 and any a.
__device__ __forceinline__ int floor_div(int a, int b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

// K: taps per axis, known at compile time; 0: kh x kw at run time (at most kMaxTaps each).
template <int UP, int DOWN, int K>
__global__ void __launch_bounds__(kTileW* kBlockRows)
    upfirdn2d_tiled(DevView x, DevView y, const float* __restrict__ kernel, int kh, int kw, int pad0, DevEpilogue ep) {
  constexpr int TH = tile_h(DOWN), kRows = TH / kBlockRows;
  constexpr int SW = staged_extent(kTileW, UP, DOWN, kMaxTaps), SH = staged_extent(TH, UP, DOWN, kMaxTaps);
  GPEN_SHARED(float, src, [SH][SW + 1]);
  GPEN_SHARED(float, taps, [kMaxTaps * kMaxTaps]);
  if (K) kh = kw = K;
  const int tid = threadIdx.y * kTileW + threadIdx.x;
  for (int i = tid; i < kh * kw; i += kTileW * kBlockRows)  // flipped: a true convolution
    taps[i] = kernel[(kh - 1 - i / kw) * kw + (kw - 1 - i % kw)];
  // Only what this tap count reads is staged.
  const int sh = staged_extent(TH, UP, DOWN, kh), sw = staged_extent(kTileW, UP, DOWN, kw);

  const int ox0 = blockIdx.x * kTileW, oy0 = blockIdx.y * TH;
  // First input sample the tile reads, per axis (output o, tap k read upsampled index o*DOWN+k-pad0).
  const int sx0 = floor_div(ox0 * DOWN - pad0, UP), sy0 = floor_div(oy0 * DOWN - pad0, UP);
  const int planes = y.n * y.c;
  for (int plane = blockIdx.z; plane < planes; plane += gridDim.z) {
    const int n = plane / y.c, c = plane % y.c;
    const float* xp = x.data + n * x.batch_stride + int64_t(c) * x.plane();
    __syncthreads();  // the previous plane's reads of src are done
    for (int r = threadIdx.y; r < sh; r += kBlockRows) {
      const int sy = sy0 + r;
      for (int q = threadIdx.x; q < sw; q += kTileW) {
        const int sx = sx0 + q;
        src[r][q] = (sy >= 0 && sy < x.h && sx >= 0 && sx < x.w) ? xp[int64_t(sy) * x.w + sx] : 0.f;
      }
    }
    __syncthreads();
    const float bias = ep.bias ? ep.bias[c] : 0.f;
    float* yp = y.data + n * y.batch_stride + int64_t(c) * y.plane();
    const int ox = ox0 + threadIdx.x;
    if (ox >= y.w) continue;  // no barrier until the next plane's, which every thread reaches
#pragma unroll
    for (int rr = 0; rr < kRows; ++rr) {
      const int oy = oy0 + threadIdx.y * kRows + rr;
      if (oy >= y.h) break;
      float acc = 0.f;
#pragma unroll
      for (int ky = 0; ky < (K ? K : kMaxTaps); ++ky) {
        if (!K && ky >= kh) break;
        const int ty = oy * DOWN + ky - pad0;
        if (UP > 1 && ty % UP) continue;  // a zero inserted by the upsampling
        const float* row = src[ty / UP - sy0];
#pragma unroll
        for (int kx = 0; kx < (K ? K : kMaxTaps); ++kx) {
          if (!K && kx >= kw) break;
          const int tx = ox * DOWN + kx - pad0;
          if (UP > 1 && tx % UP) continue;
          acc += row[tx / UP - sx0] * taps[ky * kw + kx];
        }
      }
      acc += bias;
      if (acc < 0.f) acc *= ep.slope;
      yp[int64_t(oy) * y.w + ox] = acc * ep.gain;
    }
  }
}

template <int UP, int DOWN>
void launch_tiled(const DevView& x, const DevView& y, const float* kernel, int kh, int kw, int pad0,
                  const DevEpilogue& ep, cudaStream_t stream) {
  const int planes = y.n * y.c;
  const dim3 grid(unsigned((y.w + kTileW - 1) / kTileW), unsigned((y.h + tile_h(DOWN) - 1) / tile_h(DOWN)),
                  unsigned(planes < 65535 ? planes : 65535));
  const dim3 block(kTileW, kBlockRows);
  if (kh == 4 && kw == 4)
    GPEN_LAUNCH(grid, block, 0, stream, upfirdn2d_tiled<UP, DOWN, 4>)(x, y, kernel, kh, kw, pad0, ep);
  else
    GPEN_LAUNCH(grid, block, 0, stream, upfirdn2d_tiled<UP, DOWN, 0>)(x, y, kernel, kh, kw, pad0, ep);
}

// --- general kernel: any up, down and tap count (the fallback) ---

// The input index that sample j of the upsampled, padded signal comes from, or -1 for a zero.
__device__ __forceinline__ int source_index(int j, int up, int pad, int in) {
  const int t = j - pad;
  if (t < 0 || t % up) return -1;
  return t / up < in ? t / up : -1;
}

// One thread per output element; the kernel taps come from global memory through the read-only
// cache.
__global__ void upfirdn2d_general(DevView x, DevView y, const float* __restrict__ kernel, int kh, int kw, int up,
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
  const bool tiled = kh <= kMaxTaps && kw <= kMaxTaps;
  if (tiled && up == 1 && down == 1) {
    launch_tiled<1, 1>(x, y, kernel, kh, kw, pad0, ep, stream);
  } else if (tiled && up == 2 && down == 1) {
    launch_tiled<2, 1>(x, y, kernel, kh, kw, pad0, ep, stream);
  } else if (tiled && up == 1 && down == 2) {
    launch_tiled<1, 2>(x, y, kernel, kh, kw, pad0, ep, stream);
  } else {
    GPEN_LAUNCH(grid_blocks(y.numel()), kThreads, 0, stream, upfirdn2d_general)(x, y, kernel, kh, kw, up, down, pad0,
                                                                                 ep);
  }
  return cudaGetLastError();
}

}  // namespace gpen::cuda
