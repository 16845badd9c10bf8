#include "core/device.h"

#include <dlfcn.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

namespace gpen {
namespace {

constexpr size_t kWhyLen = 512;

std::string executable_dir() {
  std::error_code ec;
  const auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string() : exe.parent_path().string();
}

std::vector<std::string> default_module_paths() {
  if (const char* env = std::getenv("GPEN_CUDA_MODULE"); env && *env) return {env};
  std::vector<std::string> paths;
  const std::string dir = executable_dir();
  if (!dir.empty()) {
    paths.push_back(dir + "/" + kCudaModuleFile);
    paths.push_back(dir + "/../lib/" + kCudaModuleFile);
  }
  paths.push_back(kCudaModuleFile);  // LD_LIBRARY_PATH, ld.so.cache
  return paths;
}

// A copy of samples [begin, end) of x (dimension 0), f32.
Tensor samples(const Tensor& x, int64_t begin, int64_t end) {
  Shape s = x.shape();
  s[0] = end - begin;
  Tensor r = Tensor::empty(DType::F32, s);
  const int64_t per = x.numel() / std::max<int64_t>(1, x.dim(0));
  std::memcpy(r.data<float>(), x.data<float>() + begin * per, size_t((end - begin) * per) * sizeof(float));
  return r;
}

}  // namespace

DeviceRequest parse_device(const std::string& s) {
  DeviceRequest r;
  if (s == "auto") return r;
  if (s == "cpu") {
    r.kind = DeviceRequest::Kind::Cpu;
    return r;
  }
  if (s == "cuda" || s.rfind("cuda:", 0) == 0) {
    r.kind = DeviceRequest::Kind::Cuda;
    if (s != "cuda") {
      const std::string idx = s.substr(5);
      char* end = nullptr;
      const long v = std::strtol(idx.c_str(), &end, 10);
      if (idx.empty() || *end || v < 0 || v > 1024) fail("bad --device '", s, "': expected cuda:N with N a device number");
      r.index = int(v);
    }
    return r;
  }
  fail("bad --device '", s, "': expected auto, cpu, cuda or cuda:N");
}

std::string cuda_unavailable_message(const std::string& why) { return "CUDA requested but unavailable: " + why; }

const CudaModule& CudaModule::instance() {
  // A module named explicitly (GPEN_CUDA_MODULE: another build's, or libgpen_cuda_emu.so, the
  // CPU emulation the tests run) is loaded even without a driver.
  const char* named = std::getenv("GPEN_CUDA_MODULE");
  static const CudaModule module =
      named && *named ? load(default_module_paths()) : load_if_driver(default_module_paths());
  return module;
}

CudaModule CudaModule::load_if_driver(const std::vector<std::string>& paths) {
#ifndef GPEN_NO_DLOPEN
  // The CUDA runtime reaches the GPU through the driver's libcuda.so.1 (it dlopens that name
  // too). Without it no device can exist, and loading the module would only map cuDNN and cuBLAS:
  // ~170 MB of RSS and a tenth of a second for every CPU run of `--device auto`.
  void* driver = dlopen("libcuda.so.1", RTLD_LAZY | RTLD_LOCAL);
  if (!driver) {
    CudaModule m;
    const char* err = dlerror();
    m.why_ = std::string("no NVIDIA driver (libcuda.so.1: ") + (err ? err : "cannot be loaded") + ")";
    return m;
  }
  // Left loaded: the module's CUDA runtime opens it again.
#endif
  return load(paths);
}

CudaModule CudaModule::load(const std::vector<std::string>& paths) {
  CudaModule m;
#ifdef GPEN_NO_DLOPEN
  (void)paths;
  m.why_ = "this is the static CPU-only build of gpen (it cannot load the CUDA module)";
  return m;
#else
  std::string tried;
  for (const std::string& p : paths) {
    const bool bare = p.find('/') == std::string::npos;
    if (!bare && !std::filesystem::exists(p)) {
      tried += (tried.empty() ? "" : ", ") + p;
      continue;
    }
    // RTLD_LOCAL: the module's copy of the engine's symbols stays private to it.
    void* handle = dlopen(p.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle) {
      const char* err = dlerror();
      m.why_ = err ? err : ("cannot load " + p);
      if (bare) m.why_ += " (looked in: " + tried + ")";
      return m;
    }
    m.path_ = p;
    auto entry = reinterpret_cast<GpenCudaModuleEntry>(dlsym(handle, kCudaModuleEntry));
    if (!entry) {
      m.why_ = p + " has no " + kCudaModuleEntry + " (not a gpen CUDA module?)";
      return m;
    }
    m.api_ = entry();
    if (!m.api_ || m.api_->abi != kCudaModuleAbi) {
      m.why_ = p + " was built for another gpen version (module ABI mismatch); rebuild it";
      m.api_ = nullptr;
      return m;
    }
    char why[kWhyLen] = {};
    m.device_count_ = m.api_->device_count(why, sizeof why);
    if (m.device_count_ <= 0) {
      m.why_ = m.device_count_ == 0 ? "no CUDA device found" : why;
      m.device_count_ = 0;
    }
    return m;
  }
  m.why_ = std::string("no ") + kCudaModuleFile + " (looked in: " + tried + ")";
  return m;
#endif
}

CudaDeviceInfo CudaModule::device_info(int index) const {
  CudaDeviceInfo info;
  char why[kWhyLen] = {};
  if (!usable()) fail(cuda_unavailable_message(why_));
  if (!api_->device_info(index, &info, why, sizeof why)) fail(cuda_unavailable_message(why));
  return info;
}

CudaMemoryStats CudaModule::memory_stats(int index) const {
  CudaMemoryStats stats;
  char why[kWhyLen] = {};
  if (!usable()) fail(cuda_unavailable_message(why_));
  if (!api_->memory_stats(index, &stats, why, sizeof why)) fail("CUDA memory statistics: ", why);
  return stats;
}

std::unique_ptr<Backend> CudaModule::make_backend(int index, GpuPrecision precision) const {
  if (!usable()) fail(cuda_unavailable_message(why_));
  if (index < 0 || index >= device_count_)
    fail(cuda_unavailable_message("device cuda:" + std::to_string(index) + " does not exist (" +
                                  std::to_string(device_count_) + " device(s))"));
  char why[kWhyLen] = {};
  Backend* b = api_->make_backend(index, precision, why, sizeof why);
  if (!b) fail(cuda_unavailable_message(why));
  return std::unique_ptr<Backend>(b);
}

namespace {

SelectedDevice cuda_device(const CudaModule& cuda, int index, GpuPrecision precision) {
  SelectedDevice d;
  d.backend = cuda.make_backend(index, precision);  // an Error when it cannot be had
  d.is_cuda = true;
  d.index = index;
  const CudaDeviceInfo info = cuda.device_info(index);
  char desc[400];
  std::snprintf(desc, sizeof desc, "cuda:%d %s (%.1f GiB, sm_%d%d, %s)", index, info.name,
                double(info.total_bytes) / (1 << 30), info.cc_major, info.cc_minor, gpu_precision_name(precision));
  d.description = desc;
  return d;
}

}  // namespace

SelectedDevice select_device(const DeviceRequest& req, GpuPrecision precision, const CudaModule& cuda) {
  if (req.kind == DeviceRequest::Kind::Cuda) return cuda_device(cuda, req.index, precision);
  std::string note;
  if (req.kind == DeviceRequest::Kind::Auto) {
    if (!cuda.usable()) {
      note = "auto chose the CPU: " + cuda.why_unusable();
    } else {
      try {
        return cuda_device(cuda, req.index, precision);
      } catch (const Error& e) {  // e.g. a GPU too old for this build: quietly the CPU
        note = std::string("auto chose the CPU: ") + e.what();
      }
    }
  }
  SelectedDevice d;
  d.backend = make_cpu_backend();
  d.description = "cpu";
  d.note = note;
  return d;
}

OomFallbackForward::OomFallbackForward(BatchForward device, BatchForward cpu, int batch,
                                       std::function<void(const std::string&)> warn)
    : device_(std::move(device)), cpu_(std::move(cpu)), batch_(std::max(1, batch)), warn_(std::move(warn)) {}

Tensor OomFallbackForward::operator()(const Tensor& x) {
  if (x.ndim() < 1 || x.dim(0) < 1) fail("batched forward: empty input ", shape_str(x.shape()));
  if (x.dtype() != DType::F32) fail("batched forward: input must be f32, got ", dtype_name(x.dtype()));
  const int64_t n = x.dim(0);
  std::vector<Tensor> parts;
  for (int64_t begin = 0; begin < n;) {
    const int64_t end = std::min(n, begin + batch_);
    parts.push_back(run_chunk(end - begin == n ? x : samples(x, begin, end)));
    begin += parts.back().dim(0);  // a halved retry may have done fewer samples than asked
  }
  if (parts.size() == 1) return parts[0];
  Shape s = parts[0].shape();
  s[0] = n;
  Tensor y = Tensor::empty(DType::F32, s);
  float* dst = y.data<float>();
  for (const Tensor& p : parts) {
    std::memcpy(dst, p.data<float>(), p.nbytes());
    dst += p.numel();
  }
  return y;
}

// One chunk of at most batch_ samples; on OOM, only its first half is retried, the rest is left
// to the caller's loop with the smaller batch.
Tensor OomFallbackForward::run_chunk(const Tensor& x) {
  Tensor chunk = x;
  while (!on_cpu_) {
    try {
      return device_(chunk);
    } catch (const OutOfDeviceMemory& e) {
      if (batch_ > 1) {
        batch_ = std::max(1, int(std::min<int64_t>(batch_, chunk.dim(0))) / 2);
        if (warn_) warn_("out of device memory (" + std::string(e.what()) + "); retrying with batch " + std::to_string(batch_));
        chunk = samples(chunk, 0, std::min<int64_t>(batch_, chunk.dim(0)));
      } else {
        on_cpu_ = true;
        if (warn_) warn_("out of device memory even for one sample (" + std::string(e.what()) + "); running on the CPU");
      }
    }
  }
  return cpu_(chunk);
}

}  // namespace gpen
