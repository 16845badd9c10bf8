// AVX2 (8 columns per vector) row-ring convolutions (conv_depthwise_impl_internal.h): depthwise, depthwise + pointwise, small-channel.

#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/conv_internal.h"

namespace gpen::cpu {
namespace avx2_depthwise {

#include "kernels/cpu/simd_internal.h"
#include "kernels/cpu/conv_depthwise_impl_internal.h"

}  // namespace avx2_depthwise

std::unique_ptr<ConvKernel> make_conv_depthwise_avx2(const ConvDesc& d, const Tensor& weight) {
  using K = avx2_depthwise::DepthwiseConv<avx2_depthwise::SimdAvx2>;
  if (!K::supports(d)) return nullptr;
  const Tensor w = weight.to(DType::F32);
  return std::make_unique<K>(d, w.data<float>(), "avx2");
}

std::unique_ptr<ConvKernel> make_conv_smallc_avx2(const ConvDesc& d, const Tensor& weight) {
  using K = avx2_depthwise::SmallChannelConv<avx2_depthwise::SimdAvx2>;
  if (!K::supports(d)) return nullptr;
  const Tensor w = weight.to(DType::F32);
  return std::make_unique<K>(d, w.data<float>(), "avx2");
}

std::unique_ptr<ConvKernel> make_conv_dw_pw_avx2(const ConvDesc& dw, const Tensor& dw_weight, const Epilogue& dw_ep,
                                                const ConvDesc& pw, const Tensor& pw_weight) {
  using K = avx2_depthwise::DepthwisePointwiseConv<avx2_depthwise::SimdAvx2>;
  if (!K::supports(dw, pw)) return nullptr;
  const Tensor dww = dw_weight.to(DType::F32), pww = pw_weight.to(DType::F32);
  return std::make_unique<K>(dw, dww.data<float>(), dw_ep, pw, pww.data<float>(), "avx2");
}

}  // namespace gpen::cpu
