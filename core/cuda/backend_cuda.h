// The CUDA backend (inside libgpen_cuda.so only). See core/cuda/backend_cuda.cpp.
#pragma once
#include <memory>

#include "core/backend.h"
#include "core/backend_cuda.h"

namespace gpen::cuda {

// Fails (gpen::Error) when the device cannot be used: bad index, too old, context creation.
std::unique_ptr<Backend> make_cuda_backend(int device, GpuPrecision precision);

}  // namespace gpen::cuda
