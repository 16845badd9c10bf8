// The file of cuDNN algorithm choices (core/conv_algo_cache.h): plain C++, tested everywhere; the
// CUDA module's use of it runs in the GPU session.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "core/conv_algo_cache.h"

using namespace gpen;
namespace fs = std::filesystem;

namespace {

std::string scratch_file(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / "gpen_algo_cache_test";
  fs::create_directories(dir);
  const fs::path p = dir / name;
  fs::remove(p);
  return p.string();
}

CachedConvAlgo algo(int a, uint64_t ws, int math, float ms) {
  CachedConvAlgo c;
  c.algo = a, c.workspace = ws, c.math = math, c.ms = ms;
  return c;
}

}  // namespace

TEST_CASE("cuDNN algorithm cache: entries round-trip and later additions keep earlier ones", "[algo-cache]") {
  const std::string path = scratch_file("round_trip.json");
  CHECK(read_conv_algo_cache(path).empty());  // no file yet
  add_to_conv_algo_cache(path, {{"H200|cudnn 91000|fwd n16 c64", algo(1, 4096, 1, 0.25f)}});
  add_to_conv_algo_cache(path, {{"H200|cudnn 91000|bwd n16 c512", algo(0, 0, 2, 1.5f)},
                                {"H200|cudnn 91000|fwd n16 c64", algo(6, 8192, 1, 0.125f)}});  // replaced
  const ConvAlgoTable t = read_conv_algo_cache(path);
  REQUIRE(t.size() == 2);
  const CachedConvAlgo& f = t.at("H200|cudnn 91000|fwd n16 c64");
  CHECK(f.algo == 6);
  CHECK(f.workspace == 8192);
  CHECK(f.math == 1);
  CHECK(f.ms == 0.125f);
  CHECK(t.at("H200|cudnn 91000|bwd n16 c512").math == 2);
}

TEST_CASE("cuDNN algorithm cache: a damaged or foreign file is an empty cache, never an error", "[algo-cache]") {
  const std::string path = scratch_file("damaged.json");
  for (const char* text : {"", "not json {", "[]", "{\"version\": 2, \"algos\": {}}", "{\"version\": 1}",
                           "{\"version\": 1, \"algos\": []}"}) {
    std::ofstream(path) << text;
    INFO(text);
    CHECK(read_conv_algo_cache(path).empty());
  }
  // One bad entry among good ones: only it is dropped.
  std::ofstream(path) << R"({"version": 1, "algos": {"good": {"algo": 1, "workspace": 0, "math": 0},
                            "bad type": {"algo": "one", "workspace": 0, "math": 0},
                            "missing": {"algo": 2}, "negative": {"algo": -3, "workspace": 0, "math": 0}}})";
  const ConvAlgoTable t = read_conv_algo_cache(path);
  REQUIRE(t.size() == 1);
  CHECK(t.count("good") == 1);
  // A damaged file is replaced by a good one on the next addition.
  add_to_conv_algo_cache(path, {{"new", algo(3, 0, 0, 1.f)}});
  CHECK(read_conv_algo_cache(path).size() == 2);
}

TEST_CASE("cuDNN algorithm cache: an unwritable place or no path is silently no cache", "[algo-cache]") {
  CHECK_NOTHROW(add_to_conv_algo_cache("/proc/gpen/cudnn_algos.json", {{"k", algo(1, 0, 0, 1.f)}}));
  CHECK(read_conv_algo_cache("/proc/gpen/cudnn_algos.json").empty());
  CHECK_NOTHROW(add_to_conv_algo_cache("", {{"k", algo(1, 0, 0, 1.f)}}));
  setenv("GPEN_CUDA_ALGO_CACHE", "off", 1);
  CHECK(default_conv_algo_cache_path().empty());
  setenv("GPEN_CUDA_ALGO_CACHE", "/tmp/x/algos.json", 1);
  CHECK(default_conv_algo_cache_path() == "/tmp/x/algos.json");
  unsetenv("GPEN_CUDA_ALGO_CACHE");
  const std::string def = default_conv_algo_cache_path();
  CHECK((def.empty() || fs::path(def).filename() == "cudnn_algos.json"));
}
