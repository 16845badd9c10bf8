// Pixel norm x * rsqrt(mean_c x^2 + eps) per sample and position, f32; x and y are packed
// [n][c][hw] (as cpu::ref::pixel_norm).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace gpen::cuda {

cudaError_t launch_pixel_norm(const float* x, float* y, int n, int c, int64_t hw, float eps, cudaStream_t stream);

}  // namespace gpen::cuda
