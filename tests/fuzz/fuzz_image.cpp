// libFuzzer target: arbitrary bytes as an uploaded photo (PNG, JPEG, WebP, TIFF, BMP or HEIF/AVIF, chosen by magic
// bytes). The header probe, the EXIF orientation reader and the full decode must either succeed
// or throw gpen::Error; a decoded image must have exactly width * height * channels bytes. The
// decode limits are tight so that a header promising a huge picture is refused before allocation
// rather than exhausting the fuzzer's memory.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "core/error.h"
#include "core/image.h"

volatile uint8_t g_sink;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> copy(data, data + size);  // exactly `size` bytes: overreads show up in ASan
  const int orientation = gpen::jpeg_exif_orientation(copy.data(), copy.size());
  if (orientation < 1 || orientation > 8) std::abort();
  gpen::DecodeLimits limits;
  limits.max_pixels = 1 << 22;
  limits.max_side = 4096;
  try {
    const gpen::ImageInfo info = gpen::probe_image(copy.data(), copy.size());
    if (info.width <= 0 || info.height <= 0) std::abort();  // a probe either sizes or throws
  } catch (const gpen::Error&) {
  }
  try {
    const gpen::Image img = gpen::decode_image(copy.data(), copy.size(), limits);
    if (img.pixels.size() != size_t(img.width) * img.height * img.channels) std::abort();
    if (img.channels != 1 && img.channels != 3 && img.channels != 4) std::abort();
    uint8_t sum = 0;
    for (uint8_t v : img.pixels) sum ^= v;
    g_sink = sum;
  } catch (const gpen::Error&) {
  }
  return 0;
}
