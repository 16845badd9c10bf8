// The emulated CUDA runtime's internals shared by the emulator's files: streams (work runs at
// once on the calling thread, or is recorded while the stream captures a graph) and the
// per-thread last error.
#pragma once
#include <cuda_runtime.h>

#include <functional>

namespace gpen::cuda::emu {

// Runs `work` now, or appends it to the graph `stream` is capturing. Work on the legacy default
// stream (null) while this thread captures fails as it would on a GPU, and ends that capture.
void enqueue(cudaStream_t stream, std::function<void()> work);
// The error the next cudaGetLastError() returns (a later one does not overwrite an earlier one).
void set_error(cudaError_t e);

}  // namespace gpen::cuda::emu
