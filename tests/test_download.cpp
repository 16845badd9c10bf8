// weights/download.h against a local HTTP server (tests/local_http_server.h) on 127.0.0.1:
// success, resume after a cut connection, checksum mismatch, 404, TLS, a stalled server, and
// concurrent pulls through the model cache's lock.
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <thread>

#include "core/error.h"
#include "tests/local_http_server.h"
#include "tests/test_util.h"
#include "weights/download.h"
#include "weights/model_cache.h"

namespace fs = std::filesystem;
using namespace gpen;

namespace {

std::string random_bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = char(rng() & 0xff);
  return s;
}

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// A fresh, empty folder per test case.
std::string scratch(const std::string& name) { return test::fresh_scratch("download_test", name); }

// SHA-256 of a string, through the same file hashing the downloader uses.
std::string sha256_of(const std::string& bytes, const std::string& dir) {
  const std::string p = dir + "/hash_me";
  std::ofstream(p, std::ios::binary) << bytes;
  const std::string h = sha256_file(p);
  fs::remove(p);
  return h;
}

DownloadOptions quick_options() {
  DownloadOptions o;
  o.attempts = 1;
  o.low_speed_bytes = 1000;
  o.low_speed_time_s = 1;  // a stalled server fails in about a second, not a minute
  o.connect_timeout_s = 5;
  return o;
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("sha256_file matches the published test vector", "[download]") {
  const std::string dir = scratch("sha");
  CHECK(sha256_of("abc", dir) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_of("", dir) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST_CASE("a download lands complete, checked, and with no partial file left", "[download]") {
  test::LocalHttpServer server;
  const std::string body = random_bytes(300 * 1024 + 7, 1), dir = scratch("ok");
  server.serve("/m/a.bin", body);
  DownloadOptions o = quick_options();
  o.expected_sha256 = sha256_of(body, dir);
  o.expected_size = int64_t(body.size());
  const DownloadResult r = download_file(server.url("/m/a.bin"), dir + "/a.bin", o);
  CHECK(slurp(dir + "/a.bin") == body);
  CHECK(r.sha256 == o.expected_sha256);
  CHECK(r.size == int64_t(body.size()));
  CHECK(r.resumed_from == 0);
  CHECK_FALSE(fs::exists(partial_path(dir + "/a.bin")));
}

TEST_CASE("a cut connection keeps the partial file and the next download resumes it", "[download]") {
  test::LocalHttpServer server;
  const std::string body = random_bytes(256 * 1024, 2), dir = scratch("resume");
  test::RouteBehaviour cut;
  cut.cut_after = 100 * 1024;
  cut.cut_requests = 1;
  server.serve("/m/b.bin", body, cut);
  const std::string dest = dir + "/b.bin";
  DownloadOptions o = quick_options();
  o.expected_sha256 = sha256_of(body, dir);

  const std::string err = error_of([&] { download_file(server.url("/m/b.bin"), dest, o); });
  CHECK_THAT(err, Catch::Contains("cut after") && Catch::Contains("resumes"));
  CHECK_FALSE(fs::exists(dest));
  const auto kept = fs::file_size(partial_path(dest));
  CHECK(kept > 0);
  CHECK(kept <= cut.cut_after);

  const DownloadResult r = download_file(server.url("/m/b.bin"), dest, o);
  CHECK(r.resumed_from == int64_t(kept));
  CHECK(slurp(dest) == body);
  const auto ranges = server.range_headers("/m/b.bin");
  REQUIRE(ranges.size() == 2);
  CHECK(ranges[0].empty());
  CHECK(ranges[1] == "bytes=" + std::to_string(kept) + "-");
}

TEST_CASE("with several attempts one call resumes by itself after a cut", "[download]") {
  test::LocalHttpServer server;
  const std::string body = random_bytes(200 * 1024, 3), dir = scratch("retry");
  test::RouteBehaviour cut;
  cut.cut_after = 50 * 1024;
  cut.cut_requests = 2;
  server.serve("/m/c.bin", body, cut);
  DownloadOptions o = quick_options();
  o.attempts = 3;
  const DownloadResult r = download_file(server.url("/m/c.bin"), dir + "/c.bin", o);
  CHECK(r.resumed_from > 0);
  CHECK(server.requests("/m/c.bin") == 3);
  CHECK(slurp(dir + "/c.bin") == body);
}

TEST_CASE("a checksum mismatch rejects and removes the file", "[download]") {
  test::LocalHttpServer server;
  const std::string body = random_bytes(64 * 1024, 4), dir = scratch("mismatch");
  server.serve("/m/d.bin", body);
  DownloadOptions o = quick_options();
  o.expected_sha256 = std::string(64, '0');
  const std::string dest = dir + "/d.bin";
  const std::string err = error_of([&] { download_file(server.url("/m/d.bin"), dest, o); });
  CHECK_THAT(err, Catch::Contains("checksum mismatch") && Catch::Contains("removed"));
  CHECK_FALSE(fs::exists(dest));
  CHECK_FALSE(fs::exists(partial_path(dest)));
}

TEST_CASE("a wrong size rejects and removes the file", "[download]") {
  test::LocalHttpServer server;
  const std::string body = random_bytes(10 * 1024, 5), dir = scratch("size");
  server.serve("/m/e.bin", body);
  DownloadOptions o = quick_options();
  o.expected_size = int64_t(body.size()) + 1;
  const std::string dest = dir + "/e.bin";
  CHECK_THAT(error_of([&] { download_file(server.url("/m/e.bin"), dest, o); }), Catch::Contains("size mismatch"));
  CHECK_FALSE(fs::exists(dest));
  CHECK_FALSE(fs::exists(partial_path(dest)));
}

TEST_CASE("HTTP 404 is a clear error and leaves nothing behind", "[download]") {
  test::LocalHttpServer server;
  const std::string dir = scratch("404"), dest = dir + "/f.bin";
  const std::string err = error_of([&] { download_file(server.url("/nothing/here.bin"), dest, quick_options()); });
  CHECK_THAT(err, Catch::Contains("HTTP 404"));
  CHECK_FALSE(fs::exists(dest));
  CHECK_FALSE(fs::exists(partial_path(dest)));
}

TEST_CASE("a stalled server times out with the low-speed limit", "[download]") {
  test::LocalHttpServer server;
  const std::string body = random_bytes(128 * 1024, 6), dir = scratch("stall");
  test::RouteBehaviour stall;
  stall.stall_after = 1024;  // a small burst: curl averages speed over a few seconds
  server.serve("/m/g.bin", body, stall);
  const std::string dest = dir + "/g.bin";
  const std::string err = error_of([&] { download_file(server.url("/m/g.bin"), dest, quick_options()); });
  CHECK_THAT(err, Catch::Contains("timed out"));
  CHECK_FALSE(fs::exists(dest));
}

TEST_CASE("TLS and DNS failures are named as such", "[download]") {
  test::LocalHttpServer server;  // plain HTTP: a TLS handshake with it fails
  server.serve("/m/h.bin", "x");
  const std::string dir = scratch("tls");
  const std::string tls = "https://127.0.0.1:" + std::to_string(server.port()) + "/m/h.bin";
  CHECK_THAT(error_of([&] { download_file(tls, dir + "/h.bin", quick_options()); }), Catch::Contains("TLS error"));
  // .invalid never resolves (RFC 6761).
  CHECK_THAT(error_of([&] { download_file("http://gpen-test.invalid/x.bin", dir + "/x.bin", quick_options()); }),
             Catch::Contains("cannot resolve host 'gpen-test.invalid'"));
}

TEST_CASE("concurrent pulls of one model download it once", "[download][models]") {
  test::LocalHttpServer server;
  const std::string body = random_bytes(256 * 1024, 7), dir = scratch("concurrent");
  test::RouteBehaviour slow;
  slow.chunk_delay_ms = 40;  // ~0.6 s per download: the other pulls arrive while it runs
  server.serve("/m/shared.bin", body, slow);
  ModelEntry e;
  e.name = "test-model";
  e.file_name = "shared.bin";
  e.urls = {server.url("/m/shared.bin")};
  ModelFetchOptions opt;
  opt.models_dir = dir;
  opt.download = quick_options();
  std::vector<std::string> paths(4);
  std::vector<std::string> errors(4);
  std::vector<std::thread> threads;
  for (size_t i = 0; i < paths.size(); ++i)
    threads.emplace_back([&, i] { errors[i] = error_of([&] { paths[i] = pull_model(e, opt); }); });
  for (auto& t : threads) t.join();
  for (size_t i = 0; i < paths.size(); ++i) {
    INFO(errors[i]);
    CHECK(paths[i] == dir + "/shared.bin");
  }
  CHECK(server.requests("/m/shared.bin") == 1);
  CHECK(slurp(dir + "/shared.bin") == body);
}
