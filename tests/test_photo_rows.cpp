// The per-ISA builds of the photo kernels against the generic ones, byte for byte, on random
// data of odd sizes: the row kernels of paste-back's blend and skin-colour protection
// (kernels/cpu/photo_rows.h), and the AVX2 rows of the bilinear warp (warp_bilinear.h) through
// warp_affine with the ISA capped and not. (The generic code is checked against GPEN's and
// OpenCV's formulas in test_paste.cpp, test_controls.cpp and test_image_ops.cpp.)
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/image.h"
#include "core/image_ops.h"
#include "core/thread_pool.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/photo_rows.h"
#include "kernels/cpu/warp_bilinear.h"

using namespace gpen;
using namespace gpen::cpu;

namespace {

std::vector<Isa> wider_isas() {
  std::vector<Isa> r;
  for (Isa isa : {Isa::AVX2, Isa::AVX512})
    if (detect_isa() >= isa) r.push_back(isa);
  if (r.empty()) WARN("no AVX2 on this CPU: only the generic photo rows ran");
  return r;
}

std::vector<uint8_t> random_bytes(std::mt19937& rng, size_t n, int lo = 0, int hi = 255) {
  std::uniform_int_distribution<int> d(lo, hi);
  std::vector<uint8_t> v(n);
  for (uint8_t& b : v) b = uint8_t(d(rng));
  return v;
}

}  // namespace

TEST_CASE("photo rows: every ISA blends a face into a row like the generic build", "[photo_rows]") {
  const PhotoRowKernels& generic = photo_row_kernels(Isa::Generic);
  std::mt19937 rng(21);
  std::uniform_real_distribution<float> weight(-0.2f, 1.2f);  // masks dip below 0 and reach 1
  for (Isa isa : wider_isas()) {
    const PhotoRowKernels& k = photo_row_kernels(isa);
    for (int channels : {3, 4})
      for (int width : {1, 7, 15, 16, 17, 63, 64, 65, 331}) {
        std::vector<float> mask(static_cast<size_t>(width));
        for (float& m : mask) m = rng() % 5 == 0 ? 0.f : rng() % 7 == 0 ? 1.f : weight(rng);
        const std::vector<uint8_t> photo = random_bytes(rng, size_t(width) * channels);
        const std::vector<uint8_t> face = random_bytes(rng, size_t(width) * 3);
        std::vector<uint8_t> want = photo, got = photo;
        (channels == 3 ? generic.blend_rgb : generic.blend_rgba)(want.data(), mask.data(), face.data(), width);
        (channels == 3 ? k.blend_rgb : k.blend_rgba)(got.data(), mask.data(), face.data(), width);
        INFO(k.name << ", " << channels << " channels, width " << width);
        CHECK(got == want);
        CHECK(got != photo);  // the row did change
      }
  }
}

TEST_CASE("photo rows: every ISA protects skin colour like the generic build", "[photo_rows]") {
  const PhotoRowKernels& generic = photo_row_kernels(Isa::Generic);
  std::mt19937 rng(22);
  for (Isa isa : wider_isas()) {
    const PhotoRowKernels& k = photo_row_kernels(isa);
    for (bool mono : {false, true})
      for (int channels : {3, 4})
        for (int width : {1, 5, 31, 32, 33, 97, 401}) {
          const std::vector<uint8_t> original = random_bytes(rng, size_t(width) * 3, 50, 220);  // many skin tones
          std::vector<uint8_t> restored = random_bytes(rng, size_t(width) * channels);
          for (int x = 0; x < width; ++x)  // a third untouched, and a whole block of 32 (skipped)
            if (x % 3 == 0 || (x >= 32 && x < 64))
              for (int c = 0; c < 3; ++c) restored[size_t(x) * channels + c] = original[size_t(x) * 3 + c];
          std::vector<uint8_t> want = restored, got = restored;
          (channels == 3 ? generic.protect_skin_rgb : generic.protect_skin_rgba)(want.data(), original.data(), width,
                                                                                  mono);
          (channels == 3 ? k.protect_skin_rgb : k.protect_skin_rgba)(got.data(), original.data(), width, mono);
          INFO(k.name << ", " << channels << " channels, width " << width << (mono ? ", monochrome" : ""));
          CHECK(got == want);
          if (width > 1) CHECK(got != restored);
        }
  }
}

TEST_CASE("photo rows: every ISA blends two faces by strength like the generic build", "[photo_rows]") {
  const PhotoRowKernels& generic = photo_row_kernels(Isa::Generic);
  std::mt19937 rng(25);
  for (Isa isa : wider_isas()) {
    const PhotoRowKernels& k = photo_row_kernels(isa);
    for (double alpha : {0.0, 0.3, 0.5, 0.77, 1.0})
      for (size_t n : {1, 7, 33, 1000}) {
        const std::vector<uint8_t> a = random_bytes(rng, n), b = random_bytes(rng, n);
        std::vector<uint8_t> want(n), got(n);
        generic.add_weighted(a.data(), b.data(), float(alpha), float(1 - alpha), want.data(), n);
        k.add_weighted(a.data(), b.data(), float(alpha), float(1 - alpha), got.data(), n);
        INFO(k.name << ", alpha " << alpha << ", " << n << " bytes");
        CHECK(got == want);
      }
  }
}

TEST_CASE("photo rows: every ISA splits RGB rows into mean-free planes", "[photo_rows]") {
  std::mt19937 rng(26);
  const float mean[3] = {123.f, 117.f, 104.f};
  for (Isa isa : {Isa::Generic, Isa::AVX2, Isa::AVX512}) {
    if (detect_isa() < isa) continue;
    const PhotoRowKernels& k = photo_row_kernels(isa);
    for (int width : {1, 15, 16, 17, 100, 1921}) {
      const std::vector<uint8_t> rgb = random_bytes(rng, size_t(width) * 3);
      std::vector<float> planes(size_t(width) * 3, -1.f);
      k.rgb_to_planes(rgb.data(), width, mean, planes.data(), planes.data() + width, planes.data() + 2 * width);
      INFO(k.name << ", width " << width);
      for (int x = 0; x < width; ++x)
        for (int c = 0; c < 3; ++c)
          REQUIRE(planes[size_t(c) * width + x] == float(rgb[size_t(x) * 3 + c]) - mean[c]);
    }
  }
}

TEST_CASE("photo rows: the run-time choice follows the ISA cap", "[photo_rows]") {
  CHECK(std::string(photo_row_kernels(Isa::Generic).name) == "generic");
  if (detect_isa() >= Isa::AVX2) CHECK(std::string(photo_row_kernels(Isa::AVX2).name) == "avx2");
  if (detect_isa() >= Isa::AVX512) CHECK(std::string(photo_row_kernels(Isa::AVX512_BF16).name) == "avx512");
  if (detect_isa() < Isa::AVX512) CHECK(std::string(photo_row_kernels(Isa::AVX512).name) != "avx512");
}

namespace {

struct IsaCapReset {
  ~IsaCapReset() { set_isa_cap(Isa::AVX512_BF16); }
};

// Affine maps crop -> photo of the kind paste-back and alignment use: scaled, rotated, shifted so
// that part of the footprint leaves the source (border groups go through the scalar code).
std::vector<Affine> warp_maps() {
  std::vector<Affine> maps;
  for (double angle : {0.0, 0.07, -0.6, 3.0})
    for (double scale : {0.37, 1.0, 2.9}) {
      const double a = scale * std::cos(angle), b = scale * std::sin(angle);
      maps.push_back(Affine{a, -b, 11.3 - 20 * scale, b, a, -7.6 + 5 * scale});
    }
  maps.push_back(Affine{1, 0, 3, 0, 1, -2});       // whole-pixel positions: weight-table row 0
  maps.push_back(Affine{1, 0, 3.5, 0, 1, -2.25});  // every pixel on one other row
  return maps;
}

}  // namespace

TEST_CASE("bilinear warp: the AVX2 rows give the generic warp's bytes and floats", "[photo_rows][image]") {
  if (detect_isa() < Isa::AVX2) {
    WARN("no AVX2 on this CPU: the vector warp rows were not run");
    return;
  }
  IsaCapReset reset;
  std::mt19937 rng(23);
  ThreadPool pool(2);
  for (const auto& [w, h] : std::vector<std::pair<int, int>>{{2, 2}, {9, 5}, {67, 41}, {130, 97}}) {
    Image rgb(w, h, 3);
    for (uint8_t& v : rgb.pixels) v = uint8_t(rng());
    FloatImage mask(w, h, 1);
    std::uniform_real_distribution<float> u(-0.5f, 1.5f);
    for (float& v : mask.pixels) v = u(rng);
    for (const Affine& m : warp_maps())
      for (const Rect roi : {Rect{0, 0, 53, 37}, Rect{-5, 3, 71, 29}, Rect{2, -4, 8, 3}}) {
        set_isa_cap(Isa::Generic);
        const Image want_rgb = warp_affine_roi(rgb, m, roi);
        const FloatImage want_mask = warp_affine_roi(mask, m, roi);
        set_isa_cap(Isa::AVX2);
        const Image got_rgb = warp_affine_roi(rgb, m, roi, WarpInterpolation::Linear, &pool);
        const FloatImage got_mask = warp_affine_roi(mask, m, roi);
        INFO("source " << w << "x" << h << ", map " << m[0] << " " << m[1] << " " << m[2] << " / " << m[3] << " "
                       << m[4] << " " << m[5] << ", roi " << roi.x << "," << roi.y << " " << roi.width << "x"
                       << roi.height);
        CHECK(got_rgb.pixels == want_rgb.pixels);
        CHECK(got_mask.pixels == want_mask.pixels);  // exact: the same float operations in the same order
      }
  }
}

TEST_CASE("bilinear warp: the AVX2 row kernel computes inside groups itself", "[photo_rows][image]") {
  if (detect_isa() < Isa::AVX2) {
    WARN("no AVX2 on this CPU: the vector warp rows were not run");
    return;
  }
  // Whole-pixel source positions (fraction 0: weight-table row 0) with a one-tap table copy
  // source pixels exactly; the kernel must do all 16 itself and leave none to the caller, and
  // leave the group that reaches the last column.
  std::mt19937 rng(24);
  Image rgb(64, 48, 3);
  for (uint8_t& v : rgb.pixels) v = uint8_t(rng());
  std::vector<int32_t> ad(24), bd(24);
  for (int i = 0; i < 24; ++i) {
    ad[size_t(i)] = (i < 16 ? 5 + i % 7 : 63) << 10;  // x; the third group touches column 63
    bd[size_t(i)] = (3 + i % 5) << 10;                // y
  }
  const BilinearRow row{64, 48, 64 * 3, rgb.pixels.size(), 16, 16, ad.data(), bd.data(), 24};
  std::vector<int16_t> table(32 * 32 * 4, 0);
  table[0] = 32767;  // (v * 32767 + 2^14) >> 15 == v for every byte v
  std::vector<uint8_t> out(24 * 3, 0);
  std::vector<int32_t> left(24, -1);
  const int n = warp_bilinear_u8c3_row_avx2(rgb.pixels.data(), row, table.data(), out.data(), left.data());
  REQUIRE(n == 8);
  for (int k = 0; k < 8; ++k) CHECK(left[size_t(k)] == 16 + k);
  for (int i = 0; i < 16; ++i)
    for (int c = 0; c < 3; ++c) CHECK(out[size_t(i) * 3 + c] == rgb.at(5 + i % 7, 3 + i % 5, c));
}
