// Face alignment: GPEN's reference points, the Umeyama similarity, and the aligned crop.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "core/error.h"
#include "core/face_align.h"
#include "core/image_ops.h"

using namespace gpen;

namespace {

Affine similarity(double scale, double degrees, double tx, double ty) {
  const double a = degrees * M_PI / 180.0;
  return Affine{scale * std::cos(a), -scale * std::sin(a), tx, scale * std::sin(a), scale * std::cos(a), ty};
}

Landmarks5 transformed(const Landmarks5& pts, const Affine& m) {
  Landmarks5 out;
  for (size_t i = 0; i < 5; ++i) apply_affine(m, pts[i].x, pts[i].y, out[i].x, out[i].y);
  return out;
}

void check_affine_near(const Affine& got, const Affine& want, double tol) {
  for (size_t i = 0; i < 6; ++i) {
    INFO("coefficient " << i);
    CHECK(got[i] == Approx(want[i]).margin(tol));
  }
}

}  // namespace

TEST_CASE("GPEN reference points: square, padded by 0.25, scaled by S / 168", "[align]") {
  const double tmpl[5][2] = {{30.29459953, 51.69630051}, {65.53179932, 51.50139999}, {48.02519989, 71.73660278},
                             {33.54930115, 92.3655014},  {62.72990036, 92.20410156}};
  for (int S : {256, 512, 1024}) {
    const Landmarks5 ref = gpen_reference_points(S);
    for (size_t i = 0; i < 5; ++i) {
      CHECK(ref[i].x == Approx((tmpl[i][0] + 36) * S / 168.0).epsilon(1e-12));
      CHECK(ref[i].y == Approx((tmpl[i][1] + 28) * S / 168.0).epsilon(1e-12));
    }
  }
  // The numbers GPEN prints for 512 (left eye, nose).
  const Landmarks5 r512 = gpen_reference_points(512);
  CHECK(r512[0].x == Approx(202.04068428).margin(1e-7));
  CHECK(r512[0].y == Approx(242.88396346).margin(1e-7));
  CHECK(r512[2].x == Approx(256.07679966).margin(1e-7));
  CHECK_THROWS_AS(gpen_reference_points(0), Error);
}

TEST_CASE("similarity_transform recovers a known rotation, scale and translation", "[align]") {
  const Landmarks5 ref = gpen_reference_points(512);
  std::mt19937 rng(7);
  std::uniform_real_distribution<double> angle(-170, 170), scale(0.05, 8), shift(-2000, 2000);
  for (int trial = 0; trial < 20; ++trial) {
    // Landmarks = T(reference); the alignment must map them back: forward = T^-1, inverse = T.
    const Affine T = similarity(scale(rng), angle(rng), shift(rng), shift(rng));
    const Landmarks5 landmarks = transformed(ref, T);
    const SimilarityTransform s = similarity_transform(landmarks, ref);
    check_affine_near(s.inverse, T, 1e-6 * std::max(1.0, std::fabs(T[2]) + std::fabs(T[5])));
    check_affine_near(s.forward, invert_affine(T), 1e-6);
    CHECK(s.scale == Approx(1.0 / std::hypot(T[0], T[3])).epsilon(1e-9));
    const Landmarks5 back = transformed(landmarks, s.forward);
    for (size_t i = 0; i < 5; ++i) {
      CHECK(back[i].x == Approx(ref[i].x).margin(1e-6));
      CHECK(back[i].y == Approx(ref[i].y).margin(1e-6));
    }
  }
}

TEST_CASE("similarity_transform is least squares and never reflects", "[align]") {
  const Landmarks5 ref = gpen_reference_points(512);
  // Noisy landmarks: the fit is not exact, but forward and inverse still invert each other.
  Landmarks5 noisy = transformed(ref, similarity(0.4, 10, 300, 200));
  noisy[2].x += 3;
  noisy[4].y -= 2;
  const SimilarityTransform s = similarity_transform(noisy, ref);
  check_affine_near(s.inverse, invert_affine(s.forward), 1e-9);
  // Residuals are small but non-zero; the mean of the mapped points equals the mean of the targets.
  const Landmarks5 mapped = transformed(noisy, s.forward);
  double mx = 0, my = 0, rx = 0, ry = 0;
  for (size_t i = 0; i < 5; ++i) mx += mapped[i].x, my += mapped[i].y, rx += ref[i].x, ry += ref[i].y;
  CHECK(mx == Approx(rx).epsilon(1e-12));
  CHECK(my == Approx(ry).epsilon(1e-12));

  // Mirrored landmarks (left/right swapped by an x flip): still a proper rotation, det > 0.
  Landmarks5 mirrored = ref;
  for (auto& p : mirrored) p.x = 1000 - p.x;
  const SimilarityTransform m = similarity_transform(mirrored, ref);
  CHECK(m.forward[0] * m.forward[4] - m.forward[1] * m.forward[3] > 0);
  CHECK(m.forward[0] == Approx(m.forward[4]));
  CHECK(m.forward[1] == Approx(-m.forward[3]));

  Landmarks5 same;
  for (auto& p : same) p = Point2{5, 5};
  CHECK_THROWS_AS(similarity_transform(same, ref), Error);
  CHECK_THROWS_AS(similarity_transform(std::vector<Point2>{{1, 2}}, std::vector<Point2>{{3, 4}}), Error);
  CHECK_THROWS_AS(similarity_transform(std::vector<Point2>{{1, 2}, {3, 4}}, std::vector<Point2>{{3, 4}}), Error);
  Landmarks5 nan_pts = ref;
  nan_pts[1].x = std::nan("");
  CHECK_THROWS_AS(similarity_transform(nan_pts, ref), Error);
}

TEST_CASE("align_face puts the landmarks on the reference points of the crop", "[align]") {
  // A dark photo with a bright 3x3 dot at each landmark of a rotated, scaled face.
  Image photo(800, 600, 3);
  const Affine T = similarity(0.6, -15, 250, 120);  // reference (512 crop) -> photo
  const Landmarks5 ref = gpen_reference_points(512);
  const Landmarks5 landmarks = transformed(ref, T);
  for (const Point2& p : landmarks)
    for (int dy = -1; dy <= 1; ++dy)
      for (int dx = -1; dx <= 1; ++dx)
        for (int c = 0; c < 3; ++c) photo.at(int(std::lround(p.x)) + dx, int(std::lround(p.y)) + dy, c) = 255;

  const AlignedFace face = align_face(photo, landmarks, 512);
  REQUIRE((face.crop.width == 512 && face.crop.height == 512 && face.crop.channels == 3));
  check_affine_near(face.inverse, T, 1e-6);
  CHECK(face.crop.pixels == warp_affine(photo, face.forward, 512, 512, WarpInterpolation::Linear).pixels);
  for (const Point2& r : ref) {
    INFO("reference point " << r.x << ", " << r.y);
    CHECK(face.crop.at(int(std::lround(r.x)), int(std::lround(r.y)), 0) > 100);
  }
  CHECK(face.crop.at(20, 20, 0) == 0);

  const AlignedFace cubic = align_face(photo, landmarks, 256, WarpInterpolation::Cubic);
  CHECK((cubic.crop.width == 256 && cubic.crop.height == 256));
  CHECK_THROWS_AS(align_face(Image(), landmarks, 512), Error);
}
