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

}  // namespace gpen::cuda

#define GPEN_GRID_STRIDE(i, total) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (total); i += int64_t(gridDim.x) * blockDim.x)
