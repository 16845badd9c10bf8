// The user controls (docs/CONTROLS.md): each one's defining property, on the real pipeline with
// the committed tiny GPEN (random weights, so its faces are colourful noise: a model that shifts
// colours) and the shared RetinaFace.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <random>

#include "core/face_align.h"
#include "core/face_detector.h"
#include "core/error.h"
#include "core/face_tensor.h"
#include "core/image.h"
#include "core/image_ops.h"
#include "core/models/gpen.h"
#include "core/paste_back.h"
#include "core/pipeline/adjustments.h"
#include "core/pipeline/controls.h"
#include "core/pipeline/face_restorer.h"
#include "tests/test_util.h"

using namespace gpen;

namespace {

const std::string kTiny = test::source_path("tests/fixtures/gpen_tiny/gpen_tiny.pth");
const std::string kDetector = test::shared_path("weights/retinaface_mobilenet0.25.pth");

std::shared_ptr<GpenRunner> tiny_gpen() {
  static auto runner = std::make_shared<GpenRunner>(std::make_shared<GpenModel>(GpenModel::load(kTiny)),
                                                    std::shared_ptr<Backend>(make_cpu_backend()), CompileOptions{});
  return runner;
}

FaceRestorer& restorer() {
  static FaceRestorer r(std::make_shared<FaceDetector>(FaceDetector::load(kDetector)), tiny_gpen());
  return r;
}

// The group photo's left part: 9 small faces (the 3x3 smoothing path), quick to detect.
const Image& group_part() {
  static const Image img = [] {
    const Image full = load_image(test::shared_path("images/group_solvay_1927.png"));
    Image part(500, full.height, full.channels);
    for (int y = 0; y < full.height; ++y)
      std::copy(full.row(y), full.row(y) + part.row_bytes(), part.row(y));
    return part;
  }();
  return img;
}

// A colour photo with one large face.
const Image& colour_face() {
  static const Image img = [] {
    const Image full = to_rgb(load_image(test::shared_path("images/aligned_ffhq_00002.png")));
    return downscale_area(full, 384, 384);
  }();
  return img;
}

Controls plain(double strength) {
  Controls c;
  c.strength = strength;
  c.skin_protect = false;
  return c;
}

// GPEN's own pipeline, built from the stages' parts: detect, align, forward, GPEN's paste-back.
Image gpen_reference(const Image& photo, double alpha) {
  RgbAndAlpha split = split_alpha(photo);
  const Image& rgb = split.rgb;
  const std::vector<Detection> dets = FaceDetector::load(kDetector).detect(rgb, DetectOptions{});
  const int S = tiny_gpen()->model().config().size;
  std::vector<PasteFace> faces;
  for (const Detection& d : dets) {
    Landmarks5 lm;
    for (int i = 0; i < 5; ++i) lm[size_t(i)] = Point2{d.landmarks[2 * i], d.landmarks[2 * i + 1]};
    AlignedFace a = align_face(rgb, lm, S);
    Image restored = tensor_to_face(tiny_gpen()->forward(faces_to_tensor({&a.crop})), 0);
    faces.push_back(PasteFace{restored, a.crop, a.inverse, {d.box[0], d.box[1], d.box[2], d.box[3]}});
  }
  PasteOptions po;
  po.strength = alpha;
  const Image pasted = paste_faces(rgb, faces, po);
  return split.alpha.empty() ? pasted : attach_alpha(pasted, split.alpha);
}

double mean(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0 : s / double(v.size());
}

double stddev(const Image& img) {
  double s = 0, s2 = 0;
  for (uint8_t p : img.pixels) s += p, s2 += double(p) * p;
  const double n = double(img.pixels.size()), m = s / n;
  return std::sqrt(std::max(0.0, s2 / n - m * m));
}

double mean_abs_diff(const Image& a, const Image& b) {
  double s = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) s += std::abs(int(a.pixels[i]) - int(b.pixels[i]));
  return s / double(a.pixels.size());
}

Image random_image(int w, int h, int c, uint32_t seed) {
  Image img(w, h, c);
  std::mt19937 rng(seed);
  for (auto& p : img.pixels) p = uint8_t(rng());
  return img;
}

// Mean |dCb|, |dCr| between two photos over the pixels where `weight` > 0.5.
std::pair<double, double> chroma_shift(const Image& a, const Image& b, const FloatImage& weight) {
  std::vector<double> dcb, dcr;
  for (int y = 0; y < a.height; ++y)
    for (int x = 0; x < a.width; ++x) {
      if (weight.at(x, y) <= 0.5f) continue;
      float cb_a, cr_a, cb_b, cr_b;
      rgb_to_cbcr(a.at(x, y, 0), a.at(x, y, 1), a.at(x, y, 2), &cb_a, &cr_a);
      rgb_to_cbcr(b.at(x, y, 0), b.at(x, y, 1), b.at(x, y, 2), &cb_b, &cr_b);
      dcb.push_back(std::fabs(cb_a - cb_b));
      dcr.push_back(std::fabs(cr_a - cr_b));
    }
  REQUIRE(dcb.size() > 1000);
  return {mean(dcb), mean(dcr)};
}

}  // namespace

TEST_CASE("controls: validation and mode names", "[controls]") {
  Controls c;
  CHECK(c.strength == 50);
  CHECK(c.mode == RestoreMode::Natural);
  CHECK(c.skin_protect);
  CHECK_NOTHROW(validate(c));
  for (auto bad : std::vector<std::function<void(Controls&)>>{
           [](Controls& x) { x.strength = 100.5; }, [](Controls& x) { x.strength = -1; },
           [](Controls& x) { x.denoise = 101; }, [](Controls& x) { x.sharpen = -0.1; },
           [](Controls& x) { x.contrast = -101; }, [](Controls& x) { x.brightness = 200; },
           [](Controls& x) { x.strength = std::nan(""); }, [](Controls& x) { x.mode = RestoreMode(7); }}) {
    Controls x;
    bad(x);
    CHECK_THROWS_AS(validate(x), gpen::Error);
  }
  for (RestoreMode m : {RestoreMode::Natural, RestoreMode::Strong, RestoreMode::Detail}) {
    RestoreMode parsed = RestoreMode::Natural;
    REQUIRE(parse_mode(mode_name(m), &parsed));
    CHECK(parsed == m);
  }
  RestoreMode unused;
  CHECK_FALSE(parse_mode("vivid", &unused));
}

TEST_CASE("strength 0 returns the input byte for byte, whatever the face options", "[controls]") {
  RestoreOptions opt;
  opt.controls.strength = 0;
  opt.controls.mode = RestoreMode::Detail;
  opt.controls.detail = true;
  RestoreResult r = restorer().restore(group_part(), opt);
  CHECK(r.faces.size() >= 5);
  CHECK(r.image.channels == group_part().channels);
  CHECK(r.image.pixels == group_part().pixels);
}

TEST_CASE("strength 100, natural, every filter off is exactly GPEN's output; other strengths GPEN's blend",
          "[controls]") {
  for (double strength : {100.0, 35.0}) {
    RestoreOptions opt;
    opt.controls = plain(strength);
    const RestoreResult r = restorer().restore(group_part(), opt);
    REQUIRE(r.faces.size() >= 5);
    INFO("strength " << strength);
    CHECK(r.image.pixels == gpen_reference(group_part(), strength / 100.0).pixels);
  }
}

TEST_CASE("skin protection keeps the original's skin chroma inside the face mask", "[controls]") {
  const Image& photo = colour_face();
  RestoreOptions on, off;
  on.controls.strength = off.controls.strength = 100;
  off.controls.skin_protect = false;
  on.keep_crops = true;
  const RestoreResult with = restorer().restore(photo, on);
  const RestoreResult without = restorer().restore(photo, off);
  REQUIRE(with.faces.size() == 1);
  // Inside the face mask (> 0.5) where the original is skin (skin mask > 0.9).
  const int S = tiny_gpen()->model().config().size;
  const Detection& d = with.faces[0].detection;
  Landmarks5 lm;
  for (int i = 0; i < 5; ++i) lm[size_t(i)] = Point2{d.landmarks[2 * i], d.landmarks[2 * i + 1]};
  const AlignedFace a = align_face(photo, lm, S);
  FloatImage weight = warp_affine(gpen_rectangle_mask(S), a.inverse, photo.width, photo.height);
  const FloatImage skin = skin_mask(photo);
  for (size_t i = 0; i < weight.pixels.size(); ++i) weight.pixels[i] = weight.pixels[i] > 0.5f && skin.pixels[i] > 0.9f;

  const auto [cb_on, cr_on] = chroma_shift(with.image, photo, weight);
  const auto [cb_off, cr_off] = chroma_shift(without.image, photo, weight);
  INFO("mean |dCb|, |dCr|: on " << cb_on << ", " << cr_on << "; off " << cb_off << ", " << cr_off);
  CHECK(cb_on <= 2.0);
  CHECK(cr_on <= 2.0);
  CHECK(cb_off + cr_off > 3 * (cb_on + cr_on));
  CHECK(cb_off + cr_off > 6.0);
  // Luma still comes from the restoration: the face did change.
  CHECK(mean_abs_diff(with.image, photo) > 1.0);
}

TEST_CASE("skin mask: skin-coloured and monochrome crops are protected, saturated blue is not", "[controls]") {
  Image skin(16, 16, 3), blue(16, 16, 3), grey(16, 16, 3);
  for (int i = 0; i < 256; ++i) {
    skin.pixels[size_t(i) * 3] = 200, skin.pixels[size_t(i) * 3 + 1] = 150, skin.pixels[size_t(i) * 3 + 2] = 120;
    blue.pixels[size_t(i) * 3] = 20, blue.pixels[size_t(i) * 3 + 1] = 40, blue.pixels[size_t(i) * 3 + 2] = 220;
    for (int c = 0; c < 3; ++c) grey.pixels[size_t(i) * 3 + c] = uint8_t(i);
  }
  CHECK(skin_mask(skin).at(8, 8) > 0.99f);
  CHECK(skin_mask(blue).at(8, 8) < 0.01f);
  CHECK(skin_mask(grey).at(8, 8) == 1.f);
}

TEST_CASE("modes: strong keeps less of the original below 100, detail adds restored detail", "[controls]") {
  const int S = tiny_gpen()->model().config().size;
  const Image original = downscale_area(colour_face(), S, S);
  const Image restored = tensor_to_face(tiny_gpen()->forward(faces_to_tensor({&original})), 0);
  Controls natural = plain(50), strong = plain(50), detail = plain(50);
  strong.mode = RestoreMode::Strong;
  detail.mode = RestoreMode::Detail;
  const Image fn = compose_face(original, restored, natural, false);
  const Image fs = compose_face(original, restored, strong, false);
  CHECK(mean_abs_diff(fs, restored) < 0.75 * mean_abs_diff(fn, restored));
  CHECK(face_blend_weight(strong) == Approx(0.75));
  strong.strength = natural.strength = 100;
  CHECK(compose_face(original, restored, strong, false).pixels == compose_face(original, restored, natural, false).pixels);
  // Detail: more high-frequency energy than natural at the same strength. Measured on a model-free
  // pair (the random model's output is clipped noise, where a boost mostly clips): a blurred face
  // as the original, the sharp one as the "restoration".
  const Image sharp = downscale_area(colour_face(), 128, 128);
  const FloatImage fb = gaussian_blur(to_float(sharp), 7, 1.5);
  Image soft(128, 128, 3);
  for (size_t i = 0; i < soft.pixels.size(); ++i) soft.pixels[i] = uint8_t(std::lround(fb.pixels[i]));
  auto laplacian_energy = [](const Image& img) {
    double e = 0;
    for (int y = 1; y < img.height - 1; ++y)
      for (int x = 1; x < img.width - 1; ++x)
        for (int c = 0; c < 3; ++c) {
          const int l = 4 * img.at(x, y, c) - img.at(x - 1, y, c) - img.at(x + 1, y, c) - img.at(x, y - 1, c) - img.at(x, y + 1, c);
          e += double(l) * l;
        }
    return e;
  };
  natural.strength = 50;
  const double e_natural = laplacian_energy(compose_face(soft, sharp, natural, false));
  const double e_detail = laplacian_energy(compose_face(soft, sharp, detail, false));
  INFO("laplacian energy natural " << e_natural << ", detail " << e_detail);
  CHECK(e_detail > 1.3 * e_natural);
}

TEST_CASE("the detail option brings the original's fine texture back into the restored face", "[controls]") {
  const int S = tiny_gpen()->model().config().size;
  const Image original = downscale_area(colour_face(), S, S);
  const Image restored = tensor_to_face(tiny_gpen()->forward(faces_to_tensor({&original})), 0);
  Controls with = plain(100), without = plain(100);
  with.detail = true;
  // The detail layer (image minus its blur) of the composed face is closer to the original's.
  auto detail_layer_distance = [&](const Image& face) {
    const FloatImage f = to_float(face), o = to_float(original);
    const FloatImage fb = gaussian_blur(f, 7, 1.0), ob = gaussian_blur(o, 7, 1.0);
    double d = 0;
    for (size_t i = 0; i < f.pixels.size(); ++i)
      d += std::fabs((f.pixels[i] - fb.pixels[i]) - (o.pixels[i] - ob.pixels[i]));
    return d;
  };
  CHECK(detail_layer_distance(compose_face(original, restored, with, false)) <
        0.9 * detail_layer_distance(compose_face(original, restored, without, false)));
}

TEST_CASE("denoise lowers the noise of a flat patch and keeps a strong edge", "[controls]") {
  Image patch(96, 64, 3);
  std::mt19937 rng(11);
  std::normal_distribution<double> noise(0, 8);
  for (int y = 0; y < patch.height; ++y)
    for (int x = 0; x < patch.width; ++x)
      for (int c = 0; c < 3; ++c)
        patch.at(x, y, c) = uint8_t(std::clamp(std::lround((x < 48 ? 60 : 190) + noise(rng)), 0L, 255L));
  CHECK(denoise_photo(patch, 0).pixels == patch.pixels);
  const Image d = denoise_photo(patch, 50);
  auto region_std = [](const Image& img, int x0, int x1) {
    double s = 0, s2 = 0, n = 0;
    for (int y = 0; y < img.height; ++y)
      for (int x = x0; x < x1; ++x)
        for (int c = 0; c < 3; ++c) s += img.at(x, y, c), s2 += double(img.at(x, y, c)) * img.at(x, y, c), ++n;
    return std::sqrt(s2 / n - (s / n) * (s / n));
  };
  INFO("noise std " << region_std(patch, 4, 40) << " -> " << region_std(d, 4, 40));
  CHECK(region_std(d, 4, 40) < 0.5 * region_std(patch, 4, 40));
  // The 130-level step survives: columns either side still differ by > 120 on average.
  double step = 0;
  for (int y = 0; y < d.height; ++y) step += d.at(49, y, 0) - d.at(46, y, 0);
  CHECK(step / d.height > 120);
}

TEST_CASE("sharpen raises edge contrast; 0 is the identity", "[controls]") {
  Image edge(64, 16, 3);
  for (int y = 0; y < 16; ++y)
    for (int x = 0; x < 64; ++x)
      for (int c = 0; c < 3; ++c) edge.at(x, y, c) = uint8_t(std::clamp(100 + (x - 32) * 10, 100, 160));  // a ramp
  CHECK(sharpen_photo(edge, 0).pixels == edge.pixels);
  const Image s = sharpen_photo(edge, 60);
  // Unsharp masking overshoots at both ends of the ramp: a wider range across the edge.
  int lo = 255, hi = 0;
  for (int x = 0; x < 64; ++x) lo = std::min(lo, int(s.at(x, 8, 0))), hi = std::max(hi, int(s.at(x, 8, 0)));
  CHECK(hi - lo > 64);
  CHECK(s.at(2, 8, 0) == 100);  // flat areas untouched
}

TEST_CASE("contrast and brightness: 0 is the identity, otherwise the documented curve", "[controls]") {
  for (int channels : {1, 3, 4}) {
    const Image img = random_image(37, 23, channels, uint32_t(channels));
    Image same = img;
    adjust_tone(same, 0, 0);
    CHECK(same.pixels == img.pixels);
    Image toned = img;
    adjust_tone(toned, 50, -20);  // gain 2, offset -25.5
    for (size_t i = 0; i < img.pixels.size(); ++i) {
      if (channels == 4 && i % 4 == 3) {
        CHECK(toned.pixels[i] == img.pixels[i]);  // alpha untouched
        continue;
      }
      const double want = std::clamp((img.pixels[i] - 128) * 2.0 + 128 - 25.5, 0.0, 255.0);
      REQUIRE(std::fabs(toned.pixels[i] - want) <= 0.5);
    }
  }
  Image img = random_image(20, 20, 3, 5);
  Image flat = img;
  adjust_tone(flat, -50, 0);
  CHECK(stddev(flat) < 0.6 * stddev(img));
}

TEST_CASE("photo filters run on the whole photo, also where no face is", "[controls]") {
  const Image noise = random_image(160, 120, 3, 9);  // no face in it
  RestoreOptions opt;
  opt.controls.brightness = 40;
  const RestoreResult r = restorer().restore(noise, opt);
  REQUIRE(r.faces.empty());
  Image want = noise;
  adjust_tone(want, 0, 40);
  CHECK(r.image.pixels == want.pixels);
}

namespace {
// protect_skin_colour per pixel, written out plainly from docs/CONTROLS.md's formulas: the
// vectorised rows must give exactly these bytes.
void reference_protect_skin(Image& restored, const Image& original, bool mono) {
  const auto u8 = [](float v) { return uint8_t(std::clamp(std::nearbyint(v), 0.f, 255.f)); };
  for (int y = 0; y < restored.height; ++y)
    for (int x = 0; x < restored.width; ++x) {
      uint8_t* p = restored.row(y) + size_t(x) * restored.channels;
      const uint8_t* o = original.row(y) + size_t(x) * 3;
      if (p[0] == o[0] && p[1] == o[1] && p[2] == o[2]) continue;
      float cb_o, cr_o, cb_f, cr_f;
      rgb_to_cbcr(o[0], o[1], o[2], &cb_o, &cr_o);
      rgb_to_cbcr(p[0], p[1], p[2], &cb_f, &cr_f);
      const float d = std::max({77.f - cb_o, cb_o - 127.f, 133.f - cr_o, cr_o - 173.f, 0.f});
      const float k = mono ? 1.f : std::clamp(1.f - (d - 8.f) / 16.f, 0.f, 1.f);
      if (!(k > 0.f)) continue;
      float luma = 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
      const float cb = cb_f + k * (cb_o - cb_f) - 128.f, cr = cr_f + k * (cr_o - cr_f) - 128.f;
      const float lo = std::max({-1.402f * cr, 0.344136f * cb + 0.714136f * cr, -1.772f * cb});
      const float hi = std::min({255.f - 1.402f * cr, 255.f + 0.344136f * cb + 0.714136f * cr, 255.f - 1.772f * cb});
      if (lo <= hi) luma = std::clamp(luma, lo, hi);
      p[0] = u8(luma + 1.402f * cr);
      p[1] = u8(luma - 0.344136f * cb - 0.714136f * cr);
      p[2] = u8(luma + 1.772f * cb);
    }
}
}  // namespace

TEST_CASE("skin protection's vectorised rows equal the per-pixel formula, byte for byte", "[controls]") {
  std::mt19937 rng(11);
  for (bool mono : {false, true})
  for (int channels : {3, 4})
    for (int width : {1, 15, 16, 17, 83}) {
      Image original(width, 23, 3), restored(width, 23, channels);
      for (uint8_t& v : original.pixels) v = uint8_t(60 + rng() % 150);  // many skin tones among them
      if (mono)  // a black-and-white original: every changed pixel takes its (grey) chroma
        for (size_t i = 0; i < original.pixels.size(); i += 3) original.pixels[i + 1] = original.pixels[i + 2] = original.pixels[i];
      for (int y = 0; y < 23; ++y)
        for (int x = 0; x < width; ++x)
          for (int c = 0; c < channels; ++c) {
            const uint8_t o = c < 3 ? original.row(y)[size_t(x) * 3 + c] : uint8_t(rng());
            // A third of the pixels untouched, the rest moved by up to +-60 (clipping included).
            const int moved = (x + y) % 3 == 0 || c == 3 ? o : int(o) + int(rng() % 121) - 60;
            restored.row(y)[size_t(x) * channels + c] = uint8_t(std::clamp(moved, 0, 255));
          }
      Image expected = restored;
      reference_protect_skin(expected, original, mono);
      protect_skin_colour(restored, original, Rect{0, 0, width, 23});
      INFO("width " << width << ", channels " << channels << (mono ? ", black-and-white original" : ""));
      CHECK(restored.pixels == expected.pixels);
    }
}

TEST_CASE("skin protection from the original's area alone equals it from the whole original", "[controls]") {
  std::mt19937 rng(12);
  const int W = 41, H = 29;
  Image original(W, H, 3);
  for (uint8_t& v : original.pixels) v = uint8_t(60 + rng() % 150);
  Image restored = original;
  for (uint8_t& v : restored.pixels) v = uint8_t(std::clamp(int(v) + int(rng() % 81) - 40, 0, 255));
  for (const Rect area : {Rect{0, 0, W, H}, Rect{5, 3, 17, 11}, Rect{W - 1, H - 1, 1, 1}}) {
    Image whole = restored, from_area = restored;
    protect_skin_colour(whole, original, area);
    protect_skin_colour_in(from_area, crop_image(original, area), area);
    INFO("area " << area.x << "," << area.y << " " << area.width << "x" << area.height);
    CHECK(from_area.pixels == whole.pixels);
    CHECK(whole.pixels != restored.pixels);  // the area's pixels did change
  }
  // An area that leaves the photo, or a crop of another size: a clear error.
  CHECK_THROWS_AS(protect_skin_colour_in(restored, crop_image(original, Rect{0, 0, 4, 4}), Rect{W - 2, 0, 4, 4}), Error);
  CHECK_THROWS_AS(protect_skin_colour_in(restored, crop_image(original, Rect{0, 0, 4, 4}), Rect{0, 0, 5, 4}), Error);
  CHECK_THROWS_AS(crop_image(original, Rect{-1, 0, 4, 4}), Error);
}
