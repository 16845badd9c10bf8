// Colour management (core/colour_management.h): which profiles convert, the conversions' values
// against colours computed by hand, round trips, alpha, threads; encode_image converting what it
// writes without a profile; and the face pipeline running GPEN in sRGB for a Display P3 photo.
// Profiles are made here with lcms2 (the build's own dependency), never copied from elsewhere.
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <thread>

#include "core/colour_management.h"
#include "core/face_detector.h"
#include "core/face_tensor.h"
#include "core/image.h"
#include "core/image_ops.h"
#include "core/models/gpen.h"
#include "core/pipeline/adjustments.h"
#include "core/pipeline/face_restorer.h"
#include "tests/icc_test_profiles.h"
#include "tests/image_test_util.h"
#include "tests/test_util.h"

#ifdef GPEN_HAVE_LCMS2
#include <lcms2.h>
#endif

using namespace gpen;

TEST_CASE("icc_colour_space reads the header's colour space, or nothing from a short block", "[colour]") {
  std::vector<uint8_t> icc(128, 0);
  std::copy_n("RGB ", 4, icc.begin() + 16);
  CHECK(icc_colour_space(icc) == "RGB ");
  std::copy_n("GRAY", 4, icc.begin() + 16);
  CHECK(icc_colour_space(icc) == "GRAY");
  icc.resize(127);
  CHECK(icc_colour_space(icc).empty());
  CHECK(icc_colour_space({}).empty());
}

#ifndef GPEN_HAVE_LCMS2

TEST_CASE("a build without lcms2 converts nothing", "[colour]") {
  CHECK_FALSE(colour_management_supported());
  std::vector<uint8_t> icc(512, 0);
  std::copy_n("RGB ", 4, icc.begin() + 16);
  CHECK(SrgbConversion::for_profile(icc) == nullptr);
}

#else

namespace {

using test::describe_profile;
using test::saved_profile;

// Display P3, made once.
const std::vector<uint8_t>& display_p3() {
  static const std::vector<uint8_t> icc = test::display_p3_profile_bytes("Display P3 (test)");
  return icc;
}

std::vector<uint8_t> srgb_profile() { return saved_profile(cmsCreate_sRGBProfile()); }

std::vector<uint8_t> gray_profile() {
  cmsToneCurve* curve = cmsBuildGamma(nullptr, 2.2);
  cmsHPROFILE p = cmsCreateGrayProfile(cmsD50_xyY(), curve);
  cmsFreeToneCurve(curve);
  return saved_profile(p);
}

Image solid(int w, int h, std::initializer_list<uint8_t> colour) {
  Image img(w, h, int(colour.size()));
  for (size_t i = 0; i < img.pixels.size(); ++i) img.pixels[i] = colour.begin()[i % colour.size()];
  return img;
}

int max_diff(const Image& a, const Image& b) {
  REQUIRE(a.pixels.size() == b.pixels.size());
  int m = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) m = std::max(m, std::abs(int(a.pixels[i]) - int(b.pixels[i])));
  return m;
}

// Display P3 again, built the way scanner and printer profiles are: A2B0 / B2A0 lookup tables
// (17^3 grids, Lab PCS) sampled from the matrix-shaper profile; lcms2 converts with these.
struct TransformSampler {
  cmsHTRANSFORM transform;
  static cmsInt32Number sample(const cmsUInt16Number in[], cmsUInt16Number out[], void* self) {
    cmsDoTransform(static_cast<TransformSampler*>(self)->transform, in, out, 1);
    return TRUE;
  }
};

cmsPipeline* sampled_lut(cmsHPROFILE from, cmsUInt32Number from_format, cmsHPROFILE to, cmsUInt32Number to_format) {
  TransformSampler s{cmsCreateTransform(from, from_format, to, to_format, INTENT_RELATIVE_COLORIMETRIC, 0)};
  cmsPipeline* lut = cmsPipelineAlloc(nullptr, 3, 3);
  cmsStage* clut = cmsStageAllocCLut16bit(nullptr, 17, 3, 3, nullptr);
  cmsStageSampleCLut16bit(clut, TransformSampler::sample, &s, 0);
  // lutAtoBType / lutBtoAType store "A curves, CLUT, B curves": identity curves around the grid.
  cmsPipelineInsertStage(lut, cmsAT_END, cmsStageAllocToneCurves(nullptr, 3, nullptr));
  cmsPipelineInsertStage(lut, cmsAT_END, clut);
  cmsPipelineInsertStage(lut, cmsAT_END, cmsStageAllocToneCurves(nullptr, 3, nullptr));
  cmsDeleteTransform(s.transform);
  return lut;
}

std::vector<uint8_t> display_p3_from_luts() {
  cmsHPROFILE matrix_p3 = cmsOpenProfileFromMem(display_p3().data(), cmsUInt32Number(display_p3().size()));
  cmsHPROFILE lab = cmsCreateLab4Profile(nullptr);
  cmsHPROFILE p = cmsCreateProfilePlaceholder(nullptr);
  cmsSetProfileVersion(p, 4.3);
  cmsSetDeviceClass(p, cmsSigDisplayClass);
  cmsSetColorSpace(p, cmsSigRgbData);
  cmsSetPCS(p, cmsSigLabData);
  cmsWriteTag(p, cmsSigMediaWhitePointTag, cmsD50_XYZ());
  cmsPipeline* a2b = sampled_lut(matrix_p3, TYPE_RGB_16, lab, TYPE_Lab_16);
  cmsPipeline* b2a = sampled_lut(lab, TYPE_Lab_16, matrix_p3, TYPE_RGB_16);
  cmsWriteTag(p, cmsSigAToB0Tag, a2b);
  cmsWriteTag(p, cmsSigBToA0Tag, b2a);
  cmsPipelineFree(a2b);
  cmsPipelineFree(b2a);
  describe_profile(p, "Display P3 (lookup tables)");
  cmsCloseProfile(matrix_p3);
  cmsCloseProfile(lab);
  return saved_profile(p);
}

// Adobe RGB (1998)'s primaries with its pure power curve (563/256), as a v2 profile: a curve
// with no linear toe, infinitely steep at black, the hardest case for lookup tables.
std::vector<uint8_t> adobe_rgb_like() {
  const cmsCIExyY d65 = {0.3127, 0.3290, 1.0};
  const cmsCIExyYTRIPLE primaries = {{0.64, 0.33, 1.0}, {0.21, 0.71, 1.0}, {0.15, 0.06, 1.0}};
  cmsToneCurve* curve = cmsBuildGamma(nullptr, 563.0 / 256);
  cmsToneCurve* curves[3] = {curve, curve, curve};
  cmsHPROFILE p = cmsCreateRGBProfile(&d65, &primaries, curves);
  cmsFreeToneCurve(curve);
  cmsSetProfileVersion(p, 2.1);
  return saved_profile(p);
}

std::shared_ptr<const SrgbConversion> p3() {
  auto c = SrgbConversion::for_profile(display_p3());
  REQUIRE(c);
  return c;
}

}  // namespace

TEST_CASE("profiles that need no conversion give none: sRGB, gray, unreadable, empty", "[colour]") {
  CHECK(colour_management_supported());
  CHECK(SrgbConversion::for_profile({}) == nullptr);
  CHECK(SrgbConversion::for_profile(srgb_profile()) == nullptr);
  CHECK(SrgbConversion::for_profile(gray_profile()) == nullptr);
  // An RGB header over garbage, and a P3 profile cut short.
  std::vector<uint8_t> garbage(600, 0x5a);
  std::copy_n("RGB ", 4, garbage.begin() + 16);
  CHECK(SrgbConversion::for_profile(garbage) == nullptr);
  const std::vector<uint8_t> cut(display_p3().begin(), display_p3().begin() + 200);
  CHECK(SrgbConversion::for_profile(cut) == nullptr);
  // Every byte of a real profile flipped in turn: a conversion or none, never a crash.
  std::vector<uint8_t> flipped = display_p3();
  for (size_t i = 0; i < flipped.size(); i += 7) {
    flipped[i] ^= 0xff;
    if (auto c = SrgbConversion::for_profile(flipped)) {
      Image img = solid(3, 2, {10, 200, 30});
      c->to_srgb(img);
      c->from_srgb(img);
    }
    flipped[i] ^= 0xff;
  }
}

TEST_CASE("Display P3 to sRGB: sRGB's red, white and mid gray land where the maths puts them", "[colour]") {
  const auto c = p3();
  CHECK(c->description() == "Display P3 (test)");
  // sRGB red (1, 0, 0) in Display P3 is (0.9175, 0.2003, 0.1386) -> bytes (234, 51, 35).
  Image red = solid(5, 3, {234, 51, 35});
  c->to_srgb(red);
  CHECK(max_diff(red, solid(5, 3, {255, 0, 0})) <= 2);
  Image back = solid(5, 3, {255, 0, 0});
  c->from_srgb(back);
  CHECK(max_diff(back, solid(5, 3, {234, 51, 35})) <= 2);
  // Same white and curve: neutrals stay.
  Image gray = solid(4, 4, {128, 128, 128});
  c->to_srgb(gray);
  CHECK(max_diff(gray, solid(4, 4, {128, 128, 128})) <= 1);
  // P3's own red is outside sRGB: clipped to sRGB's red.
  Image p3_red = solid(2, 2, {255, 0, 0});
  c->to_srgb(p3_red);
  CHECK(p3_red.pixels[0] == 255);
  CHECK(p3_red.pixels[1] <= 1);
  CHECK(p3_red.pixels[2] <= 1);
}

namespace {

using Matrix = std::array<std::array<double, 3>, 3>;

Matrix inverse(const Matrix& a) {
  Matrix r;
  const double det = a[0][0] * (a[1][1] * a[2][2] - a[1][2] * a[2][1]) - a[0][1] * (a[1][0] * a[2][2] - a[1][2] * a[2][0]) +
                     a[0][2] * (a[1][0] * a[2][1] - a[1][1] * a[2][0]);
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      const int i1 = (j + 1) % 3, i2 = (j + 2) % 3, j1 = (i + 1) % 3, j2 = (i + 2) % 3;
      r[size_t(i)][size_t(j)] = (a[size_t(i1)][size_t(j1)] * a[size_t(i2)][size_t(j2)] -
                                 a[size_t(i1)][size_t(j2)] * a[size_t(i2)][size_t(j1)]) / det;
    }
  return r;
}

Matrix product(const Matrix& a, const Matrix& b) {
  Matrix r{};
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < 3; ++j)
      for (size_t k = 0; k < 3; ++k) r[i][j] += a[i][k] * b[k][j];
  return r;
}

// Linear RGB -> XYZ from the primaries' and D65's chromaticities (the textbook construction).
Matrix rgb_to_xyz(const double (&xy)[3][2]) {
  Matrix m;
  for (size_t c = 0; c < 3; ++c) {
    const double x = xy[c][0], y = xy[c][1];
    m[0][c] = x / y, m[1][c] = 1, m[2][c] = (1 - x - y) / y;
  }
  const double wx = 0.3127, wy = 0.3290, white[3] = {wx / wy, 1, (1 - wx - wy) / wy};
  const Matrix mi = inverse(m);
  for (size_t c = 0; c < 3; ++c) {
    double scale = 0;
    for (size_t k = 0; k < 3; ++k) scale += mi[c][k] * white[k];
    for (size_t r = 0; r < 3; ++r) m[r][c] *= scale;
  }
  return m;
}

double srgb_decode(double v) { return v <= 0.04045 ? v / 12.92 : std::pow((v + 0.055) / 1.055, 2.4); }
double srgb_encode(double v) {
  v = std::clamp(v, 0.0, 1.0);
  return v <= 0.0031308 ? v * 12.92 : 1.055 * std::pow(v, 1 / 2.4) - 0.055;
}

// The largest distance, in 8-bit steps, between `out` and `linear_map` applied exactly to `in`.
double worst_against_exact(const Image& in, const Image& out, const Matrix& linear_map) {
  double worst = 0;
  for (int y = 0; y < in.height; ++y)
    for (int x = 0; x < in.width; ++x) {
      double lin[3];
      for (int c = 0; c < 3; ++c) lin[c] = srgb_decode(in.at(x, y, c) / 255.0);
      for (int c = 0; c < 3; ++c) {
        double v = 0;
        for (int k = 0; k < 3; ++k) v += linear_map[size_t(c)][size_t(k)] * lin[k];
        worst = std::max(worst, std::abs(srgb_encode(v) * 255 - out.at(x, y, c)));
      }
    }
  return worst;
}

}  // namespace

TEST_CASE("both directions stay within one step of the exact maths; alpha is untouched", "[colour]") {
  const double srgb_xy[3][2] = {{0.64, 0.33}, {0.30, 0.60}, {0.15, 0.06}};
  const double p3_xy[3][2] = {{0.680, 0.320}, {0.265, 0.690}, {0.150, 0.060}};
  const Matrix p3_to_srgb = product(inverse(rgb_to_xyz(srgb_xy)), rgb_to_xyz(p3_xy));
  const Matrix srgb_to_p3 = inverse(p3_to_srgb);
  for (bool tables : {true, false})
  for (int channels : {3, 4}) {
    INFO("channels " << channels << ", lookup tables " << tables);
    const auto c = SrgbConversion::for_profile(display_p3(), tables);
    REQUIRE(c->uses_lookup_tables() == tables);
    const Image original = test_images::noise_image(61, 37, channels, 17u + uint32_t(channels));
    Image to = original, from = original;
    c->to_srgb(to);
    c->from_srgb(from);
    CHECK(worst_against_exact(original, to, p3_to_srgb) <= 1.0);
    CHECK(worst_against_exact(original, from, srgb_to_p3) <= 1.0);
    CHECK(max_diff(to, original) > 5);  // it did convert
    if (channels == 4)
      for (size_t i = 3; i < to.pixels.size(); i += 4) REQUIRE((to.pixels[i] == original.pixels[i] && from.pixels[i] == original.pixels[i]));
  }
  Image gray(4, 4, 1);
  CHECK_THROWS_AS(p3()->to_srgb(gray), Error);
}

TEST_CASE("a profile built on lookup tables converts through lcms2, to the same colours", "[colour]") {
  const auto tables = SrgbConversion::for_profile(display_p3_from_luts());
  REQUIRE(tables);
  CHECK(tables->description() == "Display P3 (lookup tables)");
  CHECK_FALSE(tables->uses_lookup_tables());  // ours: only matrix-shapers
  CHECK(p3()->uses_lookup_tables());
  // Skin, sky and foliage tones of a photo (not the gamut's corners, where a 17^3 grid is coarse).
  Image photo = test_images::gradient_image(64, 48, 3);
  Image by_lcms = photo, by_matrix = photo;
  tables->to_srgb(by_lcms);
  p3()->to_srgb(by_matrix);
  CHECK(max_diff(by_matrix, photo) > 5);
  CHECK(max_diff(by_lcms, by_matrix) <= 3);
  // Back through B2A0, a grid over Lab, coarser still where sRGB's colours lie: close on average.
  tables->from_srgb(by_lcms);
  p3()->from_srgb(by_matrix);
  INFO("mean " << test_images::mean_abs_diff(by_lcms, by_matrix));
  CHECK(test_images::mean_abs_diff(by_lcms, by_matrix) < 1.0);
  CHECK(max_diff(by_lcms, by_matrix) <= 6);
}

namespace {

// lcms2's double-precision answer for 8-bit colours, in 8-bit steps (unrounded).
std::vector<double> lcms2_exact(const std::vector<uint8_t>& icc, const Image& img, bool to_srgb) {
  cmsHPROFILE photo = cmsOpenProfileFromMem(icc.data(), cmsUInt32Number(icc.size())), srgb = cmsCreate_sRGBProfile();
  cmsHTRANSFORM t = cmsCreateTransform(to_srgb ? photo : srgb, TYPE_RGB_DBL, to_srgb ? srgb : photo, TYPE_RGB_DBL,
                                       INTENT_RELATIVE_COLORIMETRIC, cmsFLAGS_NOCACHE | cmsFLAGS_BLACKPOINTCOMPENSATION);
  std::vector<double> in(img.pixels.size()), out(img.pixels.size());
  for (size_t i = 0; i < in.size(); ++i) in[i] = img.pixels[i] / 255.0;
  cmsDoTransform(t, in.data(), out.data(), cmsUInt32Number(img.pixels.size() / 3));
  cmsDeleteTransform(t);
  cmsCloseProfile(photo);
  cmsCloseProfile(srgb);
  for (double& v : out) v = std::clamp(v, 0.0, 1.0) * 255.0;
  return out;
}

double worst_against(const Image& img, const std::vector<double>& exact) {
  double worst = 0;
  for (size_t i = 0; i < exact.size(); ++i) worst = std::max(worst, std::abs(img.pixels[i] - exact[i]));
  return worst;
}

}  // namespace

TEST_CASE("lookup tables round lcms2's floating-point answer, dark colours included", "[colour]") {
  // Every colour with channels in steps of 5, and every dark one (channels 0..31).
  Image colours(52 * 52, 52, 3), dark(32 * 32, 32, 3);
  for (int r = 0; r < 52; ++r)
    for (int g = 0; g < 52; ++g)
      for (int b = 0; b < 52; ++b) {
        uint8_t* px = &colours.at(r * 52 + g, b, 0);
        px[0] = uint8_t(r * 5), px[1] = uint8_t(g * 5), px[2] = uint8_t(b * 5);
      }
  for (int r = 0; r < 32; ++r)
    for (int g = 0; g < 32; ++g)
      for (int b = 0; b < 32; ++b) {
        uint8_t* px = &dark.at(r * 32 + g, b, 0);
        px[0] = uint8_t(r), px[1] = uint8_t(g), px[2] = uint8_t(b);
      }
  for (const auto& [name, icc] : {std::pair{"Display P3", display_p3()}, std::pair{"Adobe RGB", adobe_rgb_like()}}) {
    const auto tables = SrgbConversion::for_profile(icc, true);
    REQUIRE(tables);
    CHECK(tables->uses_lookup_tables());
    for (const Image* img : {&colours, &dark})
      for (bool to_srgb : {true, false}) {
        INFO(name << (img == &dark ? ", dark" : ", all") << (to_srgb ? ", to sRGB" : ", from sRGB"));
        Image converted = *img;
        to_srgb ? tables->to_srgb(converted) : tables->from_srgb(converted);
        // Rounding alone is 0.5; entries spaced evenly in linear light reached 0.8 (Adobe RGB's
        // darkest colours), spaced in its square root they stay within 0.51.
        CHECK(worst_against(converted, lcms2_exact(icc, *img, to_srgb)) <= 0.6);
      }
  }
}

TEST_CASE("one conversion used from four threads at once gives each the single-thread result", "[colour]") {
  for (bool tables : {true, false}) {
    INFO("lookup tables " << tables);
    const auto c = SrgbConversion::for_profile(display_p3(), tables);
    REQUIRE(c);
    REQUIRE(c->uses_lookup_tables() == tables);
    const Image original = test_images::noise_image(257, 129, 3, 5);
    Image expected = original;
    c->to_srgb(expected);
    std::vector<Image> results(4, original);
    std::vector<std::thread> threads;
    for (Image& r : results)
      threads.emplace_back([&c, &r] {
        for (int k = 0; k < 5; ++k) {
          Image img = r;
          c->to_srgb(img);
          if (k == 4) r = std::move(img);
        }
      });
    for (std::thread& t : threads) t.join();
    for (const Image& r : results) CHECK(r.pixels == expected.pixels);
  }
}

TEST_CASE("encode_image: a P3 photo keeps its numbers with its profile, is converted to sRGB without", "[colour]") {
  Image photo = test_images::noise_image(33, 21, 3, 9);
  photo.meta.icc = display_p3();
  Image as_srgb = photo;
  p3()->to_srgb(as_srgb);

  const Image kept = decode_image(encode_image(photo, EncodeOptions{ImageFormat::Png}));
  CHECK(kept.pixels == photo.pixels);
  CHECK(kept.meta.icc == display_p3());

  EncodeOptions strip{ImageFormat::Png};
  strip.keep_metadata = false;
  const Image stripped = decode_image(encode_image(photo, strip));
  CHECK(stripped.meta.icc.empty());
  CHECK(stripped.pixels == as_srgb.pixels);
  CHECK(photo.meta.icc == display_p3());  // the caller's image is not touched

  // BMP has no room for a profile: converted even when metadata is kept.
  const Image bmp = decode_image(encode_image(photo, EncodeOptions{ImageFormat::Bmp}));
  CHECK(bmp.pixels == as_srgb.pixels);

  // An sRGB-tagged photo written without its profile: the same numbers.
  photo.meta.icc = srgb_profile();
  CHECK(decode_image(encode_image(photo, strip)).pixels == photo.pixels);
}

TEST_CASE("encode_image leaves out a profile whose colour space is not the pixels'", "[colour]") {
  Image rgb = test_images::noise_image(9, 7, 3, 2);
  rgb.meta.icc = gray_profile();  // a gray scan whose restored faces made it RGB
  CHECK(decode_image(encode_image(rgb, EncodeOptions{ImageFormat::Png})).meta.icc.empty());
  CHECK(decode_image(encode_image(rgb, EncodeOptions{ImageFormat::Jpeg})).meta.icc.empty());

  Image gray = test_images::noise_image(9, 7, 1, 3);
  gray.meta.icc = gray_profile();
  CHECK(decode_image(encode_image(gray, EncodeOptions{ImageFormat::Png})).meta.icc == gray.meta.icc);
  CHECK(decode_image(encode_image(gray, EncodeOptions{ImageFormat::Tiff})).meta.icc == gray.meta.icc);
  CHECK(decode_image(encode_image(gray, EncodeOptions{ImageFormat::Webp})).meta.icc.empty());  // WebP: gray as RGB
  gray.meta.icc = display_p3();
  CHECK(decode_image(encode_image(gray, EncodeOptions{ImageFormat::Png})).meta.icc.empty());
}

namespace {

std::shared_ptr<GpenRunner> tiny_gpen() {
  static auto runner = std::make_shared<GpenRunner>(
      std::make_shared<GpenModel>(GpenModel::load(test::source_path("tests/fixtures/gpen_tiny/gpen_tiny.pth"))),
      std::shared_ptr<Backend>(make_cpu_backend()), CompileOptions{});
  return runner;
}

Image gpen_of(const Image& face) { return tensor_to_face(tiny_gpen()->forward(faces_to_tensor({&face})), 0); }

Controls full_strength() {
  Controls c;
  c.strength = 100;
  c.skin_protect = false;
  return c;
}

}  // namespace

TEST_CASE("a Display P3 photo's face goes through GPEN in sRGB and comes back in P3", "[colour][pipeline]") {
  FaceRestorer restorer(std::make_shared<FaceDetector>(
                            FaceDetector::load(test::shared_path("weights/retinaface_mobilenet0.25.pth"))),
                        tiny_gpen());
  Image photo = downscale_area(to_rgb(load_image(test::shared_path("images/aligned_ffhq_00002.png"))), 384, 384);
  RestoreOptions opt;
  opt.controls = full_strength();
  opt.keep_crops = true;
  const RestoreResult plain = restorer.restore(photo, opt);
  photo.meta.icc = display_p3();
  const RestoreResult tagged = restorer.restore(photo, opt);
  REQUIRE(tagged.faces.size() == 1);
  REQUIRE(plain.faces.size() == 1);
  CHECK(tagged.colour_profile == "Display P3 (test)");
  CHECK(plain.colour_profile.empty());

  const RestoredFace& f = tagged.faces[0];
  Image srgb = f.aligned;
  p3()->to_srgb(srgb);
  Image expected = gpen_of(srgb);
  p3()->from_srgb(expected);
  CHECK(f.restored.pixels == expected.pixels);
  CHECK(f.restored.meta.icc == display_p3());  // saved crops show their true colours
  CHECK(f.aligned.pixels == plain.faces[0].aligned.pixels);  // alignment is in the photo's numbers
  CHECK(max_diff(f.restored, plain.faces[0].restored) > 3);  // the untagged photo's face differs

  // The same for an aligned crop (gpen enhance --aligned, the server, the C API).
  Image crop = f.aligned;
  crop.meta.icc = display_p3();
  Image by_hand = compose_face(crop, expected, full_strength(), /*small_face=*/false);
  apply_finishing_filters(by_hand, full_strength());
  CHECK(restore_aligned_crop(*tiny_gpen(), crop, full_strength()).pixels == by_hand.pixels);
}

#endif
