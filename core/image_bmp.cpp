// BMP through stb_image (decode: 1, 4, 8, 16, 24 and 32-bit, RLE, top-down and bottom-up) and
// stb_image_write (encode: 24-bit, or 32-bit with alpha). Built in this file alone with only
// those two codecs compiled in. The header is read by stbi_info first, so DecodeLimits are
// checked before any pixel is allocated; the pixel density comes from BITMAPINFOHEADER.
#include <cstring>
#include <memory>

#if defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wsign-compare"
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wmissing-field-initializers"
#pragma GCC diagnostic ignored "-Wimplicit-fallthrough"
#endif
#define STB_IMAGE_IMPLEMENTATION
#define STB_IMAGE_STATIC
#define STBI_ONLY_BMP
#define STBI_NO_STDIO
#define STBI_NO_LINEAR
#define STBI_NO_HDR
#include <stb_image.h>
#define STB_IMAGE_WRITE_IMPLEMENTATION
#define STB_IMAGE_WRITE_STATIC
#define STBI_WRITE_NO_STDIO
#include <stb_image_write.h>
#if defined(__GNUC__)
#pragma GCC diagnostic pop
#endif

#include "core/error.h"
#include "core/image_codecs_internal.h"

namespace gpen::detail {

namespace {

constexpr size_t kFileHeaderBytes = 14;

uint32_t le32(const uint8_t* p) { return uint32_t(p[0]) | uint32_t(p[1]) << 8 | uint32_t(p[2]) << 16 | uint32_t(p[3]) << 24; }

// biXPelsPerMeter / biYPelsPerMeter of a BITMAPINFOHEADER (or a later, longer header).
void read_density(const uint8_t* data, size_t size, ImageMetadata& meta) {
  if (size < kFileHeaderBytes + 32 || le32(data + kFileHeaderBytes) < 40) return;
  const uint32_t x = le32(data + kFileHeaderBytes + 24), y = le32(data + kFileHeaderBytes + 28);
  if (x == 0 || y == 0 || x > 10'000'000 || y > 10'000'000) return;
  meta.dpi_x = x * 0.0254;
  meta.dpi_y = y * 0.0254;
}

uint16_t le16(const uint8_t* p) { return uint16_t(p[0] | p[1] << 8); }

// stb_image fills what a truncated file lacks with zeros; an uncompressed BMP's pixel array has a
// known size, so a short file is an error here. (Compressed BMPs stb cannot read anyway.)
void check_complete(const uint8_t* data, size_t size, int width, int height) {
  if (size < kFileHeaderBytes + 16) fail("BMP: file is truncated");
  const uint32_t header = le32(data + kFileHeaderBytes);
  const bool core = header == 12;  // OS/2 BITMAPCOREHEADER: 16-bit fields
  if (!core && size < kFileHeaderBytes + 20) fail("BMP: file is truncated");
  const uint32_t bits = core ? le16(data + kFileHeaderBytes + 10) : le16(data + kFileHeaderBytes + 14);
  const uint32_t compression = core ? 0 : le32(data + kFileHeaderBytes + 16);
  if (compression != 0 && compression != 3) return;  // BI_RGB and BI_BITFIELDS only
  const uint64_t row = (uint64_t(width) * bits + 31) / 32 * 4;
  const uint64_t end = uint64_t(le32(data + 10)) + row * uint64_t(height);
  if (end > size) fail("BMP: file is truncated (", size, " bytes, the pixels end at ", end, ")");
}

int stb_size(size_t size) {
  if (size > size_t(0x7fffffff)) fail("BMP: file is larger than 2 GiB");
  return int(size);
}

}  // namespace

ImageInfo probe_bmp(const uint8_t* data, size_t size) {
  int w = 0, h = 0, comp = 0;
  if (!stbi_info_from_memory(data, stb_size(size), &w, &h, &comp))
    fail("BMP: cannot read header (", stbi_failure_reason(), ")");
  ImageInfo info;
  info.format = ImageFormat::Bmp;
  info.width = w;
  info.height = h;
  return info;
}

Image decode_bmp(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  const ImageInfo info = probe_bmp(data, size);
  check_limits(ImageFormat::Bmp, info.width, info.height, limits);
  check_complete(data, size, info.width, info.height);
  int w = 0, h = 0, comp = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels(stbi_load_from_memory(data, stb_size(size), &w, &h, &comp, 0),
                                                   stbi_image_free);
  if (!pixels) fail("BMP: corrupt or truncated data (", stbi_failure_reason(), ")");
  if (w != info.width || h != info.height) fail("BMP: the header and the data disagree on the size");
  Image out;
  if (comp == 1 || comp == 3 || comp == 4) {
    out = Image(w, h, comp);
    std::memcpy(out.pixels.data(), pixels.get(), out.pixels.size());
  } else if (comp == 2) {  // gray + alpha -> RGBA, as PNG's
    out = Image(w, h, 4);
    for (size_t i = 0; i < size_t(w) * size_t(h); ++i) {
      const stbi_uc g = pixels.get()[2 * i], a = pixels.get()[2 * i + 1];
      out.pixels[4 * i] = out.pixels[4 * i + 1] = out.pixels[4 * i + 2] = g;
      out.pixels[4 * i + 3] = a;
    }
  } else {
    fail("BMP: unexpected channel count ", comp);
  }
  read_density(data, size, out.meta);
  return out;
}

std::vector<uint8_t> encode_bmp(const Image& img) {
  struct Sink {
    std::vector<uint8_t> bytes;
    bool failed = false;
  } sink;
  auto write = [](void* context, void* data, int n) {
    auto* s = static_cast<Sink*>(context);
    try {  // never unwind through stb's frames
      s->bytes.insert(s->bytes.end(), static_cast<uint8_t*>(data), static_cast<uint8_t*>(data) + n);
    } catch (...) {
      s->failed = true;
    }
  };
  if (!stbi_write_bmp_to_func(write, &sink, img.width, img.height, img.channels, img.pixels.data()) || sink.failed)
    fail("BMP: encoding failed");
  return std::move(sink.bytes);
}

}  // namespace gpen::detail
