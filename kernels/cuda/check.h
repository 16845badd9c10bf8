// Status checks for the CUDA runtime, cuBLAS and cuDNN: every call's status is checked; an
// allocation failure becomes OutOfDeviceMemory (callers halve the batch, then fall back to the
// CPU), anything else a gpen::Error naming the call. Host-only header.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include <string>

#include "core/device.h"

namespace gpen::cuda {

inline void check(cudaError_t st, const char* what) {
  if (st == cudaSuccess) return;
  const std::string msg = std::string("CUDA ") + what + ": " + cudaGetErrorName(st) + " (" + cudaGetErrorString(st) + ")";
  if (st == cudaErrorMemoryAllocation) {
    cudaGetLastError();  // not sticky: clear it so the next attempt starts clean
    throw OutOfDeviceMemory(msg);
  }
  throw Error(msg);
}

inline void check(cudnnStatus_t st, const char* what) {
  if (st == CUDNN_STATUS_SUCCESS) return;
  const std::string msg = std::string("cuDNN ") + what + ": " + cudnnGetErrorString(st);
  if (st == CUDNN_STATUS_ALLOC_FAILED) throw OutOfDeviceMemory(msg);
  throw Error(msg);
}

inline const char* cublas_status_name(cublasStatus_t st) {
  switch (st) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "cuBLAS error";
  }
}

inline void check(cublasStatus_t st, const char* what) {
  if (st == CUBLAS_STATUS_SUCCESS) return;
  const std::string msg = std::string("cuBLAS ") + what + ": " + cublas_status_name(st);
  if (st == CUBLAS_STATUS_ALLOC_FAILED) throw OutOfDeviceMemory(msg);
  throw Error(msg);
}

// After a kernel launch: a bad configuration shows up here, not at the next synchronisation.
inline void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

}  // namespace gpen::cuda
