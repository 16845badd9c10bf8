// Instruction sets the CPU kernels are built for, detected at run time (CPUID + XGETBV) and
// optionally capped with GPEN_ISA=generic|avx2|avx512|avx512bf16 or `--isa`, so every path can be
// tested on one machine. Per-ISA kernels live in files named *_avx2.cpp / *_avx512.cpp /
// *_avx512bf16.cpp, compiled with their own flags; this header is safe for any translation unit.
#pragma once
#include <string>

namespace gpen::cpu {

enum class Isa { Generic = 0, AVX2 = 1, AVX512 = 2, AVX512_BF16 = 3 };

const char* isa_name(Isa isa);
bool parse_isa(const std::string& s, Isa* out);
// What the CPU and OS support (AVX2 needs FMA+F16C; AVX512 means F+BW+VL+DQ; BF16 adds avx512_bf16).
Isa detect_isa();
// detect_isa() capped by GPEN_ISA and by set_isa_cap().
Isa active_isa();
void set_isa_cap(Isa cap);

enum class Precision { F32, BF16 };
const char* precision_name(Precision p);
bool parse_precision(const std::string& s, Precision* out);
// What the kernels run for a request: bf16 needs AVX-512-BF16 within `max_isa` (and the CPU's
// active_isa()); anything less runs f32.
Precision precision_in_effect(Precision asked, Isa max_isa = Isa::AVX512_BF16);
// Empty when the request is honoured, else one line for the user saying what runs instead.
std::string precision_note(Precision asked, Isa max_isa = Isa::AVX512_BF16);

}  // namespace gpen::cpu
