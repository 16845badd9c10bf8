// AVX512 build of the photo row kernels (photo_rows_impl_internal.h); photo_rows.cpp dispatches.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/rounding.h"
#include "kernels/cpu/photo_colour.h"
#include "kernels/cpu/photo_rows.h"

namespace gpen::cpu {
namespace avx512_photo {  // own namespace per ISA unit: never merged with other ISAs' instances

#include "kernels/cpu/photo_rows_impl_internal.h"

}  // namespace avx512_photo

const PhotoRowKernels& photo_row_kernels_avx512() {
  static const PhotoRowKernels k = avx512_photo::photo_row_kernel_table("avx512");
  return k;
}

}  // namespace gpen::cpu
