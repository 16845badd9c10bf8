// Row kernels of the per-photo passes around GPEN: paste-back's strength blend of a face and its
// blend of the warped face into the photo, skin-colour protection, and the detector's input. With GPEN on a GPU these passes, not the model, bound how
// many photos a second the host's cores can feed it (docs/BENCHMARKS.md, "Per-photo CPU stages").
//
// One source (photo_rows_impl_internal.h, plain C++ the compiler vectorises) built once per
// instruction set (photo_rows.cpp generic, photo_rows_avx2.cpp, photo_rows_avx512.cpp), chosen
// at run time by active_isa() like the model kernels. All variants give the same bytes: the
// files are compiled with -ffp-contract=off, so the wider ISAs only run more lanes of the same
// IEEE operations; tests/test_photo_rows.cpp checks every variant against the generic one.
#pragma once
#include <cstdint>

#include "kernels/cpu/isa.h"

namespace gpen::cpu {

struct PhotoRowKernels {
  const char* name;
  // out (RGB, 3 x width bytes) = out * (1 - m) + face * m, rounded half to even, where m > 0;
  // untouched elsewhere. GPEN's composite: img * (1 - mask) + face * mask.
  void (*blend_rgb)(uint8_t* out, const float* mask, const uint8_t* face, int width);
  // The same for RGBA rows (alpha untouched); face stays RGB.
  void (*blend_rgba)(uint8_t* out, const float* mask, const uint8_t* face, int width);
  // Skin-colour protection of one row: `p` (RGB or RGBA) takes the chroma of `o` (the original,
  // RGB) by the original's skin weight (1 everywhere when `mono`); pixels equal to the original
  // keep their bytes. core/pipeline/adjustments.h gives the rule.
  void (*protect_skin_rgb)(uint8_t* p, const uint8_t* o, int width, bool mono);
  void (*protect_skin_rgba)(uint8_t* p, const uint8_t* o, int width, bool mono);
  // cv::addWeighted(a, alpha, b, beta) on n bytes, as OpenCV's AVX2 path computes it: b * beta
  // in float, a * alpha + that in double (a * alpha is exact there), rounded half to even.
  // GPEN's strength blend of the restored face with the aligned one.
  void (*add_weighted)(const uint8_t* a, const uint8_t* b, float alpha, float beta, uint8_t* out, size_t n);
  // An RGB row into float planes r, g, b, each minus mean[c]: a detector's input.
  void (*rgb_to_planes)(const uint8_t* rgb, int width, const float* mean, float* r, float* g, float* b);
};

const PhotoRowKernels& photo_row_kernels(Isa isa);  // the best variant `isa` and the CPU allow
const PhotoRowKernels& photo_row_kernels();         // photo_row_kernels(active_isa())

}  // namespace gpen::cpu
