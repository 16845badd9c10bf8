#include "tools/server/params.h"

#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <functional>

namespace gpen::server {
namespace {

double parse_number(const std::string& field, const std::string& v, double lo, double hi) {
  errno = 0;
  char* end = nullptr;
  const double x = std::strtod(v.c_str(), &end);
  if (v.empty() || end != v.c_str() + v.size() || errno == ERANGE || !std::isfinite(x))
    throw ParamError("'" + field + "' must be a number, got '" + v + "'");
  if (x < lo || x > hi)
    throw ParamError("'" + field + "' must be in " + std::to_string(int(lo)) + ".." + std::to_string(int(hi)) +
                     ", got " + v);
  return x;
}

int parse_int(const std::string& field, const std::string& v, int lo, int hi) {
  const double x = parse_number(field, v, lo, hi);
  if (x != std::floor(x)) throw ParamError("'" + field + "' must be a whole number, got '" + v + "'");
  return int(x);
}

bool parse_bool(const std::string& field, const std::string& v) {
  if (v == "1" || v == "true" || v == "on" || v == "yes") return true;
  if (v == "0" || v == "false" || v == "off" || v == "no") return false;
  throw ParamError("'" + field + "' must be true or false, got '" + v + "'");
}

RestoreMode parse_restore_mode(const std::string& v) {
  RestoreMode m;
  if (!parse_mode(v, &m)) throw ParamError("'mode' must be natural, strong or detail, got '" + v + "'");
  return m;
}

using FieldSetter = std::function<void(EnhanceParams&, const std::string& field, const std::string& value)>;

// One row per accepted form field; the ranges are those of docs/CONTROLS.md and the CLI.
const std::map<std::string, FieldSetter>& field_setters() {
  static const std::map<std::string, FieldSetter> setters = {
      {"strength", [](EnhanceParams& p, auto& f, auto& v) { p.controls.strength = parse_number(f, v, 0, 100); }},
      {"mode", [](EnhanceParams& p, auto&, auto& v) { p.controls.mode = parse_restore_mode(v); }},
      {"denoise", [](EnhanceParams& p, auto& f, auto& v) { p.controls.denoise = parse_number(f, v, 0, 100); }},
      {"sharpen", [](EnhanceParams& p, auto& f, auto& v) { p.controls.sharpen = parse_number(f, v, 0, 100); }},
      {"contrast", [](EnhanceParams& p, auto& f, auto& v) { p.controls.contrast = parse_number(f, v, -100, 100); }},
      {"brightness", [](EnhanceParams& p, auto& f, auto& v) { p.controls.brightness = parse_number(f, v, -100, 100); }},
      {"skin_protect", [](EnhanceParams& p, auto& f, auto& v) { p.controls.skin_protect = parse_bool(f, v); }},
      {"detail", [](EnhanceParams& p, auto& f, auto& v) { p.controls.detail = parse_bool(f, v); }},
      {"det_threshold", [](EnhanceParams& p, auto& f, auto& v) { p.detect.score_threshold = float(parse_number(f, v, 0, 1)); }},
      {"min_face", [](EnhanceParams& p, auto& f, auto& v) { p.detect.min_face = float(parse_number(f, v, 0, 100000)); }},
      {"max_faces", [](EnhanceParams& p, auto& f, auto& v) { p.detect.max_faces = parse_int(f, v, 0, 10000); }},
      {"only_center_face", [](EnhanceParams& p, auto& f, auto& v) { p.detect.only_center_face = parse_bool(f, v); }},
      {"single_scale", [](EnhanceParams& p, auto& f, auto& v) { p.detect.multi_scale = !parse_bool(f, v); }},
      {"warp",
       [](EnhanceParams& p, auto&, auto& v) {
         if (v != "linear" && v != "cubic") throw ParamError("'warp' must be linear or cubic, got '" + v + "'");
         p.warp = v == "cubic" ? WarpInterpolation::Cubic : WarpInterpolation::Linear;
       }},
      {"aligned", [](EnhanceParams& p, auto& f, auto& v) { p.aligned = parse_bool(f, v); }},
      {"format", [](EnhanceParams& p, auto& f, auto& v) { p.format = parse_output_format(f, v); }},
      {"quality", [](EnhanceParams& p, auto& f, auto& v) { p.quality = parse_int(f, v, 1, 100); }},
      {"strip_metadata", [](EnhanceParams& p, auto& f, auto& v) { p.strip_metadata = parse_bool(f, v); }},
      {"eight_bit", [](EnhanceParams& p, auto& f, auto& v) { p.eight_bit = parse_bool(f, v); }},
      {"async", [](EnhanceParams& p, auto& f, auto& v) { p.async = parse_bool(f, v); }},
  };
  return setters;
}

}  // namespace

EnhanceParams parse_enhance_params(const std::map<std::string, std::string>& fields) {
  EnhanceParams p;
  const auto& setters = field_setters();
  for (const auto& [name, value] : fields) {
    auto it = setters.find(name);
    if (it == setters.end()) throw ParamError("unknown parameter '" + name + "'");
    it->second(p, name, value);
  }
  try {
    validate(p.controls);  // the controls' own contract, beyond the per-field ranges above
  } catch (const Error& e) {
    throw ParamError(e.what());
  }
  return p;
}

nlohmann::json to_json(const EnhanceParams& p) {
  const Controls& c = p.controls;
  return {{"strength", c.strength},
          {"mode", mode_name(c.mode)},
          {"denoise", c.denoise},
          {"sharpen", c.sharpen},
          {"contrast", c.contrast},
          {"brightness", c.brightness},
          {"skin_protect", c.skin_protect},
          {"detail", c.detail},
          {"det_threshold", p.detect.score_threshold},
          {"min_face", p.detect.min_face},
          {"max_faces", p.detect.max_faces},
          {"only_center_face", p.detect.only_center_face},
          {"single_scale", !p.detect.multi_scale},
          {"warp", p.warp == WarpInterpolation::Cubic ? "cubic" : "linear"},
          {"aligned", p.aligned},
          {"format", p.format == ImageFormat::Unknown ? "default" : format_extension(p.format)},
          {"quality", p.quality},
          {"strip_metadata", p.strip_metadata},
          {"eight_bit", p.eight_bit}};
}

const char* device_name(Device d) {
  switch (d) {
    case Device::Cpu: return "cpu";
    case Device::Cuda: return "cuda";
    default: return "auto";
  }
}

Settings apply_settings_patch(const Settings& current, const nlohmann::json& patch) {
  if (!patch.is_object()) throw ParamError("settings must be a JSON object");
  Settings s = current;
  for (const auto& [key, value] : patch.items()) {
    if (key == "device") {
      const std::string d = value.is_string() ? value.get<std::string>() : "";
      if (d == "auto") s.device = Device::Auto;
      else if (d == "cpu") s.device = Device::Cpu;
      else if (d == "cuda") s.device = Device::Cuda;
      else throw ParamError("'device' must be auto, cpu or cuda");
    } else if (key == "batch_size") {
      if (!value.is_number_integer() || value.get<int64_t>() < 1 || value.get<int64_t>() > 64)
        throw ParamError("'batch_size' must be a whole number in 1..64");
      s.batch_size = value.get<int>();
    } else if (key == "output_format") {
      if (!value.is_string()) throw ParamError("'output_format' must be png, jpeg or webp");
      s.output_format = parse_output_format(key, value.get<std::string>());
    } else if (key == "auto_download") {
      if (!value.is_boolean()) throw ParamError("'auto_download' must be true or false");
      s.auto_download = value.get<bool>();
    } else {
      throw ParamError("unknown setting '" + key + "'");
    }
  }
  return s;
}

nlohmann::json to_json(const Settings& s) {
  return {{"device", device_name(s.device)},
          {"batch_size", s.batch_size},
          {"output_format", format_extension(s.output_format)},
          {"auto_download", s.auto_download}};
}

ImageFormat parse_output_format(const std::string& field, const std::string& value) {
  if (value == "png") return ImageFormat::Png;
  if (value == "jpeg" || value == "jpg") return ImageFormat::Jpeg;
  if (value == "webp") return ImageFormat::Webp;
  throw ParamError("'" + field + "' must be png, jpeg or webp, got '" + value + "'");
}

const char* format_extension(ImageFormat f) {
  switch (f) {
    case ImageFormat::Jpeg: return "jpg";
    case ImageFormat::Webp: return "webp";
    default: return "png";
  }
}

const char* format_mime(ImageFormat f) {
  switch (f) {
    case ImageFormat::Jpeg: return "image/jpeg";
    case ImageFormat::Webp: return "image/webp";
    default: return "image/png";
  }
}

}  // namespace gpen::server
