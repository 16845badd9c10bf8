// Which device runs the models: `--device auto|cpu|cuda[:N]`.
//
// The CUDA backend is a separate module (libgpen_cuda.so, see core/backend_cuda.h) loaded lazily
// with dlopen the first time a CUDA device is asked for (and only where the driver's libcuda.so.1
// loads), so the same binary starts and runs on a machine without an NVIDIA driver. `auto` takes CUDA when the module loads and reports a device,
// else the CPU, quietly (the reason stays available for `gpen bench` and health output).
// `cuda` that cannot be honoured is one clear error: "CUDA requested but unavailable: <why>".
//
// Out of device memory is its own exception type, OutOfDeviceMemory; OomFallbackForward turns it
// into the policy "halve the batch, down to 1, then run on the CPU with a warning".
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/backend_cuda.h"
#include "core/error.h"

namespace gpen {

// Thrown by a device backend when an allocation fails (cudaErrorMemoryAllocation,
// CUDNN_STATUS_ALLOC_FAILED, CUBLAS_STATUS_ALLOC_FAILED). Other device failures are plain Errors.
class OutOfDeviceMemory : public Error {
 public:
  explicit OutOfDeviceMemory(const std::string& msg) : Error(msg) {}
};

struct DeviceRequest {
  enum class Kind { Auto, Cpu, Cuda } kind = Kind::Auto;
  int index = 0;  // cuda:N
};
// "auto", "cpu", "cuda", "cuda:N"; anything else is an Error naming the accepted forms.
DeviceRequest parse_device(const std::string& s);

// The CUDA module, loaded (or not) once. Never unloaded: backends and executables it made may
// outlive any owner, and their code lives in it.
class CudaModule {
 public:
  // The process-wide module: $GPEN_CUDA_MODULE if set, else libgpen_cuda.so next to the
  // executable, then in ../lib (install layout), then the dynamic loader's search path.
  static const CudaModule& instance();
  // Loads the first of `paths` that exists (a bare file name goes to the loader's search path).
  static CudaModule load(const std::vector<std::string>& paths);
  // load(paths) where the NVIDIA driver (libcuda.so.1) can be loaded; else an unusable module
  // that says so, without loading anything (what instance() does).
  static CudaModule load_if_driver(const std::vector<std::string>& paths);

  bool usable() const { return device_count_ > 0; }
  int device_count() const { return device_count_; }
  // Why usable() is false: the dlopen/dlsym error, an ABI mismatch, or what counting devices said.
  const std::string& why_unusable() const { return why_; }
  const std::string& path() const { return path_; }

  CudaDeviceInfo device_info(int index) const;
  CudaMemoryStats memory_stats(int index) const;
  // Fails with "CUDA requested but unavailable: ..." when unusable or index is out of range.
  std::unique_ptr<Backend> make_backend(int index, GpuPrecision precision) const;

 private:
  const CudaModuleApi* api_ = nullptr;
  int device_count_ = 0;
  std::string why_, path_;
};

struct SelectedDevice {
  std::shared_ptr<Backend> backend;
  bool is_cuda = false;
  int index = 0;
  std::string description;  // "cpu" or "cuda:0 NVIDIA H100 80GB HBM3 (79.1 GiB, sm_90)"
  std::string note;         // why `auto` did not pick CUDA; empty otherwise
};

// CPU for `cpu`; CUDA for `cuda[:N]` (an Error when unavailable); `auto` as described above.
SelectedDevice select_device(const DeviceRequest& req, GpuPrecision precision,
                             const CudaModule& cuda = CudaModule::instance());
// The text every "CUDA requested but unavailable" failure carries, for callers and tests.
std::string cuda_unavailable_message(const std::string& why);

// A forward over a batch of samples (dimension 0), e.g. GpenRunner::forward on some backend.
using BatchForward = std::function<Tensor(const Tensor&)>;

// Runs inputs of any batch size through `device` in chunks of at most batch() samples. When
// `device` throws OutOfDeviceMemory the chunk is retried with half the batch, down to 1; if even
// one sample does not fit, this and every later call run on `cpu`. Each step is reported through
// `warn` (one line). Results are identical in shape to one forward of the whole input.
class OomFallbackForward {
 public:
  OomFallbackForward(BatchForward device, BatchForward cpu, int batch,
                     std::function<void(const std::string&)> warn);
  Tensor operator()(const Tensor& x);
  int batch() const { return batch_; }
  bool on_cpu() const { return on_cpu_; }

 private:
  Tensor run_chunk(const Tensor& x);
  BatchForward device_, cpu_;
  int batch_;
  bool on_cpu_ = false;
  std::function<void(const std::string&)> warn_;
};

}  // namespace gpen
