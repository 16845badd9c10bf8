// Kernels that exercise the CUDA emulator itself (emu_selftest_kernels.cpp is compiled like the
// kernels under kernels/cuda/, with cuda_emu.h): each returns the launch's cudaGetLastError().
#pragma once
#include <cuda_runtime.h>

namespace gpen::cuda::emu_test {

// out = in reversed within each block of `block` threads, through shared memory and a barrier.
cudaError_t reverse_in_blocks(const int* in, int* out, int blocks, int block);
// out[w] = sum of in[32 w .. 32 w + 31], by warp shuffles (`block` threads a block).
cudaError_t warp_sums(const float* in, float* out, int warps, int block);
// Each block stages `count` ints in dynamic shared memory, then out[i] = staged[count - 1 - i].
cudaError_t dynamic_shared_reverse(const int* in, int* out, int count, size_t smem_bytes);
// Even threads wait at __syncthreads() while odd ones wait at a shuffle: a deadlock on a GPU.
cudaError_t divergent_barriers(int* out);
// A launch of `threads` threads in one block (more than 1024 is an invalid configuration).
cudaError_t one_block(int threads, int* out);
// Racy on purpose (order-dependent results, see emu::Order): out[t] = in[t - 1] (out[0] = in[0])
// read from shared memory without a barrier; data[b + 1] = data[b] + 1 across blocks.
cudaError_t unsynchronised_neighbour(const int* in, int* out, int threads);
cudaError_t previous_block_chain(int* data, int blocks);
// out[b] = a static shared slot only block 0 writes, read by block b's thread 0.
cudaError_t unwritten_shared(int* out, int blocks);

}  // namespace gpen::cuda::emu_test
