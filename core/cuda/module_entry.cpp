// The one exported symbol of libgpen_cuda.so (see core/backend_cuda.h): device queries and the
// backend factory, with every failure turned into a message instead of an exception, so that
// nothing but plain data crosses the C boundary on the error path.
#include <cuda_runtime.h>

#include <cstdio>
#include <exception>

#include "core/backend_cuda.h"
#include "core/cuda/backend_cuda.h"
#include "core/cuda/resources.h"

namespace {

void say(char* why, size_t len, const char* msg) {
  if (why && len) std::snprintf(why, len, "%s", msg);
}

void say_cuda(char* why, size_t len, const char* call, cudaError_t st) {
  if (why && len) std::snprintf(why, len, "%s: %s (%s)", call, cudaGetErrorName(st), cudaGetErrorString(st));
  cudaGetLastError();
}

int device_count(char* why, size_t len) {
  int n = 0;
  const cudaError_t st = cudaGetDeviceCount(&n);
  if (st != cudaSuccess) {
    say_cuda(why, len, "cudaGetDeviceCount", st);
    return -1;
  }
  return n;
}

bool device_info(int index, gpen::CudaDeviceInfo* info, char* why, size_t len) {
  cudaDeviceProp p{};
  const cudaError_t st = cudaGetDeviceProperties(&p, index);
  if (st != cudaSuccess) {
    say_cuda(why, len, "cudaGetDeviceProperties", st);
    return false;
  }
  std::snprintf(info->name, sizeof info->name, "%s", p.name);
  info->total_bytes = p.totalGlobalMem;
  info->cc_major = p.major;
  info->cc_minor = p.minor;
  return true;
}

gpen::Backend* make_backend(int index, gpen::GpuPrecision precision, char* why, size_t len) {
  try {
    return gpen::cuda::make_cuda_backend(index, precision).release();
  } catch (const std::exception& e) {
    say(why, len, e.what());
  } catch (...) {
    say(why, len, "unknown error creating the CUDA backend");
  }
  return nullptr;
}

bool memory_stats(int index, gpen::CudaMemoryStats* stats, char* why, size_t len) {
  *stats = gpen::cuda::module_memory(index);
  int current = 0;
  cudaError_t st = cudaGetDevice(&current);
  if (st == cudaSuccess) st = cudaSetDevice(index);
  size_t free_b = 0, total_b = 0;
  if (st == cudaSuccess) st = cudaMemGetInfo(&free_b, &total_b);
  cudaSetDevice(current);
  if (st != cudaSuccess) {
    say_cuda(why, len, "cudaMemGetInfo", st);
    return false;
  }
  stats->device_used_bytes = total_b - free_b;
  return true;
}

const gpen::CudaModuleApi kApi = [] {
  gpen::CudaModuleApi api;
  api.device_count = device_count;
  api.device_info = device_info;
  api.make_backend = make_backend;
  api.memory_stats = memory_stats;
  return api;
}();

}  // namespace

extern "C" __attribute__((visibility("default"))) const gpen::CudaModuleApi* gpen_cuda_module_v1() { return &kApi; }
