// The boundary between gpen_core and the CUDA backend module (libgpen_cuda.so).
//
// gpen_core never links CUDA: core/device.cpp dlopen()s the module and looks up one C symbol,
// kCudaModuleEntry, which returns this table. Everything CUDA (kernels/cuda, core/cuda) lives in
// the module, which links cudart/cuBLAS/cuDNN dynamically; a machine without an NVIDIA driver
// simply fails to load it (or reports no device) and the program runs on the CPU.
//
// The module is built from the same sources in the same build as the binary that loads it, so
// C++ objects (Backend, Executable, gpen::Error) cross the boundary; kCudaModuleAbi guards
// against loading a module left over from an older build.
#pragma once
#include <cstddef>
#include <string>

#include "core/backend.h"

namespace gpen {

// What the CUDA backend computes convolutions in. Everything else (modulation, demodulation,
// epilogues, FIR filters, linears, normalisation) is f32 in every mode.
enum class GpuPrecision { FP32, TF32, FP16 };
inline const char* gpu_precision_name(GpuPrecision p) {
  return p == GpuPrecision::FP16 ? "fp16" : p == GpuPrecision::TF32 ? "tf32" : "fp32";
}
inline bool parse_gpu_precision(const std::string& s, GpuPrecision* out) {
  for (GpuPrecision p : {GpuPrecision::FP32, GpuPrecision::TF32, GpuPrecision::FP16})
    if (s == gpu_precision_name(p)) return *out = p, true;
  return false;
}

struct CudaDeviceInfo {
  char name[256] = {};
  size_t total_bytes = 0;
  int cc_major = 0, cc_minor = 0;
};

struct CudaMemoryStats {
  size_t allocated_bytes = 0;       // device memory the module holds now (weights, arenas, scratch)
  size_t peak_allocated_bytes = 0;  // the most it ever held at once
  size_t device_used_bytes = 0;     // total - free as the driver reports it (includes cuDNN/cuBLAS)
};

constexpr int kCudaModuleAbi = 4;  // 2: Executable::run_rgb_bytes, run_from_rgb_bytes; 3: CompileOptions grew;
                                   // 4: CompileOptions::quick_algorithms, Backend::times_algorithms,
                                   //    Executable::has_untimed_algorithms
constexpr const char* kCudaModuleEntry = "gpen_cuda_module_v1";
constexpr const char* kCudaModuleFile = "libgpen_cuda.so";

// Every function fills `why` (NUL-terminated, at most why_len bytes) when it fails.
struct CudaModuleApi {
  int abi = kCudaModuleAbi;
  // Usable devices (>= 0), or -1 when the runtime cannot even count them (no driver, ...).
  int (*device_count)(char* why, size_t why_len) = nullptr;
  bool (*device_info)(int index, CudaDeviceInfo* info, char* why, size_t why_len) = nullptr;
  // A new backend (caller owns it) on device `index`, or null.
  Backend* (*make_backend)(int index, GpuPrecision precision, char* why, size_t why_len) = nullptr;
  bool (*memory_stats)(int index, CudaMemoryStats* stats, char* why, size_t why_len) = nullptr;
};

}  // namespace gpen

extern "C" {
using GpenCudaModuleEntry = const gpen::CudaModuleApi* (*)();
}
