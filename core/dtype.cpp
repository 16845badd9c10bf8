#include "core/dtype.h"

#include <algorithm>
#include <cctype>

namespace gpen {

size_t dtype_size(DType t) {
  switch (t) {
    case DType::F32: return 4;
    case DType::F16: return 2;
    case DType::BF16: return 2;
    case DType::F64: return 8;
    case DType::I64: return 8;
    case DType::I32: return 4;
    case DType::U8: return 1;
    case DType::Bool: return 1;
  }
  return 0;
}

const char* dtype_name(DType t) {
  switch (t) {
    case DType::F32: return "f32";
    case DType::F16: return "f16";
    case DType::BF16: return "bf16";
    case DType::F64: return "f64";
    case DType::I64: return "i64";
    case DType::I32: return "i32";
    case DType::U8: return "u8";
    case DType::Bool: return "bool";
  }
  return "?";
}

const char* dtype_safetensors_name(DType t) {
  switch (t) {
    case DType::F32: return "F32";
    case DType::F16: return "F16";
    case DType::BF16: return "BF16";
    case DType::F64: return "F64";
    case DType::I64: return "I64";
    case DType::I32: return "I32";
    case DType::U8: return "U8";
    case DType::Bool: return "BOOL";
  }
  return "?";
}

bool parse_dtype(const std::string& s, DType* out) {
  std::string l = s;
  std::transform(l.begin(), l.end(), l.begin(), [](unsigned char c) { return std::tolower(c); });
  static const struct { const char* a; const char* b; DType t; } table[] = {
      {"f32", "float32", DType::F32}, {"f16", "float16", DType::F16}, {"bf16", "bfloat16", DType::BF16},
      {"f64", "float64", DType::F64}, {"i64", "int64", DType::I64},    {"i32", "int32", DType::I32},
      {"u8", "uint8", DType::U8},     {"bool", "bool", DType::Bool},
  };
  for (const auto& e : table)
    if (l == e.a || l == e.b) {
      *out = e.t;
      return true;
    }
  return false;
}

float f16_to_f32(uint16_t h) {
  uint32_t sign = uint32_t(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t man = h & 0x3ff;
  uint32_t u;
  if (exp == 0) {
    if (man == 0) {
      u = sign;
    } else {  // subnormal: normalise
      int e = -1;
      do {
        ++e;
        man <<= 1;
      } while ((man & 0x400) == 0);
      u = sign | uint32_t(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
    }
  } else if (exp == 31) {
    u = sign | 0x7f800000u | man << 13;
  } else {
    u = sign | (exp + 127 - 15) << 23 | man << 13;
  }
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_f16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  uint32_t sign = (u >> 16) & 0x8000;
  uint32_t absu = u & 0x7fffffffu;
  if (absu > 0x7f800000u) return uint16_t(sign | 0x7e00);        // NaN
  if (absu >= 0x477ff000u) return uint16_t(sign | 0x7c00);       // overflow (>= 65520) -> inf
  if (absu < 0x38800000u) {                                      // result is subnormal or zero
    if (absu < 0x33000000u) return uint16_t(sign);               // < 2^-25 rounds to 0
    uint32_t man = (absu & 0x7fffff) | 0x800000;
    int shift = 126 - int(absu >> 23);                           // 14..24
    uint32_t half = 1u << (shift - 1);
    uint32_t rest = man & ((1u << shift) - 1);
    uint32_t r = man >> shift;
    if (rest > half || (rest == half && (r & 1))) ++r;
    return uint16_t(sign | r);
  }
  uint32_t r = absu - 0x38000000u;  // rebias exponent 127 -> 15 (in place, shifted by 13)
  uint32_t rest = r & 0x1fff;
  r >>= 13;
  if (rest > 0x1000 || (rest == 0x1000 && (r & 1))) ++r;
  return uint16_t(sign | r);
}

}  // namespace gpen
