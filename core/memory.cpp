#include "core/memory.h"

#include <sys/mman.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <cstdlib>

#include "core/error.h"

namespace gpen {

namespace {
constexpr size_t kHugePage = size_t(2) << 20;
}  // namespace

void* aligned_alloc_bytes(size_t bytes) {
  const bool large = bytes >= kHugePage;
  const size_t align = large ? kHugePage : 64;
  const size_t rounded = (bytes + align - 1) / align * align;
  void* p = std::aligned_alloc(align, rounded ? rounded : align);
  if (!p) fail("out of memory allocating ", bytes, " bytes");
  if (large) madvise(p, rounded, MADV_HUGEPAGE);  // advice only: ignored where THP is off
  return p;
}

void aligned_free(void* p) { std::free(p); }

void release_free_heap() {
#ifdef __GLIBC__
  malloc_trim(0);
#endif
}

}  // namespace gpen
