// AVX-512 f32 Winograd F(4x4,3x3) (conv_winograd_impl_internal.h): 16 tiles per zmm, GEMM tile 6
// output channels x 4 zmm (64 tiles); and F(4,2) per sub-pixel phase for transposed 3x3 stride-2
// convs (conv_winograd_t_impl_internal.h).
// GCC 12 reports false "may be used uninitialized" warnings from inside the AVX-512 intrinsics
// (their _mm512_undefined_* operands) once they are inlined here.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/memory.h"
#include <string>
#include <vector>

#include "core/dtype.h"
#include "kernels/cpu/conv_internal.h"

namespace gpen::cpu {
// Everything templated lives in a namespace of its own per translation unit: the same templates are
// compiled with other ISA flags elsewhere and must never be merged by the linker.
namespace avx512_winograd {

#include "kernels/cpu/simd_internal.h"
#include "kernels/cpu/buffers_internal.h"
#include "kernels/cpu/conv_policy_internal.h"
#include "kernels/cpu/conv_direct_impl_internal.h"
#include "kernels/cpu/conv_winograd_impl_internal.h"
#include "kernels/cpu/conv_winograd_t_impl_internal.h"
}  // namespace avx512_winograd

std::unique_ptr<ConvKernel> make_conv_winograd_avx512(const ConvDesc& d, const Tensor& weight,
                                                      std::unique_ptr<ConvKernel> small, bool weights_per_run) {
  using K = avx512_winograd::WinogradConv<avx512_winograd::F32Avx512>;
  using KT = avx512_winograd::WinogradConvT<avx512_winograd::F32Avx512>;
  const Tensor w = weight.to(DType::F32);
  if (KT::supports(d)) return std::make_unique<KT>(d, w.data<float>(), std::move(small), weights_per_run);
  if (!K::supports(d)) return small;
  return std::make_unique<K>(d, w.data<float>(), std::move(small), weights_per_run);
}

}  // namespace gpen::cpu
