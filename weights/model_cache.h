// The local model cache: registered models (model_registry.h) as files in one folder, fetched on
// demand, checked, and shared safely between processes.
//
// Folder: --models-dir, else $GPEN_MODELS, else $XDG_CACHE_HOME/gpen, else ~/.cache/gpen.
// Layout, for a model whose file is F (e.g. GPEN-BFR-512.pth):
//   F              the model, only ever put there complete and checked (rename from F.part)
//   F.part         a partial download; the next pull resumes it
//   F.json         the record: SHA-256, size, URL, when, and whether the hash came from the
//                  registry or was recorded at first download ("sha256_source")
//   F.lock         flock()ed while a process downloads F, so two processes never fetch it twice
//   <stem>.safetensors   the converted copy (gpen models pull --safetensors); preferred when present
//
//   std::string path = resolve_model("GPEN-BFR-512", fetch_options);  // downloads when missing
#pragma once
#include <cstdint>
#include <optional>
#include <string>

#include "weights/download.h"
#include "weights/model_registry.h"

namespace gpen {

struct ModelFetchOptions {
  std::string models_dir;  // empty: default_models_dir()
  bool offline = false;    // never download; a missing model is an error
  bool progress = false;   // progress bar on stderr
  DownloadOptions download;  // timeouts and attempts (expected size/hash come from the registry)
};

// $GPEN_MODELS, else $XDG_CACHE_HOME/gpen, else $HOME/.cache/gpen.
std::string default_models_dir();
std::string models_dir(const ModelFetchOptions& opt);

// The URLs tried for an entry, in order: $GPEN_MIRROR/<file> when GPEN_MIRROR is set (a base URL,
// e.g. an internal server holding the files), then the registry's official URL and mirrors.
std::vector<std::string> model_urls(const ModelEntry& e);

// Where the entry lives in the cache (whether or not it is there).
std::string cached_model_path(const ModelEntry& e, const ModelFetchOptions& opt);
std::string converted_model_path(const ModelEntry& e, const ModelFetchOptions& opt);

struct ModelRecord {
  std::string sha256, url, downloaded_at;
  int64_t size = 0;
  bool hash_from_registry = false;  // false: recorded at first download
};
std::optional<ModelRecord> read_model_record(const ModelEntry& e, const ModelFetchOptions& opt);

// Downloads the entry into the cache unless it is already there (under the cache lock: a second
// process waits, then finds the file). Returns the cached path. Throws gpen::Error when offline
// or when every URL failed (each URL's error in the message).
std::string pull_model(const ModelEntry& e, const ModelFetchOptions& opt);

// Puts a file fetched by hand into the cache: checked against the registry's size and hash (when
// published), copied, and recorded. Returns the cached path.
std::string import_model(const ModelEntry& e, const std::string& file, const ModelFetchOptions& opt);

// Writes <stem>.safetensors beside the cached file (f32 as stored). Returns its path.
std::string convert_cached_model(const ModelEntry& e, const ModelFetchOptions& opt);

enum class VerifyStatus { Ok, Missing, Mismatch, Unrecorded };
struct VerifyResult {
  VerifyStatus status = VerifyStatus::Missing;
  std::string expected, actual;  // SHA-256 hex
  std::string detail;            // one line for people
};
// Hashes the cached file and compares it with the registry's hash, else with the recorded one.
VerifyResult verify_model(const ModelEntry& e, const ModelFetchOptions& opt);

// Removes the cached file, its record, partial download, lock and converted copy. Returns whether
// anything was removed.
bool remove_model(const ModelEntry& e, const ModelFetchOptions& opt);

// What `--model X` / `--detector X` accept, made into a path:
//   an existing file            -> returned as is
//   "random:SIZE[:SEED]"        -> returned as is (GPEN with seeded random weights)
//   a registered name or alias  -> the cached file (its converted .safetensors when present),
//                                  pulled first when missing unless opt.offline
// Anything else is an error listing what would have been accepted.
std::string resolve_model(const std::string& name_or_path, const ModelFetchOptions& opt);

}  // namespace gpen
