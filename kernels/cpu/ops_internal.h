// Per-ISA implementations of the fast non-conv ops (ops.h dispatches to them by active_isa()).
// Defined in ops_avx2.cpp / ops_avx512.cpp; call only when the CPU has that ISA. Tests call them
// directly so that every path is checked against the reference on one machine.
#pragma once
#include "core/thread_pool.h"
#include "kernels/cpu/kernel_types.h"

namespace gpen::cpu {

// Splits a kh x kw kernel into column a (kh) and row b (kw) with k[ky][kx] = a[ky] * b[kx], to
// float rounding; false if it is not such an outer product (every blur of GPEN is: [1,3,3,1]^2).
// In ops.cpp: the vector upfirdn2d and the profile's kernel name both ask it.
bool separable_factors(const float* k, int kh, int kw, float* a, float* b);

// upfirdn2d's vector paths take down == 1 and kh*kw <= 64 (any up >= 1, any pads).
inline bool upfirdn2d_vector_case(int kh, int kw, int up, int down) {
  return down == 1 && up >= 1 && kh >= 1 && kw >= 1 && kh * kw <= 64;
}

// upfirdn2d for down == 1 and kh*kw <= 64 (any up >= 1, any pads); returns false (nothing written)
// for other cases, which the caller sends to the reference.
bool upfirdn2d_avx2(const View& x, const View& y, const float* kernel, int kh, int kw, int up, int down, int pad0,
                    const Epilogue& ep, ThreadPool* pool);
bool upfirdn2d_avx512(const View& x, const View& y, const float* kernel, int kh, int kw, int up, int down, int pad0,
                      const Epilogue& ep, ThreadPool* pool);

void scale_bias_act_avx2(const View& x, const View& y, float scale, const Epilogue& ep, ThreadPool* pool);
void scale_bias_act_avx512(const View& x, const View& y, float scale, const Epilogue& ep, ThreadPool* pool);

void add_avx2(const View& a, const View& b, const View& y, ThreadPool* pool);
void add_avx512(const View& a, const View& b, const View& y, ThreadPool* pool);

void linear_avx2(const float* x, const float* w, float* y, int n, int in, int out, const Epilogue& ep,
                 ThreadPool* pool);
void linear_avx512(const float* x, const float* w, float* y, int n, int in, int out, const Epilogue& ep,
                   ThreadPool* pool);

}  // namespace gpen::cpu
