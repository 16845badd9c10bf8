// `gpen models list | pull NAME... | verify [NAME...] | path NAME | rm NAME... | import NAME FILE`:
// the model cache (weights/model_cache.h). Also add_model_fetch_options(), the --models-dir and
// --offline options of every subcommand that takes --model NAME.
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <memory>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_text.h"
#include "tools/commands.h"
#include "weights/model_cache.h"

namespace fs = std::filesystem;

namespace gpen::cli {

void add_model_fetch_options(CLI::App* cmd, ModelFetchOptions& opt) {
  cmd->add_option("--models-dir", opt.models_dir, "model cache folder (default: $GPEN_MODELS or $XDG_CACHE_HOME/gpen)");
  cmd->add_flag("--offline", opt.offline, "never download: a model missing from the cache is an error");
  opt.progress = ::isatty(STDERR_FILENO) != 0;
}

namespace {

struct ModelsOpts {
  ModelFetchOptions fetch;
  std::vector<std::string> names;
  std::string import_name, file;  // import NAME FILE
  bool json = false, safetensors = false;
};

const ModelEntry& entry_or_fail(const std::string& name) {
  const ModelEntry* e = find_model(name);
  if (!e) fail("unknown model '", name, "' (see `gpen models list`)");
  return *e;
}

std::string human_size(int64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", double(bytes) / 1e6);
  return buf;
}

// "cached 271.0 MB", "partial 12.0 MB", or "-".
std::string cache_state(const ModelEntry& e, const ModelFetchOptions& opt) {
  std::error_code ec;
  const std::string path = cached_model_path(e, opt);
  if (fs::is_regular_file(path, ec)) return "cached " + human_size(int64_t(fs::file_size(path, ec)));
  if (fs::is_regular_file(partial_path(path), ec)) return "partial " + human_size(int64_t(fs::file_size(partial_path(path), ec)));
  return "-";
}

// Where the hash a download is checked against comes from.
std::string hash_state(const ModelEntry& e, const ModelFetchOptions& opt) {
  if (!e.sha256.empty()) return "published";
  return read_model_record(e, opt) ? "recorded" : "at first download";
}

int list_models(const ModelsOpts& o) {
  if (o.json) {
    nlohmann::json all = nlohmann::json::array();
    for (const ModelEntry& e : model_registry())
      all.push_back({{"name", e.name}, {"aliases", e.aliases}, {"kind", model_kind_name(e.kind)},
                     {"file", e.file_name}, {"urls", e.urls}, {"size", e.size}, {"sha256", e.sha256},
                     {"source", e.source}, {"loadable", model_format_supported(e)},
                     {"path", cached_model_path(e, o.fetch)}, {"state", cache_state(e, o.fetch)}});
    std::printf("%s\n", json_text(all, 2).c_str());
    return 0;
  }
  std::printf("cache: %s\n\n", models_dir(o.fetch).c_str());
  std::printf("%-26s %-9s %-18s %-18s %s\n", "NAME", "KIND", "CACHE", "SHA-256", "DESCRIPTION");
  for (const ModelEntry& e : model_registry()) {
    const std::string note = model_format_supported(e) ? "" : " [needs the ONNX importer: not in this build]";
    std::printf("%-26s %-9s %-18s %-18s %s%s\n", e.name.c_str(), model_kind_name(e.kind), cache_state(e, o.fetch).c_str(),
                hash_state(e, o.fetch).c_str(), e.description.c_str(), note.c_str());
  }
  if (!download_supported()) std::printf("\nthis build cannot download (no libcurl): use `gpen models import NAME FILE`\n");
  return 0;
}

int pull_models(const ModelsOpts& o) {
  for (const std::string& name : o.names) {
    const ModelEntry& e = entry_or_fail(name);
    const std::string path = pull_model(e, o.fetch);
    std::printf("%s\n", path.c_str());
    if (o.safetensors) std::printf("%s\n", convert_cached_model(e, o.fetch).c_str());
  }
  return 0;
}

// Exit 1 when any file fails its check or a named model is missing.
int verify_models(const ModelsOpts& o) {
  std::vector<const ModelEntry*> entries;
  for (const std::string& name : o.names) entries.push_back(&entry_or_fail(name));
  if (o.names.empty())
    for (const ModelEntry& e : model_registry())
      if (fs::exists(cached_model_path(e, o.fetch))) entries.push_back(&e);
  int bad = 0;
  for (const ModelEntry* e : entries) {
    const VerifyResult v = verify_model(*e, o.fetch);
    const bool ok = v.status == VerifyStatus::Ok || v.status == VerifyStatus::Unrecorded;
    std::printf("%-26s %s  %s\n", e->name.c_str(), ok ? "ok  " : "FAIL", v.detail.c_str());
    bad += ok ? 0 : 1;
  }
  if (entries.empty()) std::printf("no cached models in %s\n", models_dir(o.fetch).c_str());
  return bad ? 1 : 0;
}

// Prints the path (cached or where it would go); exit 1 when the file is not there.
int model_path(const ModelsOpts& o) {
  const ModelEntry& e = entry_or_fail(o.names.at(0));
  const std::string path = cached_model_path(e, o.fetch);
  std::printf("%s\n", path.c_str());
  if (fs::exists(path)) return 0;
  std::fprintf(stderr, "gpen: %s is not in the cache (gpen models pull %s)\n", e.name.c_str(), e.name.c_str());
  return 1;
}

int remove_models(const ModelsOpts& o) {
  for (const std::string& name : o.names) {
    const ModelEntry& e = entry_or_fail(name);
    std::printf("%s: %s\n", e.name.c_str(), remove_model(e, o.fetch) ? "removed" : "not in the cache");
  }
  return 0;
}

int import_file(const ModelsOpts& o) {
  std::printf("%s\n", import_model(entry_or_fail(o.import_name), o.file, o.fetch).c_str());
  return 0;
}

}  // namespace

Runner register_models(CLI::App& app) {
  auto* cmd = app.add_subcommand("models", "List, download, verify and remove the models gpen knows by name");
  cmd->require_subcommand(1);
  auto o = std::make_shared<ModelsOpts>();
  add_model_fetch_options(cmd, o->fetch);
  auto* list = cmd->add_subcommand("list", "Registered models, their cache state and checksum source");
  list->add_flag("--json", o->json, "machine-readable output");
  auto* pull = cmd->add_subcommand("pull", "Download models into the cache (resumes, verifies)");
  pull->add_option("names", o->names, "model names, e.g. GPEN-BFR-512")->required();
  pull->add_flag("--safetensors", o->safetensors, "also write a converted .safetensors beside each (faster to load)");
  auto* verify = cmd->add_subcommand("verify", "Check cached files against their SHA-256 (exit 1 on mismatch)");
  verify->add_option("names", o->names, "models to check (default: every cached one)");
  auto* path = cmd->add_subcommand("path", "Print a model's path in the cache (exit 1 if not there)");
  path->add_option("name", o->names, "model name")->required()->expected(1);
  auto* rm = cmd->add_subcommand("rm", "Remove models from the cache");
  rm->add_option("names", o->names, "model names")->required();
  auto* import = cmd->add_subcommand("import", "Put a file fetched by hand into the cache, checked");
  // Its own string: bound to the vector `names`, CLI11 would take both positionals as names.
  import->add_option("name", o->import_name, "model name")->required();
  import->add_option("file", o->file, "the downloaded file")->required();
  for (CLI::App* sub : {list, pull, verify, path, rm, import}) sub->fallthrough();  // --models-dir after the verb too
  return [=]() {
    if (list->parsed()) return list_models(*o);
    if (pull->parsed()) return pull_models(*o);
    if (verify->parsed()) return verify_models(*o);
    if (path->parsed()) return model_path(*o);
    if (rm->parsed()) return remove_models(*o);
    return import_file(*o);
  };
}

}  // namespace gpen::cli
