// 8-bit images: decode (PNG, JPEG, WebP; chosen by magic bytes, never by file name), encode,
// atomic save, and the channel conversions the pipeline needs (gray -> RGB, RGBA -> RGB + alpha).
//
// What decoding produces:
//   - PNG: 8-bit gray -> 1 channel; gray+alpha -> 4 channels (gray copied into R, G, B); RGB -> 3;
//     RGBA -> 4; palette -> RGB, or RGBA when it has a tRNS chunk; gray with tRNS -> RGBA.
//     Bit depths below 8 are expanded; 16-bit samples are scaled to 8 bits with rounding
//     (v * 255 / 65535, libpng's png_set_scale_16). Gamma / colour profiles are ignored, like OpenCV.
//   - JPEG: gray -> 1 channel, everything else -> 3 (RGB). The EXIF Orientation tag (1..8) in
//     APP1 is applied, so width/height are those of the upright picture.
//   - WebP: 3 channels, or 4 when the file has alpha. Animated WebP is refused.
// Every failure (unknown format, corrupt or truncated data, over the size limits) throws
// gpen::Error with a one-line message; the codecs never print or exit.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace gpen {

// Interleaved 8-bit pixels: HWC, row-major, channels in R, G, B(, A) order (1 = gray).
struct Image {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;

  Image() = default;
  Image(int width, int height, int channels);  // zero-filled; checks the shape

  bool empty() const { return pixels.empty(); }
  size_t row_bytes() const { return size_t(width) * size_t(channels); }
  uint8_t* row(int y) { return pixels.data() + size_t(y) * row_bytes(); }
  const uint8_t* row(int y) const { return pixels.data() + size_t(y) * row_bytes(); }
  uint8_t& at(int x, int y, int c) { return row(y)[size_t(x) * size_t(channels) + size_t(c)]; }
  uint8_t at(int x, int y, int c) const { return row(y)[size_t(x) * size_t(channels) + size_t(c)]; }
};

enum class ImageFormat { Unknown, Png, Jpeg, Webp };
const char* image_format_name(ImageFormat f);  // "PNG", "JPEG", "WebP", "unknown"

// Checked from the file header, before any pixel buffer is allocated.
struct DecodeLimits {
  int64_t max_pixels = 100'000'000;  // width * height
  int max_side = 32768;              // max(width, height)
};

struct ImageInfo {
  ImageFormat format = ImageFormat::Unknown;
  int width = 0, height = 0;  // as stored (before EXIF orientation)
  int orientation = 1;        // EXIF orientation for JPEG, 1 otherwise
};

// Format from the first bytes; Unknown when no supported signature matches.
ImageFormat detect_image_format(const uint8_t* data, size_t size);
// Reads only the header: format and size. Throws gpen::Error for unknown / unreadable headers.
ImageInfo probe_image(const uint8_t* data, size_t size);

Image decode_image(const uint8_t* data, size_t size, const DecodeLimits& limits = {});
Image decode_image(const std::vector<uint8_t>& bytes, const DecodeLimits& limits = {});
// Reads the whole file and decodes it; errors name the path.
Image load_image(const std::string& path, const DecodeLimits& limits = {});

// EXIF Orientation (1..8) from a JPEG's APP1 segment; 1 when absent or unreadable. Exposed for tests.
int jpeg_exif_orientation(const uint8_t* data, size_t size);
// Applies an EXIF orientation (1..8) to pixels stored as in the file, giving the upright picture.
// Takes the image by value: orientation 1 (most photos) hands it back without copying its pixels.
Image apply_exif_orientation(Image stored, int orientation);

struct EncodeOptions {
  ImageFormat format = ImageFormat::Unknown;  // Unknown: save_image takes it from the extension
  int quality = 95;                           // JPEG and lossy WebP, 1..100
  bool lossless = false;                      // WebP only
  int png_compression = 6;                    // zlib level 0..9
};

// Encodes to memory. JPEG cannot store alpha: RGBA is written as RGB (alpha dropped, like
// cv2.imwrite). WebP stores gray as RGB.
std::vector<uint8_t> encode_image(const Image& img, const EncodeOptions& options);

// ".png" / ".jpg" / ".jpeg" / ".webp" (any case) -> format; Unknown otherwise.
ImageFormat format_from_extension(const std::string& path);

// Encodes, writes to a temporary file in the destination directory, then renames it over `path`
// (atomic on POSIX). On any failure the temporary file is removed and gpen::Error says why
// (e.g. "No space left on device", "Permission denied").
void save_image(const std::string& path, const Image& img, const EncodeOptions& options = {});

// --- conversions -------------------------------------------------------------------------------
// Any of 1/3/4 channels -> 3 channels (gray replicated; alpha dropped).
Image to_rgb(const Image& img);

struct RgbAndAlpha {
  Image rgb;     // 3 channels
  Image alpha;   // 1 channel, same size; empty when the input had no alpha
};
RgbAndAlpha split_alpha(const Image& img);
// RGB + 1-channel alpha of the same size -> RGBA.
Image attach_alpha(const Image& rgb, const Image& alpha);

}  // namespace gpen
