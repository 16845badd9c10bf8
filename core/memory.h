// Aligned host allocations for tensors, arenas and packed weights.
// Large blocks are 2 MiB-aligned and advised as transparent huge pages: first-touch page faults
// dominate the cost of fresh memory on VMs (we measured ~300 MB/s with 4 KiB pages versus
// ~10 GB/s with huge pages on the Zen 5 dev VM), and a GPEN-512 load touches ~1 GB. (On the Zen 3
// VM of session 15 a fresh process's first huge-page touches ran at 0.3-1.3 GB/s -- apparently
// the host re-backing free memory it had taken back -- and 4 KiB pages at 1.9 GB/s, huge pages
// at 10 GB/s once warm: docs/BENCHMARKS.md. Huge pages stay: faster where memory is warm or the
// host does not take it back.)
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
