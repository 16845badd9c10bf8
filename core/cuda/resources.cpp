#include "core/cuda/resources.h"

#include <algorithm>
#include <atomic>

namespace gpen::cuda {
namespace {

constexpr int kMaxDevices = 64;

struct Counter {
  std::atomic<size_t> now{0}, peak{0};
};
Counter& counter(int device) {
  static Counter counters[kMaxDevices];
  return counters[std::clamp(device, 0, kMaxDevices - 1)];
}

void count_alloc(int device, size_t bytes) {
  Counter& c = counter(device);
  const size_t now = c.now += bytes;
  size_t peak = c.peak.load();
  while (now > peak && !c.peak.compare_exchange_weak(peak, now)) {
  }
}

}  // namespace

CudaMemoryStats module_memory(int device) {
  CudaMemoryStats s;
  s.allocated_bytes = counter(device).now.load();
  s.peak_allocated_bytes = counter(device).peak.load();
  return s;
}

DeviceBuffer::DeviceBuffer(int device, size_t bytes) : bytes_(bytes), device_(device) {
  if (bytes == 0) return;
  check(cudaMalloc(&ptr_, bytes), "cudaMalloc");
  count_alloc(device_, bytes_);
}

void DeviceBuffer::reset() {
  if (ptr_) {
    cudaFree(ptr_);
    counter(device_).now -= bytes_;
  }
  ptr_ = nullptr;
  bytes_ = 0;
}

PinnedBuffer::PinnedBuffer(size_t bytes) {
  if (bytes) check(cudaHostAlloc(&ptr_, bytes, cudaHostAllocDefault), "cudaHostAlloc (pinned staging buffer)");
}
PinnedBuffer::~PinnedBuffer() {
  if (ptr_) cudaFreeHost(ptr_);
}

Stream::Stream() { check(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking), "cudaStreamCreate"); }
Stream::~Stream() {
  if (s_) cudaStreamDestroy(s_);
}

CudnnHandle::CudnnHandle(cudaStream_t stream) {
  check(cudnnCreate(&h_), "cudnnCreate");
  try {
    check(cudnnSetStream(h_, stream), "cudnnSetStream");
  } catch (...) {
    cudnnDestroy(h_);
    throw;
  }
}
CudnnHandle::~CudnnHandle() {
  if (h_) cudnnDestroy(h_);
}

CublasHandle::CublasHandle(cudaStream_t stream, void* workspace, size_t workspace_bytes) {
  check(cublasCreate(&h_), "cublasCreate");
  try {
    check(cublasSetStream(h_, stream), "cublasSetStream");
    check(cublasSetWorkspace(h_, workspace, workspace_bytes), "cublasSetWorkspace");
    check(cublasSetPointerMode(h_, CUBLAS_POINTER_MODE_HOST), "cublasSetPointerMode");
    // Plain f32 GEMMs (no TF32): the linears are the mapping network, tiny next to the convs.
    check(cublasSetMathMode(h_, CUBLAS_DEFAULT_MATH), "cublasSetMathMode");
  } catch (...) {
    cublasDestroy(h_);
    throw;
  }
}
CublasHandle::~CublasHandle() {
  if (h_) cublasDestroy(h_);
}

TensorDesc::TensorDesc() { check(cudnnCreateTensorDescriptor(&d_), "cudnnCreateTensorDescriptor"); }
TensorDesc::~TensorDesc() { cudnnDestroyTensorDescriptor(d_); }
FilterDesc::FilterDesc() { check(cudnnCreateFilterDescriptor(&d_), "cudnnCreateFilterDescriptor"); }
FilterDesc::~FilterDesc() { cudnnDestroyFilterDescriptor(d_); }
ConvDescriptor::ConvDescriptor() { check(cudnnCreateConvolutionDescriptor(&d_), "cudnnCreateConvolutionDescriptor"); }
ConvDescriptor::~ConvDescriptor() { cudnnDestroyConvolutionDescriptor(d_); }
Event::Event() { check(cudaEventCreate(&e_), "cudaEventCreate"); }
Event::~Event() {
  if (e_) cudaEventDestroy(e_);
}

}  // namespace gpen::cuda
