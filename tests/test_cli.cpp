// The `gpen` binary end to end: exit codes, one-line errors, nothing lost, and the pipeline's
// byte-exactness promises. Uses the committed tiny GPEN (size 32) so every case is quick.
#include <catch2/catch.hpp>

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/face_detector.h"
#include "core/device.h"
#include "core/face_align.h"
#include "core/image.h"
#include "core/models/gpen.h"
#include "core/colour_management.h"
#include "core/pipeline/face_restorer.h"
#include "kernels/cpu/isa.h"
#include "tests/test_util.h"

namespace fs = std::filesystem;
using namespace gpen;

namespace {

struct Run {
  int code;
  std::string out, err;
};

std::string scratch_dir() { return test::process_scratch("cli_test"); }

std::string slurp(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// Runs `gpen ARGS`, capturing stdout and stderr.
Run gpen_cli(const std::string& args) {
  const std::string out = scratch_dir() + "/stdout.txt", err = scratch_dir() + "/stderr.txt";
  const std::string cmd = std::string(GPEN_CLI_PATH) + " " + args + " >" + out + " 2>" + err;
  const int status = std::system(cmd.c_str());
  return Run{WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(out), slurp(err)};
}

const std::string kTiny = test::source_path("tests/fixtures/gpen_tiny/gpen_tiny.pth");
const std::string kDetector = test::shared_path("weights/retinaface_mobilenet0.25.pth");
const std::string kGroup = test::shared_path("images/group_solvay_1927.png");

int lines(const std::string& s) { return int(std::count(s.begin(), s.end(), '\n')); }

}  // namespace

TEST_CASE("enhance --strength 0 returns the photo unchanged", "[cli][pipeline]") {
  const std::string out = scratch_dir() + "/s0.png";
  Run r = gpen_cli("enhance " + kGroup + " -o " + out + " --model " + kTiny + " --detector " + kDetector +
                   " --strength 0 --threads 2");
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(load_image(out).pixels == load_image(kGroup).pixels);
}

TEST_CASE("enhance changes only pixels under some face's mask", "[cli][pipeline]") {
  auto det = std::make_shared<FaceDetector>(FaceDetector::load(kDetector));
  auto model = std::make_shared<GpenModel>(GpenModel::load(kTiny));
  auto gpen = std::make_shared<GpenRunner>(model, std::shared_ptr<Backend>(make_cpu_backend()), CompileOptions{});
  FaceRestorer restorer(det, gpen);
  const Image photo = load_image(kGroup);
  for (double strength : {30.0, 100.0}) {
    RestoreOptions opt;
    opt.controls.strength = strength;
    RestoreResult r = restorer.restore(photo, opt);
    REQUIRE(r.faces.size() == 24);
    // Union of where each face's crop lands in the photo.
    std::vector<Rect> supports;
    for (const RestoredFace& f : r.faces) {
      Landmarks5 lm;
      for (int i = 0; i < 5; ++i) lm[size_t(i)] = Point2{f.detection.landmarks[2 * i], f.detection.landmarks[2 * i + 1]};
      const AlignedFace a = align_face(to_rgb(photo), lm, model->config().size);
      supports.push_back(warp_affine_support(a.inverse, model->config().size, model->config().size, photo.width, photo.height));
    }
    int changed = 0, changed_outside = 0;
    for (int y = 0; y < photo.height; ++y)
      for (int x = 0; x < photo.width; ++x) {
        bool differs = false;
        for (int c = 0; c < photo.channels; ++c) differs |= photo.at(x, y, c) != r.image.at(x, y, c);
        if (!differs) continue;
        ++changed;
        bool inside = false;
        for (const Rect& s : supports) inside |= x >= s.x && x < s.x + s.width && y >= s.y && y < s.y + s.height;
        changed_outside += !inside;
      }
    INFO("strength " << strength << ": " << changed << " pixels changed");
    CHECK(changed > 1000);
    CHECK(changed_outside == 0);
  }
}

TEST_CASE("a photo with no face comes back unchanged, exit 0", "[cli][pipeline]") {
  Image noise(640, 480, 3);
  std::mt19937 rng(3);
  for (auto& p : noise.pixels) p = uint8_t(rng());
  const std::string in = scratch_dir() + "/noface.png", out = scratch_dir() + "/noface_out.png";
  save_image(in, noise);
  Run r = gpen_cli("enhance " + in + " -o " + out + " --model " + kTiny + " --detector " + kDetector);
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(r.err.find("no face found") != std::string::npos);
  CHECK(load_image(out).pixels == noise.pixels);
}

TEST_CASE("gpen --version names the version and what this build can do", "[cli]") {
  const Run r = gpen_cli("--version");
  CHECK(r.code == 0);
  CHECK(r.out.rfind("gpen 0.1.0\n", 0) == 0);
  // The tests' build has every optional library (scripts/setup.sh); the static build has not.
  CHECK(r.out.find("HEIF/AVIF input (libheif): " + std::string(heif_supported() ? "yes" : "no")) != std::string::npos);
  CHECK(r.out.find("colour management (lcms2): " + std::string(colour_management_supported() ? "yes" : "no")) !=
        std::string::npos);
  CHECK(r.out.find("model downloads (libcurl): yes") != std::string::npos);
  CHECK(r.out.find(std::string("CPU kernels: ") + cpu::isa_name(cpu::active_isa()) + "\n") != std::string::npos);
  // The GPUs --device auto would use, or why there are none.
  const CudaModule& cuda = CudaModule::instance();
  CHECK(r.out.find("CUDA: " + (cuda.usable() ? std::to_string(cuda.device_count()) + " GPU(s)"
                                            : "no usable GPU: " + cuda.why_unusable())) != std::string::npos);
}

TEST_CASE("bad inputs give one-line errors and a non-zero exit", "[cli]") {
  const std::string dir = scratch_dir();
  const std::string group_bytes = slurp(kGroup);
  std::ofstream(dir + "/empty.png").close();
  std::ofstream(dir + "/text.jpg") << "this is not an image\n";
  std::ofstream(dir + "/trunc.png", std::ios::binary) << group_bytes.substr(0, group_bytes.size() / 3);
  for (const std::string name : {"empty.png", "text.jpg", "trunc.png", "missing.png"}) {
    Run r = gpen_cli("enhance " + dir + "/" + name + " -o " + dir + "/x.png --model " + kTiny + " --detector " + kDetector);
    INFO(name << ": " << r.err);
    CHECK(r.code != 0);
    CHECK(lines(r.err) == 1);
    CHECK(r.err.rfind("gpen: error:", 0) == 0);
    CHECK(!fs::exists(dir + "/x.png"));
  }
  // A checkpoint whose pickle calls os.system: refused, nothing runs.
  const std::string pwned = "/tmp/gpen_pwned_5b1e0c9d";
  fs::remove(pwned);
  for (const std::string f : {"malicious_system_zip.pth", "malicious_system_p2.pth"}) {
    Run r = gpen_cli("info " + test::source_path("tests/fixtures/weights/" + f));
    INFO(r.err);
    CHECK(r.code != 0);
    CHECK(lines(r.err) == 1);
    CHECK(!fs::exists(pwned));
  }
  Run r = gpen_cli("enhance " + kGroup + " -o " + dir + "/y.png --model " + test::shared_path("weights/retinaface_mobilenet0.25.pth") +
                   " --detector " + kDetector);
  CHECK(r.code != 0);
  CHECK(r.err.find("not a GPEN checkpoint") != std::string::npos);
}

TEST_CASE("convert round trip: the safetensors file restores exactly like the .pth", "[cli][weights]") {
  const std::string dir = scratch_dir();
  const std::string in = test::source_path("tests/fixtures/gpen_tiny/gpen_tiny.aligned_in.png");
  Run c = gpen_cli("convert " + kTiny + " " + dir + "/tiny.safetensors");
  INFO(c.err);
  REQUIRE(c.code == 0);
  Run info = gpen_cli("info " + dir + "/tiny.safetensors");
  CHECK(info.out.find("GPEN-32") != std::string::npos);
  CHECK(info.out.find("gpen.size = 32") != std::string::npos);
  REQUIRE(gpen_cli("enhance --aligned " + in + " -o " + dir + "/a.png --model " + kTiny).code == 0);
  REQUIRE(gpen_cli("enhance --aligned " + in + " -o " + dir + "/b.png --model " + dir + "/tiny.safetensors").code == 0);
  CHECK(slurp(dir + "/a.png") == slurp(dir + "/b.png"));
  // f16 storage is lossy but must still load and run.
  REQUIRE(gpen_cli("convert " + kTiny + " " + dir + "/tiny16.safetensors --dtype f16").code == 0);
  CHECK(gpen_cli("enhance --aligned " + in + " -o " + dir + "/c.png --model " + dir + "/tiny16.safetensors").code == 0);
}

TEST_CASE("detect --json lists the group photo's 24 faces", "[cli]") {
  Run r = gpen_cli("detect " + kGroup + " --detector " + kDetector + " --json");
  REQUIRE(r.code == 0);
  auto j = nlohmann::json::parse(r.out);
  REQUIRE(j["faces"].size() == 24);
  CHECK(j["faces"][0]["landmarks"].size() == 5);
}

TEST_CASE("file names that are not UTF-8: --report and detect --json still written", "[cli]") {
  // Linux file names are bytes. JSON needs UTF-8, so such bytes become U+FFFD in the text; the
  // photo itself is read and written under its real name.
  const std::string dir = scratch_dir() + "/latin1";
  fs::remove_all(dir);
  fs::create_directories(dir + "/in");
  const std::string name = "caf\xe9";  // "café" in Latin-1
  save_image(dir + "/in/" + name + ".png", Image(64, 48, 3));
  Run r = gpen_cli("enhance " + dir + "/in -o " + dir + "/out --quiet --model " + kTiny + " --detector " + kDetector +
                   " --report " + dir + "/report.json");
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(fs::exists(dir + "/out/" + name + ".png"));
  const std::string report = slurp(dir + "/report.json");
  CHECK(report.find("caf\xef\xbf\xbd.png") != std::string::npos);
  CHECK(nlohmann::json::parse(report)["summary"]["done"] == 1);

  Run d = gpen_cli("detect " + dir + "/in/" + name + ".png --detector " + kDetector + " --json");
  INFO(d.err);
  REQUIRE(d.code == 0);
  CHECK(nlohmann::json::parse(d.out)["faces"].empty());
}

TEST_CASE("several photos: faces batched together, a bad file reported, exit 3", "[cli][pipeline]") {
  const std::string dir = scratch_dir() + "/multi";
  fs::create_directories(dir);
  std::ofstream(scratch_dir() + "/broken.png") << "not a png";
  Run r = gpen_cli("enhance " + kGroup + " " + scratch_dir() + "/broken.png " + test::shared_path("images/aligned_ffhq_00002.png") +
                   " -o " + dir + " --model " + kTiny + " --detector " + kDetector + " --warp cubic");
  INFO(r.err);
  CHECK(r.code == 3);
  CHECK(r.err.find("broken.png: error:") != std::string::npos);
  CHECK(load_image(dir + "/group_solvay_1927.png").width == 1328);
  CHECK(load_image(dir + "/aligned_ffhq_00002.png").width == 1024);
  CHECK(!fs::exists(dir + "/broken.png"));
}

TEST_CASE("enhance: folders, --list, --suffix, --format, --report, --quiet; a rerun skips", "[cli]") {
  const std::string dir = scratch_dir() + "/batch_flags";
  fs::remove_all(dir);
  fs::create_directories(dir + "/in/sub");
  const Image group = load_image(kGroup);
  Image part(300, group.height, group.channels);
  for (int y = 0; y < group.height; ++y) std::copy(group.row(y), group.row(y) + part.row_bytes(), part.row(y));
  save_image(dir + "/in/a.png", part);
  save_image(dir + "/in/sub/b.jpg", part);
  std::ofstream(dir + "/list.txt") << "# one photo\n" << dir << "/in/a.png\n";
  const std::string common = " --model " + kTiny + " --detector " + kDetector + " --threads 2";

  Run r = gpen_cli("enhance " + dir + "/in --recursive -o " + dir + "/out --suffix _r --format webp --quiet --report " +
                   dir + "/report.json" + common);
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK(r.err.empty());  // --quiet
  CHECK(load_image(dir + "/out/a_r.webp").width == 300);
  CHECK(load_image(dir + "/out/sub/b_r.webp").width == 300);
  auto report = nlohmann::json::parse(slurp(dir + "/report.json"));
  CHECK(report["summary"]["done"] == 2);
  REQUIRE(report["items"].size() == 2);
  CHECK(report["items"][0]["status"] == "done");
  CHECK(report["items"][0]["faces"].get<int>() > 0);
  CHECK(report["items"][0]["time_ms"].get<double>() > 0);
  const double total_s = report["summary"]["seconds"].get<double>();
  double first_s = 1e9;
  for (const auto& item : report["items"]) {
    const double t = item["finished_s"].get<double>();
    CHECK(t > 0);
    CHECK(t <= total_s + 0.01);
    first_s = std::min(first_s, t);
  }
  CHECK(report["summary"]["first_result_s"].get<double>() == Approx(first_s));
  CHECK(report["summary"]["photos_per_s_after_first"].get<double>() > 0);

  Run again = gpen_cli("enhance --list " + dir + "/list.txt -o " + dir + "/out --suffix _r --format webp" + common);
  CHECK(again.code == 0);
  CHECK(again.err.find("exists, skipped") != std::string::npos);
  CHECK(again.err.find("1 skipped") != std::string::npos);

  Run bad_mode = gpen_cli("enhance " + dir + "/in -o " + dir + "/out2 --mode vivid" + common);
  CHECK(bad_mode.code != 0);
  Run bad_strength = gpen_cli("enhance " + dir + "/in -o " + dir + "/out2 --strength 101" + common);
  CHECK(bad_strength.code != 0);
  CHECK(!fs::exists(dir + "/out2"));
}

TEST_CASE("enhance --aligned: strength 0 is the input, 100 with the options off is GPEN's output", "[cli]") {
  const std::string dir = scratch_dir();
  const std::string in = test::source_path("tests/fixtures/gpen_tiny/gpen_tiny.resized_in.png");  // 32 x 32
  REQUIRE(gpen_cli("enhance --aligned " + in + " -o " + dir + "/al0.png --model " + kTiny + " --strength 0").code == 0);
  CHECK(load_image(dir + "/al0.png").pixels == to_rgb(load_image(in)).pixels);
  REQUIRE(gpen_cli("enhance --aligned " + in + " -o " + dir + "/al100.png --model " + kTiny +
                   " --strength 100 --no-skin-protect").code == 0);
  CHECK(load_image(dir + "/al100.png").pixels == load_image(test::source_path("tests/fixtures/gpen_tiny/gpen_tiny.aligned_out.png")).pixels);
}

TEST_CASE("enhance --upscale 2 --mask parse: the photo comes back at twice the size", "[cli][pipeline]") {
  const std::string sr = test::source_path("tests/fixtures/rrdbnet_tiny/rrdbnet_tiny_x2.pth");
  const std::string parse = test::source_path("tests/fixtures/parsenet_tiny/parsenet_tiny.pth");
  const std::string base = "enhance " + kGroup + " --model " + kTiny + " --detector " + kDetector +
                           " --threads 2 --upscale 2 --tile 300 --sr-model " + sr;
  // Strength 0: nothing pasted, so the output is exactly the RealESRNet upsampling.
  const std::string s0 = scratch_dir() + "/sr_s0.png";
  Run r0 = gpen_cli(base + " --strength 0 -o " + s0);
  INFO(r0.err);
  REQUIRE(r0.code == 0);
  RrdbRunner runner(load_sr_model(sr), CompileOptions{});
  // (The photo is RGBA: its colour is upsampled by RealESRNet, its alpha resized bilinearly.)
  const Image expected = upscale_photo(split_alpha(load_image(kGroup)).rgb, runner, UpscaleOptions{300, 24});
  const RgbAndAlpha got = split_alpha(load_image(s0));
  CHECK((got.rgb.pixels == expected.pixels));
  CHECK(got.alpha.width == 2 * 1328);
  // Restored with the ParseNet mask: same size, faces changed.
  const std::string s100 = scratch_dir() + "/sr_parse.png";
  Run r1 = gpen_cli(base + " --strength 100 --mask parse --parsenet " + parse + " -o " + s100);
  INFO(r1.err);
  REQUIRE(r1.code == 0);
  const Image out = split_alpha(load_image(s100)).rgb;
  REQUIRE(out.width == 2 * 1328);
  REQUIRE(out.height == 2 * 568);
  CHECK((out.pixels != expected.pixels));
  // A scale that does not match the model is refused by name.
  Run bad = gpen_cli("enhance " + kGroup + " --model " + kTiny + " --detector " + kDetector + " --upscale 4 --sr-model " +
                     sr + " -o " + scratch_dir() + "/bad.png");
  CHECK(bad.code == 1);
  CHECK_THAT(bad.err, Catch::Contains("x2 model but --upscale is 4"));
}

TEST_CASE("enhance --task colorize / inpaint run on one aligned face; wrong use is refused", "[cli]") {
  const std::string face = test::shared_path("images/aligned_ffhq_00002.png");
  const std::string out = scratch_dir() + "/color.png";
  Run r = gpen_cli("enhance " + face + " -o " + out + " --model " + kTiny + " --task colorize");
  INFO(r.err);
  REQUIRE(r.code == 0);
  const Image in = load_image(face), res = load_image(out);
  CHECK(res.width == in.width);
  CHECK(res.height == in.height);
  Run no_mask = gpen_cli("enhance " + face + " -o " + out + " --model " + kTiny + " --task inpaint");
  CHECK(no_mask.code == 1);
  CHECK_THAT(no_mask.err, Catch::Contains("--task inpaint needs --mask-image"));
}

TEST_CASE("bench --report prints the seed's tables for each device, measured", "[cli]") {
  const std::string dir = scratch_dir() + "/report_images";
  fs::create_directories(dir);
  fs::copy_file(kGroup, dir + "/group.png", fs::copy_options::overwrite_existing);
  Run r = gpen_cli("bench --report --images " + dir + " --model " + kTiny + " --detector " + kDetector +
                   " --devices cpu,cuda --threads 2");
  INFO(r.err);
  REQUIRE(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("## Time per photo"));
  CHECK_THAT(r.out, Catch::Contains("| group |"));
  CHECK_THAT(r.out, Catch::Contains("photos/min"));
  CHECK_THAT(r.out, Catch::Contains("batch 8"));
  CHECK_THAT(r.out, Catch::Contains("Peak RAM"));
  // The machine the cpu column was measured on: its model and the kernels' instruction set.
  CHECK_THAT(r.out, Catch::Contains(std::string("(") + cpu::isa_name(cpu::active_isa()) + " kernels, "));
  // Without a usable GPU the CUDA column says why instead of inventing numbers.
  if (!CudaModule::instance().usable()) CHECK_THAT(r.out, Catch::Contains("cuda: not available"));
  Run bad = gpen_cli("bench --report --images " + dir + " --model " + kTiny);
  CHECK(bad.code == 1);
  CHECK_THAT(bad.err, Catch::Contains("--report needs --detector"));
  const std::string empty = scratch_dir() + "/report_no_photos";
  fs::create_directories(empty);
  std::ofstream(empty + "/notes.txt") << "not a photo";
  Run none = gpen_cli("bench --report --images " + empty + " --model " + kTiny + " --detector " + kDetector);
  CHECK(none.code == 1);
  CHECK_THAT(none.err, Catch::Contains("no photos (PNG, JPEG, WebP, TIFF, BMP, HEIF/AVIF)"));
}

TEST_CASE("bench and enhance say when --precision bf16 runs fp32", "[cli]") {
  // --isa avx512 caps the kernels below AVX-512-BF16 on any machine, so bf16 cannot be honoured.
  Run b = gpen_cli("bench --model " + kTiny + " --precision bf16 --isa avx512 --runs 1 --warmup 0 --json");
  INFO(b.err);
  REQUIRE(b.code == 0);
  const auto j = nlohmann::json::parse(b.out);
  CHECK(j["precision"] == "bf16");
  CHECK(j["precision_in_effect"] == "fp32");
  Run text = gpen_cli("bench --model " + kTiny + " --precision bf16 --isa avx2 --runs 1 --warmup 0");
  CHECK_THAT(text.out, Catch::Contains("bf16 asked, fp32 ran"));
  const std::string out = scratch_dir() + "/bf16_note.png";
  const std::string face = test::source_path("tests/fixtures/gpen_tiny/gpen_tiny.aligned_in.png");
  Run e = gpen_cli("enhance --aligned " + face + " -o " + out + " --model " + kTiny +
                   " --precision bf16 --isa avx2 --overwrite");
  INFO(e.err);
  REQUIRE(e.code == 0);
  CHECK_THAT(e.err, Catch::Contains("--precision bf16 needs AVX-512-BF16"));
  Run f = gpen_cli("enhance --aligned " + face + " -o " + out + " --model " + kTiny + " --overwrite");
  CHECK(f.code == 0);
  CHECK_THAT(f.err, !Catch::Contains("AVX-512-BF16"));
}

TEST_CASE("serve says when --precision bf16 runs fp32, before anything else", "[cli]") {
  // The note comes first; the refusal of a non-loopback address without a token then stops the
  // server before it listens, so that the test needs no port.
  Run r = gpen_cli("serve --model " + kTiny + " --precision bf16 --isa avx2 --host 10.255.255.1 --port 0");
  INFO(r.err);
  CHECK(r.code != 0);
  CHECK_THAT(r.err, Catch::Contains("gpen serve: note: --precision bf16 needs AVX-512-BF16"));
  CHECK_THAT(r.err, Catch::Contains("give --token"));
  Run f = gpen_cli("serve --model " + kTiny + " --isa avx2 --host 10.255.255.1 --port 0");
  CHECK(f.code != 0);
  CHECK_THAT(f.err, !Catch::Contains("AVX-512-BF16"));
  CHECK_THAT(f.err, Catch::Contains("give --token"));
}

TEST_CASE("serve refuses a device or precision it cannot honour, before listening", "[cli]") {
  Run r = gpen_cli("serve --model " + kTiny + " --device cpu --precision fp16 --port 0");
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("--precision fp16 needs a CUDA device"));
  r = gpen_cli("serve --model " + kTiny + " --device cuda:x --port 0");
  CHECK(r.code == 1);
  CHECK_THAT(r.err, Catch::Contains("bad --device 'cuda:x'"));
  if (!CudaModule::instance().usable()) {  // where a GPU is usable this would start serving
    r = gpen_cli("serve --model " + kTiny + " --device cuda --port 0");
    CHECK(r.code == 1);
    CHECK_THAT(r.err, Catch::Contains("CUDA requested but unavailable"));
  }
}
