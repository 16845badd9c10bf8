// Byte images in and out of a graph on the device (Executable::run_rgb_bytes, core/backend.h):
// RGB bytes (N x H x W x 3, interleaved) to the input's NCHW f32 planes through a table per
// channel, and the output's planes back to bytes as trunc(clip(y * scale + offset, 0, 1) * 255).
// The same float operations, each rounded on its own, as core/face_tensor.cpp, so the bytes are
// those of the host conversions around the same forward.
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/types.cuh"

namespace gpen::cuda {

// levels: device, 3 x 256 floats (plane-major); plane c takes the pixel's channel c, or 2 - c when
// reverse_channels. y: the input view [n][3][h][w] (batch stride honoured).
cudaError_t launch_rgb_bytes_to_planes(const uint8_t* in, const float* levels, bool reverse_channels, DevView y,
                                       cudaStream_t stream);
// x: the output view [n][3][h][w]; out: n * h * w * 3 bytes.
cudaError_t launch_planes_to_rgb_bytes(DevView x, float scale, float offset, uint8_t* out, cudaStream_t stream);

}  // namespace gpen::cuda
