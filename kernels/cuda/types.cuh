// Argument types shared by the CUDA kernels and the host code that launches them. Plain structs:
// this header is included by nvcc and by the host compiler alike.
//
// Layout: the CUDA backend keeps the graph's NCHW f32 layout and the memory plan's offsets in its
// device arena, exactly as the CPU backend does, so every op reads the same views (channel slices
// with a batch stride: concat in place) and the generic CPU kernels are a direct oracle. Only the
// convolution operands are re-laid out: see ConvScratch. In the f16 activation mode (DevView16)
// the image-like values live as NHWC f16 at the same arena offsets instead, and only the small
// per-sample vectors (styles, demodulation factors) stay f32.
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

// An f16 tensor in device memory, NHWC in the backend's f16 activation mode (GPEN_CUDA_NHWC16):
// element (n, c, pixel p) is data[n * batch_stride + p * pixel_stride + c * channel_stride]. A
// channel slice of a concat buffer has pixel_stride = the buffer's channel count and data at its
// first channel; channel_stride is 1 except for a packed NCHW convolution operand (a fallback
// for shapes cuDNN takes only in NCHW). data holds IEEE half bits (uint16_t: this header is also
// compiled without cuda_fp16.h).
struct DevView16 {
  uint16_t* data = nullptr;
  int n = 0, c = 0, h = 0, w = 0;
  int pixel_stride = 0, channel_stride = 1;
  int64_t batch_stride = 0;
  GPEN_HD int64_t plane() const { return int64_t(h) * w; }
  // Whether channel pairs can move as one 32-bit __half2 (adjacent, even, aligned).
  GPEN_HD bool pairs() const {
    return channel_stride == 1 && c % 2 == 0 && pixel_stride % 2 == 0 && batch_stride % 2 == 0 &&
           (uintptr_t(data) & 3) == 0;
  }
};

// y = act(y + bias[c]) * gain, act(v) = v >= 0 ? v : slope * v (as cpu::Epilogue).
struct DevEpilogue {
  const float* bias = nullptr;  // device, [channels] or null
  float slope = 1.f, gain = 1.f;
};

// A second stage after an epilogue, y = ep(y * scale): a ScaleBiasAct that ran in place on a
// convolution's result, fused into the kernel that writes it (F16ActivationPlan::fused_after).
struct DevThen {
  bool on = false;
  float scale = 1.f;
  DevEpilogue ep;
};

// The packed buffers a convolution reads from and writes to (cuDNN's operands), per sample
// channels x pixels. NCHW for f32/TF32; NHWC for f16, where cuDNN's tensor-core kernels want
// channels innermost -- the transposes are folded into the kernels that fill and drain them.
enum class ScratchLayout { NCHW, NHWC };
enum class ScratchType { F32, F16 };

}  // namespace gpen::cuda
