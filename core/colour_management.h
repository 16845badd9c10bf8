// Colour management around the face model. GPEN learnt faces from sRGB photos (FFHQ). A photo
// tagged with another ICC profile -- Display P3 from phones, Adobe RGB from cameras, ProPhoto from
// raw converters -- stores other numbers for the same colours: a wide-gamut profile stores duller
// numbers, so GPEN, reading them as sRGB, sees a pale face, restores it with sRGB skin tones, and
// those numbers, read back through the photo's profile, make the face over-saturated next to the
// rest of the photo. So each face crop is converted to sRGB before GPEN and GPEN's output back to
// the photo's profile before it is blended and pasted (core/pipeline/face_restorer.cpp); the rest
// of the photo is never converted, and the output keeps the photo's profile.
//
// Conversions are 8-bit to 8-bit (Little CMS 2, relative colorimetric with black-point
// compensation): colours outside sRGB are clipped on the way in -- GPEN cannot take them anyway --
// and in-gamut colours come back within a step or two of where they were.
//
// Without lcms2 at configure time (GPEN_HAVE_LCMS2 unset; the static build, as Debian ships no
// static liblcms2) there is no conversion: faces go through GPEN in the photo's numbers, as before.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/image.h"

namespace gpen {

// Whether this build converts colours (lcms2 was found at configure time).
bool colour_management_supported();

// The conversions between one ICC profile and sRGB, for 8-bit RGB and RGBA images (alpha is left
// as it is). Shared and used from several threads at once: no state changes after construction.
class SrgbConversion {
 public:
  // The conversion for the photo's profile, or null when there is nothing to convert: no profile,
  // a profile that is sRGB (every colour of a 17x17x17 grid within one step of itself), one that is
  // not RGB (gray, CMYK), one lcms2 cannot read or use, or a build without lcms2. Profiles seen
  // before come from a small cache, so a folder of phone photos parses its profile once.
  // `lookup_tables` false keeps lcms2's transforms for every profile (tests, benchmarks).
  static std::shared_ptr<const SrgbConversion> for_profile(const std::vector<uint8_t>& icc, bool lookup_tables = true);

  // In place; images of 3 or 4 channels (others are refused with gpen::Error).
  void to_srgb(Image& img) const;
  void from_srgb(Image& img) const;
  // The profile's own description ("Display P3", "Adobe RGB (1998)"), for messages: printable
  // ASCII (anything else becomes '?'), at most 80 characters; "unnamed profile" when it has none.
  const std::string& description() const { return description_; }
  // Whether pixels go through our lookup tables (matrix-shaper profiles) rather than lcms2's
  // transforms (profiles built on LUTs); both give the same colours within one step.
  bool uses_lookup_tables() const;

  struct Transforms;  // lcms2 handles (core/colour_management.cpp)
  SrgbConversion(std::shared_ptr<const Transforms> t, std::string description)
      : transforms_(std::move(t)), description_(std::move(description)) {}

 private:
  std::shared_ptr<const Transforms> transforms_;
  std::string description_;
};

// The colour space an ICC profile's header names (bytes 16..19: "RGB ", "GRAY", "CMYK", ...); empty
// when the block is too short to be a profile. Read without lcms2: encode_image uses it to leave
// out a profile that does not fit the pixels written (a gray scan's profile on restored RGB faces).
std::string icc_colour_space(const std::vector<uint8_t>& icc);

}  // namespace gpen
