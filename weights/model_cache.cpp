#include "weights/model_cache.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "core/json_text.h"
#include "weights/safetensors.h"
#include "weights/state_dict.h"

namespace fs = std::filesystem;

namespace gpen {
namespace {

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? std::string(v) : std::string();
}

bool exists(const std::string& path) {
  std::error_code ec;
  return fs::is_regular_file(path, ec);
}

std::string record_path(const std::string& model_path) { return model_path + ".json"; }

std::string utc_now() {
  char buf[32];
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// An exclusive flock() on F.lock for as long as it lives. Separate open()s conflict even inside
// one process, so threads are serialised too.
class CacheLock {
 public:
  CacheLock(const std::string& path, const std::string& what) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("cannot create lock file ", path, ": ", std::strerror(errno));
    if (::flock(fd_, LOCK_EX | LOCK_NB) == 0) return;
    std::fprintf(stderr, "gpen: waiting for another process fetching %s\n", what.c_str());
    while (::flock(fd_, LOCK_EX) != 0)
      if (errno != EINTR) fail("cannot lock ", path, ": ", std::strerror(errno));
  }
  ~CacheLock() { ::close(fd_); }  // closing releases the lock
  CacheLock(const CacheLock&) = delete;
  CacheLock& operator=(const CacheLock&) = delete;

 private:
  int fd_ = -1;
};

void write_record(const ModelEntry& e, const std::string& model_path, const ModelRecord& r) {
  nlohmann::json j = {{"name", e.name},
                      {"file", e.file_name},
                      {"sha256", r.sha256},
                      {"size", r.size},
                      {"url", r.url},
                      {"downloaded_at", r.downloaded_at},
                      {"sha256_source", r.hash_from_registry ? "registry" : "first-download"}};
  const std::string path = record_path(model_path), tmp = path + ".tmp";
  {
    std::ofstream f(tmp);
    f << json_text(j, 2) << "\n";
    if (!f.good()) fail("cannot write ", tmp);
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  if (ec) fail("cannot write ", path, ": ", ec.message());
}

// The hash a fresh copy must have: the registry's, else the one recorded at first download.
std::string expected_sha256(const ModelEntry& e, const ModelFetchOptions& opt) {
  if (!e.sha256.empty()) return e.sha256;
  auto rec = read_model_record(e, opt);
  return rec ? rec->sha256 : std::string();
}

ModelRecord make_record(const ModelEntry& e, const std::string& sha, int64_t size, const std::string& url) {
  ModelRecord r;
  r.sha256 = sha;
  r.size = size;
  r.url = url;
  r.downloaded_at = utc_now();
  r.hash_from_registry = !e.sha256.empty();
  return r;
}

std::string registered_names() {
  std::string s;
  for (const ModelEntry& e : model_registry()) s += (s.empty() ? "" : ", ") + e.name;
  return s;
}

[[noreturn]] void fail_offline(const ModelEntry& e, const ModelFetchOptions& opt) {
  const std::string url = e.urls.empty() ? std::string("it") : e.urls.front();
  fail("model ", e.name, " is not in the cache (", models_dir(opt), ") and downloads are off (--offline): run `gpen models pull ",
       e.name, "` on a connected machine, or fetch ", url, " and run `gpen models import ", e.name, " FILE`");
}

}  // namespace

std::string default_models_dir() {
  if (!env("GPEN_MODELS").empty()) return env("GPEN_MODELS");
  const std::string xdg = env("XDG_CACHE_HOME");
  if (!xdg.empty() && xdg[0] == '/') return xdg + "/gpen";  // the XDG spec ignores relative values
  if (!env("HOME").empty()) return env("HOME") + "/.cache/gpen";
  fail("no model cache folder: set GPEN_MODELS, XDG_CACHE_HOME or HOME, or pass --models-dir");
}

std::string models_dir(const ModelFetchOptions& opt) { return opt.models_dir.empty() ? default_models_dir() : opt.models_dir; }

std::vector<std::string> model_urls(const ModelEntry& e) {
  std::vector<std::string> urls;
  std::string mirror = env("GPEN_MIRROR");
  while (!mirror.empty() && mirror.back() == '/') mirror.pop_back();
  if (!mirror.empty()) urls.push_back(mirror + "/" + e.file_name);
  urls.insert(urls.end(), e.urls.begin(), e.urls.end());
  return urls;
}

std::string cached_model_path(const ModelEntry& e, const ModelFetchOptions& opt) {
  return (fs::path(models_dir(opt)) / e.file_name).string();
}

std::string converted_model_path(const ModelEntry& e, const ModelFetchOptions& opt) {
  return (fs::path(models_dir(opt)) / fs::path(e.file_name).stem()).string() + ".safetensors";
}

std::optional<ModelRecord> read_model_record(const ModelEntry& e, const ModelFetchOptions& opt) {
  std::ifstream f(record_path(cached_model_path(e, opt)));
  if (!f.good()) return std::nullopt;
  const nlohmann::json j = nlohmann::json::parse(f, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("sha256") || !j["sha256"].is_string()) return std::nullopt;  // unreadable: as if absent
  ModelRecord r;
  r.sha256 = j["sha256"].get<std::string>();
  r.size = j.value("size", int64_t(0));
  r.url = j.value("url", std::string());
  r.downloaded_at = j.value("downloaded_at", std::string());
  r.hash_from_registry = j.value("sha256_source", std::string()) == "registry";
  return r;
}

std::string pull_model(const ModelEntry& e, const ModelFetchOptions& opt) {
  const std::string dest = cached_model_path(e, opt);
  if (exists(dest)) return dest;
  if (opt.offline) fail_offline(e, opt);
  const std::vector<std::string> urls = model_urls(e);
  if (urls.empty()) fail("cannot download ", e.name, ": it has no URL (set GPEN_MIRROR)");
  fs::create_directories(models_dir(opt));
  CacheLock lock(dest + ".lock", e.name);
  if (exists(dest)) return dest;  // another process finished it while we waited
  DownloadOptions d = opt.download;
  d.expected_sha256 = expected_sha256(e, opt);
  d.expected_size = e.size;
  d.progress = opt.progress;
  d.label = e.file_name;
  std::string errors;
  for (const std::string& url : urls) {
    try {
      const DownloadResult r = download_file(url, dest, d);
      write_record(e, dest, make_record(e, r.sha256, r.size, url));
      return dest;
    } catch (const Error& err) {
      errors += std::string(errors.empty() ? "" : "; ") + err.what();
    }
  }
  fail("cannot download ", e.name, ": ", errors);
}

std::string import_model(const ModelEntry& e, const std::string& file, const ModelFetchOptions& opt) {
  if (!exists(file)) fail("cannot import ", file, ": no such file");
  const std::string dest = cached_model_path(e, opt);
  fs::create_directories(models_dir(opt));
  CacheLock lock(dest + ".lock", e.name);
  const std::string tmp = partial_path(dest) + ".import";
  std::error_code ec;
  fs::copy_file(file, tmp, fs::copy_options::overwrite_existing, ec);
  if (ec) fail("cannot copy ", file, " into ", models_dir(opt), ": ", ec.message());
  const int64_t size = int64_t(fs::file_size(tmp));
  const std::string sha = sha256_file(tmp), want = expected_sha256(e, opt);
  if ((e.size > 0 && size != e.size) || (!want.empty() && sha != want)) {
    fs::remove(tmp);
    fail("cannot import ", file, " as ", e.name, ": SHA-256 ", sha, " (", size, " bytes) is not the expected ",
         want.empty() ? "size" : want, e.size > 0 ? " (" + std::to_string(e.size) + " bytes)" : "");
  }
  fs::rename(tmp, dest, ec);
  if (ec) fail("cannot move ", tmp, " to ", dest, ": ", ec.message());
  write_record(e, dest, make_record(e, sha, size, "file://" + fs::absolute(file).string()));
  return dest;
}

std::string convert_cached_model(const ModelEntry& e, const ModelFetchOptions& opt) {
  const std::string src = cached_model_path(e, opt);
  if (!exists(src)) fail("cannot convert ", e.name, ": not in the cache (run `gpen models pull ", e.name, "`)");
  if (e.format != ModelFormat::Pth) fail("cannot convert ", e.name, ": only .pth checkpoints are converted");
  const std::string out = converted_model_path(e, opt);
  save_safetensors(out, load_weights(src), std::nullopt, {{"gpen.source", e.file_name}});  // atomic (tmp + rename)
  return out;
}

VerifyResult verify_model(const ModelEntry& e, const ModelFetchOptions& opt) {
  VerifyResult v;
  const std::string path = cached_model_path(e, opt);
  if (!exists(path)) {
    v.detail = "not in the cache";
    return v;
  }
  v.actual = sha256_file(path);
  v.expected = expected_sha256(e, opt);
  const std::string origin = !e.sha256.empty() ? "registry" : "recorded at first download";
  if (v.expected.empty()) {
    v.status = VerifyStatus::Unrecorded;
    v.detail = "no published or recorded hash to compare with (SHA-256 " + v.actual + ")";
  } else if (v.actual == v.expected) {
    v.status = VerifyStatus::Ok;
    v.detail = "SHA-256 matches (" + origin + ")";
  } else {
    v.status = VerifyStatus::Mismatch;
    v.detail = "SHA-256 " + v.actual + " differs from " + v.expected + " (" + origin + ")";
  }
  return v;
}

bool remove_model(const ModelEntry& e, const ModelFetchOptions& opt) {
  const std::string path = cached_model_path(e, opt);
  bool removed = false;
  for (const std::string& p : {path, record_path(path), partial_path(path), path + ".lock", converted_model_path(e, opt)}) {
    std::error_code ec;
    removed |= fs::remove(p, ec);
  }
  return removed;
}

std::string resolve_model(const std::string& name_or_path, const ModelFetchOptions& opt) {
  if (name_or_path.rfind("random:", 0) == 0 || exists(name_or_path)) return name_or_path;
  const ModelEntry* e = find_model(name_or_path);
  if (!e) fail("no such file or registered model '", name_or_path, "' (registered: ", registered_names(), ")");
  if (exists(converted_model_path(*e, opt))) return converted_model_path(*e, opt);
  if (exists(cached_model_path(*e, opt))) return cached_model_path(*e, opt);
  return pull_model(*e, opt);
}

}  // namespace gpen
