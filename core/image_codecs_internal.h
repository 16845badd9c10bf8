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

ImageInfo probe_tiff(const uint8_t* data, size_t size);
Image decode_tiff(const uint8_t* data, size_t size, const DecodeLimits& limits);
std::vector<uint8_t> encode_tiff(const Image& img, const ImageMetadata& meta);  // deflate, ICC, resolution

ImageInfo probe_bmp(const uint8_t* data, size_t size);
Image decode_bmp(const uint8_t* data, size_t size, const DecodeLimits& limits);
std::vector<uint8_t> encode_bmp(const Image& img);

ImageInfo probe_heif(const uint8_t* data, size_t size);
Image decode_heif(const uint8_t* data, size_t size, const DecodeLimits& limits);

}  // namespace gpen::detail
