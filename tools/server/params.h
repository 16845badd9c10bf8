// What a client may ask of `gpen serve`: the per-request enhance parameters (the CLI's controls,
// sent as multipart form fields) and the server-wide settings (sent as JSON). Parsing is strict:
// an unknown field, a malformed number or an out-of-range value is a ParamError naming the field,
// which the HTTP layer answers with 400.
#pragma once
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/face_detector.h"
#include "core/image_ops.h"
#include "core/image.h"
#include "core/pipeline/controls.h"

namespace gpen::server {

class ParamError : public Error {
 public:
  using Error::Error;
};

struct EnhanceParams {
  Controls controls;
  DetectOptions detect;
  WarpInterpolation warp = WarpInterpolation::Linear;
  bool aligned = false;    // the upload is an aligned face crop: no detection, no paste-back
  ImageFormat format = ImageFormat::Unknown;  // Unknown: the server's output_format setting
  int quality = 95;        // JPEG / WebP
  bool strip_metadata = false;  // the result without the upload's ICC profile, EXIF (GPS!), XMP, density
  bool eight_bit = false;       // 8 bits per sample even for a 16-bit PNG/TIFF upload (gpen enhance --8bit)
  bool async = false;      // /api/enhance: answer 202 + job id at once instead of waiting
};

// Form fields (name -> value) -> parameters. Unset fields keep their defaults.
EnhanceParams parse_enhance_params(const std::map<std::string, std::string>& fields);
nlohmann::json to_json(const EnhanceParams& p);

enum class Device { Auto, Cpu, Cuda };
const char* device_name(Device d);

struct Settings {
  Device device = Device::Auto;
  int batch_size = 4;  // faces per GPEN forward
  ImageFormat output_format = ImageFormat::Png;
  bool auto_download = false;
};

// Applies the fields present in `patch` (a JSON object) to `current`; unknown fields are errors.
Settings apply_settings_patch(const Settings& current, const nlohmann::json& patch);
nlohmann::json to_json(const Settings& s);

// "png" | "jpeg" | "jpg" | "webp" -> format; ParamError otherwise. And back, for file names.
ImageFormat parse_output_format(const std::string& field, const std::string& value);
const char* format_extension(ImageFormat f);  // "png", "jpg", "webp"
const char* format_mime(ImageFormat f);       // "image/png", ...

}  // namespace gpen::server
