#include "core/colour_management.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdlib>
#include <map>
#include <mutex>
#include <optional>

#include "core/error.h"

#ifdef GPEN_HAVE_LCMS2
#include <lcms2.h>
#endif

namespace gpen {

std::string icc_colour_space(const std::vector<uint8_t>& icc) {
  if (icc.size() < 128) return {};  // an ICC header alone is 128 bytes
  return std::string(reinterpret_cast<const char*>(icc.data()) + 16, 4);
}

namespace {

void check_channels(const Image& img) {
  if (img.channels != 3 && img.channels != 4)
    fail("colour conversion needs an RGB or RGBA image (this one has ", img.channels, " channels)");
}

}  // namespace

#ifndef GPEN_HAVE_LCMS2

bool colour_management_supported() { return false; }
struct SrgbConversion::Transforms {};
std::shared_ptr<const SrgbConversion> SrgbConversion::for_profile(const std::vector<uint8_t>&, bool) { return nullptr; }
bool SrgbConversion::uses_lookup_tables() const { return false; }
void SrgbConversion::to_srgb(Image& img) const { check_channels(img); }
void SrgbConversion::from_srgb(Image& img) const { check_channels(img); }

#else

bool colour_management_supported() { return true; }

namespace {

// A conversion between two matrix-shaper profiles (nearly every profile a photo embeds: Display
// P3, Adobe RGB, ProPhoto, sRGB's variants) by table lookups, nearly twice as fast as lcms2's 8-bit
// transforms (docs/BENCHMARKS.md) and closer to lcms2's floating-point answer: the source curve per
// channel as 256 floats of linear light, one 3x3 matrix (source colorants -> XYZ -> destination),
// clipping to [0, 1], the destination's inverse curve per channel as 65536 bytes indexed by the
// square root of linear light: dense near black, where curves are steepest (a pure power curve
// such as Adobe RGB's is infinitely steep there; with entries evenly spaced in linear light its
// darkest colours were up to 0.8 of a step off, now 0.51), and nearly linear for gamma-like curves.
struct MatrixShaperPath {
  std::array<std::array<float, 256>, 3> decode{};
  std::array<float, 9> matrix{};
  std::array<std::vector<uint8_t>, 3> encode;

  // Everything the loop reads is copied to locals first: the byte stores into `px` may alias any
  // object as far as the compiler knows, and would make it reload the matrix and table pointers
  // after every pixel (twice as slow).
  void run(uint8_t* px, size_t pixels, int channels) const {
    const float m0 = matrix[0], m1 = matrix[1], m2 = matrix[2], m3 = matrix[3], m4 = matrix[4], m5 = matrix[5],
                m6 = matrix[6], m7 = matrix[7], m8 = matrix[8];
    const float *dr = decode[0].data(), *dg = decode[1].data(), *db = decode[2].data();
    const uint8_t *er = encode[0].data(), *eg = encode[1].data(), *eb = encode[2].data();
    // Through int32: a float to 64-bit unsigned conversion is a branchy sequence before AVX-512.
    const auto index = [](float v) { return size_t(int32_t(std::sqrt(std::min(std::max(v, 0.f), 1.f)) * 65535.f + 0.5f)); };
    for (size_t i = 0; i < pixels; ++i, px += channels) {
      const float r = dr[px[0]], g = dg[px[1]], b = db[px[2]];
      const uint8_t out_r = er[index(m0 * r + m1 * g + m2 * b)];
      const uint8_t out_g = eg[index(m3 * r + m4 * g + m5 * b)];
      const uint8_t out_b = eb[index(m6 * r + m7 * g + m8 * b)];
      px[0] = out_r, px[1] = out_g, px[2] = out_b;
    }
  }
};

}  // namespace

// One lcms2 context per profile: its error handler is ours (silent: an unusable profile means "no
// conversion", not a message on stderr), and nothing is shared with other users of lcms2.
struct SrgbConversion::Transforms {
  cmsContext context = nullptr;
  cmsHTRANSFORM rgb_to_srgb = nullptr, srgb_to_rgb = nullptr;    // 3 channels
  cmsHTRANSFORM rgba_to_srgb = nullptr, srgb_to_rgba = nullptr;  // 4 channels, alpha copied
  // Both directions by table lookups, when both profiles are matrix-shapers and the tables agree
  // with lcms2 within one step on a grid of colours; null: lcms2's transforms above.
  std::unique_ptr<const MatrixShaperPath> fast_to_srgb, fast_from_srgb;

  Transforms() : context(cmsCreateContext(nullptr, nullptr)) {
    if (!context) fail("lcms2: could not create a context");
    cmsSetLogErrorHandlerTHR(context, [](cmsContext, cmsUInt32Number, const char*) {});
  }
  ~Transforms() {
    for (cmsHTRANSFORM t : {rgb_to_srgb, srgb_to_rgb, rgba_to_srgb, srgb_to_rgba})
      if (t) cmsDeleteTransform(t);
    cmsDeleteContext(context);
  }
  Transforms(const Transforms&) = delete;
  Transforms& operator=(const Transforms&) = delete;
};

namespace {

struct ProfileCloser {
  void operator()(void* p) const { cmsCloseProfile(p); }
};
using ProfilePtr = std::unique_ptr<void, ProfileCloser>;

// cmsFLAGS_NOCACHE: lcms2's one-pixel cache is state written by every call; without it a transform
// may be used from several threads at once.
constexpr cmsUInt32Number kFlags = cmsFLAGS_NOCACHE | cmsFLAGS_BLACKPOINTCOMPENSATION | cmsFLAGS_COPY_ALPHA;

cmsHTRANSFORM make_transform(cmsContext ctx, cmsHPROFILE from, cmsHPROFILE to, cmsUInt32Number format) {
  return cmsCreateTransformTHR(ctx, from, format, to, format, INTENT_RELATIVE_COLORIMETRIC, kFlags);
}

// Printable ASCII only, at most 80 characters: it goes into JSON, HTTP headers and the terminal.
std::string description_of(cmsHPROFILE profile) {
  char text[256] = {};
  if (cmsGetProfileInfoASCII(profile, cmsInfoDescription, "en", "US", text, sizeof text) == 0) return "unnamed profile";
  std::string s;
  for (const char* c = text; *c && s.size() < 80; ++c) s += (*c >= 0x20 && *c < 0x7f) ? *c : '?';
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s.empty() ? "unnamed profile" : s;
}

// The 17^3 grid of 8-bit colours (0, 16, ..., 240, 255), as RGB triples.
std::vector<uint8_t> colour_grid() {
  std::vector<uint8_t> grid;
  for (int r = 0; r <= 256; r += 16)
    for (int g = 0; g <= 256; g += 16)
      for (int b = 0; b <= 256; b += 16)
        for (int v : {r, g, b}) grid.push_back(uint8_t(std::min(v, 255)));
  return grid;
}

// Whether converting to sRGB leaves every colour of a 17^3 grid within one step: such a profile is
// sRGB under another name (v2/v4, parametric or sampled curves), and converting would only add
// rounding to every face.
bool is_srgb_in_effect(cmsHTRANSFORM to_srgb) {
  const std::vector<uint8_t> grid = colour_grid();
  std::vector<uint8_t> out(grid.size());
  cmsDoTransform(to_srgb, grid.data(), out.data(), cmsUInt32Number(grid.size() / 3));
  for (size_t i = 0; i < grid.size(); ++i)
    if (std::abs(int(grid[i]) - int(out[i])) > 1) return false;
  return true;
}

// A matrix-shaper profile's curves and colorants (XYZ, adapted to the PCS's D50 as the tags
// store them); nullopt for a profile whose conversions lcms2 would take from LUT tags.
struct MatrixShaper {
  std::array<const cmsToneCurve*, 3> curves{};
  std::array<double, 9> to_xyz{};  // row-major; column c is colorant c
};

std::optional<MatrixShaper> matrix_shaper_of(cmsHPROFILE p) {
  if (!cmsIsMatrixShaper(p)) return std::nullopt;
  for (cmsTagSignature lut : {cmsSigAToB0Tag, cmsSigAToB1Tag, cmsSigAToB2Tag, cmsSigBToA0Tag, cmsSigBToA1Tag,
                              cmsSigBToA2Tag, cmsSigDToB0Tag, cmsSigDToB1Tag, cmsSigBToD0Tag, cmsSigBToD1Tag})
    if (cmsIsTag(p, lut)) return std::nullopt;
  MatrixShaper ms;
  const cmsTagSignature colorants[3] = {cmsSigRedColorantTag, cmsSigGreenColorantTag, cmsSigBlueColorantTag};
  const cmsTagSignature curves[3] = {cmsSigRedTRCTag, cmsSigGreenTRCTag, cmsSigBlueTRCTag};
  for (size_t c = 0; c < 3; ++c) {
    const auto* xyz = static_cast<const cmsCIEXYZ*>(cmsReadTag(p, colorants[c]));
    ms.curves[c] = static_cast<const cmsToneCurve*>(cmsReadTag(p, curves[c]));
    if (!xyz || !ms.curves[c]) return std::nullopt;
    ms.to_xyz[c] = xyz->X, ms.to_xyz[3 + c] = xyz->Y, ms.to_xyz[6 + c] = xyz->Z;
  }
  return ms;
}

std::optional<std::array<double, 9>> inverse(const std::array<double, 9>& a) {
  const double det = a[0] * (a[4] * a[8] - a[5] * a[7]) - a[1] * (a[3] * a[8] - a[5] * a[6]) + a[2] * (a[3] * a[7] - a[4] * a[6]);
  if (!(std::abs(det) > 1e-12)) return std::nullopt;
  std::array<double, 9> r;
  for (int i = 0; i < 3; ++i)
    for (int j = 0; j < 3; ++j) {
      const int i1 = (j + 1) % 3, i2 = (j + 2) % 3, j1 = (i + 1) % 3, j2 = (i + 2) % 3;
      r[size_t(3 * i + j)] = (a[size_t(3 * i1 + j1)] * a[size_t(3 * i2 + j2)] - a[size_t(3 * i1 + j2)] * a[size_t(3 * i2 + j1)]) / det;
    }
  return r;
}

std::unique_ptr<const MatrixShaperPath> fast_path(const MatrixShaper& from, const MatrixShaper& to) {
  const auto to_inverse = inverse(to.to_xyz);
  if (!to_inverse) return nullptr;
  auto path = std::make_unique<MatrixShaperPath>();
  for (size_t r = 0; r < 3; ++r)
    for (size_t c = 0; c < 3; ++c) {
      double v = 0;
      for (size_t k = 0; k < 3; ++k) v += (*to_inverse)[3 * r + k] * from.to_xyz[3 * k + c];
      path->matrix[3 * r + c] = float(v);
    }
  for (size_t c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) path->decode[c][size_t(v)] = cmsEvalToneCurveFloat(from.curves[c], float(v) / 255.f);
    std::unique_ptr<cmsToneCurve, void (*)(cmsToneCurve*)> reverse(cmsReverseToneCurveEx(4096, to.curves[c]), cmsFreeToneCurve);
    if (!reverse) return nullptr;
    path->encode[c].resize(65536);
    for (size_t i = 0; i < 65536; ++i) {
      const float root = float(i) / 65535.f;  // entries are spaced evenly in sqrt(linear light)
      const float e = std::clamp(cmsEvalToneCurveFloat(reverse.get(), root * root), 0.f, 1.f);
      path->encode[c][i] = uint8_t(e * 255.f + 0.5f);
    }
  }
  return path;
}

// Whether the lookup path lands within one step of lcms2's floating-point answer on the 17^3 grid
// and on every dark colour (channels 0..15), where the curves are steepest. (lcms2's own 8-bit
// transforms are further off there: two steps for sRGB's (0, 2, 0) into a pure power curve.)
bool agrees_with_lcms2(const MatrixShaperPath& path, cmsContext ctx, cmsHPROFILE from, cmsHPROFILE to) {
  std::vector<uint8_t> colours = colour_grid();
  for (int r = 0; r < 16; ++r)
    for (int g = 0; g < 16; ++g)
      for (int b = 0; b < 16; ++b) colours.insert(colours.end(), {uint8_t(r), uint8_t(g), uint8_t(b)});
  const cmsHTRANSFORM exact = cmsCreateTransformTHR(ctx, from, TYPE_RGB_DBL, to, TYPE_RGB_DBL, INTENT_RELATIVE_COLORIMETRIC,
                                                    cmsFLAGS_NOCACHE | cmsFLAGS_BLACKPOINTCOMPENSATION);
  if (!exact) return false;
  std::vector<double> in(colours.size()), out(colours.size());
  for (size_t i = 0; i < colours.size(); ++i) in[i] = colours[i] / 255.0;
  cmsDoTransform(exact, in.data(), out.data(), cmsUInt32Number(colours.size() / 3));
  cmsDeleteTransform(exact);
  path.run(colours.data(), colours.size() / 3, 3);
  for (size_t i = 0; i < colours.size(); ++i)
    if (std::abs(colours[i] - std::clamp(out[i], 0.0, 1.0) * 255.0) > 1.0) return false;
  return true;
}

// The lookup paths, both or neither (so that a face goes both ways through the same maths).
void add_fast_paths(SrgbConversion::Transforms& t, cmsHPROFILE photo, cmsHPROFILE srgb) {
  const auto photo_ms = matrix_shaper_of(photo), srgb_ms = matrix_shaper_of(srgb);
  if (!photo_ms || !srgb_ms) return;
  auto to = fast_path(*photo_ms, *srgb_ms), from = fast_path(*srgb_ms, *photo_ms);
  if (!to || !from || !agrees_with_lcms2(*to, t.context, photo, srgb) || !agrees_with_lcms2(*from, t.context, srgb, photo))
    return;
  t.fast_to_srgb = std::move(to);
  t.fast_from_srgb = std::move(from);
}

std::shared_ptr<const SrgbConversion> make_conversion(const std::vector<uint8_t>& icc, bool lookup_tables) {
  auto t = std::make_shared<SrgbConversion::Transforms>();
  ProfilePtr photo(cmsOpenProfileFromMemTHR(t->context, icc.data(), cmsUInt32Number(icc.size())));
  if (!photo || cmsGetColorSpace(photo.get()) != cmsSigRgbData) return nullptr;
  ProfilePtr srgb(cmsCreate_sRGBProfileTHR(t->context));
  if (!srgb) return nullptr;
  t->rgb_to_srgb = make_transform(t->context, photo.get(), srgb.get(), TYPE_RGB_8);
  if (!t->rgb_to_srgb || is_srgb_in_effect(t->rgb_to_srgb)) return nullptr;
  t->srgb_to_rgb = make_transform(t->context, srgb.get(), photo.get(), TYPE_RGB_8);
  t->rgba_to_srgb = make_transform(t->context, photo.get(), srgb.get(), TYPE_RGBA_8);
  t->srgb_to_rgba = make_transform(t->context, srgb.get(), photo.get(), TYPE_RGBA_8);
  if (!t->srgb_to_rgb || !t->rgba_to_srgb || !t->srgb_to_rgba) return nullptr;
  if (lookup_tables) add_fast_paths(*t, photo.get(), srgb.get());
  return std::make_shared<SrgbConversion>(std::move(t), description_of(photo.get()));
}

// In chunks: lcms2 counts pixels in 32 bits.
void run(cmsHTRANSFORM t, Image& img) {
  const size_t pixels = size_t(img.width) * size_t(img.height), chunk = size_t(1) << 24;
  for (size_t first = 0; first < pixels; first += chunk) {
    uint8_t* p = img.pixels.data() + first * size_t(img.channels);
    cmsDoTransform(t, p, p, cmsUInt32Number(std::min(chunk, pixels - first)));
  }
}

}  // namespace

std::shared_ptr<const SrgbConversion> SrgbConversion::for_profile(const std::vector<uint8_t>& icc, bool lookup_tables) {
  if (icc_colour_space(icc) != "RGB ") return nullptr;  // none, too short, gray, CMYK, Lab, ...
  // A handful of profiles cover a photo library (the camera's, the phone's, an editor's); the
  // cache keeps the answer for each, unusable ones included.
  static std::mutex mu;
  static std::map<std::pair<std::vector<uint8_t>, bool>, std::shared_ptr<const SrgbConversion>> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto key = std::make_pair(icc, lookup_tables);
  auto it = cache.find(key);
  if (it != cache.end()) return it->second;
  if (cache.size() >= 16) cache.clear();
  auto conversion = make_conversion(icc, lookup_tables);
  cache.emplace(std::move(key), conversion);
  return conversion;
}

bool SrgbConversion::uses_lookup_tables() const { return transforms_->fast_to_srgb != nullptr; }

void SrgbConversion::to_srgb(Image& img) const {
  check_channels(img);
  if (transforms_->fast_to_srgb) return transforms_->fast_to_srgb->run(img.pixels.data(), img.pixels.size() / size_t(img.channels), img.channels);
  run(img.channels == 3 ? transforms_->rgb_to_srgb : transforms_->rgba_to_srgb, img);
}

void SrgbConversion::from_srgb(Image& img) const {
  check_channels(img);
  if (transforms_->fast_from_srgb) return transforms_->fast_from_srgb->run(img.pixels.data(), img.pixels.size() / size_t(img.channels), img.channels);
  run(img.channels == 3 ? transforms_->srgb_to_rgb : transforms_->srgb_to_rgba, img);
}

#endif

}  // namespace gpen
