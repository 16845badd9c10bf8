// The user-facing controls of a restoration (the seed WebUI's sliders), shared by the CLI
// (`gpen enhance`), the HTTP API (`gpen serve`) and the C API. Their exact definitions (formula,
// where in the pipeline each applies, faces only or whole photo) are in docs/CONTROLS.md.
#pragma once
#include <string>

namespace gpen {

enum class RestoreMode { Natural, Strong, Detail };
const char* mode_name(RestoreMode m);
bool parse_mode(const std::string& s, RestoreMode* out);  // "natural" | "strong" | "detail"

struct Controls {
  double strength = 50;     // 0..100: 0 = input unchanged, 100 = GPEN's output (mode natural, filters off)
  RestoreMode mode = RestoreMode::Natural;
  double denoise = 0;       // 0..100
  double sharpen = 0;       // 0..100
  double contrast = 0;      // -100..100, 0 = identity
  double brightness = 0;    // -100..100, 0 = identity
  bool skin_protect = true; // keep the original's skin colour (chroma) inside the face mask
  bool detail = false;      // extra detail pass (see docs/CONTROLS.md)
};

// Throws gpen::Error naming the first out-of-range field.
void validate(const Controls& c);

}  // namespace gpen
