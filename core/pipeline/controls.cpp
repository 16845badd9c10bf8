#include "core/pipeline/controls.h"

#include <cmath>

#include "core/error.h"

namespace gpen {

const char* mode_name(RestoreMode m) {
  switch (m) {
    case RestoreMode::Natural: return "natural";
    case RestoreMode::Strong: return "strong";
    case RestoreMode::Detail: return "detail";
  }
  return "natural";
}

bool parse_mode(const std::string& s, RestoreMode* out) {
  for (RestoreMode m : {RestoreMode::Natural, RestoreMode::Strong, RestoreMode::Detail})
    if (s == mode_name(m)) {
      *out = m;
      return true;
    }
  return false;
}

namespace {

void check_range(const char* name, double v, double lo, double hi) {
  // !(lo <= v) also refuses NaN, which would otherwise slip through every comparison.
  if (!(v >= lo && v <= hi)) fail(name, " must be in [", lo, ", ", hi, "], got ", v);
}

}  // namespace

void validate(const Controls& c) {
  check_range("strength", c.strength, 0, 100);
  check_range("denoise", c.denoise, 0, 100);
  check_range("sharpen", c.sharpen, 0, 100);
  check_range("contrast", c.contrast, -100, 100);
  check_range("brightness", c.brightness, -100, 100);
  const int mode = int(c.mode);  // an enum read from a C API or a cast can hold anything
  if (mode < int(RestoreMode::Natural) || mode > int(RestoreMode::Detail)) fail("unknown restore mode ", mode);
}

}  // namespace gpen
