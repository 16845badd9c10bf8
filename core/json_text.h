// JSON as text, for reports, `--json` output, cache files and HTTP answers.
//
// Strings that reach our JSON are not always UTF-8: Linux file names are bytes, and an HTTP client
// chooses its form-field and upload names. nlohmann::json's default dump throws type_error 316 on
// such bytes, which turned the report of a finished batch, `gpen detect --json`, or the 400 answer
// to a malformed request (it echoes the field's name) into a failure of its own. Here invalid
// bytes become U+FFFD and the rest of the text is kept.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace gpen {

inline std::string json_text(const nlohmann::json& j, int indent = -1) {
  return j.dump(indent, ' ', false, nlohmann::json::error_handler_t::replace);
}

}  // namespace gpen
