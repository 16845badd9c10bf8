// Argument types shared by the CUDA kernels and the host code that launches them. Plain structs:
// this header is included by nvcc and by the host compiler alike.
//
// Layout: the CUDA backend keeps the graph's NCHW f32 layout and the memory plan's offsets in its
// device arena, exactly as the CPU backend does, so every op reads the same views (channel slices
// with a batch stride: concat in place) and the generic CPU kernels are a direct oracle. Only the
// convolution operands are re-laid out: see ConvScratch.
#pragma once
#include <cstdint>

#ifdef __CUDACC__
#define GPEN_HD __host__ __device__
#else
#define GPEN_HD
#endif

namespace gpen::cuda {

// An NCHW f32 tensor in device memory; batch_stride may exceed c*h*w (a channel slice).
struct DevView {
  float* data = nullptr;
  int n = 0, c = 0, h = 0, w = 0;
  int64_t batch_stride = 0;
  GPEN_HD int64_t plane() const { return int64_t(h) * w; }
  GPEN_HD int64_t numel() const { return int64_t(n) * c * h * w; }
};

// y = act(y + bias[c]) * gain, act(v) = v >= 0 ? v : slope * v (as cpu::Epilogue).
struct DevEpilogue {
  const float* bias = nullptr;  // device, [channels] or null
  float slope = 1.f, gain = 1.f;
};

// The packed buffers a convolution reads from and writes to (cuDNN's operands), per sample
// channels x pixels. NCHW for f32/TF32; NHWC for f16, where cuDNN's tensor-core kernels want
// channels innermost -- the transposes are folded into the kernels that fill and drain them.
enum class ScratchLayout { NCHW, NHWC };
enum class ScratchType { F32, F16 };

}  // namespace gpen::cuda
