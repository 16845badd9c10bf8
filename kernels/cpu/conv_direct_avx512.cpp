// AVX-512 f32 direct / sub-pixel convolution (conv_direct_impl_internal.h), register tile 6 output
// channels x 4 zmm of 16 grid points.
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
namespace avx512_direct {

#include "kernels/cpu/simd_internal.h"
#include "kernels/cpu/buffers_internal.h"
#include "kernels/cpu/conv_policy_internal.h"
#include "kernels/cpu/conv_direct_impl_internal.h"

}  // namespace avx512_direct

std::unique_ptr<ConvKernel> make_conv_direct_avx512(const ConvDesc& d, const Tensor& weight) {
  using K = avx512_direct::DirectConv<avx512_direct::F32Avx512>;
  if (!K::supports(d)) return nullptr;
  const Tensor w = weight.to(DType::F32);
  return std::make_unique<K>(d, w.data<float>());
}

}  // namespace gpen::cpu
