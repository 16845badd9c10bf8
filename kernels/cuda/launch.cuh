// Launch helpers shared by the .cu files (nvcc, or the host compiler in the emulation build).
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

// kernel<<<grid, block, smem, stream>>>, written so that the emulation build (kernels/cuda/emu,
// GPEN_CUDA_EMU) can run the same launch on the CPU:
//   GPEN_LAUNCH(grid, block, smem, stream, kernel<T>)(args...);
// `extern __shared__ T name[]` as GPEN_DYNAMIC_SHARED(T, name), and `__shared__ T name[A][B]` as
// GPEN_SHARED(T, name, [A][B]) at the top of the kernel. The emulator fills each block's
// shared memory with 0xFF bytes (NaN as a float) before its first thread uses it: a read of a
// slot no thread of this block wrote sees that, not the previous block's value.
#ifdef GPEN_CUDA_EMU
#define GPEN_LAUNCH(grid, block, smem, stream, ...) \
  ::gpen::cuda::emu::make_launch(__VA_ARGS__, dim3(grid), dim3(block), size_t(smem), (stream))
#define GPEN_DYNAMIC_SHARED(T, name) T* name = static_cast<T*>(::gpen::cuda::emu::dynamic_shared())
#define GPEN_SHARED(T, name, dims)    \
  static thread_local T name dims; \
  ::gpen::cuda::emu::fresh_shared(&name, sizeof(name))
#else
#define GPEN_LAUNCH(grid, block, smem, stream, ...) __VA_ARGS__<<<(grid), (block), (smem), (stream)>>>
#define GPEN_DYNAMIC_SHARED(T, name) extern __shared__ T name[]
#define GPEN_SHARED(T, name, dims) __shared__ T name dims
#endif

#define GPEN_GRID_STRIDE(i, total) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (total); i += int64_t(gridDim.x) * blockDim.x)
