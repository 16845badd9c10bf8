// 8-bit images: decode (PNG, JPEG, WebP, TIFF, BMP, HEIF/AVIF; chosen by magic bytes, never by
// file name), encode (PNG, JPEG, WebP, TIFF, BMP), atomic save, and the channel conversions the
// pipeline needs (gray -> RGB, RGBA -> RGB + alpha).
//
// What decoding produces:
//   - PNG: 8-bit gray -> 1 channel; gray+alpha -> 4 channels (gray copied into R, G, B); RGB -> 3;
//     RGBA -> 4; palette -> RGB, or RGBA when it has a tRNS chunk; gray with tRNS -> RGBA.
//     Bit depths below 8 are expanded; 16-bit samples are scaled to 8 bits with rounding
//     (v * 255 / 65535, libpng's png_set_scale_16), the 16-bit samples kept in `samples16`.
//     Pixels are not colour-converted (like OpenCV);
//     the ICC profile is kept in `meta` and written back with the result.
//   - JPEG: gray -> 1 channel, everything else -> 3 (RGB; CMYK/YCCK converted). The EXIF
//     Orientation tag (1..8) in APP1 is applied, so width/height are those of the upright picture.
//   - WebP: 3 channels, or 4 when the file has alpha. Animated WebP is refused.
//   - TIFF (libtiff): the first page; gray (1 sample) -> 1 channel, with alpha -> 4, everything
//     else -> 3 or 4 (libtiff's RGBA reader: palette, CMYK, YCbCr, 1..16-bit, any compression it
//     knows; its Orientation tag applied). 16-bit gray/RGB strips are rounded like PNG's and kept
//     in `samples16` (turned upright with the pixels). Floating-point samples are refused.
//   - BMP (stb_image): 3 channels, or 4 for 32-bit files with alpha; 8-bit gray palettes -> 3.
//   - HEIF/AVIF (libheif: HEVC and AV1): 3 channels, 4 with alpha; rotation and mirroring
//     (irot/imir) applied, as the HEIF spec asks (its EXIF orientation is ignored). 10/12-bit
//     images are reduced to 8 bits.
// Every failure (unknown format, corrupt or truncated data, over the size limits) throws
// gpen::Error with a one-line message; the codecs never print or exit.
//
// Metadata (`ImageMetadata`): the ICC profile, EXIF, XMP and pixel density are read from every
// format that has them and written back by encode_image (unless EncodeOptions::keep_metadata is
// false) into whatever format the output has room for. The pixels written are upright, so the
// copies are fixed on the way out: EXIF Orientation 1, PixelX/YDimension the output's size, the
// embedded thumbnail (IFD1, the unrestored photo) dropped; XMP's tiff:Orientation 1.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace gpen {

// What a photo file says besides its pixels, kept from decode to encode so a restored photo keeps
// its colour space (a Display P3 or Adobe RGB photo would look washed out without its profile),
// its camera data and its print size.
struct ImageMetadata {
  std::vector<uint8_t> icc;   // ICC colour profile, as embedded; empty: none (sRGB assumed)
  std::vector<uint8_t> exif;  // EXIF as a TIFF stream ("II*\0..." / "MM\0*..."), no "Exif\0\0" prefix
  std::string xmp;            // XMP packet (XML: captions, keywords, ratings, rights), as embedded
  double dpi_x = 0, dpi_y = 0;  // pixel density in dots per inch; 0: not given

  bool empty() const { return icc.empty() && exif.empty() && xmp.empty() && dpi_x <= 0 && dpi_y <= 0; }
};

// The samples of a file stored with 16 bits per sample (PNG; TIFF gray or RGB strips), laid out
// as the 8-bit Image decoded with them (same size and channels, gray + alpha expanded to RGBA
// the same way), row-major. The 8-bit pixels are these rounded: (v * 255 + 32767) / 65535.
struct Samples16 {
  int width = 0, height = 0, channels = 0;
  std::vector<uint16_t> data;
};

// Interleaved 8-bit pixels: HWC, row-major, channels in R, G, B(, A) order (1 = gray).
struct Image {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;
  ImageMetadata meta;  // from the decoded file; new images start without
  // A 16-bit file's own samples (decode_image), so that encode_image can write the result with 16
  // bits per sample; null for 8-bit files and new images. Pixels may change after decoding (only
  // their changes are applied to these), but a different size leaves them unused.
  std::shared_ptr<const Samples16> samples16;

  Image() = default;
  Image(int width, int height, int channels);  // zero-filled; checks the shape

  bool empty() const { return pixels.empty(); }
  size_t row_bytes() const { return size_t(width) * size_t(channels); }
  uint8_t* row(int y) { return pixels.data() + size_t(y) * row_bytes(); }
  const uint8_t* row(int y) const { return pixels.data() + size_t(y) * row_bytes(); }
  uint8_t& at(int x, int y, int c) { return row(y)[size_t(x) * size_t(channels) + size_t(c)]; }
  uint8_t at(int x, int y, int c) const { return row(y)[size_t(x) * size_t(channels) + size_t(c)]; }
};

enum class ImageFormat { Unknown, Png, Jpeg, Webp, Tiff, Bmp, Heif };
const char* image_format_name(ImageFormat f);  // "PNG", "JPEG", "WebP", "TIFF", "BMP", "HEIF/AVIF", "unknown"
// The formats encode_image writes (HEIF/AVIF is read only: its outputs default to JPEG).
bool can_encode(ImageFormat f);
// Whether this build reads HEIF/AVIF (libheif was found at configure time).
bool heif_supported();

// Checked from the file header, before any pixel buffer is allocated.
struct DecodeLimits {
  int64_t max_pixels = 100'000'000;  // width * height
  int max_side = 32768;              // max(width, height)
};

struct ImageInfo {
  ImageFormat format = ImageFormat::Unknown;
  int width = 0, height = 0;  // as stored (before EXIF orientation)
  int orientation = 1;        // EXIF orientation for JPEG, TIFF's own Orientation tag; 1 otherwise
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
  bool keep_metadata = true;                  // write img.meta (ICC, EXIF, density) where the format can
  bool keep_16bit = true;                     // PNG, TIFF: 16 bits per sample from img.samples16 (see below)
};

// Encodes to memory. JPEG cannot store alpha: RGBA is written as RGB (alpha dropped, like
// cv2.imwrite). WebP stores gray as RGB; BMP stores gray as RGB. Where metadata goes: PNG iCCP,
// eXIf, iTXt "XML:com.adobe.xmp", pHYs; JPEG APP2 ICC_PROFILE, APP1 Exif and APP1 XMP (each
// when under a segment's 64 KB), JFIF density; WebP ICCP, EXIF and "XMP " chunks; TIFF ICC
// profile, XMP packet and resolution tags (not EXIF); BMP none. An ICC profile whose colour space
// is not the pixels' (GRAY on RGB) is left out. A photo whose profile is not sRGB and is not
// written (keep_metadata false, or BMP) has its pixels converted to sRGB, so that it looks the
// same without it (core/colour_management.h; not in a build without lcms2).
// 16 bits: an image carrying the samples16 of a 16-bit file of its own size is written to PNG or
// TIFF with 16 bits per sample (unless keep_16bit is false), each sample the file's own moved by
// its pixel's change: v16 + 257 * (p8 - round8(v16)), clamped. Pixels the pipeline left alone
// come back bit for bit; restored ones get the restoration at full depth. (A gray file's samples
// serve a result that became RGB; other channel changes, and JPEG/WebP/BMP, give 8 bits.)
std::vector<uint8_t> encode_image(const Image& img, const EncodeOptions& options);

// ".png" / ".jpg" / ".jpeg" / ".webp" / ".tif" / ".tiff" / ".bmp" / ".heic" / ".heif" / ".avif"
// (any case) -> format; Unknown otherwise.
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
