// libFuzzer target: arbitrary bytes as an uploaded photo (PNG, JPEG, WebP, TIFF, BMP or HEIF/AVIF, chosen by magic
// bytes). The header probe, the EXIF orientation reader and the full decode must either succeed
// or throw gpen::Error; a decoded image must have exactly width * height * channels bytes, and a
// 16-bit file's samples must match its pixels and survive a 16-bit PNG round trip. The
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
    if (const gpen::Samples16* s = img.samples16.get()) {  // 16-bit files: samples match the pixels
      if (s->width != img.width || s->height != img.height || s->channels != img.channels) std::abort();
      if (s->data.size() != img.pixels.size()) std::abort();
      for (size_t i = 0; i < s->data.size(); ++i)
        if (img.pixels[i] != uint8_t((uint32_t(s->data[i]) * 255 + 32767) / 65535)) std::abort();
      if (img.pixels.size() <= (size_t(1) << 16)) {  // and come back bit for bit through our PNG
        const gpen::Image back = gpen::decode_image(gpen::encode_image(img, gpen::EncodeOptions{gpen::ImageFormat::Png}));
        if (!back.samples16 || back.samples16->data != s->data) std::abort();
      }
    }
  } catch (const gpen::Error&) {
  }
  return 0;
}
