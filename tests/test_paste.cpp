// Paste-back: the rectangle mask, equality with a straightforward full-frame version of GPEN's
// loop, untouched pixels outside the masks, overlapping faces, RGBA, the mask hook, and speed on
// the 4032x3024 selfie.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <random>

#include "core/error.h"
#include "core/face_align.h"
#include "core/image.h"
#include "core/image_ops.h"
#include "core/paste_back.h"
#include "core/thread_pool.h"

using namespace gpen;

namespace {

Image noise(int w, int h, int c, uint32_t seed) {
  Image img(w, h, c);
  std::mt19937 rng(seed);
  for (auto& p : img.pixels) p = uint8_t(rng() & 0xFF);
  return img;
}

Image constant(int w, int h, int c, uint8_t v) {
  Image img(w, h, c);
  for (auto& p : img.pixels) p = v;
  return img;
}

Affine similarity(double scale, double degrees, double tx, double ty) {
  const double a = degrees * M_PI / 180.0;
  return Affine{scale * std::cos(a), -scale * std::sin(a), tx, scale * std::sin(a), scale * std::cos(a), ty};
}

// A face of crop size S placed in the photo by `inverse` (crop -> photo), with a box of the given size.
PasteFace make_face(const Image& photo, int S, const Affine& inverse, float box_size, uint32_t seed) {
  PasteFace f;
  f.inverse = inverse;
  f.aligned = warp_affine(photo, invert_affine(inverse), S, S);
  f.restored = noise(S, S, 3, seed);
  double cx, cy;
  apply_affine(inverse, S / 2.0, S / 2.0, cx, cy);
  f.box = {float(cx - box_size / 2), float(cy - box_size / 2), float(cx + box_size / 2), float(cy + box_size / 2)};
  return f;
}

// GPEN's loop written out over the whole frame, from the public building blocks.
Image reference_paste(const Image& photo, const std::vector<PasteFace>& faces, double strength,
                      WarpInterpolation interp) {
  const int W = photo.width, H = photo.height;
  FloatImage full_mask(W, H, 1, 0.f);
  Image full_img(W, H, 3);
  for (const PasteFace& f : faces) {
    const int S = f.restored.width;
    const FloatImage tmp_mask = warp_affine(gpen_rectangle_mask(S), f.inverse, W, H, interp);
    const bool small = std::min(f.box[2] - f.box[0], f.box[3] - f.box[1]) < 100;
    const Image ef = add_weighted(small ? smooth_3x3(f.restored) : f.restored, strength, f.aligned);
    const Image tmp_img = warp_affine(ef, f.inverse, W, H, interp);
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x)
        if (tmp_mask.at(x, y) - full_mask.at(x, y) > 0) {
          full_mask.at(x, y) = tmp_mask.at(x, y);
          for (int c = 0; c < 3; ++c) full_img.at(x, y, c) = tmp_img.at(x, y, c);
        }
  }
  Image out = photo;
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x) {
      const float m = full_mask.at(x, y);
      for (int c = 0; c < 3; ++c) {
        const float v = float(photo.at(x, y, c)) * (1.f - m) + float(full_img.at(x, y, c)) * m;
        out.at(x, y, c) = uint8_t(std::clamp(std::nearbyint(std::fabs(v)), 0.f, 255.f));
      }
    }
  return out;
}

// paste_faces equals reference_paste for both interpolations and each strength (3 threads).
void check_like_reference(const Image& photo, const std::vector<PasteFace>& faces, const std::vector<double>& strengths) {
  ThreadPool pool(3);
  for (WarpInterpolation interp : {WarpInterpolation::Linear, WarpInterpolation::Cubic})
    for (double strength : strengths) {
      PasteOptions o;
      o.strength = strength;
      o.interpolation = interp;
      o.pool = &pool;
      INFO("strength " << strength << (interp == WarpInterpolation::Linear ? " linear" : " cubic"));
      CHECK(paste_faces(photo, faces, o).pixels == reference_paste(photo, faces, strength, interp).pixels);
    }
}

struct ConstantMask : FaceMaskSource {
  float value;
  int size_offset = 0;
  explicit ConstantMask(float v) : value(v) {}
  FloatImage face_mask(const Image& crop) const override {
    return FloatImage(crop.width + size_offset, crop.height, 1, value);
  }
};

}  // namespace

TEST_CASE("GPEN rectangle mask: 1 in the middle, ~0 at the corners, symmetric", "[paste]") {
  const FloatImage m = gpen_rectangle_mask(512);
  REQUIRE((m.width == 512 && m.height == 512 && m.channels == 1));
  CHECK(m.at(256, 256) == Approx(1.0f).margin(1e-5));
  CHECK(m.at(100, 400) == Approx(1.0f).margin(1e-5));
  CHECK(m.at(0, 0) < 1e-6f);
  CHECK(m.at(511, 511) < 1e-6f);
  CHECK(m.at(0, 256) < 1e-3f);
  // The step sits at the rectangle's edge (pixel 26 is inside): about half way there.
  CHECK(m.at(26, 256) > 0.4f);
  CHECK(m.at(26, 256) < 0.65f);
  for (int x = 1; x <= 256; ++x) REQUIRE(m.at(x, 256) >= m.at(x - 1, 256));
  // The rectangle (26..486) is centred on pixel 256: mirror x -> 512 - x, and transpose.
  double worst = 0;
  for (int y = 0; y < 512; y += 3)
    for (int x = 1; x < 512; ++x) {
      worst = std::max(worst, double(std::fabs(m.at(x, y) - m.at(512 - x, y))));
      worst = std::max(worst, double(std::fabs(m.at(x, y) - m.at(y, x))));
    }
  CHECK(worst < 2e-5);  // float summation order differs between the row and the column pass

  const FloatImage m256 = gpen_rectangle_mask(256);
  REQUIRE(m256.width == 256);
  CHECK(m256.at(128, 128) == Approx(1.0f).margin(1e-5));
  CHECK(m256.at(0, 0) < 1e-6f);
  RectangleMask cached;
  CHECK(cached.face_mask(Image(512, 512, 3)).pixels == m.pixels);
  CHECK(cached.face_mask(Image(512, 512, 3)).pixels == m.pixels);
}

TEST_CASE("add_weighted rounds like cv2.addWeighted", "[paste]") {
  Image a(3, 1, 1), b(3, 1, 1);
  a.pixels = {200, 101, 255};
  b.pixels = {100, 0, 255};
  CHECK(add_weighted(a, 0.5, b).pixels == std::vector<uint8_t>{150, 50, 255});  // 50.5 -> 50 (half to even)
  CHECK(add_weighted(a, 1.0, b).pixels == a.pixels);
  CHECK(add_weighted(a, 0.0, b).pixels == b.pixels);
  CHECK_THROWS_AS(add_weighted(a, 0.5, Image(2, 1, 1)), Error);
}

TEST_CASE("paste_faces equals GPEN's full-frame loop", "[paste]") {
  const Image photo = noise(300, 220, 3, 1);
  std::vector<PasteFace> faces;
  faces.push_back(make_face(photo, 128, similarity(0.9, 10, 40, 30), 150.f, 2));   // large face
  faces.push_back(make_face(photo, 128, similarity(0.7, -25, 110, 60), 60.f, 3));  // small: smoothed, overlaps
  faces.push_back(make_face(photo, 64, similarity(1.5, 5, 200, 120), 120.f, 4));   // partly outside the photo
  check_like_reference(photo, faces, {1.0, 0.5, 0.25});
}

TEST_CASE("one face (the banded path without a composite) equals GPEN's full-frame loop", "[paste]") {
  const Image photo = noise(333, 271, 3, 5);
  for (const Affine& placed : {similarity(1.7, 12, 30, 20), similarity(2.4, -8, 150, -60)})  // inside; cut off
    check_like_reference(photo, {make_face(photo, 96, placed, 150.f, 6)}, {1.0, 0.4});
}

TEST_CASE("strength 0 leaves the photo unchanged byte for byte", "[paste]") {
  const Image photo = noise(200, 150, 3, 5);
  std::vector<PasteFace> faces{make_face(photo, 128, similarity(0.8, 12, 30, 20), 150.f, 6)};
  PasteOptions o;
  o.strength = 0;
  CHECK(paste_faces(photo, faces, o).pixels == photo.pixels);
  CHECK(paste_faces(photo, {}, PasteOptions{}).pixels == photo.pixels);
}

TEST_CASE("pixels outside every warped mask are byte-identical for any strength", "[paste]") {
  const Image photo = noise(260, 200, 3, 7);
  const std::vector<PasteFace> faces{make_face(photo, 128, similarity(0.6, 30, 80, 20), 150.f, 8),
                                     make_face(photo, 128, similarity(0.5, -5, 150, 90), 40.f, 9)};
  FloatImage any_mask(260, 200, 1, 0.f);
  for (const PasteFace& f : faces) {
    const FloatImage m = warp_affine(gpen_rectangle_mask(128), f.inverse, 260, 200);
    for (size_t i = 0; i < m.pixels.size(); ++i) any_mask.pixels[i] = std::max(any_mask.pixels[i], m.pixels[i]);
  }
  for (double strength : {0.1, 0.6, 1.0}) {
    PasteOptions o;
    o.strength = strength;
    const Image out = paste_faces(photo, faces, o);
    int outside = 0, changed_outside = 0, changed_inside = 0;
    for (int y = 0; y < 200; ++y)
      for (int x = 0; x < 260; ++x) {
        const bool differs = out.at(x, y, 0) != photo.at(x, y, 0) || out.at(x, y, 1) != photo.at(x, y, 1) ||
                             out.at(x, y, 2) != photo.at(x, y, 2);
        if (any_mask.at(x, y) <= 0) {
          ++outside;
          changed_outside += differs;
        } else {
          changed_inside += differs;
        }
      }
    INFO("strength " << strength);
    CHECK(outside > 10000);
    CHECK(changed_outside == 0);
    CHECK(changed_inside > 1000);
  }
}

TEST_CASE("overlapping faces: each pixel takes the face with the larger mask", "[paste]") {
  // Black photo, two flat faces (200 and 50): the output is round(colour * mask) of the winner.
  const Image photo(240, 200, 3);
  PasteFace a = make_face(photo, 128, similarity(1.0, 0, 20, 30), 200.f, 0);
  PasteFace b = make_face(photo, 128, similarity(1.0, 20, 90, 40), 200.f, 0);
  a.restored = constant(128, 128, 3, 200);
  b.restored = constant(128, 128, 3, 50);
  const Image out = paste_faces(photo, {a, b}, PasteOptions{});
  const FloatImage ma = warp_affine(gpen_rectangle_mask(128), a.inverse, 240, 200);
  const FloatImage mb = warp_affine(gpen_rectangle_mask(128), b.inverse, 240, 200);
  int a_wins = 0, b_wins = 0, checked = 0;
  bool all_ok = true;
  for (int y = 0; y < 200; ++y)
    for (int x = 0; x < 240; ++x) {
      const float fa = ma.at(x, y), fb = mb.at(x, y);
      if (fa < 0.2f || fb < 0.2f || std::fabs(fa - fb) < 0.05f) continue;  // both clearly inside, clear winner
      ++checked;
      const bool b_larger = fb > fa;
      (b_larger ? b_wins : a_wins)++;
      const float want = std::nearbyint((b_larger ? 50.f : 200.f) * std::max(fa, fb));
      all_ok = all_ok && out.at(x, y, 1) == uint8_t(want);
    }
  CHECK(checked > 500);
  CHECK(a_wins > 100);
  CHECK(b_wins > 100);
  CHECK(all_ok);
}

TEST_CASE("RGBA photos keep their alpha channel", "[paste]") {
  const Image rgba = noise(180, 140, 4, 11);
  const RgbAndAlpha parts = split_alpha(rgba);
  const std::vector<PasteFace> faces{make_face(parts.rgb, 128, similarity(0.8, 8, 30, 10), 150.f, 12)};
  const Image out = paste_faces(rgba, faces, PasteOptions{});
  REQUIRE(out.channels == 4);
  const RgbAndAlpha out_parts = split_alpha(out);
  CHECK(out_parts.alpha.pixels == parts.alpha.pixels);
  CHECK(out_parts.rgb.pixels == paste_faces(parts.rgb, faces, PasteOptions{}).pixels);
  CHECK(out_parts.rgb.pixels != parts.rgb.pixels);
  CHECK_THROWS_AS(paste_faces(Image(10, 10, 1), faces, PasteOptions{}), Error);
}

TEST_CASE("the mask source is a parameter (hook for face parsing)", "[paste]") {
  const Image photo = noise(200, 160, 3, 13);
  const std::vector<PasteFace> faces{make_face(photo, 128, similarity(1.0, 0, 30, 20), 150.f, 14)};
  ConstantMask full(1.f);
  PasteOptions o;
  o.mask = &full;
  const Image out = paste_faces(photo, faces, o);
  // With mask 1 the pasted pixels are exactly the warped restored face (a pure translation here).
  CHECK(out.at(30 + 64, 20 + 64, 0) == faces[0].restored.at(64, 64, 0));
  CHECK(out.at(30 + 10, 20 + 100, 2) == faces[0].restored.at(10, 100, 2));
  CHECK(out.at(5, 5, 0) == photo.at(5, 5, 0));

  ConstantMask none(0.f);
  o.mask = &none;
  CHECK(paste_faces(photo, faces, o).pixels == photo.pixels);

  ConstantMask wrong(1.f);
  wrong.size_offset = 1;
  o.mask = &wrong;
  CHECK_THROWS_WITH(paste_faces(photo, faces, o), Catch::Contains("mask"));

  std::vector<PasteFace> bad = faces;
  bad[0].aligned = Image(64, 64, 3);
  CHECK_THROWS_WITH(paste_faces(photo, bad, PasteOptions{}), Catch::Contains("aligned"));
}

TEST_CASE("align + paste on the 4032x3024 selfie touches only the face region", "[paste][perf]") {
  const std::string path = std::string(GPEN_SOURCE_DIR) + "/../shared/images/selfie_child_4032x3024.jpg";
  const Image photo = split_alpha(load_image(path)).rgb;
  REQUIRE(photo.width * photo.height == 4032 * 3024);
  // A large face: the 512 crop covers ~1400 px of the photo.
  const Affine T = similarity(1400.0 / 512, 8, 800, 1200);
  Landmarks5 landmarks;
  const Landmarks5 ref = gpen_reference_points(512);
  for (size_t i = 0; i < 5; ++i) apply_affine(T, ref[i].x, ref[i].y, landmarks[i].x, landmarks[i].y);

  ThreadPool pool(2);
  using Clock = std::chrono::steady_clock;
  auto ms = [](Clock::time_point a, Clock::time_point b) {
    return std::chrono::duration<double, std::milli>(b - a).count();
  };
  const auto t0 = Clock::now();
  const AlignedFace face = align_face(photo, landmarks, 512, WarpInterpolation::Linear, &pool);
  const auto t1 = Clock::now();
  PasteFace pf{noise(512, 512, 3, 15), face.crop, face.inverse, {800.f, 1200.f, 2200.f, 2600.f}};
  PasteOptions o;
  o.pool = &pool;
  RectangleMask masks;
  o.mask = &masks;
  masks.face_mask(pf.restored);  // build the cached mask outside the timing
  Image out = photo;
  Image out_cubic = photo;  // copies made outside the timing: paste_faces_into works in place
  const auto t2 = Clock::now();
  paste_faces_into(out, {pf}, o);
  const auto t3 = Clock::now();
  o.interpolation = WarpInterpolation::Cubic;
  paste_faces_into(out_cubic, {pf}, o);
  const auto t4 = Clock::now();
  const Image copied = paste_faces(photo, {pf}, PasteOptions{});
  const auto t5 = Clock::now();
  WARN("selfie 4032x3024, one ~1400 px face, 2 threads: align " << ms(t0, t1) << " ms; paste in place: linear "
                                                               << ms(t2, t3) << " ms, cubic " << ms(t3, t4)
                                                               << " ms; paste_faces with its photo copy, serial: "
                                                               << ms(t4, t5) << " ms");
  CHECK(copied.pixels == out.pixels);

  const Rect support = warp_affine_support(face.inverse, 512, 512, photo.width, photo.height);
  bool outside_same = true;
  for (int y = 0; y < photo.height; y += 7)
    for (int x = 0; x < photo.width; x += 5) {
      if (x >= support.x && x < support.right() && y >= support.y && y < support.bottom()) continue;
      for (int c = 0; c < 3; ++c) outside_same = outside_same && out.at(x, y, c) == photo.at(x, y, c);
    }
  CHECK(outside_same);
  CHECK(out.pixels != photo.pixels);
  CHECK(out_cubic.pixels != out.pixels);
}
