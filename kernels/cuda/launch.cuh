// Launch helpers shared by the .cu files (nvcc only).
#pragma once
#include <cstdint>

namespace gpen::cuda {

constexpr int kThreads = 256;

// Blocks for `total` elements at kThreads each, capped: kernels loop grid-stride over the rest.
inline unsigned grid_blocks(int64_t total) {
  const int64_t b = (total + kThreads - 1) / kThreads;
  return unsigned(b < 1 ? 1 : b > 65535 * 8 ? 65535 * 8 : b);
}

// Per-plane elementwise kernels: grid.y walks the (sample, channel) planes, grid.x the pixels of
// one plane, so that kernels index with 32-bit pixel offsets and one division per plane instead
// of 64-bit divisions per element.
struct PlaneGrid {
  dim3 grid, block;
};
inline PlaneGrid plane_grid(int64_t planes, int64_t plane_size) {
  int64_t bx = (plane_size + kThreads - 1) / kThreads;
  bx = bx < 1 ? 1 : bx > 4096 ? 4096 : bx;
  const int64_t by = planes < 1 ? 1 : planes > 65535 ? 65535 : planes;
  return {dim3(unsigned(bx), unsigned(by)), dim3(kThreads)};
}

}  // namespace gpen::cuda

#define GPEN_PLANE_LOOP(plane, planes) for (int plane = blockIdx.y; plane < (planes); plane += gridDim.y)
#define GPEN_PIXEL_LOOP(p, P) for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < (P); p += gridDim.x * blockDim.x)

#define GPEN_GRID_STRIDE(i, total) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (total); i += int64_t(gridDim.x) * blockDim.x)
