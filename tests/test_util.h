// Helpers shared by the tests: paths, random tensors, comparisons.
#pragma once
#include <cstdlib>
#include <cmath>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <unistd.h>

#include "core/tensor.h"

namespace gpen::test {

inline std::string source_path(const std::string& rel) { return std::string(GPEN_SOURCE_DIR) + "/" + rel; }
inline std::string shared_path(const std::string& rel) { return std::string(GPEN_SOURCE_DIR) + "/../shared/" + rel; }
// GPEN_BINARY_DIR (env) overrides the build folder baked in at compile time: the GPU session runs
// binaries built here from another folder (tools/bench/gpu_session.sh).
inline std::string cli_path() {  // the gpen CLI
  const char* dir = std::getenv("GPEN_BINARY_DIR");
  return dir && *dir ? std::string(dir) + "/gpen" : std::string(GPEN_CLI_PATH);
}
inline std::string binary_path(const std::string& rel) {
  const char* dir = std::getenv("GPEN_BINARY_DIR");
  return std::string(dir && *dir ? dir : GPEN_BINARY_DIR) + "/" + rel;
}

// This test process's own scratch folder, <temp>/gpen_<tag>_<pid>: created on first use and
// removed when the process exits normally (ctest runs every case in a process of its own), so
// test runs do not pile folders up in /tmp. A forked child that exits leaves it alone.
inline std::string process_scratch(const std::string& tag) {
  struct Roots {
    pid_t owner = ::getpid();
    std::map<std::string, std::filesystem::path> dirs;
    ~Roots() {
      if (::getpid() != owner) return;
      std::error_code ec;
      for (const auto& [t, d] : dirs) std::filesystem::remove_all(d, ec);
    }
  };
  static Roots roots;
  auto [it, added] = roots.dirs.try_emplace(tag);
  if (added) {
    it->second = std::filesystem::temp_directory_path() / ("gpen_" + tag + "_" + std::to_string(::getpid()));
    std::filesystem::create_directories(it->second);
  }
  return it->second.string();
}

// A fresh, empty folder `name` inside process_scratch(tag).
inline std::string fresh_scratch(const std::string& tag, const std::string& name) {
  const std::filesystem::path d = std::filesystem::path(process_scratch(tag)) / name;
  std::filesystem::remove_all(d);
  std::filesystem::create_directories(d);
  return d.string();
}

inline std::vector<float> random_floats(size_t n, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = u(rng);
  return v;
}

inline Tensor random_tensor(Shape shape, uint32_t seed, float lo = -1.f, float hi = 1.f) {
  auto v = random_floats(size_t(shape_numel(shape)), seed, lo, hi);
  return Tensor::from_floats(std::move(shape), v);
}

inline double max_abs_diff(const float* a, const float* b, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
  return m;
}

inline double max_abs(const float* a, size_t n) {
  double m = 0;
  for (size_t i = 0; i < n; ++i) m = std::max(m, double(std::fabs(a[i])));
  return m;
}

// ||a - b|| / ||b||
inline double rel_l2(const float* a, const float* b, size_t n) {
  double num = 0, den = 0;
  for (size_t i = 0; i < n; ++i) {
    num += double(a[i] - b[i]) * (a[i] - b[i]);
    den += double(b[i]) * b[i];
  }
  return std::sqrt(num / std::max(den, 1e-30));
}

// (key -> shape) rows of a ../shared/reference/*.keys.tsv layout file ("scalar" is shape {}).
inline std::map<std::string, Shape> read_keys_tsv(const std::string& path) {
  std::ifstream f(path);
  if (!f.good()) throw std::runtime_error("cannot read " + path);
  std::map<std::string, Shape> rows;
  std::string line;
  while (std::getline(f, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    std::string key, shape;
    std::getline(ls, key, '\t');
    std::getline(ls, shape, '\t');
    Shape s;
    if (shape != "scalar") {
      std::istringstream ss(shape);
      std::string dim;
      while (std::getline(ss, dim, 'x')) s.push_back(std::stoll(dim));
    }
    rows[key] = s;
  }
  return rows;
}

// Sets an environment variable until the end of the scope, then restores it.
struct ScopedEnv {
  std::string name;
  std::optional<std::string> old;
  ScopedEnv(const std::string& n, const std::string& value) : name(n) {
    if (const char* v = std::getenv(n.c_str())) old = v;
    ::setenv(n.c_str(), value.c_str(), 1);
  }
  ~ScopedEnv() { old ? (void)::setenv(name.c_str(), old->c_str(), 1) : (void)::unsetenv(name.c_str()); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
};

}  // namespace gpen::test
