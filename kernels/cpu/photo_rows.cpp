// Generic build of the photo row kernels (photo_rows_impl_internal.h) and the run-time choice
// between it and the per-ISA builds.
#include "kernels/cpu/photo_rows.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/rounding.h"
#include "kernels/cpu/photo_colour.h"

namespace gpen::cpu {
namespace generic_photo {

#include "kernels/cpu/photo_rows_impl_internal.h"

}  // namespace generic_photo

const PhotoRowKernels& photo_row_kernels_avx2();
const PhotoRowKernels& photo_row_kernels_avx512();

const PhotoRowKernels& photo_row_kernels(Isa isa) {
  static const PhotoRowKernels generic = generic_photo::photo_row_kernel_table("generic");
  isa = std::min(isa, detect_isa());  // never a variant this CPU cannot run
  if (isa >= Isa::AVX512) return photo_row_kernels_avx512();
  if (isa == Isa::AVX2) return photo_row_kernels_avx2();
  return generic;
}

const PhotoRowKernels& photo_row_kernels() { return photo_row_kernels(active_isa()); }

}  // namespace gpen::cpu
