#include "core/conv_algo_cache.h"

#include <cstdlib>
#include <exception>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/pipeline/batch.h"
#include "weights/model_cache.h"

namespace gpen {

std::string default_conv_algo_cache_path() {
  if (const char* env = std::getenv("GPEN_CUDA_ALGO_CACHE")) {
    const std::string v = env;
    return v == "off" ? "" : v;
  }
  try {
    return (std::filesystem::path(default_models_dir()) / "cudnn_algos.json").string();
  } catch (const std::exception&) {
    return "";  // no HOME, no XDG_CACHE_HOME: no cache
  }
}

ConvAlgoTable read_conv_algo_cache(const std::string& path) {
  ConvAlgoTable t;
  if (path.empty()) return t;
  std::ifstream f(path);
  if (!f) return t;
  const nlohmann::json j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || j.value("version", 0) != 1 || !j.contains("algos") || !j["algos"].is_object()) return t;
  for (const auto& [key, e] : j["algos"].items()) {
    try {  // an entry with a field of the wrong type is skipped
      CachedConvAlgo a;
      a.algo = e.at("algo").get<int>();
      a.workspace = e.at("workspace").get<uint64_t>();
      a.math = e.at("math").get<int>();
      a.ms = e.value("ms", 0.f);
      if (a.algo >= 0) t[key] = a;
    } catch (const nlohmann::json::exception&) {
    }
  }
  return t;
}

void add_to_conv_algo_cache(const std::string& path, const ConvAlgoTable& entries) {
  if (path.empty() || entries.empty()) return;
  ConvAlgoTable all = read_conv_algo_cache(path);
  for (const auto& [key, a] : entries) all[key] = a;
  nlohmann::json algos = nlohmann::json::object();
  for (const auto& [key, a] : all)
    algos[key] = {{"algo", a.algo}, {"workspace", a.workspace}, {"math", a.math}, {"ms", a.ms}};
  const std::string text = nlohmann::json{{"version", 1}, {"algos", algos}}.dump(1) + "\n";
  try {
    const std::filesystem::path dir = std::filesystem::path(path).parent_path();
    if (!dir.empty()) std::filesystem::create_directories(dir);
    write_file_atomic(path, std::vector<uint8_t>(text.begin(), text.end()));
  } catch (const std::exception&) {
  }
}

}  // namespace gpen
