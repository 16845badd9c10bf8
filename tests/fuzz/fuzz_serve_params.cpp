// libFuzzer target: what a `gpen serve` client sends besides the photo. The input is split into
// form fields (name '\0' value '\0' name ...) for parse_enhance_params, and, from the first
// '{', also read as a JSON settings patch for apply_settings_patch (parsed as the server does,
// without exceptions). Each must either succeed or throw ParamError, the one error the HTTP layer
// answers with 400: any other exception (a JSON type_error from a wrongly typed field, say) would
// reach the client as 500 "internal error", and escapes here as a fuzzer finding. Whatever is
// accepted must serialise back to JSON.
#include <cstddef>
#include <cstdint>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "tools/server/params.h"

volatile size_t g_sink;

namespace {

std::map<std::string, std::string> split_fields(const std::string& s) {
  std::map<std::string, std::string> fields;
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t name_end = s.find('\0', pos);
    if (name_end == std::string::npos) break;
    size_t value_end = s.find('\0', name_end + 1);
    if (value_end == std::string::npos) value_end = s.size();
    fields[s.substr(pos, name_end - pos)] = s.substr(name_end + 1, value_end - name_end - 1);
    pos = value_end + 1;
  }
  return fields;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string s(reinterpret_cast<const char*>(data), size);
  try {
    const gpen::server::EnhanceParams p = gpen::server::parse_enhance_params(split_fields(s));
    g_sink = gpen::server::to_json(p).dump().size();
  } catch (const gpen::server::ParamError&) {
  }
  const size_t brace = s.find('{');
  if (brace == std::string::npos) return 0;
  const nlohmann::json patch = nlohmann::json::parse(s.substr(brace), nullptr, false);
  if (patch.is_discarded()) return 0;  // the server answers 400 "not valid JSON"
  try {
    const gpen::server::Settings settings = gpen::server::apply_settings_patch({}, patch);
    g_sink = gpen::server::to_json(settings).dump().size();
  } catch (const gpen::server::ParamError&) {
  }
  return 0;
}
