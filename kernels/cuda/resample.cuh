// Data movement ops, f32, same definitions as cpu::ref: nearest-neighbour resize (PyTorch's
// 'nearest': src = floor(dst * in / out)), max pooling (padding never wins), reflection padding
// (mirrored without repeating the edge) and pixel unshuffle (out channel c*r*r + dy*r + dx).
#pragma once
#include <cuda_runtime.h>

#include "kernels/cuda/types.cuh"

namespace gpen::cuda {

cudaError_t launch_upsample_nearest(const DevView& x, const DevView& y, cudaStream_t stream);
cudaError_t launch_max_pool2d(const DevView& x, const DevView& y, int k, int stride, int pad, cudaStream_t stream);
cudaError_t launch_reflect_pad2d(const DevView& x, const DevView& y, int pad, cudaStream_t stream);
cudaError_t launch_pixel_unshuffle(const DevView& x, const DevView& y, int r, cudaStream_t stream);

}  // namespace gpen::cuda
