#include "kernels/cuda/emu/cuda_emu.h"
#include "kernels/cuda/launch.cuh"
#include "tests/cuda_emu/emu_selftest_kernels.h"

namespace gpen::cuda::emu_test {
namespace {

__global__ void reverse_kernel(const int* in, int* out) {
  GPEN_SHARED(int, staged, [1024]);
  const int t = threadIdx.x, base = blockIdx.x * blockDim.x;
  staged[t] = in[base + t];
  __syncthreads();  // without a real barrier, early threads read slots not yet written
  out[base + t] = staged[blockDim.x - 1 - t];
}

__global__ void warp_sum_kernel(const float* in, float* out, int warps) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x, warp = i / 32;
  if (warp >= warps) return;
  float v = in[i];
  for (int off = 16; off > 0; off /= 2) v += __shfl_down_sync(0xffffffffu, v, off);
  if (i % 32 == 0) out[warp] = v;
}

__global__ void dynamic_reverse_kernel(const int* in, int* out, int count) {
  GPEN_DYNAMIC_SHARED(int, staged);
  for (int i = threadIdx.x; i < count; i += blockDim.x) staged[i] = in[i];
  __syncthreads();
  for (int i = threadIdx.x; i < count; i += blockDim.x) out[i] = staged[count - 1 - i];
}

__global__ void divergent_kernel(int* out) {
  int v = int(threadIdx.x);
  if (threadIdx.x % 2 == 0)
    __syncthreads();
  else
    v = __shfl_down_sync(0xffffffffu, v, 1);
  out[threadIdx.x] = v;
}

__global__ void count_kernel(int* out) { out[threadIdx.x] = 1; }

// Wrong on a GPU: no barrier between writing the slot and reading the neighbour's.
__global__ void unsynchronised_neighbour_kernel(const int* in, int* out) {
  GPEN_SHARED(int, staged, [1024]);
  const int t = threadIdx.x;
  staged[t] = in[t];
  out[t] = t == 0 ? staged[0] : staged[t - 1];
}

// Block b writes slots [0, blockDim.x - b) of a static shared array, then thread 0 reads the last
// slot: only block 0 wrote it, so later blocks read undefined memory (on a GPU: whatever was
// there; on the emulator: 0xFF bytes, not block 0's value).
__global__ void unwritten_shared_kernel(int* out) {
  GPEN_SHARED(int, staged, [64]);
  const int t = threadIdx.x, b = blockIdx.x;
  if (t < int(blockDim.x) - b) staged[t] = 100 + b;
  __syncthreads();
  if (t == 0) out[b] = staged[blockDim.x - 1];
}

// Wrong on a GPU: block b reads what block b - 1 of the same launch writes.
__global__ void previous_block_kernel(int* data) {
  const int b = blockIdx.x;
  if (threadIdx.x == 0) data[b + 1] = data[b] + 1;
}

}  // namespace

cudaError_t reverse_in_blocks(const int* in, int* out, int blocks, int block) {
  GPEN_LAUNCH(blocks, block, 0, nullptr, reverse_kernel)(in, out);
  return cudaGetLastError();
}

cudaError_t warp_sums(const float* in, float* out, int warps, int block) {
  GPEN_LAUNCH((warps * 32 + block - 1) / block, block, 0, nullptr, warp_sum_kernel)(in, out, warps);
  return cudaGetLastError();
}

cudaError_t dynamic_shared_reverse(const int* in, int* out, int count, size_t smem_bytes) {
  GPEN_LAUNCH(2, 64, smem_bytes, nullptr, dynamic_reverse_kernel)(in, out, count);
  return cudaGetLastError();
}

cudaError_t divergent_barriers(int* out) {
  GPEN_LAUNCH(1, 64, 0, nullptr, divergent_kernel)(out);
  return cudaGetLastError();
}

cudaError_t one_block(int threads, int* out) {
  GPEN_LAUNCH(1, threads, 0, nullptr, count_kernel)(out);
  return cudaGetLastError();
}

cudaError_t unsynchronised_neighbour(const int* in, int* out, int threads) {
  GPEN_LAUNCH(1, threads, 0, nullptr, unsynchronised_neighbour_kernel)(in, out);
  return cudaGetLastError();
}

cudaError_t previous_block_chain(int* data, int blocks) {
  GPEN_LAUNCH(blocks, 32, 0, nullptr, previous_block_kernel)(data);
  return cudaGetLastError();
}

cudaError_t unwritten_shared(int* out, int blocks) {
  GPEN_LAUNCH(blocks, 64, 0, nullptr, unwritten_shared_kernel)(out);
  return cudaGetLastError();
}

}  // namespace gpen::cuda::emu_test
