// Pixel operations: bilinear resize (hand-computed values), affine warps (identity, shifts,
// regions of interest, round trips), Gaussian blur, the 3x3 filter and rectangle filling.
// Bit-exactness against OpenCV 4.6 itself was checked outside the test suite (OpenCV is not a
// dependency); these tests pin the documented behaviour.
#include <catch2/catch.hpp>

#include <array>
#include <chrono>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/face_tensor.h"
#include "core/image.h"
#include "core/image_ops.h"
#include "core/rounding.h"
#include "core/thread_pool.h"

using namespace gpen;

namespace {

FloatImage float_row(const std::vector<float>& values) {
  FloatImage img(int(values.size()), 1, 1);
  img.pixels = values;
  return img;
}

Image u8_row(const std::vector<int>& values) {
  Image img(int(values.size()), 1, 1);
  for (size_t i = 0; i < values.size(); ++i) img.pixels[i] = uint8_t(values[i]);
  return img;
}

std::vector<int> ints(const Image& img) { return std::vector<int>(img.pixels.begin(), img.pixels.end()); }

Image noise(int w, int h, int c, uint32_t seed) {
  Image img(w, h, c);
  std::mt19937 rng(seed);
  for (auto& p : img.pixels) p = uint8_t(rng() & 0xFF);
  return img;
}

// Smooth test pattern: low-frequency sinusoids per channel.
Image smooth_pattern(int w, int h) {
  Image img(w, h, 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        img.at(x, y, c) =
            uint8_t(std::lround(127.5 + 100 * std::sin(0.05 * x + 0.8 * c) * std::cos(0.04 * y - 0.3 * c)));
  return img;
}

Affine similarity(double scale, double degrees, double tx, double ty) {
  const double a = degrees * M_PI / 180.0;
  return Affine{scale * std::cos(a), -scale * std::sin(a), tx, scale * std::sin(a), scale * std::cos(a), ty};
}

Image crop(const Image& img, const Rect& r) {
  Image out(r.width, r.height, img.channels);
  for (int y = 0; y < r.height; ++y)
    for (int x = 0; x < r.width; ++x)
      for (int c = 0; c < img.channels; ++c) {
        const int sx = r.x + x, sy = r.y + y;
        const bool inside = sx >= 0 && sy >= 0 && sx < img.width && sy < img.height;
        out.at(x, y, c) = inside ? img.at(sx, sy, c) : 0;
      }
  return out;
}

}  // namespace

TEST_CASE("resize_bilinear matches hand-computed half-pixel-centre values", "[image]") {
  // Downscale by 2: sources at 0.5 and 2.5.
  CHECK(resize_bilinear(float_row({0, 10, 20, 30}), 2, 1).pixels == std::vector<float>{5, 25});
  // Upscale by 2: sources at -0.25 (clamped to 0), 0.25, 0.75, 1.25 (clamped to the last pixel).
  CHECK(resize_bilinear(float_row({0, 100}), 4, 1).pixels == std::vector<float>{0, 25, 75, 100});
  // 3 -> 2 (scale 1.5): sources at 0.25 and 1.75.
  CHECK(resize_bilinear(float_row({0, 30, 60}), 2, 1).pixels == std::vector<float>{7.5f, 52.5f});

  // uint8 rounds half to even (torch.round / cvRound) and clips.
  CHECK(ints(resize_bilinear(u8_row({0, 10}), 4, 1)) == std::vector<int>{0, 2, 8, 10});
  CHECK(ints(resize_bilinear(u8_row({0, 30, 60}), 2, 1)) == std::vector<int>{8, 52});

  // 2-D: [[0, 100], [200, 255]] -> 4 x 4, rows blended after columns.
  Image square(2, 2, 1);
  square.pixels = {0, 100, 200, 255};
  Image big = resize_bilinear(square, 4, 4);
  CHECK(big.at(0, 0, 0) == 0);
  CHECK(big.at(1, 1, 0) == 72);   // 0.75 * 25 + 0.25 * 213.75 = 72.1875
  CHECK(big.at(2, 1, 0) == 117);  // 0.75 * 75 + 0.25 * 241.25 = 116.5625
  CHECK(big.at(3, 3, 0) == 255);
  FloatImage bigf = resize_bilinear(to_float(square), 4, 4);
  CHECK(bigf.at(1, 1) == Approx(72.1875f));
  CHECK(bigf.at(2, 1) == Approx(116.5625f));

  // Same size is the identity; channels are independent.
  Image img = noise(13, 7, 3, 1);
  CHECK(resize_bilinear(img, 13, 7).pixels == img.pixels);
  CHECK_THROWS_AS(resize_bilinear(img, 0, 7), Error);
}

TEST_CASE("warp_affine: identity, integer shifts and a half-pixel shift", "[image]") {
  const Image img = noise(31, 17, 3, 2);
  for (WarpInterpolation interp : {WarpInterpolation::Linear, WarpInterpolation::Cubic}) {
    CHECK(warp_affine(img, Affine{1, 0, 0, 0, 1, 0}, 31, 17, interp).pixels == img.pixels);
    Image shifted = warp_affine(img, Affine{1, 0, 3, 0, 1, -2}, 31, 17, interp);
    bool ok = true;
    for (int y = 0; y < 17; ++y)
      for (int x = 0; x < 31; ++x)
        for (int c = 0; c < 3; ++c) {
          const int sx = x - 3, sy = y + 2;
          const int want = sx >= 0 && sy < 17 ? img.at(sx, sy, c) : 0;
          ok = ok && shifted.at(x, y, c) == want;
        }
    CHECK(ok);
  }
  // Bilinear half-pixel shift averages neighbours: (0 + 64) / 2, (64 + 128) / 2.
  Image ramp = u8_row({0, 64, 128, 192});
  Image half = warp_affine(ramp, Affine{1, 0, 0.5, 0, 1, 0}, 4, 1, WarpInterpolation::Linear);
  CHECK(half.at(1, 0, 0) == 32);
  CHECK(half.at(2, 0, 0) == 96);
  CHECK(half.at(3, 0, 0) == 160);

  // Float planes are not rounded.
  FloatImage plane = float_row({0, 1, 2, 3});
  FloatImage fhalf = warp_affine(plane, Affine{1, 0, 0.5, 0, 1, 0}, 4, 1, WarpInterpolation::Linear);
  CHECK(fhalf.at(2, 0) == Approx(1.5f));
}

TEST_CASE("warp_affine_roi equals the same part of the full warp; zero outside the support", "[image]") {
  const Image img = noise(90, 70, 3, 3);
  const FloatImage plane = to_float(noise(90, 70, 1, 4));
  const Affine M = similarity(1.7, 25, 40, -10);
  const int W = 220, H = 180;
  ThreadPool pool(2);
  for (WarpInterpolation interp : {WarpInterpolation::Linear, WarpInterpolation::Cubic}) {
    const Image everything = warp_affine_roi(img, M, Rect{0, 0, W, H}, interp);
    CHECK(warp_affine(img, M, W, H, interp).pixels == everything.pixels);
    CHECK(warp_affine(img, M, W, H, interp, &pool).pixels == everything.pixels);
    for (Rect r : {Rect{10, 20, 50, 40}, Rect{-5, -7, 30, 30}, Rect{200, 170, 40, 30}, Rect{0, 0, W, H}})
      CHECK(warp_affine_roi(img, M, r, interp).pixels == crop(everything, r).pixels);

    const Rect support = warp_affine_support(M, 90, 70, W, H);
    CHECK(!support.empty());
    CHECK(support.width < W);
    bool zero_outside = true;
    for (int y = 0; y < H; ++y)
      for (int x = 0; x < W; ++x) {
        const bool inside = x >= support.x && x < support.right() && y >= support.y && y < support.bottom();
        for (int c = 0; c < 3 && !inside; ++c) zero_outside = zero_outside && everything.at(x, y, c) == 0;
      }
    CHECK(zero_outside);

    const FloatImage fall = warp_affine_roi(plane, M, Rect{0, 0, W, H}, interp);
    CHECK(warp_affine(plane, M, W, H, interp, &pool).pixels == fall.pixels);
  }
}

TEST_CASE("warp then inverse warp reproduces a smooth image", "[image]") {
  const Image img = smooth_pattern(200, 160);
  const Affine M = similarity(1.3, 20, 120, 30);
  for (WarpInterpolation interp : {WarpInterpolation::Linear, WarpInterpolation::Cubic}) {
    const Image forward = warp_affine(img, M, 480, 420, interp);
    const Image back = warp_affine(forward, invert_affine(M), 200, 160, interp);
    double sum = 0;
    int worst = 0, n = 0;
    for (int y = 10; y < 150; ++y)
      for (int x = 10; x < 190; ++x)
        for (int c = 0; c < 3; ++c, ++n) {
          const int d = std::abs(int(back.at(x, y, c)) - int(img.at(x, y, c)));
          sum += d;
          worst = std::max(worst, d);
        }
    INFO((interp == WarpInterpolation::Linear ? "linear" : "cubic") << ": mean " << sum / n << ", max " << worst);
    CHECK(sum / n < 1.0);
    CHECK(worst <= 6);
  }
}

TEST_CASE("affine helpers and rectangles", "[image]") {
  const Affine M = similarity(2.5, -40, 7, 9);
  const Affine inv = invert_affine(M);
  double x, y, bx, by;
  apply_affine(M, 3.25, -8.5, x, y);
  apply_affine(inv, x, y, bx, by);
  CHECK(bx == Approx(3.25).margin(1e-12));
  CHECK(by == Approx(-8.5).margin(1e-12));
  CHECK_THROWS_AS(invert_affine(Affine{1, 2, 0, 2, 4, 0}), Error);

  CHECK(intersect(Rect{0, 0, 10, 10}, Rect{5, 5, 10, 10}).width == 5);
  CHECK(intersect(Rect{0, 0, 10, 10}, Rect{20, 5, 10, 10}).empty());
  Rect u = unite(Rect{0, 0, 10, 10}, Rect{5, 5, 10, 10});
  CHECK((u.x == 0 && u.y == 0 && u.width == 15 && u.height == 15));
  CHECK(unite(Rect{}, Rect{1, 2, 3, 4}).x == 1);
}

TEST_CASE("gaussian_kernel and gaussian_blur", "[image]") {
  for (auto [ksize, sigma] : std::vector<std::pair<int, double>>{{101, 4.0}, {31, 5.0}, {11, 0.0}, {3, 1.0}}) {
    const std::vector<float> k = gaussian_kernel(ksize, sigma);
    double sum = 0;
    for (int i = 0; i < ksize; ++i) {
      sum += k[size_t(i)];
      CHECK(k[size_t(i)] == k[size_t(ksize - 1 - i)]);
    }
    CHECK(sum == Approx(1.0).margin(1e-6));
  }
  CHECK(gaussian_kernel(5, 0) == std::vector<float>{0.0625f, 0.25f, 0.375f, 0.25f, 0.0625f});
  CHECK_THROWS_AS(gaussian_kernel(4, 1.0), Error);

  // Constant in, constant out (reflect-101 borders).
  FloatImage flat(40, 30, 1, 0.75f);
  for (float v : gaussian_blur(flat, 101, 4.0).pixels) REQUIRE(v == Approx(0.75f).margin(1e-6));

  // An impulse spreads into the outer product of the kernel.
  FloatImage dot(21, 21, 1, 0.f);
  dot.at(10, 10) = 1.f;
  const std::vector<float> k = gaussian_kernel(7, 1.5);
  FloatImage blurred = gaussian_blur(dot, 7, 1.5);
  for (int dy = -3; dy <= 3; ++dy)
    for (int dx = -3; dx <= 3; ++dx)
      CHECK(blurred.at(10 + dx, 10 + dy) == Approx(k[size_t(dx + 3)] * k[size_t(dy + 3)]).margin(1e-7));
  CHECK(blurred.at(5, 10) == 0.f);
}

TEST_CASE("filter2d_3x3 with GPEN's smoothing kernel", "[image]") {
  auto impulse = [](int value) {
    Image img(5, 5, 1);
    img.at(2, 2, 0) = uint8_t(value);
    return img;
  };
  Image a = smooth_3x3(impulse(16));
  CHECK((a.at(2, 2, 0) == 4 && a.at(1, 2, 0) == 2 && a.at(2, 3, 0) == 2 && a.at(1, 1, 0) == 1 && a.at(0, 0, 0) == 0));
  Image b = smooth_3x3(impulse(24));  // diagonals 1.5 -> 2
  CHECK((b.at(2, 2, 0) == 6 && b.at(2, 1, 0) == 3 && b.at(3, 3, 0) == 2));
  Image c = smooth_3x3(impulse(40));  // diagonals 2.5 -> 2 (half to even), centre 10, sides 5
  CHECK((c.at(2, 2, 0) == 10 && c.at(3, 2, 0) == 5 && c.at(1, 3, 0) == 2));
  Image d = smooth_3x3(impulse(8));   // diagonals 0.5 -> 0
  CHECK((d.at(2, 2, 0) == 2 && d.at(2, 1, 0) == 1 && d.at(1, 1, 0) == 0));

  // Reflect-101: in a single row every tap row is the row itself: [1, 2, 1] / 4 horizontally,
  // and x = -1 reads x = 1.
  CHECK(ints(smooth_3x3(u8_row({0, 160, 0}))) == std::vector<int>{80, 80, 80});

  Image flat(9, 6, 3);
  for (auto& p : flat.pixels) p = 77;
  CHECK(smooth_3x3(flat).pixels == flat.pixels);
}

TEST_CASE("fill_rectangle fills inclusive corners and clips", "[image]") {
  FloatImage plane(10, 8, 1, 0.f);
  fill_rectangle(plane, 2, 3, 5, 4, 1.f);
  int count = 0;
  for (float v : plane.pixels) count += v == 1.f;
  CHECK(count == 4 * 2);
  CHECK((plane.at(2, 3) == 1.f && plane.at(5, 4) == 1.f && plane.at(6, 4) == 0.f && plane.at(2, 5) == 0.f));
  fill_rectangle(plane, -5, -5, 100, 0, 0.5f);
  CHECK((plane.at(0, 0) == 0.5f && plane.at(9, 0) == 0.5f && plane.at(0, 1) == 0.f));
}

TEST_CASE("warp_affine on a 4032x3024 photo only computes the face footprint", "[image][perf]") {
  Image photo(4032, 3024, 3);
  for (size_t i = 0; i < photo.pixels.size(); ++i) photo.pixels[i] = uint8_t(i * 2654435761u >> 24);
  Image crop512 = noise(512, 512, 3, 5);
  // A 512 crop pasted back as a ~1400 px face: the support is ~1500 x 1500 of the 12 Mpx photo.
  const Affine inv = similarity(1400.0 / 512, 12, 1300, 900);
  const Rect roi = warp_affine_support(inv, 512, 512, 4032, 3024);
  CHECK(double(roi.width) * roi.height < 0.25 * 4032.0 * 3024.0);
  ThreadPool pool(2);
  auto t0 = std::chrono::steady_clock::now();
  Image part = warp_affine_roi(crop512, inv, roi, WarpInterpolation::Linear, &pool);
  auto t1 = std::chrono::steady_clock::now();
  Image part_cubic = warp_affine_roi(crop512, inv, roi, WarpInterpolation::Cubic, &pool);
  auto t2 = std::chrono::steady_clock::now();
  auto ms = [](auto a, auto b) { return std::chrono::duration<double, std::milli>(b - a).count(); };
  WARN("warp 512 -> " << roi.width << "x" << roi.height << " region of 4032x3024: linear " << ms(t0, t1)
                      << " ms, cubic " << ms(t1, t2) << " ms (2 threads)");
  CHECK(part.width == roi.width);
  CHECK(part_cubic.height == roi.height);
}

TEST_CASE("saturate_round_u8 equals clamp(nearbyint(v), 0, 255), ties to even, without libm", "[image_ops]") {
  const auto expected = [](float v) { return uint8_t(std::clamp(std::nearbyint(v), 0.f, 255.f)); };
  // Every quarter step from -300 to 600 (ties at .5 included), then random floats and extremes.
  for (int q = -1200; q <= 2400; ++q) {
    const float v = float(q) / 4.f;
    INFO(v);
    REQUIRE(saturate_round_u8(v) == expected(v));
  }
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> any(-1000.f, 1000.f);
  for (int i = 0; i < 200000; ++i) {
    const float v = any(rng);
    REQUIRE(saturate_round_u8(v) == expected(v));
  }
  for (float v : {0.49999997f, 0.5f, 1.5f, 2.5f, 254.5f, 255.49998f, 255.5f, -0.5f, -0.50001f, 1e30f, -1e30f,
                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity()})
    CHECK(saturate_round_u8(v) == expected(v));
  CHECK(saturate_round_u8(std::numeric_limits<float>::quiet_NaN()) == 0);
}

TEST_CASE("face tensors: GPEN's scaling in and out, exactly, for any face count and pool", "[image_ops]") {
  std::mt19937 rng(21);
  ThreadPool pool(3);
  const int S = 37;
  std::vector<Image> faces(5, Image(S, S, 3));
  std::vector<const Image*> ptrs;
  for (Image& f : faces) {
    for (uint8_t& v : f.pixels) v = uint8_t(rng());
    ptrs.push_back(&f);
  }
  for (ThreadPool* p : {static_cast<ThreadPool*>(nullptr), &pool}) {
    const Tensor t = faces_to_tensor(ptrs, p);
    REQUIRE(t.shape() == Shape{5, 3, S, S});
    for (int n = 0; n < 5; ++n)
      for (int c = 0; c < 3; ++c)
        for (int i = 0; i < S * S; ++i)
          REQUIRE(t.data<float>()[(int64_t(n) * 3 + c) * S * S + i] ==
                  (float(faces[size_t(n)].pixels[size_t(i) * 3 + c]) / 255.f - 0.5f) / 0.5f);
    // Out: values beyond [-1, 1] clip, the rest truncate.
    Tensor y = t;
    std::uniform_real_distribution<float> any(-1.5f, 1.5f);
    for (int64_t i = 0; i < y.numel() / 2; ++i) y.data<float>()[i] = any(rng);
    const std::vector<Image> out = tensor_to_faces(y, p);
    REQUIRE(out.size() == 5);
    for (int n = 0; n < 5; ++n) {
      CHECK(out[size_t(n)].pixels == tensor_to_face(y, n).pixels);
      for (int c = 0; c < 3; ++c)
        for (int i = 0; i < S * S; ++i) {
          const float v = y.data<float>()[(int64_t(n) * 3 + c) * S * S + i];
          REQUIRE(out[size_t(n)].pixels[size_t(i) * 3 + c] == uint8_t(std::clamp(v * 0.5f + 0.5f, 0.f, 1.f) * 255.f));
        }
    }
    // The round trip truncates as GPEN does: v / 255 * 2 - 1 and back may land just under v.
    const Image back = tensor_to_faces(t, p)[4];
    for (size_t k = 0; k < back.pixels.size(); ++k) REQUIRE(int(faces[4].pixels[k]) - int(back.pixels[k]) <= 1);
  }
  const Image wider(S + 1, S, 3);
  CHECK_THROWS_WITH(faces_to_tensor({&faces[0], &wider}), Catch::Contains("expected 37x37x3"));
}

namespace {

// The area average written plainly, in double: each output pixel the mean of the source area
// it covers (fractional at the edges).
std::vector<double> area_oracle(const Image& src, int W, int H) {
  std::vector<double> out(size_t(W) * H * src.channels, 0.0);
  const double sx = double(src.width) / W, sy = double(src.height) / H;
  for (int y = 0; y < H; ++y)
    for (int x = 0; x < W; ++x)
      for (int c = 0; c < src.channels; ++c) {
        double sum = 0;
        for (int v = int(y * sy); v < src.height && v < (y + 1) * sy; ++v)
          for (int u = int(x * sx); u < src.width && u < (x + 1) * sx; ++u) {
            const double wy = std::min((y + 1) * sy, v + 1.0) - std::max(y * sy, double(v));
            const double wx = std::min((x + 1) * sx, u + 1.0) - std::max(x * sx, double(u));
            sum += wx * wy * src.at(u, v, c);
          }
        out[(size_t(y) * W + x) * src.channels + c] = sum / (sx * sy);
      }
  return out;
}

}  // namespace

TEST_CASE("downscale_area is the exact area average, rounded", "[image]") {
  ThreadPool pool(2);
  for (int channels : {1, 3, 4})
    for (const auto& [w, h, W, H] : std::vector<std::array<int, 4>>{
             {9, 7, 3, 7}, {60, 33, 20, 11}, {61, 40, 20, 13}, {17, 23, 5, 4}, {32, 32, 32, 32}, {50, 9, 1, 1}}) {
      const Image src = noise(w, h, channels, uint32_t(w * 31 + channels));
      const Image got = downscale_area(src, W, H, &pool);
      const std::vector<double> want = area_oracle(src, W, H);
      REQUIRE(got.pixels.size() == want.size());
      size_t off_by_one = 0;
      for (size_t i = 0; i < want.size(); ++i) {
        const double d = std::fabs(got.pixels[i] - want[i]);
        REQUIRE(d <= 0.5 + 1e-3);  // rounding of a float sum: at most a tie decided differently
        off_by_one += std::fabs(got.pixels[i] - std::nearbyint(want[i])) > 0;
      }
      INFO(channels << " channels, " << w << "x" << h << " -> " << W << "x" << H);
      CHECK(off_by_one <= want.size() / 50 + 1);
    }
  Image flat(40, 30, 3);
  std::fill(flat.pixels.begin(), flat.pixels.end(), uint8_t(77));
  for (uint8_t v : downscale_area(flat, 13, 7).pixels) REQUIRE(v == 77);
  CHECK_THROWS_AS(downscale_area(flat, 41, 30), Error);
}
