// CPU emulation of the CUDA execution model, for testing our own kernels without a GPU.
//
// The .cu files under kernels/cuda/ are compiled a second time by the host compiler with this
// header force-included (-include, -DGPEN_CUDA_EMU) into static libraries that only the tests
// link (CMake targets gpen_cuda_emu_asan and gpen_cuda_emu). Every launch then runs on the
// calling CPU thread: block by block, each CUDA thread of a block as a fiber with its own stack
// (cuda_emu.cpp), so that
// __syncthreads() and warp shuffles have their real meaning -- a fiber waits at a barrier until
// every live thread of its block (or warp) has arrived, and a barrier that some threads can never
// reach is reported instead of hanging. Static shared arrays (GPEN_SHARED) are thread_local
// statics (one OS thread runs one block at a time), filled with 0xFF bytes at each block's first
// use; dynamic shared memory is a buffer of the launch's size, filled with 0xA5 bytes per launch.
//
// What it checks: indexing, bounds (the emulation tests run under AddressSanitizer and UBSan,
// which also catch misaligned __half2 accesses that a GPU would fault on), barriers, and the
// arithmetic against the CPU reference kernels. What it cannot check: speed, races between
// blocks (they run one after another), memory-model subtleties, and cuDNN/cuBLAS, which only the
// GPU machine runs (tests/test_cuda_ops.cpp).
//
// The CUDA headers are host-compatible: <cuda_runtime.h> gives dim3, uint3, cudaStream_t and
// cudaError_t, <cuda_fp16.h> the host implementations of the half conversions. The runtime is
// not linked: runtime_emu.cpp, cudnn_emu.cpp and cublas_emu.cpp define the part of the CUDA
// runtime, cuDNN and cuBLAS APIs the backend calls (device memory is host memory), so that the
// whole CUDA backend (core/cuda) also runs on the CPU as the module libgpen_cuda_emu.so.
#pragma once
#ifndef GPEN_CUDA_EMU
#error "cuda_emu.h is for the emulation build (GPEN_CUDA_EMU) only"
#endif

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <math.h>

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <tuple>
#include <utility>

namespace gpen::cuda::emu {

// The built-in variables of the CUDA thread now running (set by the scheduler at every switch).
struct Coordinates {
  uint3 block_idx{0, 0, 0}, thread_idx{0, 0, 0};
  dim3 block_dim{1, 1, 1}, grid_dim{1, 1, 1};
};
extern thread_local Coordinates coords;

// Runs body() once per CUDA thread of grid x block (blocks one after another), with
// dynamic_smem bytes of dynamic shared memory per block -- when `stream` gets there
// (runtime_emu.cpp: the legacy stream at once, a created one lazily, a capture on replay). A bad configuration (a zero or too large dimension)
// or a barrier some threads cannot reach sets the error cudaGetLastError() returns, as a real
// launch would.
void launch(dim3 grid, dim3 block, size_t dynamic_smem, cudaStream_t stream, std::function<void()> body);
// The launch itself, on the calling thread (what launch() runs or records).
void run_grid(dim3 grid, dim3 block, size_t dynamic_smem, const std::function<void()>& body);

// The order the emulator runs things in. A GPU promises none: a kernel that is right only when
// lower threads of a block run first up to a barrier (a missing __syncthreads() before reading
// what another thread wrote), or when lower blocks finish first (a block reading another block's
// output), is wrong. Forward order hides the first kind when the writer is the lower thread;
// Reverse runs the blocks of a grid and the threads of each round last first and so exposes it.
// The default is GPEN_CUDA_EMU_ORDER ("reverse" or forward); set_order() changes it for the
// calling OS thread's later launches (tests).
enum class Order { Forward, Reverse };
void set_order(Order order);
Order order();

void sync_block();       // __syncthreads()
void* dynamic_shared();  // the launch's dynamic shared memory
// GPEN_SHARED's array at p: filled with 0xFF bytes the first time a thread of this block gets
// there (static shared arrays live on from block to block; on a GPU their content is undefined).
void fresh_shared(void* p, size_t bytes);
// One warp shuffle: every live lane of the warp publishes `bits`; returns those of lane
// (own lane + delta), or `bits` when that lane is past the warp's end (as __shfl_down_sync).
uint64_t shuffle_down(unsigned mask, uint64_t bits, unsigned delta);

template <class T>
T shfl_down_sync(unsigned mask, T value, unsigned delta) {
  static_assert(sizeof(T) <= sizeof(uint64_t), "shuffle of a value wider than 64 bits");
  uint64_t bits = 0;
  std::memcpy(&bits, &value, sizeof(T));
  bits = shuffle_down(mask, bits, delta);
  T out;
  std::memcpy(&out, &bits, sizeof(T));
  return out;
}

// kernel<<<grid, block, smem, stream>>>(args...): the arguments are copied once, as a launch
// does (a captured graph keeps its copy), and each thread gets its own copy of the by-value
// parameters.
template <class Kernel>
struct Launch {
  Kernel kernel;
  dim3 grid, block;
  size_t smem;
  cudaStream_t stream;
  template <class... Args>
  void operator()(Args&&... args) const {
    auto saved = std::make_tuple(std::decay_t<Args>(std::forward<Args>(args))...);
    const Kernel k = kernel;
    launch(grid, block, smem, stream, [saved, k] { std::apply([k](auto... a) { k(a...); }, saved); });
  }
};
template <class Kernel>
Launch<Kernel> make_launch(Kernel kernel, dim3 grid, dim3 block, size_t smem, cudaStream_t stream) {
  return {kernel, grid, block, smem, stream};
}

}  // namespace gpen::cuda::emu

// The device built-ins and intrinsics our kernels use.
#define blockIdx (::gpen::cuda::emu::coords.block_idx)
#define threadIdx (::gpen::cuda::emu::coords.thread_idx)
#define blockDim (::gpen::cuda::emu::coords.block_dim)
#define gridDim (::gpen::cuda::emu::coords.grid_dim)
#define __syncthreads() ::gpen::cuda::emu::sync_block()
#define __shfl_down_sync(mask, v, delta) ::gpen::cuda::emu::shfl_down_sync((mask), (v), (delta))
#define __ldg(p) (*(p))
#define __launch_bounds__(...)
// Static shared memory is declared with GPEN_SHARED (kernels/cuda/launch.cuh), which gives each
// block fresh contents; a bare __shared__ does not compile here.
#undef __shared__
#define __shared__ use_GPEN_SHARED_from_kernels_cuda_launch_cuh

inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline int min(int a, int b) { return a < b ? a : b; }
inline int max(int a, int b) { return a > b ? a : b; }
inline int64_t min(int64_t a, int64_t b) { return a < b ? a : b; }
inline int64_t max(int64_t a, int64_t b) { return a > b ? a : b; }
