// The model registry and cache (weights/model_registry.h, weights/model_cache.h) and
// `gpen models ...`, with downloads served by a local HTTP server through GPEN_MIRROR.
#include <catch2/catch.hpp>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>

#include "core/error.h"
#include "tests/local_http_server.h"
#include "tests/test_util.h"
#include "weights/model_cache.h"
#include "weights/state_dict.h"

namespace fs = std::filesystem;
using namespace gpen;

namespace {

std::string scratch(const std::string& name) { return test::fresh_scratch("models_test", name); }

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

struct Run {
  int code;
  std::string out, err;
};

// Runs `ENV gpen ARGS`, capturing stdout and stderr.
Run gpen_cli(const std::string& env, const std::string& args, const std::string& dir) {
  const std::string out = dir + "/stdout.txt", err = dir + "/stderr.txt";
  const std::string cmd = env + " " + std::string(GPEN_CLI_PATH) + " " + args + " >" + out + " 2>" + err;
  const int status = std::system(cmd.c_str());
  return Run{WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

}  // namespace

TEST_CASE("the registry holds every supported model with an https URL", "[models]") {
  std::set<std::string> names, files;
  for (const ModelEntry& e : model_registry()) {
    INFO(e.name);
    CHECK(names.insert(e.name).second);
    CHECK(files.insert(e.file_name).second);
    REQUIRE_FALSE(e.urls.empty());
    for (const std::string& u : e.urls) CHECK(u.rfind("https://", 0) == 0);
    CHECK((e.sha256.empty() || std::regex_match(e.sha256, std::regex("[0-9a-f]{64}"))));
  }
  for (const char* n : {"GPEN-BFR-256", "GPEN-BFR-512", "GPEN-BFR-1024", "GPEN-BFR-2048", "GPEN-Colorization-1024",
                        "GPEN-Inpainting-1024", "RetinaFace-R50", "RetinaFace-MobileNet0.25", "ParseNet-latest",
                        "realesrnet_x2", "realesrnet_x4", "GPEN-BFR-512-onnx"})
    CHECK(names.count(n) == 1);
  CHECK(find_model("GPEN-BFR-512")->urls.front() ==
        "https://public-vigen-video.oss-cn-shanghai.aliyuncs.com/robin/models/GPEN-BFR-512.pth");
}

TEST_CASE("names are found case-insensitively, by alias and by file name", "[models]") {
  CHECK(find_model("gpen-bfr-512")->name == "GPEN-BFR-512");
  CHECK(find_model("GPEN-512")->name == "GPEN-BFR-512");
  CHECK(find_model("GPEN-BFR-512.pth")->name == "GPEN-BFR-512");
  CHECK(find_model("mobilenet0.25")->name == "RetinaFace-MobileNet0.25");
  CHECK(find_model("gpen_bfr_1024")->format == ModelFormat::Onnx);
  CHECK(find_model("GPEN-BFR-4096") == nullptr);
  CHECK(find_model("") == nullptr);
}

TEST_CASE("the registry's MobileNet-0.25 hash and size match the known release file", "[models]") {
  const ModelEntry* e = find_model("RetinaFace-MobileNet0.25");
  const std::string shared = test::shared_path("weights/retinaface_mobilenet0.25.pth");
  CHECK(int64_t(fs::file_size(shared)) == e->size);
  CHECK(sha256_file(shared) == e->sha256);
}

TEST_CASE("the cache folder follows --models-dir, GPEN_MODELS, then XDG_CACHE_HOME", "[models]") {
  test::ScopedEnv xdg("XDG_CACHE_HOME", "/tmp/xdg-test");
  {
    test::ScopedEnv models("GPEN_MODELS", "");
    CHECK(default_models_dir() == "/tmp/xdg-test/gpen");
  }
  test::ScopedEnv models("GPEN_MODELS", "/tmp/gpen-models-test");
  CHECK(default_models_dir() == "/tmp/gpen-models-test");
  ModelFetchOptions opt;
  opt.models_dir = "/elsewhere";
  CHECK(cached_model_path(*find_model("gpen-512"), opt) == "/elsewhere/GPEN-BFR-512.pth");
  CHECK(converted_model_path(*find_model("gpen-512"), opt) == "/elsewhere/GPEN-BFR-512.safetensors");
}

TEST_CASE("GPEN_MIRROR is tried before the official URLs", "[models]") {
  test::ScopedEnv mirror("GPEN_MIRROR", "http://mirror.example/models/");
  const auto urls = model_urls(*find_model("GPEN-BFR-256"));
  REQUIRE(urls.size() == 2);
  CHECK(urls[0] == "http://mirror.example/models/GPEN-BFR-256.pth");
  CHECK(urls[1] == find_model("GPEN-BFR-256")->urls[0]);
}

TEST_CASE("resolve_model: paths and random specs pass through, names map to the cache", "[models]") {
  const std::string dir = scratch("resolve");
  ModelFetchOptions opt;
  opt.models_dir = dir;
  opt.offline = true;
  const std::string tiny = test::source_path("tests/fixtures/gpen_tiny/gpen_tiny.pth");
  CHECK(resolve_model(tiny, opt) == tiny);
  CHECK(resolve_model("random:256:3", opt) == "random:256:3");
  CHECK_THAT(error_of([&] { resolve_model("gpen-512", opt); }),
             Catch::Contains("not in the cache") && Catch::Contains("--offline"));
  CHECK_THAT(error_of([&] { resolve_model("no/such/file.pth", opt); }),
             Catch::Contains("no such file or registered model") && Catch::Contains("GPEN-BFR-512"));
  std::ofstream(dir + "/GPEN-BFR-512.pth") << "cached";
  CHECK(resolve_model("gpen-512", opt) == dir + "/GPEN-BFR-512.pth");
  std::ofstream(dir + "/GPEN-BFR-512.safetensors") << "converted";
  CHECK(resolve_model("GPEN-BFR-512", opt) == dir + "/GPEN-BFR-512.safetensors");
}

TEST_CASE("a missing model is pulled on first use, its hash recorded and then enforced", "[models][download]") {
  test::LocalHttpServer server;
  const std::string body = std::string(40000, 'g') + "pen", dir = scratch("tofu");
  server.serve("/mirror/GPEN-BFR-256.pth", body);
  test::ScopedEnv mirror("GPEN_MIRROR", server.url("/mirror"));
  const ModelEntry& e = *find_model("GPEN-BFR-256");
  ModelFetchOptions opt;
  opt.models_dir = dir;
  opt.download.attempts = 1;
  const std::string path = resolve_model("gpen-256", opt);
  CHECK(path == dir + "/GPEN-BFR-256.pth");
  CHECK(slurp(path) == body);
  auto rec = read_model_record(e, opt);
  REQUIRE(rec);
  CHECK_FALSE(rec->hash_from_registry);
  CHECK(rec->sha256 == sha256_file(path));
  CHECK(rec->url == server.url("/mirror/GPEN-BFR-256.pth"));
  CHECK(verify_model(e, opt).status == VerifyStatus::Ok);
  CHECK(resolve_model("gpen-256", opt) == path);
  CHECK(server.requests("/mirror/GPEN-BFR-256.pth") == 1);  // the second resolve used the cache

  // The file changes on disk: verify notices. The server now serves other bytes: a fresh pull
  // is held to the recorded hash and rejected.
  std::ofstream(path, std::ios::app) << "tampered";
  CHECK(verify_model(e, opt).status == VerifyStatus::Mismatch);
  fs::remove(path);
  server.serve("/mirror/GPEN-BFR-256.pth", body + "changed");
  opt.download.connect_timeout_s = 2;
  const std::string err = error_of([&] { pull_model(e, opt); });
  CHECK_THAT(err, Catch::Contains("checksum mismatch"));
  CHECK_FALSE(fs::exists(path));

  CHECK(remove_model(e, opt));
  CHECK_FALSE(read_model_record(e, opt));
  CHECK_FALSE(remove_model(e, opt));
}

TEST_CASE("import puts a hand-fetched file into the cache only when it matches", "[models]") {
  const std::string dir = scratch("import");
  ModelFetchOptions opt;
  opt.models_dir = dir;
  const ModelEntry& mnet = *find_model("mobilenet0.25");
  const std::string shared = test::shared_path("weights/retinaface_mobilenet0.25.pth");
  const std::string path = import_model(mnet, shared, opt);
  CHECK(path == dir + "/mobilenet0.25_Final.pth");
  CHECK(verify_model(mnet, opt).status == VerifyStatus::Ok);
  CHECK(read_model_record(mnet, opt)->hash_from_registry);
  remove_model(mnet, opt);
  const std::string wrong = dir + "/wrong.pth";
  std::ofstream(wrong) << "not the detector";
  CHECK_THAT(error_of([&] { import_model(mnet, wrong, opt); }), Catch::Contains("is not the expected"));
  CHECK_FALSE(fs::exists(path));
}

TEST_CASE("gpen models: list, pull, path, verify, rm through the CLI", "[models][cli]") {
  test::LocalHttpServer server;
  const std::string body(50000, 'x'), dir = scratch("cli");
  server.serve("/m/GPEN-BFR-1024.pth", body);
  const std::string env = "GPEN_MODELS=" + dir + " GPEN_MIRROR=" + server.url("/m");

  Run r = gpen_cli(env, "models list", dir);
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("cache: " + dir) && Catch::Contains("GPEN-BFR-2048") &&
                        Catch::Contains("RetinaFace-MobileNet0.25"));

  r = gpen_cli(env, "models path GPEN-BFR-1024", dir);
  CHECK(r.code == 1);
  CHECK(r.out == dir + "/GPEN-BFR-1024.pth\n");

  r = gpen_cli(env, "models pull gpen-1024", dir);
  REQUIRE(r.code == 0);
  CHECK(r.out == dir + "/GPEN-BFR-1024.pth\n");
  CHECK(slurp(dir + "/GPEN-BFR-1024.pth") == body);

  r = gpen_cli(env, "models list --json", dir);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("\"state\": \"cached 0.1 MB\""));

  r = gpen_cli(env, "models verify", dir);
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("GPEN-BFR-1024") && Catch::Contains("recorded at first download"));
  std::ofstream(dir + "/GPEN-BFR-1024.pth", std::ios::app) << "!";
  r = gpen_cli(env, "models verify GPEN-BFR-1024", dir);
  CHECK(r.code == 1);
  CHECK_THAT(r.out, Catch::Contains("FAIL"));

  r = gpen_cli(env, "models rm GPEN-BFR-1024", dir);
  CHECK(r.code == 0);
  CHECK_FALSE(fs::exists(dir + "/GPEN-BFR-1024.pth"));

  // import NAME FILE: a hand-fetched file goes in (its hash was recorded at the pull above).
  const std::string fetched = dir + "/fetched.pth";
  std::ofstream(fetched) << body;
  r = gpen_cli(env, "models import GPEN-BFR-1024 " + fetched, dir);
  INFO(r.err);
  CHECK(r.code == 0);
  CHECK(r.out == dir + "/GPEN-BFR-1024.pth\n");
  CHECK(slurp(dir + "/GPEN-BFR-1024.pth") == body);
  REQUIRE(gpen_cli(env, "models rm GPEN-BFR-1024", dir).code == 0);

  r = gpen_cli(env, "models --offline pull GPEN-BFR-1024", dir);
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--offline"));
  r = gpen_cli(env, "models pull no-such-model", dir);
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("unknown model 'no-such-model'"));
}

TEST_CASE("two gpen processes pulling one model download it once", "[models][download][cli]") {
  test::LocalHttpServer server;
  const std::string body(400 * 1024, 'p'), dir = scratch("two_processes");
  test::RouteBehaviour slow;
  slow.chunk_delay_ms = 30;  // ~0.75 s: the second process starts while the first downloads
  server.serve("/m/ParseNet-latest.pth", body, slow);
  const std::string env = "GPEN_MODELS=" + dir + " GPEN_MIRROR=" + server.url("/m");
  const std::string cli = std::string(GPEN_CLI_PATH) + " models pull parsenet";
  const std::string cmd = env + " " + cli + " >" + dir + "/a.txt 2>&1 & " + env + " " + cli + " >" + dir +
                          "/b.txt 2>&1; wait $!";
  REQUIRE(std::system(("bash -c '" + cmd + "'").c_str()) == 0);
  CHECK(slurp(dir + "/ParseNet-latest.pth") == body);
  CHECK(server.requests("/m/ParseNet-latest.pth") == 1);
}

TEST_CASE("a cached checkpoint converts to safetensors beside it", "[models]") {
  const std::string dir = scratch("convert");
  ModelEntry e;
  e.name = "tiny";
  e.file_name = "gpen_tiny.pth";
  ModelFetchOptions opt;
  opt.models_dir = dir;
  CHECK_THAT(error_of([&] { convert_cached_model(e, opt); }), Catch::Contains("not in the cache"));
  fs::copy_file(test::source_path("tests/fixtures/gpen_tiny/gpen_tiny.pth"), dir + "/gpen_tiny.pth");
  const std::string out = convert_cached_model(e, opt);
  CHECK(out == dir + "/gpen_tiny.safetensors");
  const StateDict original = load_weights(dir + "/gpen_tiny.pth"), converted = load_weights(out);
  CHECK(converted.keys() == original.keys());
  CHECK(converted.metadata.at("gpen.source") == "gpen_tiny.pth");
  const std::string key = original.keys().front();
  const Tensor a = original.f32(key), b = converted.f32(key);
  REQUIRE(a.numel() == b.numel());
  CHECK(std::equal(a.data<float>(), a.data<float>() + a.numel(), b.data<float>()));
  CHECK(remove_model(e, opt));
  CHECK_FALSE(fs::exists(out));
}
