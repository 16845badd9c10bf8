// Aligned host allocations for tensors, arenas and packed weights.
// Large blocks are 2 MiB-aligned and advised as transparent huge pages: first-touch page faults
// dominate the cost of fresh memory on VMs (we measured ~300 MB/s with 4 KiB pages versus
// ~10 GB/s with huge pages on the dev machine), and a GPEN-512 load touches ~1 GB.
#pragma once
#include <cstddef>

namespace gpen {

void* aligned_alloc_bytes(size_t bytes);  // 64-byte aligned at least; never null (throws)
void aligned_free(void* p);

// Hands the heap's free pages back to the OS (glibc: malloc_trim). For the moments a large
// working set has just been freed for good (a model's load-time copies once packed): with the
// raised mmap threshold of the gpen binary they would otherwise stay resident.
void release_free_heap();

}  // namespace gpen
