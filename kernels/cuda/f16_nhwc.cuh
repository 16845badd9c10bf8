// The f16 activation mode's elementwise kernels: image-like values live in the arena as NHWC f16
// views (DevView16), so cuDNN's tensor-core convolutions read and write them without a re-layout
// pass, and every memory-bound pass moves half the bytes of f32. Arithmetic is f32 throughout:
// each kernel widens its f16 inputs, computes as the f32 kernels do, and rounds once on store.
//
// Threads run along channels (pairs of channels as one __half2 where the views allow it), so a
// warp reads and writes contiguous bytes of one or a few pixels; grid.z is the sample.
// Launchers return cudaGetLastError() after the launch; the caller checks it.
#pragma once
#include <cuda_runtime.h>

#include "kernels/cuda/types.cuh"

namespace gpen::cuda {

// --- the graph's edges: host layouts in and out ---
// y = x, x packed NCHW f32 [y.n][y.c][y.h][y.w] (a graph input, staged on the device).
cudaError_t launch_f16_nhwc_from_f32_nchw(const float* x, const DevView16& y, cudaStream_t stream);
// y packed NCHW f32 [x.n][x.c][x.h][x.w] = x (a graph output; also Reshape's flattening, which
// is NCHW order by definition).
cudaError_t launch_f16_nhwc_to_f32_nchw(const DevView16& x, float* y, cudaStream_t stream);
// Byte images (RgbBytesIo): y[n][p][c] = levels[c * 256 + byte c (2 - c when reverse)].
cudaError_t launch_f16_nhwc_from_rgb_bytes(const uint8_t* in, const float* levels, bool reverse_channels,
                                           const DevView16& y, cudaStream_t stream);
// out = trunc(clip(x * scale + offset, 0, 1) * 255), as launch_planes_to_rgb_bytes.
cudaError_t launch_f16_nhwc_to_rgb_bytes(const DevView16& x, float scale, float offset, uint8_t* out,
                                         cudaStream_t stream);

// --- the modulated convolution's two halves around cuDNN ---
// The operands' layout: `layout` NHWC (cuDNN's tensor-core form), or NCHW where cuDNN takes a
// shape only so (a plain loop then: such shapes are odd and small).
// out[n][p][c] = x[n][p][c] * in_scale[n][c] (in_scale may be null), packed f16 in `layout`.
cudaError_t launch_f16_nhwc_prepare_conv_input(const DevView16& x, const float* in_scale, uint16_t* out,
                                               ScratchLayout layout, cudaStream_t stream);
// y[n][p][k] = then(ep(acc[n][p][k] * out_scale[n][k], k)); acc packed f16 in `layout` (cuDNN's
// output); out_scale may be null; `then` usually off.
cudaError_t launch_f16_nhwc_conv_epilogue(const uint16_t* acc, ScratchLayout layout, const float* out_scale,
                                          const DevEpilogue& ep, const DevThen& then, const DevView16& y,
                                          cudaStream_t stream);

// --- elementwise ops on views ---
// y = ep(x * scale) (shapes match; y may alias x).
cudaError_t launch_f16_nhwc_scale_bias_act(const DevView16& x, const DevView16& y, float scale,
                                           const DevEpilogue& ep, cudaStream_t stream);
// y = a + b (shapes match; y may alias a or b).
cudaError_t launch_f16_nhwc_add(const DevView16& a, const DevView16& b, const DevView16& y, cudaStream_t stream);
// y[n] = param for every sample; param is f16 [y.h * y.w][y.c] (uploaded in that order).
cudaError_t launch_f16_nhwc_broadcast(const uint16_t* param, const DevView16& y, cudaStream_t stream);

}  // namespace gpen::cuda
