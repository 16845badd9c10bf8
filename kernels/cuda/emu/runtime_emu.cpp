// The part of the CUDA runtime API that gpen's CUDA backend calls, on the CPU (cuda_emu.h):
// device memory is host memory (filled with NaN bytes when allocated, so that a read of memory
// nothing wrote shows); a captured graph is the list of work recorded during the capture and
// replays it.
//
// Streams are lazy, to make ordering mistakes visible: the work of a created stream runs only
// when the host must wait for it (cudaStreamSynchronize, cudaDeviceSynchronize, cudaFree and
// cudaFreeHost, which synchronise the device, and a copy between the stream and pageable host
// memory, which the real runtime performs at once), each stream on its own. A host that reads a
// pinned result before synchronising, or a stream that uses what another stream has not yet been
// made to finish, sees old data (NaN bytes for fresh memory), as a GPU would when the race goes
// the wrong way. The legacy stream (null: the kernel tests) runs its work at once.
//
// The real runtime's rules that the backend must keep are kept: no allocation or synchronous
// copy while this thread captures (the capture is then invalidated), no synchronisation of a
// capturing stream, allocations past the device's memory fail with cudaErrorMemoryAllocation. The device's memory is 4 GiB, or
// GPEN_CUDA_EMU_MEMORY bytes (read at every allocation: tests of the out-of-memory fallbacks).
#include <cuda_runtime.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <set>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/emu/runtime_emu.h"

struct CUstream_st {
  std::mutex mu;
  std::vector<std::function<void()>> pending;  // not yet run (lazy streams)
  bool capturing = false;
  bool invalidated = false;
  std::vector<std::function<void()>> recorded;
};
struct CUgraph_st {
  std::vector<std::function<void()>> work;
};
struct CUgraphExec_st {
  std::vector<std::function<void()>> work;
};
struct CUevent_st {
  std::chrono::steady_clock::time_point at{};
  bool recorded = false;
};

namespace gpen::cuda::emu {
namespace {

thread_local cudaError_t last_error = cudaSuccess;
thread_local CUstream_st* capturing_here = nullptr;  // the stream this thread captures (ThreadLocal mode)
thread_local int current_device = 0;

struct DeviceMemory {
  std::mutex mu;
  std::unordered_map<void*, size_t> blocks;
  std::map<uintptr_t, size_t> pinned;  // cudaHostAlloc blocks: start -> bytes
  std::set<CUstream_st*> streams;
  size_t used = 0;
  size_t total() const {
    const char* bytes = std::getenv("GPEN_CUDA_EMU_MEMORY");
    return bytes && *bytes ? size_t(std::strtoull(bytes, nullptr, 10)) : size_t(4) << 30;
  }
};
DeviceMemory& memory() {
  static DeviceMemory m;
  return m;
}

// Runs a stream's pending work, including what that work enqueues meanwhile.
void flush(CUstream_st* s) {
  for (;;) {
    std::vector<std::function<void()>> work;
    {
      std::lock_guard<std::mutex> lock(s->mu);
      work.swap(s->pending);
    }
    if (work.empty()) return;
    for (const auto& w : work) w();
  }
}
void flush_all() {
  std::vector<CUstream_st*> all;
  {
    DeviceMemory& m = memory();
    std::lock_guard<std::mutex> lock(m.mu);
    all.assign(m.streams.begin(), m.streams.end());
  }
  for (CUstream_st* s : all) flush(s);
}
bool pinned(const void* p) {
  DeviceMemory& m = memory();
  std::lock_guard<std::mutex> lock(m.mu);
  const uintptr_t a = uintptr_t(p);
  auto it = m.pinned.upper_bound(a);
  if (it == m.pinned.begin()) return false;
  --it;
  return a < it->first + it->second;
}

cudaError_t fail(cudaError_t e) {
  set_error(e);
  return e;
}

// An operation the real runtime refuses while this thread captures: the capture is invalidated.
bool refused_while_capturing() {
  if (!capturing_here) return false;
  capturing_here->invalidated = true;
  return true;
}

}  // namespace

void set_error(cudaError_t e) {
  if (last_error == cudaSuccess) last_error = e;
}

void enqueue(cudaStream_t stream, std::function<void()> work) {
  if (stream && stream->capturing) {
    stream->recorded.push_back(std::move(work));
    return;
  }
  if (!stream && capturing_here) {  // the legacy stream synchronises with the capturing one
    capturing_here->invalidated = true;
    set_error(cudaErrorStreamCaptureImplicit);
    return;
  }
  if (!stream) {
    work();
    return;
  }
  std::lock_guard<std::mutex> lock(stream->mu);
  stream->pending.push_back(std::move(work));
}

}  // namespace gpen::cuda::emu

using namespace gpen::cuda::emu;

extern "C" {

cudaError_t cudaGetLastError(void) {
  const cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError(void) { return last_error; }

const char* cudaGetErrorName(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "cudaSuccess";
    case cudaErrorInvalidValue: return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation: return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidConfiguration: return "cudaErrorInvalidConfiguration";
    case cudaErrorLaunchFailure: return "cudaErrorLaunchFailure";
    case cudaErrorNotSupported: return "cudaErrorNotSupported";
    case cudaErrorStreamCaptureUnsupported: return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated: return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureImplicit: return "cudaErrorStreamCaptureImplicit";
    case cudaErrorInvalidDevice: return "cudaErrorInvalidDevice";
    case cudaErrorInvalidResourceHandle: return "cudaErrorInvalidResourceHandle";
    case cudaErrorNotReady: return "cudaErrorNotReady";
    default: return "cudaError (emulated)";
  }
}
const char* cudaGetErrorString(cudaError_t e) { return cudaGetErrorName(e); }

cudaError_t cudaGetDeviceCount(int* count) {
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  *device = current_device;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  if (device != 0) return fail(cudaErrorInvalidDevice);
  current_device = device;
  return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (device != 0) return fail(cudaErrorInvalidDevice);
  *prop = cudaDeviceProp{};
  std::snprintf(prop->name, sizeof prop->name, "gpen CUDA emulator (CPU)");
  prop->totalGlobalMem = memory().total();
  prop->major = 9;
  prop->minor = 0;
  prop->multiProcessorCount = 1;
  prop->warpSize = 32;
  prop->maxThreadsPerBlock = 1024;
  prop->sharedMemPerBlock = 48 * 1024;
  return cudaSuccess;
}
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
  DeviceMemory& m = memory();
  std::lock_guard<std::mutex> lock(m.mu);
  *total_bytes = m.total();
  *free_bytes = *total_bytes - std::min(m.used, *total_bytes);
  return cudaSuccess;
}

cudaError_t cudaMalloc(void** ptr, size_t bytes) {
  *ptr = nullptr;
  if (refused_while_capturing()) return fail(cudaErrorStreamCaptureUnsupported);
  DeviceMemory& m = memory();
  std::lock_guard<std::mutex> lock(m.mu);
  if (m.used + bytes > m.total()) return fail(cudaErrorMemoryAllocation);
  void* p = std::aligned_alloc(256, std::max<size_t>(256, (bytes + 255) / 256 * 256));
  if (!p) return fail(cudaErrorMemoryAllocation);
  std::memset(p, 0xFF, bytes);  // NaN as f32 and f16: reads of memory nothing wrote show up
  m.blocks[p] = bytes;
  m.used += bytes;
  *ptr = p;
  return cudaSuccess;
}
cudaError_t cudaFree(void* ptr) {
  if (refused_while_capturing()) return fail(cudaErrorStreamCaptureUnsupported);
  flush_all();  // cudaFree synchronises the device
  if (!ptr) return cudaSuccess;
  DeviceMemory& m = memory();
  std::lock_guard<std::mutex> lock(m.mu);
  auto it = m.blocks.find(ptr);
  if (it == m.blocks.end()) return fail(cudaErrorInvalidValue);
  m.used -= it->second;
  m.blocks.erase(it);
  std::free(ptr);
  return cudaSuccess;
}
cudaError_t cudaHostAlloc(void** ptr, size_t bytes, unsigned int) {
  if (refused_while_capturing()) return fail(cudaErrorStreamCaptureUnsupported);
  *ptr = std::aligned_alloc(256, std::max<size_t>(256, (bytes + 255) / 256 * 256));
  if (!*ptr) return fail(cudaErrorMemoryAllocation);
  DeviceMemory& m = memory();
  std::lock_guard<std::mutex> lock(m.mu);
  m.pinned[uintptr_t(*ptr)] = bytes;
  return cudaSuccess;
}
cudaError_t cudaFreeHost(void* ptr) {
  if (refused_while_capturing()) return fail(cudaErrorStreamCaptureUnsupported);
  flush_all();  // as cudaFree
  {
    DeviceMemory& m = memory();
    std::lock_guard<std::mutex> lock(m.mu);
    m.pinned.erase(uintptr_t(ptr));
  }
  std::free(ptr);
  return cudaSuccess;
}

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind) {
  if (refused_while_capturing()) return fail(cudaErrorStreamCaptureImplicit);
  std::memmove(dst, src, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t stream) {
  // Pageable host memory: the real runtime waits for the stream and copies before returning.
  const bool pageable = (kind == cudaMemcpyHostToDevice && !pinned(src)) || (kind == cudaMemcpyDeviceToHost && !pinned(dst));
  if (pageable && stream && !stream->capturing) {
    flush(stream);
    std::memmove(dst, src, bytes);
    return cudaSuccess;
  }
  enqueue(stream, [=] { std::memmove(dst, src, bytes); });
  return cudaSuccess;
}
cudaError_t cudaMemset(void* dst, int value, size_t bytes) {
  if (refused_while_capturing()) return fail(cudaErrorStreamCaptureImplicit);
  std::memset(dst, value, bytes);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* dst, int value, size_t bytes, cudaStream_t stream) {
  enqueue(stream, [=] { std::memset(dst, value, bytes); });
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* stream) {
  *stream = new CUstream_st();
  DeviceMemory& m = memory();
  std::lock_guard<std::mutex> lock(m.mu);
  m.streams.insert(*stream);
  return cudaSuccess;
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* stream, unsigned int) { return cudaStreamCreate(stream); }
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (!stream) return cudaSuccess;
  flush(stream);  // its work still completes
  {
    DeviceMemory& m = memory();
    std::lock_guard<std::mutex> lock(m.mu);
    m.streams.erase(stream);
  }
  delete stream;
  return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if ((stream && stream->capturing) || (!stream && capturing_here)) {
    if (stream) stream->invalidated = true;
    return fail(cudaErrorStreamCaptureUnsupported);
  }
  if (!stream) return cudaSuccess;
  // A failure of the work that runs now (a bad launch, a deadlocked block) is what the real
  // synchronisation reports.
  const cudaError_t earlier = last_error;
  last_error = cudaSuccess;
  flush(stream);
  const cudaError_t during = last_error;
  last_error = earlier != cudaSuccess ? earlier : during;
  return during;
}
cudaError_t cudaDeviceSynchronize(void) {
  if (refused_while_capturing()) return fail(cudaErrorStreamCaptureUnsupported);
  flush_all();
  return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode) {
  if (!stream || stream->capturing || capturing_here) return fail(cudaErrorIllegalState);
  stream->capturing = true;
  stream->invalidated = false;
  stream->recorded.clear();
  capturing_here = stream;
  return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* graph) {
  *graph = nullptr;
  if (!stream || !stream->capturing) return fail(cudaErrorIllegalState);
  stream->capturing = false;
  capturing_here = nullptr;
  std::vector<std::function<void()>> work = std::move(stream->recorded);
  stream->recorded.clear();
  if (stream->invalidated) return fail(cudaErrorStreamCaptureInvalidated);
  *graph = new CUgraph_st{std::move(work)};
  return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* exec, cudaGraph_t graph, unsigned long long) {
  if (!graph) return fail(cudaErrorInvalidValue);
  *exec = new CUgraphExec_st{graph->work};
  return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream) {
  if (!exec) return fail(cudaErrorInvalidValue);
  enqueue(stream, [exec] {
    for (const auto& w : exec->work) w();
  });
  return cudaSuccess;
}
cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  delete graph;
  return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec) {
  delete exec;
  return cudaSuccess;
}

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  *event = new CUevent_st();
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  delete event;
  return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  event->recorded = false;  // until the stream gets there
  enqueue(stream, [event] {
    event->at = std::chrono::steady_clock::now();
    event->recorded = true;
  });
  return cudaSuccess;
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (!start->recorded || !end->recorded) return fail(cudaErrorNotReady);  // not synchronised yet
  *ms = std::chrono::duration<float, std::milli>(end->at - start->at).count();
  return cudaSuccess;
}

}  // extern "C"
