// Element types the engine reads, stores and computes with, and scalar conversions between them.
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace gpen {

enum class DType : uint8_t { F32, F16, BF16, F64, I64, I32, U8, Bool };

size_t dtype_size(DType t);
const char* dtype_name(DType t);           // "f32", "f16", ... (our own short names)
const char* dtype_safetensors_name(DType t);  // "F32", "F16", "BF16", "F64", "I64", ...
bool parse_dtype(const std::string& s, DType* out);  // accepts both spellings, case-insensitive

inline float bf16_to_f32(uint16_t h) {
  uint32_t u = uint32_t(h) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
// Round to nearest even; NaN stays NaN.
inline uint16_t f32_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if ((u & 0x7fffffffu) > 0x7f800000u) return uint16_t((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return uint16_t(u >> 16);
}
float f16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);  // round to nearest even, overflow to inf

}  // namespace gpen
