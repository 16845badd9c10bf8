// Tiled whole-photo upscaling: tiles give the untiled result (within one grey level on >= 99.9 %
// of the values), the conversion to and from the network is GPEN's, odd sizes and x4 work, and the
// memory a photo needs is that of one window whatever the photo size.
#include <catch2/catch.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <memory>

#include "core/error.h"
#include "core/image.h"
#include "core/face_detector.h"
#include "core/models/gpen.h"
#include "core/models/parsenet.h"
#include "core/parse_mask.h"
#include "core/pipeline/face_restorer.h"
#include "core/pipeline/upscale.h"
#include "tests/test_util.h"

using namespace gpen;

namespace {

const std::string kTinyDir = "tests/fixtures/rrdbnet_tiny/";

CompileOptions two_threads() {
  CompileOptions co;
  co.threads = 2;
  return co;
}

// A crop of a real photo (texture and edges, not noise), converted to RGB.
Image photo_crop(int x0, int y0, int w, int h) {
  const Image src = to_rgb(load_image(test::shared_path("images/group_solvay_1927.png")));
  Image out(w, h, 3);
  for (int y = 0; y < h; ++y)
    std::copy(src.row(y0 + y) + size_t(x0) * 3, src.row(y0 + y) + size_t(x0 + w) * 3, out.row(y));
  return out;
}

struct LevelAgreement {
  double within_one = 0;  // fraction of values that differ by at most one level
  int max_diff = 0;
  double mean = 0, saturated = 0;  // of the reference: mean level, fraction at 0 or 255
};

LevelAgreement compare(const Image& a, const Image& ref) {
  REQUIRE(a.width == ref.width);
  REQUIRE(a.height == ref.height);
  LevelAgreement r;
  size_t ok = 0, sat = 0;
  double sum = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) {
    const int d = std::abs(int(a.pixels[i]) - int(ref.pixels[i]));
    ok += d <= 1;
    r.max_diff = std::max(r.max_diff, d);
    sum += ref.pixels[i];
    sat += ref.pixels[i] == 0 || ref.pixels[i] == 255;
  }
  const double n = double(a.pixels.size());
  r.within_one = double(ok) / n;
  r.mean = sum / n;
  r.saturated = double(sat) / n;
  return r;
}

void check_tiled_equals_untiled(RrdbRunner& runner, const Image& photo, const UpscaleOptions& tiled) {
  const Image whole = upscale_photo(photo, runner, UpscaleOptions{0, 0});
  const Image tiles = upscale_photo(photo, runner, tiled);
  REQUIRE(whole.width == photo.width * runner.scale());
  REQUIRE(whole.height == photo.height * runner.scale());
  const LevelAgreement a = compare(tiles, whole);
  INFO(runner.model().config().describe() << ", " << photo.width << "x" << photo.height << ", tile " << tiled.tile
                                          << ", overlap " << tiled.overlap << ": " << 100 * a.within_one
                                          << " % within 1 level, max diff " << a.max_diff << "; untiled mean "
                                          << a.mean << ", " << 100 * a.saturated << " % saturated");
  CHECK(a.saturated < 0.5);  // the comparison means something only if the output is not clipped
  CHECK(a.within_one >= 0.999);
  // The cores really were different windows: the upscale is not one window in disguise.
  CHECK(upscale_window(photo.height, photo.width, runner.scale(), tiled) !=
        std::make_pair(photo.height + photo.height % 2, photo.width + photo.width % 2));
}

}  // namespace

TEST_CASE("Untiled upscale is the network's output, clamped and rounded to 8 bits", "[upscale]") {
  RrdbRunner runner(RrdbNetModel::load(test::source_path(kTinyDir + "rrdbnet_tiny_x2.pth")), two_threads());
  const Image photo = photo_crop(300, 100, 20, 14);
  const Image up = upscale_photo(photo, runner, UpscaleOptions{0, 0});
  Tensor x = Tensor::empty(DType::F32, {1, 3, 14, 20});
  for (int y = 0; y < 14; ++y)
    for (int xx = 0; xx < 20; ++xx)
      for (int c = 0; c < 3; ++c) x.data<float>()[(c * 14 + y) * 20 + xx] = float(photo.at(xx, y, c)) / 255.f;
  const Tensor y = runner.run(x);
  REQUIRE(up.width == 40);
  REQUIRE(up.height == 28);
  size_t clipped = 0;
  for (int yy = 0; yy < 28; ++yy)
    for (int xx = 0; xx < 40; ++xx)
      for (int c = 0; c < 3; ++c) {
        const float v = y.data<float>()[(c * 28 + yy) * 40 + xx];
        clipped += v < 0 || v > 1;
        REQUIRE(int(up.at(xx, yy, c)) == int(std::nearbyint(std::clamp(v, 0.f, 1.f) * 255.f)));
      }
  CHECK(clipped < up.pixels.size() / 2);
}

TEST_CASE("Tiled upscale equals untiled within one level (tiny x2 and x4, odd sizes)", "[upscale]") {
  RrdbRunner x2(RrdbNetModel::load(test::source_path(kTinyDir + "rrdbnet_tiny_x2.pth")), two_threads());
  check_tiled_equals_untiled(x2, photo_crop(400, 150, 96, 72), UpscaleOptions{32, 16});
  check_tiled_equals_untiled(x2, photo_crop(401, 151, 67, 45), UpscaleOptions{20, 16});  // odd: padded, cropped
  RrdbRunner x4(RrdbNetModel::load(test::source_path(kTinyDir + "rrdbnet_tiny_x4.pth")), two_threads());
  check_tiled_equals_untiled(x4, photo_crop(500, 120, 41, 33), UpscaleOptions{16, 12});
}

TEST_CASE("Too little overlap shows: tiles without context differ from the untiled result", "[upscale]") {
  // The other side of the tests above: the check is able to fail.
  RrdbRunner x2(RrdbNetModel::load(test::source_path(kTinyDir + "rrdbnet_tiny_x2.pth")), two_threads());
  const Image photo = photo_crop(400, 150, 96, 72);
  const LevelAgreement a =
      compare(upscale_photo(photo, x2, UpscaleOptions{16, 0}), upscale_photo(photo, x2, UpscaleOptions{0, 0}));
  INFO(100 * a.within_one << " % within one level, max diff " << a.max_diff);
  CHECK(a.within_one < 0.999);
}

TEST_CASE("Upscale refuses bad options and photos; gray and RGBA come out RGB", "[upscale]") {
  RrdbRunner x4(RrdbNetModel::load(test::source_path(kTinyDir + "rrdbnet_tiny_x4.pth")), two_threads());
  CHECK_THROWS_WITH(upscale_photo(Image(), x4), Catch::Contains("empty"));
  CHECK_THROWS_WITH(upscale_photo(Image(4, 4, 3), x4, UpscaleOptions{-1, 0}), Catch::Contains(">= 0"));
  const Image gray(5, 3, 1), rgba(5, 3, 4);
  CHECK(upscale_photo(gray, x4).channels == 3);
  CHECK(upscale_photo(rgba, x4).width == 20);
  CHECK_THROWS_WITH(load_sr_model("random:3"), Catch::Contains("scale must be 2 or 4"));
  CHECK_THROWS_WITH(load_sr_model("random:x"), Catch::Contains("random:2 or random:4"));
}

TEST_CASE("Upscale memory is one window's, whatever the photo size", "[upscale]") {
  const UpscaleOptions opt{400, 24};
  // 4K and 8K photos run the same 448 x 448 window; a small photo runs itself (even-padded for x2).
  CHECK(upscale_window(2160, 3840, 2, opt) == std::make_pair(448, 448));
  CHECK(upscale_window(4320, 7680, 2, opt) == std::make_pair(448, 448));
  CHECK(upscale_window(301, 199, 2, opt) == std::make_pair(302, 200));
  CHECK(upscale_window(301, 199, 4, opt) == std::make_pair(301, 199));
  // The arena of GPEN's realesrnet_x2 layout at that window, from the memory plan (not compiled).
  const RrdbNetModel m = load_sr_model("random:2");
  const Graph g = m.build_graph(1, 448, 448);
  const double arena_mb = double(g.plan_memory().arena_elems) * 4 / 1e6;
  const double weights_mb = double(m.parameter_count()) * 4 / 1e6;
  INFO("x2 window 448x448: arena " << arena_mb << " MB, weights " << weights_mb << " MB");
  // Largest maps: 32 channels at 4x the unshuffled window (896 x 896), in and out of conv_hr.
  const double biggest_map_mb = 32.0 * 896 * 896 * 4 / 1e6;
  CHECK(arena_mb >= 2 * biggest_map_mb);
  CHECK(arena_mb <= 4 * biggest_map_mb);
  CHECK(weights_mb < 100);
}

TEST_CASE("Tiled upscale equals untiled within one level (official x2 layout, random weights)", "[upscale][large]") {
  RrdbRunner x2(load_sr_model("random:2:7"), two_threads());
  check_tiled_equals_untiled(x2, photo_crop(600, 200, 96, 64), UpscaleOptions{48, 16});
}

TEST_CASE("GPEN's use_sr with the parse mask: detect on the resized photo, paste on the upscaled one", "[upscale][pipeline]") {
  // GPEN (FaceEnhancement.process, use_sr): img_sr = SR(img); img = resize(img, img_sr's size);
  // detect and align on img; paste the restored faces onto img_sr. RestoreOptions::upscaler does
  // this in the detect stage; here with the committed tiny GPEN (32 x 32 faces), tiny x2 RRDBNet
  // and tiny ParseNet.
  FaceRestorer restorer(std::make_shared<FaceDetector>(FaceDetector::load(test::shared_path("weights/retinaface_mobilenet0.25.pth"))),
                        std::make_shared<GpenRunner>(std::make_shared<GpenModel>(GpenModel::load(test::source_path("tests/fixtures/gpen_tiny/gpen_tiny.pth"))),
                                                     std::shared_ptr<Backend>(make_cpu_backend()), CompileOptions{}));
  ParseMaskOptions mo;
  mo.parse_size = 32;  // the tiny GPEN's face size, with border and blur scaled down alike
  mo.border = 2;
  mo.blur_ksize = 7;
  mo.blur_sigma = 1.5;
  const ParseNetMask mask(ParseNetModel::load(test::source_path("tests/fixtures/parsenet_tiny/parsenet_tiny.pth")),
                          two_threads(), mo);
  RrdbRunner sr(RrdbNetModel::load(test::source_path(kTinyDir + "rrdbnet_tiny_x2.pth")), two_threads());

  // A 40-px face in the middle of a 256 x 256 grey photo (its aligned crop spans ~2.5x its box).
  const Image face = resize_bilinear(to_rgb(load_image(test::shared_path("images/aligned_ffhq_00002.png"))), 40, 40);
  Image photo(256, 256, 3);
  std::fill(photo.pixels.begin(), photo.pixels.end(), uint8_t(128));
  for (int y = 0; y < 40; ++y) std::copy(face.row(y), face.row(y) + face.row_bytes(), photo.row(108 + y) + 108 * 3);
  const Image upscaled = upscale_photo(photo, sr, UpscaleOptions{64, 16});
  RestoreOptions opt;
  opt.controls.strength = 100;
  opt.controls.skin_protect = false;
  opt.mask = &mask;
  opt.detect.only_center_face = true;  // the grey surround gives a few weak false detections
  opt.upscaler = &sr;
  opt.upscale = UpscaleOptions{64, 16};
  const RestoreResult r = restorer.restore(photo, opt);
  REQUIRE(r.image.width == 512);
  REQUIRE(r.image.height == 512);
  REQUIRE(r.faces.size() == 1);
  // Far from the face (a 48-px frame) the upscaled photo comes back byte for byte; the face changed.
  size_t frame_changed = 0, face_changed = 0;
  for (int y = 0; y < 512; ++y)
    for (int x = 0; x < 512; ++x)
      for (int c = 0; c < 3; ++c) {
        const bool differs = r.image.at(x, y, c) != upscaled.at(x, y, c);
        const bool frame = x < 48 || y < 48 || x >= 464 || y >= 464;
        const bool in_face = x >= 226 && x < 286 && y >= 226 && y < 286;
        frame_changed += frame && differs;
        face_changed += in_face && differs;
      }
  const Detection& d = r.faces[0].detection;
  INFO("face box " << d.box[0] << ", " << d.box[1] << " - " << d.box[2] << ", " << d.box[3]);
  INFO(face_changed << " values changed in the face, " << frame_changed << " in the frame");
  CHECK(frame_changed == 0);
  CHECK(face_changed > 60 * 60);
}

// --- manual measurements (hidden; docs/BENCHMARKS.md gives the commands) ------------------------

namespace {

double peak_rss_mb() {
  std::FILE* f = std::fopen("/proc/self/status", "r");
  if (!f) return -1;
  char line[256];
  double kb = -1;
  while (std::fgets(line, sizeof line, f))
    if (std::sscanf(line, "VmHWM: %lf kB", &kb) == 1) break;
  std::fclose(f);
  return kb / 1024;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST_CASE("Measure: RRDBNet x2 / x4 per window (official layout, random weights)", "[.][bench_sr]") {
  for (int scale : {2, 4}) {
    const int side = scale == 2 ? 448 : 248;  // tile 400 / 200 + 2 x overlap 24
    RrdbRunner runner(load_sr_model("random:" + std::to_string(scale)), CompileOptions{});
    const Tensor x = test::random_tensor({1, 3, side, side}, 1, 0.f, 1.f);
    auto t0 = std::chrono::steady_clock::now();
    runner.run(x);  // first run: compile, arena first touch
    const double first = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    runner.run(x);
    const double s = seconds_since(t0);
    std::printf("x%d window %dx%d: %.2f s (first run %.2f s), %.3f s per input megapixel, arena %.0f MB\n", scale,
                side, side, s, first, s / (double(side) * side / 1e6), runner.arena_bytes(side, side) / 1e6);
  }
  std::printf("peak RSS %.0f MB\n", peak_rss_mb());
}

TEST_CASE("Measure: upscale a 3840x2160 photo x2, tile 400 (official layout, random weights)", "[.][bench_sr_4k]") {
  const Image src = to_rgb(load_image(test::shared_path("images/selfie_child_4032x3024.jpg")));
  Image photo(3840, 2160, 3);
  for (int y = 0; y < 2160; ++y) std::copy(src.row(y), src.row(y) + size_t(3840) * 3, photo.row(y));
  // GPEN_BENCH_SR_BLOCKS=1 runs a 1-RRDB model: the same window arena (its largest maps are in the
  // upsampling tail), 12x less compute, 37 MB less weights -- to measure memory quickly.
  RrdbConfig cfg = realesrnet_config(2);
  if (const char* blocks = std::getenv("GPEN_BENCH_SR_BLOCKS")) cfg.blocks = std::atoi(blocks);
  RrdbRunner runner(RrdbNetModel::from_state_dict(rrdbnet_random_state_dict(cfg, 1)), CompileOptions{});
  const auto t0 = std::chrono::steady_clock::now();
  const Image up = upscale_photo(photo, runner, UpscaleOptions{400, 24});
  std::printf("%s: 3840x2160 -> %dx%d in %.1f s; peak RSS %.0f MB (photo in %.0f MB, out %.0f MB, source jpeg %.0f MB)\n",
              cfg.describe().c_str(), up.width, up.height, seconds_since(t0), peak_rss_mb(), photo.pixels.size() / 1e6,
              up.pixels.size() / 1e6, src.pixels.size() / 1e6);
}
