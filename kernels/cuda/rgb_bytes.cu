#include "kernels/cuda/launch.cuh"
#include "kernels/cuda/rgb_bytes.cuh"

namespace gpen::cuda {
namespace {

// One thread per pixel: three bytes read together, one float written to each plane.
__global__ void rgb_bytes_to_planes_kernel(const uint8_t* __restrict__ in, const float* __restrict__ levels,
                                           bool reverse, float* __restrict__ y, int64_t plane, int64_t batch_stride,
                                           int n) {
  GPEN_GRID_STRIDE(i, int64_t(n) * plane) {
    const int64_t b = i / plane, p = i % plane;
    const uint8_t* px = in + i * 3;
    const uint8_t first = reverse ? px[2] : px[0], last = reverse ? px[0] : px[2];
    float* yb = y + b * batch_stride + p;
    yb[0] = levels[first];
    yb[plane] = levels[256 + px[1]];
    yb[2 * plane] = levels[512 + last];
  }
}

// The host's planes_to_face: v = y * scale + offset (two roundings: no fused multiply-add),
// clipped to [0, 1], times 255, truncated.
__device__ __forceinline__ uint8_t to_byte(float y, float scale, float offset) {
  float v = __fadd_rn(__fmul_rn(y, scale), offset);
  v = v < 0.f ? 0.f : (v > 1.f ? 1.f : v);
  return uint8_t(int(__fmul_rn(v, 255.f)));
}

__global__ void planes_to_rgb_bytes_kernel(const float* __restrict__ x, int64_t plane, int64_t batch_stride,
                                           float scale, float offset, uint8_t* __restrict__ out, int n) {
  GPEN_GRID_STRIDE(i, int64_t(n) * plane) {
    const int64_t b = i / plane, p = i % plane;
    const float* xb = x + b * batch_stride + p;
    uint8_t* px = out + i * 3;
    px[0] = to_byte(xb[0], scale, offset);
    px[1] = to_byte(xb[plane], scale, offset);
    px[2] = to_byte(xb[2 * plane], scale, offset);
  }
}

}  // namespace

cudaError_t launch_rgb_bytes_to_planes(const uint8_t* in, const float* levels, bool reverse_channels, DevView y,
                                       cudaStream_t stream) {
  if (y.c != 3) return cudaErrorInvalidValue;
  const int64_t total = int64_t(y.n) * y.plane();
  if (total == 0) return cudaSuccess;
  GPEN_LAUNCH(grid_blocks(total), kThreads, 0, stream, rgb_bytes_to_planes_kernel)(
      in, levels, reverse_channels, y.data, y.plane(), y.batch_stride, y.n);
  return cudaGetLastError();
}

cudaError_t launch_planes_to_rgb_bytes(DevView x, float scale, float offset, uint8_t* out, cudaStream_t stream) {
  if (x.c != 3) return cudaErrorInvalidValue;
  const int64_t total = int64_t(x.n) * x.plane();
  if (total == 0) return cudaSuccess;
  GPEN_LAUNCH(grid_blocks(total), kThreads, 0, stream, planes_to_rgb_bytes_kernel)(
      x.data, x.plane(), x.batch_stride, scale, offset, out, x.n);
  return cudaGetLastError();
}

}  // namespace gpen::cuda
