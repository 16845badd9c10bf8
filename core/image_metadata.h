// EXIF blocks as the codecs carry them (core/image.h, ImageMetadata::exif): a TIFF-structured
// stream -- byte order "II"/"MM", 42, the offset of IFD0 -- whose IFD0 holds Orientation (0x0112)
// and a pointer (0x8769) to the Exif IFD with PixelXDimension (0xA002) / PixelYDimension (0xA003);
// IFD0's "next" offset links IFD1, the embedded thumbnail. Every read is bounds-checked against
// the block, so a malformed block means "no orientation" or "not written", never a crash.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "core/image.h"

namespace gpen {

// The metadata of the same photo resampled from `from_width` to `to_width` pixels wide: the
// density scales with the pixels, so the print size stays (a 300 dpi scan upscaled 2x is 600 dpi).
ImageMetadata resampled_metadata(ImageMetadata meta, int from_width, int to_width);

// Orientation (1..8) from IFD0; 1 when absent, out of range or unreadable.
int exif_orientation(const uint8_t* tiff, size_t size);

// A copy fit for pixels written upright at width x height: Orientation set to 1, the Exif IFD's
// pixel dimensions set to the new size, IFD1 (a thumbnail of the unrestored photo, which viewers
// would show) unlinked. Patched in place, so no offset moves. A block whose IFD0 cannot be read
// comes back empty: dropped rather than written broken.
std::vector<uint8_t> exif_for_output(const std::vector<uint8_t>& exif, int width, int height);

// An XMP packet fit for pixels written upright: every tiff:Orientation, as an attribute
// (tiff:Orientation="6") or an element (<tiff:Orientation>6</tiff:Orientation>), set to 1.
std::string xmp_for_output(std::string xmp);

// JPEG's APP1 signature of a standard XMP packet (the packet follows it).
inline constexpr char kJpegXmpSignature[] = "http://ns.adobe.com/xap/1.0/";  // + its NUL: 29 bytes

// The TIFF stream of an EXIF payload that may start with JPEG's "Exif\0\0" (some WebP and HEIF
// writers keep it); the payload as is otherwise.
std::vector<uint8_t> exif_without_prefix(const uint8_t* data, size_t size);

}  // namespace gpen
