#include "kernels/cpu/ops.h"

#include "kernels/cpu/generic.h"
#include "kernels/cpu/ops_internal.h"

namespace gpen::cpu {

// Each op takes the best implementation active_isa() allows (GPEN_ISA / set_isa_cap cap it); the
// vectorised ones are identical in AVX2 and AVX-512 form (templates over the vector width).

void upfirdn2d(const View& x, const View& y, const float* kernel, int kh, int kw, int up, int down, int pad0,
               int pad1, const Epilogue& ep, ThreadPool* pool) {
  const Isa isa = active_isa();
  if (isa >= Isa::AVX512 && upfirdn2d_avx512(x, y, kernel, kh, kw, up, down, pad0, ep, pool)) return;
  if (isa == Isa::AVX2 && upfirdn2d_avx2(x, y, kernel, kh, kw, up, down, pad0, ep, pool)) return;
  ref::upfirdn2d(x, y, kernel, kh, kw, up, down, pad0, pad1, ep, pool);
}

void scale_bias_act(const View& x, const View& y, float scale, const Epilogue& ep, ThreadPool* pool) {
  const Isa isa = active_isa();
  if (isa >= Isa::AVX512) return scale_bias_act_avx512(x, y, scale, ep, pool);
  if (isa == Isa::AVX2) return scale_bias_act_avx2(x, y, scale, ep, pool);
  ref::scale_bias_act(x, y, scale, ep, pool);
}

void add(const View& a, const View& b, const View& y, ThreadPool* pool) {
  const Isa isa = active_isa();
  if (isa >= Isa::AVX512) return add_avx512(a, b, y, pool);
  if (isa == Isa::AVX2) return add_avx2(a, b, y, pool);
  ref::add(a, b, y, pool);
}

void linear(const float* x, const float* w, float* y, int n, int in, int out, const Epilogue& ep, ThreadPool* pool) {
  const Isa isa = active_isa();
  if (isa >= Isa::AVX512) return linear_avx512(x, w, y, n, in, out, ep, pool);
  if (isa == Isa::AVX2) return linear_avx2(x, w, y, n, in, out, ep, pool);
  ref::linear(x, w, y, n, in, out, ep, pool);
}

}  // namespace gpen::cpu
