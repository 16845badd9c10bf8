// ICC profiles made with lcms2 for the tests and the kernel benchmarks (never copied from
// elsewhere). Only in builds with colour management (GPEN_HAVE_LCMS2).
#pragma once

#ifdef GPEN_HAVE_LCMS2
#include <lcms2.h>

#include <cstdint>
#include <stdexcept>
#include <vector>

namespace gpen::test {

// The profile's bytes; closes the profile.
inline std::vector<uint8_t> saved_profile(cmsHPROFILE p) {
  cmsUInt32Number n = 0;
  std::vector<uint8_t> bytes;
  if (p && cmsSaveProfileToMem(p, nullptr, &n)) {
    bytes.resize(n);
    if (!cmsSaveProfileToMem(p, bytes.data(), &n)) bytes.clear();
  }
  if (p) cmsCloseProfile(p);
  if (bytes.empty()) throw std::runtime_error("lcms2 could not save a test profile");
  return bytes;
}

inline void describe_profile(cmsHPROFILE p, const char* text) {
  cmsMLU* mlu = cmsMLUalloc(nullptr, 1);
  cmsMLUsetASCII(mlu, "en", "US", text);
  cmsWriteTag(p, cmsSigProfileDescriptionTag, mlu);
  cmsMLUfree(mlu);
}

// IEC 61966-2-1's curve (sRGB's, and Display P3's).
inline cmsToneCurve* srgb_tone_curve() {
  const cmsFloat64Number params[5] = {2.4, 1 / 1.055, 0.055 / 1.055, 1 / 12.92, 0.04045};
  return cmsBuildParametricToneCurve(nullptr, 4, params);
}

// Display P3: DCI-P3 primaries, D65 white, the sRGB curve (as Apple's phones embed it).
inline std::vector<uint8_t> display_p3_profile_bytes(const char* description) {
  const cmsCIExyY d65 = {0.3127, 0.3290, 1.0};
  const cmsCIExyYTRIPLE primaries = {{0.680, 0.320, 1.0}, {0.265, 0.690, 1.0}, {0.150, 0.060, 1.0}};
  cmsToneCurve* curve = srgb_tone_curve();
  cmsToneCurve* curves[3] = {curve, curve, curve};
  cmsHPROFILE p = cmsCreateRGBProfile(&d65, &primaries, curves);
  cmsFreeToneCurve(curve);
  describe_profile(p, description);
  return saved_profile(p);
}

}  // namespace gpen::test
#endif
