// The codecs behind core/image.h that live in files of their own, one per library: TIFF
// (libtiff), BMP (stb_image / stb_image_write) and HEIF/AVIF (libheif, when the build has it).
// Each decoder checks DecodeLimits from the header before allocating pixels, fills
// Image::meta with what the format carries, and throws gpen::Error with a one-line message.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/image.h"

namespace gpen::detail {

// Shared by every decoder: throws "<FORMAT>: image is WxH, over the limit ..." or "invalid size".
void check_limits(ImageFormat format, int64_t width, int64_t height, const DecodeLimits& limits);

// 16 bits per sample (core/image.h, Samples16): the 8-bit value a sample decodes to, libpng's
// png_set_scale_16 rounding; and the samples an encoder writes for `img` with 16 bits, empty when
// it has none of its size (see encode_image).
constexpr bool kLittleEndian = __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__;  // PNG stores 16 bits big-endian
inline uint8_t sample_to_8bit(uint16_t v) { return uint8_t((uint32_t(v) * 255 + 32767) / 65535); }
std::vector<uint16_t> samples16_to_write(const Image& img);
// The samples of a page stored turned, upright as apply_exif_orientation turns its pixels.
std::shared_ptr<const Samples16> oriented_samples16(std::shared_ptr<const Samples16> stored, int orientation);

ImageInfo probe_tiff(const uint8_t* data, size_t size);
Image decode_tiff(const uint8_t* data, size_t size, const DecodeLimits& limits);
// Deflate, ICC, resolution; 16 bits per sample when `samples16` (samples16_to_write) is not empty.
std::vector<uint8_t> encode_tiff(const Image& img, const ImageMetadata& meta, const std::vector<uint16_t>& samples16);

ImageInfo probe_bmp(const uint8_t* data, size_t size);
Image decode_bmp(const uint8_t* data, size_t size, const DecodeLimits& limits);
std::vector<uint8_t> encode_bmp(const Image& img);

ImageInfo probe_heif(const uint8_t* data, size_t size);
Image decode_heif(const uint8_t* data, size_t size, const DecodeLimits& limits);

}  // namespace gpen::detail
