// Factories of the per-ISA convolution kernels, consulted by make_conv_kernel() (conv.cpp) best
// first. Each is defined in a file compiled with its own instruction-set flags
// (conv_*_avx2.cpp, conv_*_avx512.cpp, conv_*_avx512bf16.cpp) and must only be called when
// active_isa() allows it. Each returns null when it does not handle the ConvDesc.
//
// Kernel families (see the files for the details):
//   direct:   implicit GEMM over a flattened, padded output grid ("tap conv"). Handles 1x1 and kxk
//             convs of any stride (a stride-s conv reads s*s de-interleaved phase planes, so every
//             tap is a plain offset) and transposed convs (split into s*s sub-pixel convs, one per
//             output phase, so no multiplications by inserted zeros). groups == 1 only.
//   winograd: F(4x4, 3x3) for 3x3 stride-1 convs; weights transformed once at load. f32 only: with
//             bf16 operands the transforms amplify the rounding to ~2.5% relative L2 error, so the
//             bf16 precision uses the f32 Winograd kernel (whose small-map fallback is bf16 direct).
#pragma once
#include <memory>

#include "kernels/cpu/conv.h"

namespace gpen::cpu {

// depthwise: groups == C == K, one kxk filter per channel, stride <= 4 (MobileNet's conv_dw).
std::unique_ptr<ConvKernel> make_conv_depthwise_avx2(const ConvDesc& d, const Tensor& weight);
std::unique_ptr<ConvKernel> make_conv_depthwise_avx512(const ConvDesc& d, const Tensor& weight);
// small-channel dense: groups 1, C <= 4; K <= 16, kernels 2x2..7x7, stride 2..4 (MobileNet's first layer),
// or 1x1 with K <= 64 (GPEN's encoder input).
std::unique_ptr<ConvKernel> make_conv_smallc_avx2(const ConvDesc& d, const Tensor& weight);
std::unique_ptr<ConvKernel> make_conv_smallc_avx512(const ConvDesc& d, const Tensor& weight);
// depthwise + pointwise: a depthwise conv and the 1x1 conv reading its output, row by row.
std::unique_ptr<ConvKernel> make_conv_dw_pw_avx2(const ConvDesc& dw, const Tensor& dw_weight, const Epilogue& dw_ep,
                                                 const ConvDesc& pw, const Tensor& pw_weight);
std::unique_ptr<ConvKernel> make_conv_dw_pw_avx512(const ConvDesc& dw, const Tensor& dw_weight, const Epilogue& dw_ep,
                                                   const ConvDesc& pw, const Tensor& pw_weight);

std::unique_ptr<ConvKernel> make_conv_direct_avx2(const ConvDesc& d, const Tensor& weight);
std::unique_ptr<ConvKernel> make_conv_direct_avx512(const ConvDesc& d, const Tensor& weight);
std::unique_ptr<ConvKernel> make_conv_direct_avx512bf16(const ConvDesc& d, const Tensor& weight);

// Winograd kernels keep a direct kernel (`small`, made by the caller for the same ISA/precision) for
// feature maps too small for 4x4 tiles to pay off; it may be null (then they use their own path).
// weights_per_run: keep the 3x3 weights and transform them in every run (KernelOptions).
// They build the F(4,3) kernel for 3x3 stride-1 convs and the F(4,2) sub-pixel kernel for
// transposed 3x3 stride-2 pad-0 convs; for other shapes they return `small`.
std::unique_ptr<ConvKernel> make_conv_winograd_avx2(const ConvDesc& d, const Tensor& weight,
                                                    std::unique_ptr<ConvKernel> small, bool weights_per_run);
std::unique_ptr<ConvKernel> make_conv_winograd_avx512(const ConvDesc& d, const Tensor& weight,
                                                      std::unique_ptr<ConvKernel> small, bool weights_per_run);

}  // namespace gpen::cpu
