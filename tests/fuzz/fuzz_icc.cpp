// libFuzzer target: arbitrary bytes as a photo's embedded ICC profile. SrgbConversion::for_profile
// must give a conversion or none (never crash, leak or hang inside lcms2's parser); a conversion
// must convert RGB and RGBA pixels both ways; encode_image must write the profile or leave it
// out, and convert the pixels when it strips it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "core/colour_management.h"
#include "core/error.h"
#include "core/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::vector<uint8_t> icc(data, data + size);
  gpen::Image rgb(7, 5, 3), rgba(3, 2, 4);
  for (size_t i = 0; i < rgb.pixels.size(); ++i) rgb.pixels[i] = uint8_t(i * 37);
  for (size_t i = 0; i < rgba.pixels.size(); ++i) rgba.pixels[i] = uint8_t(i * 53);
  const gpen::Image rgba_before = rgba;
  if (auto conversion = gpen::SrgbConversion::for_profile(icc)) {
    conversion->to_srgb(rgb);
    conversion->from_srgb(rgb);
    conversion->to_srgb(rgba);
    conversion->from_srgb(rgba);
    for (size_t i = 3; i < rgba.pixels.size(); i += 4)
      if (rgba.pixels[i] != rgba_before.pixels[i]) std::abort();  // alpha is never converted
    if (conversion->description().empty()) std::abort();
  }
  rgb.meta.icc = icc;
  for (bool keep : {true, false}) {
    gpen::EncodeOptions opt{gpen::ImageFormat::Png};
    opt.keep_metadata = keep;
    const gpen::Image back = gpen::decode_image(gpen::encode_image(rgb, opt));
    if (back.width != rgb.width || back.height != rgb.height) std::abort();
    if (!keep && !back.meta.icc.empty()) std::abort();
  }
  return 0;
}
