// AVX-512 (16 columns per vector) row-ring convolutions (conv_depthwise_impl_internal.h): depthwise, depthwise + pointwise, small-channel.
// GCC 12 reports false "may be used uninitialized" warnings from inside the AVX-512 intrinsics.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/conv_internal.h"

namespace gpen::cpu {
namespace avx512_depthwise {

#include "kernels/cpu/simd_internal.h"
#include "kernels/cpu/conv_depthwise_impl_internal.h"

}  // namespace avx512_depthwise

std::unique_ptr<ConvKernel> make_conv_depthwise_avx512(const ConvDesc& d, const Tensor& weight) {
  using K = avx512_depthwise::DepthwiseConv<avx512_depthwise::SimdAvx512>;
  if (!K::supports(d)) return nullptr;
  const Tensor w = weight.to(DType::F32);
  return std::make_unique<K>(d, w.data<float>(), "avx512");
}

std::unique_ptr<ConvKernel> make_conv_smallc_avx512(const ConvDesc& d, const Tensor& weight) {
  using K = avx512_depthwise::SmallChannelConv<avx512_depthwise::SimdAvx512>;
  if (!K::supports(d)) return nullptr;
  const Tensor w = weight.to(DType::F32);
  return std::make_unique<K>(d, w.data<float>(), "avx512");
}

std::unique_ptr<ConvKernel> make_conv_dw_pw_avx512(const ConvDesc& dw, const Tensor& dw_weight, const Epilogue& dw_ep,
                                                const ConvDesc& pw, const Tensor& pw_weight) {
  using K = avx512_depthwise::DepthwisePointwiseConv<avx512_depthwise::SimdAvx512>;
  if (!K::supports(dw, pw)) return nullptr;
  const Tensor dww = dw_weight.to(DType::F32), pww = pw_weight.to(DType::F32);
  return std::make_unique<K>(dw, dww.data<float>(), dw_ep, pw, pww.data<float>(), "avx512");
}

}  // namespace gpen::cpu
