// Codec glue around libpng, libjpeg(-turbo) and libwebp, the format dispatch and atomic save.
// TIFF, BMP and HEIF/AVIF live in image_tiff.cpp, image_bmp.cpp and image_heif.cpp.
//
// libpng and libjpeg report fatal errors through a callback that must not return; we longjmp back
// to the function that called setjmp. To keep that well-defined in C++ every setjmp-ing function
// below has only trivially-destructible locals, and everything it fills (the output image, codec
// handles, scratch rows) lives in a context object owned by its caller, which cleans up and turns
// the stored message into a gpen::Error after the codec function has returned.
#include "core/image.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <csetjmp>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <memory>

#include <jpeglib.h>
#include <jerror.h>  // JWRN_JPEG_EOF
#include <png.h>
#include <webp/decode.h>
#include <webp/demux.h>
#include <webp/encode.h>
#include <webp/mux.h>

#include "core/colour_management.h"
#include "core/error.h"
#include "core/image_codecs_internal.h"
#include "core/image_metadata.h"

namespace gpen {

// ------------------------------------------------------------------------------------------------
// Image basics

Image::Image(int w, int h, int c) : width(w), height(h), channels(c) {
  if (w < 0 || h < 0) fail("image size ", w, "x", h, " is negative");
  if (c != 1 && c != 3 && c != 4) fail("image must have 1, 3 or 4 channels, got ", c);
  pixels.assign(size_t(w) * size_t(h) * size_t(c), 0);
}

const char* image_format_name(ImageFormat f) {
  switch (f) {
    case ImageFormat::Png: return "PNG";
    case ImageFormat::Jpeg: return "JPEG";
    case ImageFormat::Webp: return "WebP";
    case ImageFormat::Tiff: return "TIFF";
    case ImageFormat::Bmp: return "BMP";
    case ImageFormat::Heif: return "HEIF/AVIF";
    default: return "unknown";
  }
}

bool can_encode(ImageFormat f) {
  return f == ImageFormat::Png || f == ImageFormat::Jpeg || f == ImageFormat::Webp || f == ImageFormat::Tiff ||
         f == ImageFormat::Bmp;
}

namespace detail {

void check_limits(ImageFormat format, int64_t width, int64_t height, const DecodeLimits& limits) {
  const char* name = image_format_name(format);
  if (width <= 0 || height <= 0) fail(name, ": invalid image size ", width, "x", height);
  if (std::max(width, height) > limits.max_side)
    fail(name, ": image is ", width, "x", height, ", over the limit of ", limits.max_side,
         " pixels per side");
  if (width * height > limits.max_pixels)
    fail(name, ": image is ", width, "x", height, " (", (width * height + 500000) / 1000000,
         " Mpx), over the limit of ", limits.max_pixels / 1000000.0, " Mpx");
}

}  // namespace detail

namespace {

using detail::check_limits;

uint32_t read_be32(const uint8_t* p) {
  return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | uint32_t(p[3]);
}
uint16_t read_be16(const uint8_t* p) { return uint16_t(p[0] << 8 | p[1]); }

bool starts_with(const uint8_t* data, size_t size, const char* magic, size_t n, size_t at = 0) {
  return size >= at + n && std::memcmp(data + at, magic, n) == 0;
}

// Names formats we recognise but do not decode, so the error says what the file is.
const char* other_format_name(const uint8_t* data, size_t size) {
  if (starts_with(data, size, "GIF8", 4)) return "GIF";
  if (starts_with(data, size, "8BPS", 4)) return "Photoshop PSD";
  if (starts_with(data, size, "\xFF\x0A", 2) || starts_with(data, size, "\0\0\0\x0CJXL ", 8)) return "JPEG XL";
  if (starts_with(data, size, "\0\0\0\x0CjP  ", 8)) return "JPEG 2000";
  if (starts_with(data, size, "ftyp", 4, 4)) return "ISO media other than HEIF/AVIF";
  return nullptr;
}

// The brands of the ISO base media files libheif reads as still images: HEIC (HEVC), AVIF (AV1)
// and the generic HEIF ones. Video brands (mp4, mov) are not images.
bool is_heif_brand(const uint8_t* brand) {
  static const char* kBrands[] = {"heic", "heix", "heim", "heis", "hevc", "hevx", "mif1", "msf1", "avif", "avis"};
  for (const char* b : kBrands)
    if (std::memcmp(brand, b, 4) == 0) return true;
  return false;
}

bool is_heif(const uint8_t* data, size_t size) {
  if (!starts_with(data, size, "ftyp", 4, 4) || size < 16) return false;
  if (is_heif_brand(data + 8)) return true;  // major brand
  const size_t box = std::min<size_t>(read_be32(data), size);
  for (size_t at = 16; at + 4 <= box; at += 4)  // compatible brands
    if (is_heif_brand(data + at)) return true;
  return false;
}

// Walks JPEG marker segments up to the first SOS; calls visit(marker, payload, payload_size) for
// each one until it returns true.
template <class Visit>
void for_each_jpeg_segment(const uint8_t* data, size_t size, Visit visit) {
  if (size < 4 || data[0] != 0xFF || data[1] != 0xD8) return;
  size_t pos = 2;
  while (pos + 4 <= size) {
    if (data[pos] != 0xFF) return;
    uint8_t marker = data[pos + 1];
    if (marker == 0xFF) { ++pos; continue; }  // fill byte
    if (marker == 0xDA || marker == 0xD9) return;  // start of scan / end of image
    if (marker == 0x01 || (marker >= 0xD0 && marker <= 0xD7)) { pos += 2; continue; }  // no length
    size_t length = read_be16(data + pos + 2);
    if (length < 2 || length > size - pos - 2) return;
    if (visit(marker, data + pos + 4, length - 2)) return;
    pos += 2 + length;
  }
}

bool is_jpeg_sof(uint8_t marker) {
  return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

// ------------------------------------------------------------------------------------------------
// PNG decoding

struct PngDecodeContext {
  const uint8_t* data = nullptr;
  size_t size = 0, pos = 0;
  DecodeLimits limits;
  Image* out = nullptr;
  std::shared_ptr<Samples16>* samples16 = nullptr;  // filled for 16-bit files
  ImageMetadata meta;
  png_structp png = nullptr;
  png_infop info = nullptr;
  jmp_buf jmp;
  char message[200] = "";
  ~PngDecodeContext() {
    if (png) png_destroy_read_struct(&png, info ? &info : nullptr, nullptr);
  }
};

void png_error_to_longjmp(png_structp png, png_const_charp msg) {
  auto* ctx = static_cast<PngDecodeContext*>(png_get_error_ptr(png));
  std::snprintf(ctx->message, sizeof ctx->message, "%s", msg);
  std::longjmp(ctx->jmp, 1);
}
void png_ignore_warning(png_structp, png_const_charp) {}

void png_read_from_memory(png_structp png, png_bytep dst, size_t n) {
  auto* ctx = static_cast<PngDecodeContext*>(png_get_io_ptr(png));
  if (n > ctx->size - ctx->pos) png_error(png, "file is truncated");
  std::memcpy(dst, ctx->data + ctx->pos, n);
  ctx->pos += n;
}

// Asks libpng for gray, RGB or RGBA whatever the stored colour type: 8-bit, or 16-bit samples in
// host byte order for 16-bit files (which png_decode_pixels rounds to 8 bits itself, as libpng's
// png_set_scale_16 would). Returns whether rows come with 16 bits.
bool png_request_output(png_structp png, png_infop info) {
  int color_type = png_get_color_type(png, info);
  int bit_depth = png_get_bit_depth(png, info);
  bool has_trns = png_get_valid(png, info, PNG_INFO_tRNS) != 0;
  if (color_type == PNG_COLOR_TYPE_PALETTE) png_set_palette_to_rgb(png);
  if (color_type == PNG_COLOR_TYPE_GRAY && bit_depth < 8) png_set_expand_gray_1_2_4_to_8(png);
  if (has_trns) png_set_tRNS_to_alpha(png);
  if (bit_depth == 16 && detail::kLittleEndian) png_set_swap(png);
  bool gray = (color_type & PNG_COLOR_MASK_COLOR) == 0;
  bool alpha = (color_type & PNG_COLOR_MASK_ALPHA) != 0 || has_trns;
  if (gray && alpha) png_set_gray_to_rgb(png);  // gray+alpha -> RGBA: we keep 1, 3 or 4 channels
  return bit_depth == 16;
}

constexpr double kMetresPerInch = 0.0254;
constexpr const char* kPngXmpKeyword = "XML:com.adobe.xmp";  // an iTXt chunk's keyword

// The chunks before the image data: iCCP (libpng inflates it), eXIf, iTXt XMP, pHYs in pixels
// per metre.
// Chunks after the image data are not read (the decoder stops at its end).
void png_read_metadata(png_structp png, png_infop info, ImageMetadata& meta) {
  png_charp name = nullptr;
  int compression = 0;
  png_bytep profile = nullptr;
  png_uint_32 profile_size = 0;
  if (png_get_iCCP(png, info, &name, &compression, &profile, &profile_size) && profile && profile_size)
    meta.icc.assign(profile, profile + profile_size);
  png_uint_32 exif_size = 0;
  png_bytep exif = nullptr;
  if (png_get_eXIf_1(png, info, &exif_size, &exif) && exif && exif_size) meta.exif = exif_without_prefix(exif, exif_size);
  png_textp text = nullptr;
  const int texts = png_get_text(png, info, &text, nullptr);
  for (int i = 0; i < texts; ++i)
    if (text[i].key && std::strcmp(text[i].key, kPngXmpKeyword) == 0 && text[i].text) {
      meta.xmp.assign(text[i].text, text[i].itxt_length ? text[i].itxt_length : text[i].text_length);
      break;
    }
  png_uint_32 x = 0, y = 0;
  int unit = 0;
  if (png_get_pHYs(png, info, &x, &y, &unit) && unit == PNG_RESOLUTION_METER && x > 0 && y > 0) {
    meta.dpi_x = x * kMetresPerInch;
    meta.dpi_y = y * kMetresPerInch;
  }
}

// Returns false with ctx.message set on any libpng error. Only trivial locals (setjmp rules).
bool png_decode_pixels(PngDecodeContext& ctx) {
  if (setjmp(ctx.jmp)) return false;
  png_set_read_fn(ctx.png, &ctx, png_read_from_memory);
  png_set_user_limits(ctx.png, uint32_t(ctx.limits.max_side), uint32_t(ctx.limits.max_side));
  png_set_benign_errors(ctx.png, 1);  // a bad profile or eXIf chunk is skipped, not a failed decode
  png_read_info(ctx.png, ctx.info);
  png_read_metadata(ctx.png, ctx.info, ctx.meta);
  png_uint_32 width = png_get_image_width(ctx.png, ctx.info);
  png_uint_32 height = png_get_image_height(ctx.png, ctx.info);
  const bool deep = png_request_output(ctx.png, ctx.info);
  int passes = png_set_interlace_handling(ctx.png);
  png_read_update_info(ctx.png, ctx.info);
  int channels = png_get_channels(ctx.png, ctx.info);
  if (channels != 1 && channels != 3 && channels != 4) png_error(ctx.png, "unexpected channel count");
  *ctx.out = Image(int(width), int(height), channels);  // limits were checked by the caller
  if (png_get_rowbytes(ctx.png, ctx.info) != ctx.out->row_bytes() * (deep ? 2 : 1)) png_error(ctx.png, "unexpected row size");
  if (!deep) {
    for (int pass = 0; pass < passes; ++pass)
      for (png_uint_32 y = 0; y < height; ++y) png_read_row(ctx.png, ctx.out->row(int(y)), nullptr);
    return true;
  }
  *ctx.samples16 = std::make_shared<Samples16>();
  Samples16& s = **ctx.samples16;
  s.width = int(width), s.height = int(height), s.channels = channels;
  s.data.resize(ctx.out->pixels.size());
  for (int pass = 0; pass < passes; ++pass)
    for (png_uint_32 y = 0; y < height; ++y)
      png_read_row(ctx.png, reinterpret_cast<png_bytep>(s.data.data() + size_t(y) * ctx.out->row_bytes()), nullptr);
  for (size_t i = 0; i < s.data.size(); ++i) ctx.out->pixels[i] = detail::sample_to_8bit(s.data[i]);
  return true;
}

void png_check_header_size(const uint8_t* data, size_t size, int64_t& width, int64_t& height) {
  // Signature (8) + IHDR length (4) + "IHDR" (4) + width (4) + height (4).
  if (size < 24 || std::memcmp(data + 12, "IHDR", 4) != 0) fail("PNG: file is truncated or has no IHDR header");
  width = read_be32(data + 16);
  height = read_be32(data + 20);
}

Image decode_png(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  int64_t width = 0, height = 0;
  png_check_header_size(data, size, width, height);
  check_limits(ImageFormat::Png, width, height, limits);  // before libpng allocates anything

  Image out;
  PngDecodeContext ctx;
  ctx.data = data;
  ctx.size = size;
  ctx.limits = limits;
  ctx.out = &out;
  std::shared_ptr<Samples16> samples16;
  ctx.samples16 = &samples16;
  ctx.png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &ctx, png_error_to_longjmp, png_ignore_warning);
  if (!ctx.png) fail("PNG: cannot create decoder");
  ctx.info = png_create_info_struct(ctx.png);
  if (!ctx.info) fail("PNG: cannot create decoder");
  if (!png_decode_pixels(ctx)) fail("PNG: corrupt or truncated data (", ctx.message, ")");
  out.meta = std::move(ctx.meta);
  out.samples16 = std::move(samples16);
  return out;
}

// ------------------------------------------------------------------------------------------------
// JPEG decoding

struct JpegErrorManager {
  jpeg_error_mgr pub;
  jmp_buf jmp;
  char message[JMSG_LENGTH_MAX] = "";
};

void jpeg_error_to_longjmp(j_common_ptr cinfo) {
  auto* err = reinterpret_cast<JpegErrorManager*>(cinfo->err);
  cinfo->err->format_message(cinfo, err->message);
  std::longjmp(err->jmp, 1);
}

// libjpeg only warns when data ends early (it pads with a fake EOI and returns a gray bottom);
// we treat that one warning as fatal so truncated files are reported. Other warnings (extraneous
// bytes, odd markers) are common in real files and ignored. Nothing is printed.
void jpeg_emit_message(j_common_ptr cinfo, int msg_level) {
  if (msg_level == -1 && cinfo->err->msg_code == JWRN_JPEG_EOF) jpeg_error_to_longjmp(cinfo);
}
void jpeg_output_nothing(j_common_ptr) {}

struct JpegDecodeContext {
  const uint8_t* data = nullptr;
  size_t size = 0;
  DecodeLimits limits;
  Image* out = nullptr;
  ImageMetadata meta;
  std::vector<uint8_t> cmyk_row;
  jpeg_decompress_struct cinfo;
  JpegErrorManager err;
  bool limit_exceeded = false;
  bool created = false;
  ~JpegDecodeContext() {
    if (created) jpeg_destroy_decompress(&cinfo);
  }
};

// Adobe writes inverted CMYK (saw_Adobe_marker); others store plain CMYK.
void cmyk_row_to_rgb(const uint8_t* cmyk, uint8_t* rgb, int width, bool inverted) {
  for (int x = 0; x < width; ++x, cmyk += 4, rgb += 3) {
    int k = inverted ? cmyk[3] : 255 - cmyk[3];
    for (int c = 0; c < 3; ++c) {
      int v = inverted ? cmyk[c] : 255 - cmyk[c];
      rgb[c] = uint8_t((v * k + 127) / 255);
    }
  }
}

// APP1 "Exif\0\0" and the standard APP1 XMP packet (the first of each; extended XMP, split over
// several segments, is not joined), the APP2 ICC_PROFILE chunks (libjpeg-turbo joins them) and
// the JFIF density; needs jpeg_save_markers for APP1 and APP2 before the header is read.
void jpeg_read_metadata(jpeg_decompress_struct& cinfo, ImageMetadata& meta) {
  constexpr size_t kXmpSignatureBytes = sizeof kJpegXmpSignature;  // with its NUL
  for (jpeg_saved_marker_ptr m = cinfo.marker_list; m; m = m->next) {
    if (m->marker != JPEG_APP0 + 1) continue;
    if (meta.exif.empty() && m->data_length > 6 && std::memcmp(m->data, "Exif\0\0", 6) == 0)
      meta.exif = exif_without_prefix(m->data, m->data_length);
    else if (meta.xmp.empty() && m->data_length > kXmpSignatureBytes &&
             std::memcmp(m->data, kJpegXmpSignature, kXmpSignatureBytes) == 0)
      meta.xmp.assign(reinterpret_cast<const char*>(m->data) + kXmpSignatureBytes, m->data_length - kXmpSignatureBytes);
  }
  JOCTET* icc = nullptr;
  unsigned int icc_size = 0;
  if (jpeg_read_icc_profile(&cinfo, &icc, &icc_size) && icc) {
    try {
      meta.icc.assign(icc, icc + icc_size);
    } catch (...) {
      std::free(icc);
      throw;
    }
    std::free(icc);
  }
  if (cinfo.saw_JFIF_marker && (cinfo.density_unit == 1 || cinfo.density_unit == 2) && cinfo.X_density &&
      cinfo.Y_density) {
    const double per_inch = cinfo.density_unit == 1 ? 1.0 : 2.54;  // 2: dots per cm
    meta.dpi_x = cinfo.X_density * per_inch;
    meta.dpi_y = cinfo.Y_density * per_inch;
  }
}

bool jpeg_decode_pixels(JpegDecodeContext& ctx) {
  jpeg_decompress_struct& cinfo = ctx.cinfo;
  if (setjmp(ctx.err.jmp)) return false;
  jpeg_create_decompress(&cinfo);
  ctx.created = true;
  jpeg_mem_src(&cinfo, ctx.data, static_cast<unsigned long>(ctx.size));
  jpeg_save_markers(&cinfo, JPEG_APP0 + 1, 0xFFFF);
  jpeg_save_markers(&cinfo, JPEG_APP0 + 2, 0xFFFF);
  jpeg_read_header(&cinfo, TRUE);
  jpeg_read_metadata(cinfo, ctx.meta);
  int64_t width = cinfo.image_width, height = cinfo.image_height;
  if (width <= 0 || height <= 0 || std::max(width, height) > ctx.limits.max_side ||
      width * height > ctx.limits.max_pixels) {
    ctx.limit_exceeded = true;
    return false;
  }
  bool cmyk = cinfo.jpeg_color_space == JCS_CMYK || cinfo.jpeg_color_space == JCS_YCCK;
  bool gray = cinfo.jpeg_color_space == JCS_GRAYSCALE;
  cinfo.out_color_space = cmyk ? JCS_CMYK : gray ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_start_decompress(&cinfo);
  *ctx.out = Image(int(cinfo.output_width), int(cinfo.output_height), gray ? 1 : 3);
  if (cmyk) ctx.cmyk_row.resize(size_t(cinfo.output_width) * 4);
  while (cinfo.output_scanline < cinfo.output_height) {
    uint8_t* dst = ctx.out->row(int(cinfo.output_scanline));
    JSAMPROW row = cmyk ? ctx.cmyk_row.data() : dst;
    jpeg_read_scanlines(&cinfo, &row, 1);
    if (cmyk) cmyk_row_to_rgb(ctx.cmyk_row.data(), dst, ctx.out->width, cinfo.saw_Adobe_marker);
  }
  jpeg_finish_decompress(&cinfo);
  return true;
}

// Limits are checked by jpeg_decode_pixels right after jpeg_read_header, before libjpeg allocates
// anything image-sized (our own SOF scan in probe_image would reject some files libjpeg reads).
Image decode_jpeg(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  Image stored;
  JpegDecodeContext ctx;
  ctx.data = data;
  ctx.size = size;
  ctx.limits = limits;
  ctx.out = &stored;
  ctx.cinfo.err = jpeg_std_error(&ctx.err.pub);
  ctx.err.pub.error_exit = jpeg_error_to_longjmp;
  ctx.err.pub.emit_message = jpeg_emit_message;
  ctx.err.pub.output_message = jpeg_output_nothing;
  if (!jpeg_decode_pixels(ctx)) {
    if (ctx.limit_exceeded)
      check_limits(ImageFormat::Jpeg, ctx.cinfo.image_width, ctx.cinfo.image_height, limits);
    fail("JPEG: corrupt or truncated data (", ctx.err.message, ")");
  }
  const int orientation = exif_orientation(ctx.meta.exif.data(), ctx.meta.exif.size());
  Image upright = apply_exif_orientation(std::move(stored), orientation);
  if (orientation >= 5) std::swap(ctx.meta.dpi_x, ctx.meta.dpi_y);
  upright.meta = std::move(ctx.meta);
  return upright;
}

// ------------------------------------------------------------------------------------------------
// WebP decoding

const char* webp_status_text(VP8StatusCode status) {
  switch (status) {
    case VP8_STATUS_NOT_ENOUGH_DATA: return "file is truncated";
    case VP8_STATUS_BITSTREAM_ERROR: return "corrupt bitstream";
    case VP8_STATUS_UNSUPPORTED_FEATURE: return "unsupported feature";
    case VP8_STATUS_OUT_OF_MEMORY: return "out of memory";
    default: return "invalid data";
  }
}

// The ICCP, EXIF and "XMP " chunks of an extended (VP8X) file; none in a simple one.
ImageMetadata webp_read_metadata(const uint8_t* data, size_t size) {
  ImageMetadata meta;
  const WebPData whole = {data, size};
  std::unique_ptr<WebPDemuxer, void (*)(WebPDemuxer*)> demux(WebPDemux(&whole), WebPDemuxDelete);
  if (!demux) return meta;
  const uint32_t flags = WebPDemuxGetI(demux.get(), WEBP_FF_FORMAT_FLAGS);
  auto chunk = [&](const char* fourcc, uint32_t flag, std::vector<uint8_t>& dst) {
    WebPChunkIterator it;
    if (!(flags & flag) || !WebPDemuxGetChunk(demux.get(), fourcc, 1, &it)) return;
    dst.assign(it.chunk.bytes, it.chunk.bytes + it.chunk.size);
    WebPDemuxReleaseChunkIterator(&it);
  };
  chunk("ICCP", ICCP_FLAG, meta.icc);
  chunk("EXIF", EXIF_FLAG, meta.exif);
  if (!meta.exif.empty()) meta.exif = exif_without_prefix(meta.exif.data(), meta.exif.size());
  std::vector<uint8_t> xmp;
  chunk("XMP ", XMP_FLAG, xmp);
  meta.xmp.assign(xmp.begin(), xmp.end());
  return meta;
}

Image decode_webp(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  WebPBitstreamFeatures features;
  VP8StatusCode status = WebPGetFeatures(data, size, &features);
  if (status != VP8_STATUS_OK) fail("WebP: cannot read header (", webp_status_text(status), ")");
  if (features.has_animation) fail("WebP: animated images are not supported");
  check_limits(ImageFormat::Webp, features.width, features.height, limits);

  Image out(features.width, features.height, features.has_alpha ? 4 : 3);
  WebPDecoderConfig config;
  if (!WebPInitDecoderConfig(&config)) fail("WebP: decoder version mismatch");
  config.output.colorspace = features.has_alpha ? MODE_RGBA : MODE_RGB;
  config.output.is_external_memory = 1;
  config.output.u.RGBA.rgba = out.pixels.data();
  config.output.u.RGBA.stride = int(out.row_bytes());
  config.output.u.RGBA.size = out.pixels.size();
  status = WebPDecode(data, size, &config);
  WebPFreeDecBuffer(&config.output);  // external memory: frees nothing of ours
  if (status != VP8_STATUS_OK) fail("WebP: corrupt or truncated data (", webp_status_text(status), ")");
  out.meta = webp_read_metadata(data, size);
  return out;
}

constexpr const char* kSupportedFormats = "PNG, JPEG, WebP, TIFF, BMP, HEIF/AVIF";

[[noreturn]] void fail_unknown_format(const uint8_t* data, size_t size) {
  if (size == 0) fail("empty input (0 bytes), not an image");
  if (const char* other = other_format_name(data, size))
    fail("unsupported image format (", other, "); supported: ", kSupportedFormats);
  fail("not an image gpen reads (unrecognised signature; supported: ", kSupportedFormats, ")");
}

}  // namespace

// ------------------------------------------------------------------------------------------------
// Public decoding API

ImageFormat detect_image_format(const uint8_t* data, size_t size) {
  if (starts_with(data, size, "\x89PNG\r\n\x1a\n", 8)) return ImageFormat::Png;
  if (starts_with(data, size, "\xFF\xD8\xFF", 3)) return ImageFormat::Jpeg;
  if (starts_with(data, size, "RIFF", 4) && starts_with(data, size, "WEBP", 4, 8)) return ImageFormat::Webp;
  if (starts_with(data, size, "II*\0", 4) || starts_with(data, size, "MM\0*", 4) ||
      starts_with(data, size, "II+\0", 4) || starts_with(data, size, "MM\0+", 4))  // classic and BigTIFF
    return ImageFormat::Tiff;
  if (starts_with(data, size, "BM", 2) && size >= 18) return ImageFormat::Bmp;
  if (is_heif(data, size)) return ImageFormat::Heif;
  return ImageFormat::Unknown;
}

int jpeg_exif_orientation(const uint8_t* data, size_t size) {
  int orientation = 1;
  for_each_jpeg_segment(data, size, [&](uint8_t marker, const uint8_t* p, size_t n) {
    if (marker != 0xE1 || n < 6 || std::memcmp(p, "Exif\0\0", 6) != 0) return false;
    orientation = exif_orientation(p + 6, n - 6);
    return true;
  });
  return orientation;
}

namespace {
// A probe either gives a size or throws: the libraries' header readers do not all check (stb's
// BMP info reports a negative width for some headers).
ImageInfo sized(ImageInfo info) {
  if (info.width <= 0 || info.height <= 0)
    fail(image_format_name(info.format), ": invalid image size ", info.width, "x", info.height);
  return info;
}
}  // namespace

ImageInfo probe_image(const uint8_t* data, size_t size) {
  ImageInfo info;
  info.format = detect_image_format(data, size);
  switch (info.format) {
    case ImageFormat::Png: {
      int64_t w = 0, h = 0;
      png_check_header_size(data, size, w, h);
      if (w <= 0 || h <= 0 || w > 0x7fffffff || h > 0x7fffffff) fail("PNG: invalid image size ", w, "x", h);
      info.width = int(w);
      info.height = int(h);
      return info;
    }
    case ImageFormat::Jpeg: {
      bool found = false;
      for_each_jpeg_segment(data, size, [&](uint8_t marker, const uint8_t* p, size_t n) {
        if (!is_jpeg_sof(marker) || n < 5) return false;
        info.height = read_be16(p + 1);
        info.width = read_be16(p + 3);
        found = true;
        return true;
      });
      if (!found) fail("JPEG: corrupt or truncated header (no frame header found)");
      // Height 0 means "given later by a DNL marker", which libjpeg does not support either.
      if (info.width == 0 || info.height == 0)
        fail("JPEG: the frame header gives an empty image (", info.width, "x", info.height, ")");
      info.orientation = jpeg_exif_orientation(data, size);
      return info;
    }
    case ImageFormat::Webp: {
      WebPBitstreamFeatures features;
      VP8StatusCode status = WebPGetFeatures(data, size, &features);
      if (status != VP8_STATUS_OK) fail("WebP: cannot read header (", webp_status_text(status), ")");
      info.width = features.width;
      info.height = features.height;
      return info;
    }
    case ImageFormat::Tiff: return sized(detail::probe_tiff(data, size));
    case ImageFormat::Bmp: return sized(detail::probe_bmp(data, size));
    case ImageFormat::Heif: return sized(detail::probe_heif(data, size));
    default: break;
  }
  fail_unknown_format(data, size);
}

Image decode_image(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  switch (detect_image_format(data, size)) {
    case ImageFormat::Png: return decode_png(data, size, limits);
    case ImageFormat::Jpeg: return decode_jpeg(data, size, limits);
    case ImageFormat::Webp: return decode_webp(data, size, limits);
    case ImageFormat::Tiff: return detail::decode_tiff(data, size, limits);
    case ImageFormat::Bmp: return detail::decode_bmp(data, size, limits);
    case ImageFormat::Heif: return detail::decode_heif(data, size, limits);
    default: fail_unknown_format(data, size);
  }
}

Image decode_image(const std::vector<uint8_t>& bytes, const DecodeLimits& limits) {
  return decode_image(bytes.data(), bytes.size(), limits);
}

namespace {

std::vector<uint8_t> read_whole_file(const std::string& path) {
  constexpr int64_t kMaxFileBytes = int64_t(1) << 30;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail("cannot open '", path, "': ", std::strerror(errno));
  struct stat st;
  if (::fstat(fd, &st) != 0) {
    int e = errno;
    ::close(fd);
    fail("cannot read '", path, "': ", std::strerror(e));
  }
  if (S_ISDIR(st.st_mode)) {
    ::close(fd);
    fail("cannot read '", path, "': it is a directory");
  }
  if (st.st_size > kMaxFileBytes) {
    ::close(fd);
    fail("cannot read '", path, "': file is larger than 1 GiB");
  }
  std::vector<uint8_t> bytes(size_t(st.st_size));
  size_t done = 0;
  while (done < bytes.size()) {
    ssize_t n = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      int e = errno;
      ::close(fd);
      fail("cannot read '", path, "': ", n == 0 ? "file shrank while reading" : std::strerror(e));
    }
    done += size_t(n);
  }
  ::close(fd);
  return bytes;
}

}  // namespace

Image load_image(const std::string& path, const DecodeLimits& limits) {
  std::vector<uint8_t> bytes = read_whole_file(path);
  try {
    return decode_image(bytes, limits);
  } catch (const Error& e) {
    fail("'", path, "': ", e.what());
  }
}

// ------------------------------------------------------------------------------------------------
// EXIF orientation

namespace detail {

std::vector<uint16_t> samples16_to_write(const Image& img) {
  const Samples16* s = img.samples16.get();
  if (!s || s->width != img.width || s->height != img.height) return {};
  const bool same = s->channels == img.channels, gray_to_rgb = s->channels == 1 && img.channels == 3;
  if (!same && !gray_to_rgb) return {};
  const size_t pixels = size_t(img.width) * size_t(img.height), c = size_t(img.channels);
  std::vector<uint16_t> out(img.pixels.size());
  for (size_t p = 0; p < pixels; ++p)
    for (size_t k = 0; k < c; ++k) {
      const uint16_t v = s->data[same ? p * c + k : p];
      const int moved = int(v) + 257 * (int(img.pixels[p * c + k]) - int(sample_to_8bit(v)));
      out[p * c + k] = uint16_t(std::clamp(moved, 0, 65535));
    }
  return out;
}

}  // namespace detail

namespace {

// Copies W x H pixels of C samples from `stored` into `out` (sized for the upright picture) in
// the order an EXIF orientation (2..8, tag 0x0112) asks for. For each output pixel (ox, oy), the
// stored pixel it shows: 2 mirror horizontal, 3 rotate 180, 4 mirror vertical, 5 transpose,
// 6 rotate 90 CW, 7 transverse, 8 rotate 90 CCW.
template <class T>
void copy_oriented(const T* stored, int W, int H, int C, int orientation, T* out) {
  const bool transposed = orientation >= 5;
  const int out_w = transposed ? H : W, out_h = transposed ? W : H;
  auto source = [&](int ox, int oy, int& sx, int& sy) {
    switch (orientation) {
      case 2: sx = W - 1 - ox; sy = oy; break;
      case 3: sx = W - 1 - ox; sy = H - 1 - oy; break;
      case 4: sx = ox; sy = H - 1 - oy; break;
      case 5: sx = oy; sy = ox; break;
      case 6: sx = oy; sy = H - 1 - ox; break;
      case 7: sx = W - 1 - oy; sy = H - 1 - ox; break;
      default: sx = W - 1 - oy; sy = ox; break;  // 8
    }
  };
  for (int oy = 0; oy < out_h; ++oy) {
    T* dst = out + size_t(oy) * size_t(out_w) * size_t(C);
    for (int ox = 0; ox < out_w; ++ox, dst += C) {
      int sx, sy;
      source(ox, oy, sx, sy);
      std::memcpy(dst, stored + (size_t(sy) * size_t(W) + size_t(sx)) * size_t(C), size_t(C) * sizeof(T));
    }
  }
}

}  // namespace

Image apply_exif_orientation(Image stored, int orientation) {
  if (orientation <= 1 || orientation > 8) return stored;  // moved out, not copied
  const bool transposed = orientation >= 5;
  Image out(transposed ? stored.height : stored.width, transposed ? stored.width : stored.height, stored.channels);
  copy_oriented(stored.pixels.data(), stored.width, stored.height, stored.channels, orientation, out.pixels.data());
  return out;
}

namespace detail {

std::shared_ptr<const Samples16> oriented_samples16(std::shared_ptr<const Samples16> stored, int orientation) {
  if (!stored || orientation <= 1 || orientation > 8) return stored;
  auto out = std::make_shared<Samples16>();
  const bool transposed = orientation >= 5;
  out->width = transposed ? stored->height : stored->width;
  out->height = transposed ? stored->width : stored->height;
  out->channels = stored->channels;
  out->data.resize(stored->data.size());
  copy_oriented(stored->data.data(), stored->width, stored->height, stored->channels, orientation, out->data.data());
  return out;
}

}  // namespace detail

// ------------------------------------------------------------------------------------------------
// Encoding

namespace {

void check_encodable(const Image& img) {
  if (img.width <= 0 || img.height <= 0) fail("cannot encode an empty image (", img.width, "x", img.height, ")");
  if (img.channels != 1 && img.channels != 3 && img.channels != 4)
    fail("cannot encode an image with ", img.channels, " channels");
  if (img.pixels.size() != img.row_bytes() * size_t(img.height))
    fail("image buffer holds ", img.pixels.size(), " bytes, expected ", img.row_bytes() * size_t(img.height));
}

struct PngEncodeContext {
  const Image* img = nullptr;
  const ImageMetadata* meta = nullptr;
  const std::vector<uint16_t>* samples16 = nullptr;  // 16-bit rows to write instead of img's; empty: 8-bit
  int compression = 6;
  std::vector<uint8_t>* out = nullptr;
  png_structp png = nullptr;
  png_infop info = nullptr;
  jmp_buf jmp;
  char message[200] = "";
  ~PngEncodeContext() {
    if (png) png_destroy_write_struct(&png, info ? &info : nullptr);
  }
};

void png_encode_error(png_structp png, png_const_charp msg) {
  auto* ctx = static_cast<PngEncodeContext*>(png_get_error_ptr(png));
  std::snprintf(ctx->message, sizeof ctx->message, "%s", msg);
  std::longjmp(ctx->jmp, 1);
}

void png_write_to_vector(png_structp png, png_bytep data, size_t n) {
  auto* ctx = static_cast<PngEncodeContext*>(png_get_io_ptr(png));
  bool ok = true;
  try {
    ctx->out->insert(ctx->out->end(), data, data + n);
  } catch (...) {  // never unwind through libpng's C frames
    ok = false;
  }
  if (!ok) png_error(png, "out of memory");
}
void png_flush_nothing(png_structp) {}

void png_set_metadata(png_structp png, png_infop info, const ImageMetadata& meta) {
  if (!meta.icc.empty())
    png_set_iCCP(png, info, "ICC profile", PNG_COMPRESSION_TYPE_BASE, meta.icc.data(), png_uint_32(meta.icc.size()));
  if (!meta.exif.empty())
    png_set_eXIf_1(png, info, png_uint_32(meta.exif.size()), const_cast<png_bytep>(meta.exif.data()));
  if (!meta.xmp.empty()) {
    png_text xmp{};
    xmp.compression = PNG_ITXT_COMPRESSION_NONE;
    xmp.key = const_cast<png_charp>(kPngXmpKeyword);
    xmp.text = const_cast<png_charp>(meta.xmp.data());
    xmp.itxt_length = meta.xmp.size();
    xmp.lang = const_cast<png_charp>("");
    xmp.lang_key = const_cast<png_charp>("");
    png_set_text(png, info, &xmp, 1);
  }
  if (meta.dpi_x > 0 && meta.dpi_y > 0)
    png_set_pHYs(png, info, png_uint_32(std::lround(meta.dpi_x / kMetresPerInch)),
                 png_uint_32(std::lround(meta.dpi_y / kMetresPerInch)), PNG_RESOLUTION_METER);
}

bool png_encode_pixels(PngEncodeContext& ctx) {
  if (setjmp(ctx.jmp)) return false;
  const Image& img = *ctx.img;
  const bool deep = !ctx.samples16->empty();
  int color_type = img.channels == 1 ? PNG_COLOR_TYPE_GRAY
                   : img.channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGBA;
  png_set_write_fn(ctx.png, &ctx, png_write_to_vector, png_flush_nothing);
  png_set_IHDR(ctx.png, ctx.info, png_uint_32(img.width), png_uint_32(img.height), deep ? 16 : 8, color_type,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  png_set_compression_level(ctx.png, ctx.compression);
  png_set_benign_errors(ctx.png, 1);  // a profile libpng finds invalid is left out, with a warning
  png_set_metadata(ctx.png, ctx.info, *ctx.meta);
  png_write_info(ctx.png, ctx.info);
  if (deep && detail::kLittleEndian) png_set_swap(ctx.png);  // after png_write_info
  for (int y = 0; y < img.height; ++y)
    png_write_row(ctx.png, deep ? reinterpret_cast<png_const_bytep>(ctx.samples16->data() + size_t(y) * img.row_bytes())
                                : img.row(y));
  png_write_end(ctx.png, nullptr);
  return true;
}

std::vector<uint8_t> encode_png(const Image& img, const EncodeOptions& options, const ImageMetadata& meta) {
  std::vector<uint8_t> out;
  const std::vector<uint16_t> samples16 = options.keep_16bit ? detail::samples16_to_write(img) : std::vector<uint16_t>{};
  PngEncodeContext ctx;
  ctx.img = &img;
  ctx.samples16 = &samples16;
  ctx.meta = &meta;
  ctx.compression = std::clamp(options.png_compression, 0, 9);
  ctx.out = &out;
  ctx.png = png_create_write_struct(PNG_LIBPNG_VER_STRING, &ctx, png_encode_error, png_ignore_warning);
  if (!ctx.png) fail("PNG: cannot create encoder");
  ctx.info = png_create_info_struct(ctx.png);
  if (!ctx.info) fail("PNG: cannot create encoder");
  if (!png_encode_pixels(ctx)) fail("PNG: encoding failed (", ctx.message, ")");
  return out;
}

struct JpegEncodeContext {
  const Image* img = nullptr;
  const ImageMetadata* meta = nullptr;
  std::vector<uint8_t> exif_app1;  // "Exif\0\0" + the EXIF; empty when none or over a segment's 64 KB
  std::vector<uint8_t> xmp_app1;   // the XMP signature + the packet; likewise
  int quality = 95;
  jpeg_compress_struct cinfo;
  JpegErrorManager err;
  unsigned char* buffer = nullptr;  // malloc'd by jpeg_mem_dest
  unsigned long buffer_size = 0;
  bool created = false;
  ~JpegEncodeContext() {
    if (created) jpeg_destroy_compress(&cinfo);
    std::free(buffer);
  }
};

bool jpeg_encode_pixels(JpegEncodeContext& ctx) {
  jpeg_compress_struct& cinfo = ctx.cinfo;
  if (setjmp(ctx.err.jmp)) return false;
  const Image& img = *ctx.img;
  jpeg_create_compress(&cinfo);
  ctx.created = true;
  jpeg_mem_dest(&cinfo, &ctx.buffer, &ctx.buffer_size);
  cinfo.image_width = JDIMENSION(img.width);
  cinfo.image_height = JDIMENSION(img.height);
  cinfo.input_components = img.channels;
  // JCS_EXT_RGBX makes libjpeg-turbo skip the alpha byte: RGBA is saved as RGB without a copy.
  cinfo.in_color_space = img.channels == 1 ? JCS_GRAYSCALE : img.channels == 3 ? JCS_RGB : JCS_EXT_RGBX;
  jpeg_set_defaults(&cinfo);
  jpeg_set_quality(&cinfo, ctx.quality, TRUE);
  const ImageMetadata& meta = *ctx.meta;
  if (meta.dpi_x > 0 && meta.dpi_y > 0 && meta.dpi_x < 65535.5 && meta.dpi_y < 65535.5) {
    cinfo.density_unit = 1;  // dots per inch
    cinfo.X_density = UINT16(std::lround(meta.dpi_x));
    cinfo.Y_density = UINT16(std::lround(meta.dpi_y));
  }
  jpeg_start_compress(&cinfo, TRUE);
  if (!ctx.exif_app1.empty())
    jpeg_write_marker(&cinfo, JPEG_APP0 + 1, ctx.exif_app1.data(), unsigned(ctx.exif_app1.size()));
  if (!ctx.xmp_app1.empty())
    jpeg_write_marker(&cinfo, JPEG_APP0 + 1, ctx.xmp_app1.data(), unsigned(ctx.xmp_app1.size()));
  if (!meta.icc.empty()) jpeg_write_icc_profile(&cinfo, meta.icc.data(), unsigned(meta.icc.size()));
  while (cinfo.next_scanline < cinfo.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(img.row(int(cinfo.next_scanline)));
    jpeg_write_scanlines(&cinfo, &row, 1);
  }
  jpeg_finish_compress(&cinfo);
  return true;
}

std::vector<uint8_t> encode_jpeg(const Image& img, const EncodeOptions& options, const ImageMetadata& meta) {
  if (img.width > 65500 || img.height > 65500) fail("JPEG: cannot store images larger than 65500 pixels per side");
  JpegEncodeContext ctx;
  ctx.img = &img;
  ctx.meta = &meta;
  constexpr size_t kMaxSegmentPayload = 65533;  // a marker's 16-bit length counts itself
  if (!meta.exif.empty() && meta.exif.size() + 6 <= kMaxSegmentPayload) {
    ctx.exif_app1.assign({'E', 'x', 'i', 'f', 0, 0});
    ctx.exif_app1.insert(ctx.exif_app1.end(), meta.exif.begin(), meta.exif.end());
  }
  if (!meta.xmp.empty() && meta.xmp.size() + sizeof kJpegXmpSignature <= kMaxSegmentPayload) {
    ctx.xmp_app1.assign(kJpegXmpSignature, kJpegXmpSignature + sizeof kJpegXmpSignature);
    ctx.xmp_app1.insert(ctx.xmp_app1.end(), meta.xmp.begin(), meta.xmp.end());
  }
  ctx.quality = std::clamp(options.quality, 1, 100);
  ctx.cinfo.err = jpeg_std_error(&ctx.err.pub);
  ctx.err.pub.error_exit = jpeg_error_to_longjmp;
  ctx.err.pub.emit_message = [](j_common_ptr, int) {};
  ctx.err.pub.output_message = jpeg_output_nothing;
  if (!jpeg_encode_pixels(ctx)) fail("JPEG: encoding failed (", ctx.err.message, ")");
  return std::vector<uint8_t>(ctx.buffer, ctx.buffer + ctx.buffer_size);
}

// The encoder's simple-format file with ICCP, EXIF and XMP chunks added (libwebpmux makes it VP8X).
std::vector<uint8_t> webp_with_metadata(const uint8_t* data, size_t size, const ImageMetadata& meta) {
  std::unique_ptr<WebPMux, void (*)(WebPMux*)> mux(WebPMuxNew(), WebPMuxDelete);
  if (!mux) fail("WebP: out of memory");
  const WebPData image = {data, size}, icc = {meta.icc.data(), meta.icc.size()},
                 exif = {meta.exif.data(), meta.exif.size()},
                 xmp = {reinterpret_cast<const uint8_t*>(meta.xmp.data()), meta.xmp.size()};
  if (WebPMuxSetImage(mux.get(), &image, 0) != WEBP_MUX_OK) fail("WebP: cannot add metadata (image not accepted)");
  if (icc.size && WebPMuxSetChunk(mux.get(), "ICCP", &icc, 0) != WEBP_MUX_OK) fail("WebP: cannot add the ICC profile");
  if (exif.size && WebPMuxSetChunk(mux.get(), "EXIF", &exif, 0) != WEBP_MUX_OK) fail("WebP: cannot add EXIF");
  if (xmp.size && WebPMuxSetChunk(mux.get(), "XMP ", &xmp, 0) != WEBP_MUX_OK) fail("WebP: cannot add XMP");
  WebPData assembled;
  WebPDataInit(&assembled);
  if (WebPMuxAssemble(mux.get(), &assembled) != WEBP_MUX_OK) {
    WebPDataClear(&assembled);
    fail("WebP: cannot add metadata (assembly failed)");
  }
  std::vector<uint8_t> out(assembled.bytes, assembled.bytes + assembled.size);
  WebPDataClear(&assembled);
  return out;
}

std::vector<uint8_t> encode_webp(const Image& img, const EncodeOptions& options, const ImageMetadata& meta) {
  if (img.width > WEBP_MAX_DIMENSION || img.height > WEBP_MAX_DIMENSION)
    fail("WebP: cannot store images larger than ", WEBP_MAX_DIMENSION, " pixels per side");
  if (img.channels == 1) return encode_webp(to_rgb(img), options, meta);
  const bool rgba = img.channels == 4;
  const int stride = int(img.row_bytes());
  const float quality = float(std::clamp(options.quality, 1, 100));
  uint8_t* data = nullptr;
  size_t size = 0;
  if (options.lossless)
    size = rgba ? WebPEncodeLosslessRGBA(img.pixels.data(), img.width, img.height, stride, &data)
                : WebPEncodeLosslessRGB(img.pixels.data(), img.width, img.height, stride, &data);
  else
    size = rgba ? WebPEncodeRGBA(img.pixels.data(), img.width, img.height, stride, quality, &data)
                : WebPEncodeRGB(img.pixels.data(), img.width, img.height, stride, quality, &data);
  if (size == 0 || !data) {
    WebPFree(data);
    fail("WebP: encoding failed");
  }
  std::unique_ptr<uint8_t, void (*)(void*)> owned(data, WebPFree);
  if (meta.icc.empty() && meta.exif.empty() && meta.xmp.empty()) return std::vector<uint8_t>(data, data + size);
  return webp_with_metadata(data, size, meta);
}

// Whether the pixels are stored as gray in this format (WebP and BMP store gray as RGB).
bool stored_as_gray(const Image& img, ImageFormat format) {
  return img.channels == 1 && format != ImageFormat::Webp && format != ImageFormat::Bmp;
}

// What an encoder writes: nothing when the caller strips metadata; the EXIF fixed for upright
// pixels of this size (see exif_for_output); no ICC profile whose colour space is not the pixels'
// (a gray scan's profile on a photo whose restored faces made it RGB would be misread).
ImageMetadata metadata_to_write(const Image& img, const EncodeOptions& options) {
  if (!options.keep_metadata) return {};
  ImageMetadata meta = img.meta;
  if (!meta.icc.empty() && icc_colour_space(meta.icc) != (stored_as_gray(img, options.format) ? "GRAY" : "RGB "))
    meta.icc.clear();
  if (!meta.exif.empty()) meta.exif = exif_for_output(meta.exif, img.width, img.height);
  if (!meta.xmp.empty()) meta.xmp = xmp_for_output(std::move(meta.xmp));
  return meta;
}

}  // namespace

std::vector<uint8_t> encode_image(const Image& img, const EncodeOptions& options) {
  check_encodable(img);
  // Written without its profile (stripped, or BMP, which has no room for one), a wide-gamut photo
  // would be shown as sRGB, dull: its pixels are converted to sRGB first.
  if ((!options.keep_metadata || options.format == ImageFormat::Bmp) && img.channels >= 3)
    if (auto conversion = SrgbConversion::for_profile(img.meta.icc)) {
      Image srgb = img;
      srgb.meta = {};
      conversion->to_srgb(srgb);
      return encode_image(srgb, options);
    }
  const ImageMetadata meta = metadata_to_write(img, options);
  switch (options.format) {
    case ImageFormat::Png: return encode_png(img, options, meta);
    case ImageFormat::Jpeg: return encode_jpeg(img, options, meta);
    case ImageFormat::Webp: return encode_webp(img, options, meta);
    case ImageFormat::Tiff:
      return detail::encode_tiff(img, meta, options.keep_16bit ? detail::samples16_to_write(img) : std::vector<uint16_t>{});
    case ImageFormat::Bmp: return detail::encode_bmp(img);
    case ImageFormat::Heif: fail("HEIF/AVIF: gpen reads it but does not write it (use jpg, png, webp or tiff)");
    default: fail("encode_image: no output format given");
  }
}

ImageFormat format_from_extension(const std::string& path) {
  size_t slash = path.find_last_of('/');
  size_t dot = path.find_last_of('.');
  if (dot == std::string::npos || (slash != std::string::npos && dot < slash)) return ImageFormat::Unknown;
  std::string ext = path.substr(dot + 1);
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  if (ext == "png") return ImageFormat::Png;
  if (ext == "jpg" || ext == "jpeg") return ImageFormat::Jpeg;
  if (ext == "webp") return ImageFormat::Webp;
  if (ext == "tif" || ext == "tiff") return ImageFormat::Tiff;
  if (ext == "bmp") return ImageFormat::Bmp;
  if (ext == "heic" || ext == "heif" || ext == "avif" || ext == "hif") return ImageFormat::Heif;
  return ImageFormat::Unknown;
}

// ------------------------------------------------------------------------------------------------
// Atomic save

namespace {

// The process umask, read without changing it (umask(2) would race with other threads).
mode_t current_umask() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("Umask:", 0) == 0) return mode_t(std::strtol(line.c_str() + 6, nullptr, 8));
  return 022;
}

// Owns the temporary file until commit(): closes and unlinks it on every failure path.
class TempFile {
 public:
  TempFile(const std::string& target, const std::string& dir, const std::string& base) : target_(target) {
    // Hidden, in the target's directory (so rename is atomic), with a bounded name length.
    name_ = (dir == "/" ? "" : dir) + "/." + base.substr(0, 200) + ".tmp-XXXXXX";
    fd_ = ::mkstemp(name_.data());
    if (fd_ < 0) fail("cannot save '", target, "': cannot create a file in '", dir, "': ", std::strerror(errno));
  }
  ~TempFile() {
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(name_.c_str());
  }
  void write_all(const std::vector<uint8_t>& bytes) {
    size_t done = 0;
    while (done < bytes.size()) {
      ssize_t n = ::write(fd_, bytes.data() + done, bytes.size() - done);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) fail_with_errno(n == 0 ? ENOSPC : errno);
      done += size_t(n);
    }
  }
  void commit() {
    if (::fchmod(fd_, 0666 & ~current_umask()) != 0) fail_with_errno(errno);
    if (::fsync(fd_) != 0) fail_with_errno(errno);
    int fd = fd_;
    fd_ = -1;
    if (::close(fd) != 0) fail_with_errno(errno);
    if (::rename(name_.c_str(), target_.c_str()) != 0) fail_with_errno(errno);
    committed_ = true;
  }

 private:
  [[noreturn]] void fail_with_errno(int e) { fail("cannot save '", target_, "': ", std::strerror(e)); }
  std::string target_, name_;
  int fd_ = -1;
  bool committed_ = false;
};

void write_file_atomically(const std::string& path, const std::vector<uint8_t>& bytes) {
  size_t slash = path.find_last_of('/');
  std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path.substr(0, slash);
  std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
  if (base.empty()) fail("cannot save '", path, "': the path names a directory, not a file");
  TempFile tmp(path, dir, base);
  tmp.write_all(bytes);
  tmp.commit();
}

}  // namespace

void save_image(const std::string& path, const Image& img, const EncodeOptions& options) {
  EncodeOptions opts = options;
  if (opts.format == ImageFormat::Unknown) opts.format = format_from_extension(path);
  if (opts.format == ImageFormat::Unknown)
    fail("cannot tell the image format from the file name '", path, "' (use .png, .jpg, .jpeg, .webp, .tif, .tiff or .bmp)");
  write_file_atomically(path, encode_image(img, opts));  // encode first: no file on encode errors
}

// ------------------------------------------------------------------------------------------------
// Conversions

Image to_rgb(const Image& img) {
  if (img.channels == 3) return img;
  Image out(img.width, img.height, 3);
  const size_t n = size_t(img.width) * size_t(img.height);
  const uint8_t* src = img.pixels.data();
  uint8_t* dst = out.pixels.data();
  for (size_t i = 0; i < n; ++i, dst += 3, src += img.channels) {
    if (img.channels == 1) dst[0] = dst[1] = dst[2] = src[0];
    else std::memcpy(dst, src, 3);
  }
  return out;
}

RgbAndAlpha split_alpha(const Image& img) {
  RgbAndAlpha out;
  out.rgb = to_rgb(img);
  if (img.channels != 4) return out;
  out.alpha = Image(img.width, img.height, 1);
  const size_t n = size_t(img.width) * size_t(img.height);
  for (size_t i = 0; i < n; ++i) out.alpha.pixels[i] = img.pixels[i * 4 + 3];
  return out;
}

Image attach_alpha(const Image& rgb, const Image& alpha) {
  if (rgb.channels != 3 || alpha.channels != 1 || rgb.width != alpha.width || rgb.height != alpha.height)
    fail("attach_alpha: need RGB and a 1-channel alpha of the same size, got ", rgb.width, "x", rgb.height,
         "x", rgb.channels, " and ", alpha.width, "x", alpha.height, "x", alpha.channels);
  Image out(rgb.width, rgb.height, 4);
  const size_t n = size_t(rgb.width) * size_t(rgb.height);
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(&out.pixels[i * 4], &rgb.pixels[i * 3], 3);
    out.pixels[i * 4 + 3] = alpha.pixels[i];
  }
  return out;
}

}  // namespace gpen
