#include "kernels/cpu/isa.h"

#include <cpuid.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdlib>

namespace gpen::cpu {
namespace {

uint64_t read_xcr0() {
  uint32_t eax, edx;
  __asm__ volatile("xgetbv" : "=a"(eax), "=d"(edx) : "c"(0));
  return (uint64_t(edx) << 32) | eax;
}

Isa detect_uncached() {
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return Isa::Generic;
  const bool osxsave = c & (1u << 27), fma = c & (1u << 12), f16c = c & (1u << 29), avx = c & (1u << 28);
  if (!osxsave || !avx) return Isa::Generic;
  const uint64_t xcr0 = read_xcr0();
  const bool ymm_state = (xcr0 & 0x6) == 0x6;
  const bool zmm_state = (xcr0 & 0xe6) == 0xe6;
  if (!ymm_state) return Isa::Generic;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & (1u << 5);
  const bool avx512f = b & (1u << 16), avx512dq = b & (1u << 17), avx512bw = b & (1u << 30),
             avx512vl = b & (1u << 31);
  if (!(avx2 && fma && f16c)) return Isa::Generic;
  if (!(zmm_state && avx512f && avx512dq && avx512bw && avx512vl)) return Isa::AVX2;
  __cpuid_count(7, 1, a, b, c, d);
  const bool avx512bf16 = a & (1u << 5);
  return avx512bf16 ? Isa::AVX512_BF16 : Isa::AVX512;
}

std::atomic<int> g_cap{-1};

Isa env_cap() {
  const char* env = std::getenv("GPEN_ISA");
  Isa isa;
  if (env && parse_isa(env, &isa)) return isa;
  return Isa::AVX512_BF16;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Generic: return "generic";
    case Isa::AVX2: return "avx2";
    case Isa::AVX512: return "avx512";
    case Isa::AVX512_BF16: return "avx512bf16";
  }
  return "?";
}

bool parse_isa(const std::string& s, Isa* out) {
  for (Isa i : {Isa::Generic, Isa::AVX2, Isa::AVX512, Isa::AVX512_BF16})
    if (s == isa_name(i)) {
      *out = i;
      return true;
    }
  return false;
}

Isa detect_isa() {
  static const Isa detected = detect_uncached();
  return detected;
}

Isa active_isa() {
  Isa isa = std::min(detect_isa(), env_cap());
  int cap = g_cap.load();
  if (cap >= 0) isa = std::min(isa, Isa(cap));
  return isa;
}

void set_isa_cap(Isa cap) { g_cap.store(int(cap)); }

const char* precision_name(Precision p) { return p == Precision::BF16 ? "bf16" : "fp32"; }

bool parse_precision(const std::string& s, Precision* out) {
  if (s == "fp32" || s == "f32") {
    *out = Precision::F32;
    return true;
  }
  if (s == "bf16") {
    *out = Precision::BF16;
    return true;
  }
  return false;
}

Precision precision_in_effect(Precision asked, Isa max_isa) {
  return asked == Precision::BF16 && std::min(max_isa, active_isa()) >= Isa::AVX512_BF16 ? Precision::BF16
                                                                                         : Precision::F32;
}

std::string precision_note(Precision asked, Isa max_isa) {
  if (precision_in_effect(asked, max_isa) == asked) return "";
  return std::string("--precision bf16 needs AVX-512-BF16 (the kernels in use: ") +
         isa_name(std::min(max_isa, active_isa())) + "); fp32 runs";
}

}  // namespace gpen::cpu
