// AVX512 instances of the vectorised non-conv ops (ops_impl_internal.h); ops.cpp dispatches.
// GCC 12 reports false "may be used uninitialized" warnings from inside the AVX-512 intrinsics
// (their _mm512_undefined_* operands) once they are inlined here.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>

#include "core/memory.h"

#include "kernels/cpu/ops_internal.h"

namespace gpen::cpu {
namespace avx512_ops {  // own namespace per ISA unit: never merged with other ISAs' instances

#include "kernels/cpu/simd_internal.h"
#include "kernels/cpu/buffers_internal.h"
#include "kernels/cpu/ops_impl_internal.h"

}  // namespace avx512_ops

bool upfirdn2d_avx512(const View& x, const View& y, const float* kernel, int kh, int kw, int up, int down, int pad0,
                    const Epilogue& ep, ThreadPool* pool) {
  return avx512_ops::upfirdn2d_t<avx512_ops::SimdAvx512>(x, y, kernel, kh, kw, up, down, pad0, ep, pool);
}
void scale_bias_act_avx512(const View& x, const View& y, float scale, const Epilogue& ep, ThreadPool* pool) {
  avx512_ops::scale_bias_act_t<avx512_ops::SimdAvx512>(x, y, scale, ep, pool);
}
void add_avx512(const View& a, const View& b, const View& y, ThreadPool* pool) {
  avx512_ops::add_t<avx512_ops::SimdAvx512>(a, b, y, pool);
}
void linear_avx512(const float* x, const float* w, float* y, int n, int in, int out, const Epilogue& ep,
                 ThreadPool* pool) {
  avx512_ops::linear_t<avx512_ops::SimdAvx512>(x, w, y, n, in, out, ep, pool);
}

}  // namespace gpen::cpu
