// Helpers shared by the weights tests: fixture paths, scratch files, and error-message capture.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "tests/test_util.h"
#include "weights/state_dict.h"

namespace weights_test {

inline std::string fixture(const std::string& name) { return std::string(GPEN_SOURCE_DIR "/tests/fixtures/weights/") + name; }
inline std::string shared(const std::string& name) { return std::string(GPEN_SOURCE_DIR "/../shared/") + name; }

// A per-process scratch directory, so parallel test runs do not collide.
inline std::string scratch(const std::string& name) {
  return (std::filesystem::path(gpen::test::process_scratch("weights_test")) / name).string();
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

inline void write_bytes(const std::string& path, const void* data, size_t n) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(static_cast<const char*>(data), std::streamsize(n));
}
inline void write_bytes(const std::string& path, const std::string& s) { write_bytes(path, s.data(), s.size()); }

// The message of the gpen::Error `f` throws; any other exception escapes and fails the test.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const gpen::Error& e) {
    return e.what();
  }
  return "<no gpen::Error thrown>";
}

// Checks `sd` against tests/fixtures/weights/expected.json[fixture_name] (written from torch.load by
// tools/reference/make_weights_fixtures.py): same keys, dtypes, shapes, leading values and sums.
inline void check_against_expected(const gpen::StateDict& sd, const std::string& fixture_name) {
  std::ifstream f(fixture("expected.json"));
  REQUIRE(f.good());
  const nlohmann::json all = nlohmann::json::parse(f);
  REQUIRE(all.contains(fixture_name));
  const nlohmann::json& expected = all[fixture_name];
  std::vector<std::string> expected_keys;
  for (auto it = expected.begin(); it != expected.end(); ++it) expected_keys.push_back(it.key());
  CHECK(sd.keys() == expected_keys);  // both sorted
  for (auto it = expected.begin(); it != expected.end(); ++it) {
    INFO(fixture_name << " tensor '" << it.key() << "'");
    if (!sd.has(it.key())) continue;
    const gpen::Tensor& t = sd.at(it.key());
    CHECK(std::string(gpen::dtype_name(t.dtype())) == it.value()["dtype"].get<std::string>());
    CHECK(t.shape() == it.value()["shape"].get<gpen::Shape>());
    const auto values = it.value()["values"].get<std::vector<double>>();
    REQUIRE(int64_t(values.size()) == std::min<int64_t>(16, t.numel()));
    double sum = 0;
    for (int64_t i = 0; i < t.numel(); ++i) sum += t.item_as_double(i);
    for (size_t i = 0; i < values.size(); ++i) CHECK(t.item_as_double(int64_t(i)) == Approx(values[i]).epsilon(1e-12).margin(1e-12));
    CHECK(sum == Approx(it.value()["sum"].get<double>()).epsilon(1e-12).margin(1e-9));
  }
}

}  // namespace weights_test
