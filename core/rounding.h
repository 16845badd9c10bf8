// Float -> uint8 the way OpenCV and numpy do it: round half to even (cvRound / np.rint in the
// default rounding mode), then saturate to 0..255.
//
// Without a libm call: std::nearbyint is an out-of-line function on the x86-64 baseline (no
// SSE4.1 roundss), which also stops the compiler vectorising the loops around it; the paste-back
// and skin-colour passes call it three times per pixel of a face's footprint (1.7 M pixels for
// one large face in a 1080p photo). Adding and subtracting 1.5 * 2^23 leaves the nearest integer,
// ties to even, for any |v| < 2^22, in the same (default) rounding mode nearbyint uses; values are
// first clamped to [-1, 256], which changes no saturated result and maps NaN to 0. (The sum is
// not folded away: nothing here is built with -ffast-math.)
//
// `static`: each translation unit keeps its own copy, compiled with its own instruction-set
// flags (the per-ISA kernel files include this too; an inline function with external linkage
// could be merged into one AVX-512 copy called from generic code).
#pragma once
#include <cstdint>

namespace gpen {

static inline uint8_t saturate_round_u8(float v) {
  v = v > -1.f ? v : -1.f;  // also NaN -> -1
  v = v < 256.f ? v : 256.f;
  const int r = int((v + 12582912.f) - 12582912.f);
  return uint8_t(r < 0 ? 0 : r > 255 ? 255 : r);
}

}  // namespace gpen
