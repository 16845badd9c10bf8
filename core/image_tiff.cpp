// TIFF through libtiff, from and to memory (TIFFClientOpenExt over a byte buffer).
//
// Decoding reads the first page: 8- or 16-bit gray or RGB strips (with at most a straight alpha)
// row by row as stored (16-bit samples kept in Image::samples16, turned upright with the pixels),
// everything else with libtiff's RGBA reader, which takes every photometric
// interpretation, bit depth (1..16) and compression libtiff was built with; its output is 8-bit
// RGBA with alpha premultiplied, which we undo for files with alpha. Pages are read in stored
// order and the TIFF Orientation tag (the same eight values as EXIF's) is applied by
// apply_exif_orientation. Gray files stay 1 channel. Errors and warnings go to per-handle
// handlers (libtiff >= 4.5: TIFFOpenOptions), so nothing is printed and threads do not share a
// message slot; allocations inside libtiff are capped.
//
// Encoding writes one 8-bit (16-bit: from samples16_to_write) strip-organised page: gray, RGB or
// RGB + unassociated alpha,
// Deflate with horizontal differencing, the ICC profile (tag 34675), the XMP packet (700) and the
// resolution in pixels per inch. EXIF is not written (a TIFF keeps it in a sub-IFD of its own).
#include <tiffio.h>

#include <algorithm>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <memory>
#include <string>

#include "core/error.h"
#include "core/image_codecs_internal.h"

namespace gpen::detail {

namespace {

constexpr tmsize_t kMaxLibtiffAlloc = tmsize_t(1) << 30;  // per allocation inside libtiff

// The byte buffer a TIFF* reads from (`in`) or writes to (`out`), and the first error libtiff
// reported on it.
struct TiffStream {
  const uint8_t* in = nullptr;
  size_t in_size = 0;
  std::vector<uint8_t>* out = nullptr;
  uint64_t pos = 0;
  std::string error;

  uint64_t size() const { return out ? out->size() : in_size; }
};

TiffStream& stream_of(thandle_t h) { return *static_cast<TiffStream*>(h); }

tmsize_t tiff_read(thandle_t h, void* dst, tmsize_t n) {
  TiffStream& s = stream_of(h);
  if (s.out || n < 0 || s.pos >= s.in_size) return 0;
  const size_t take = size_t(std::min<uint64_t>(uint64_t(n), s.in_size - s.pos));
  std::memcpy(dst, s.in + s.pos, take);
  s.pos += take;
  return tmsize_t(take);
}

tmsize_t tiff_write(thandle_t h, void* src, tmsize_t n) {
  TiffStream& s = stream_of(h);
  if (!s.out || n < 0) return -1;
  try {  // never unwind through libtiff's C frames
    if (s.pos + uint64_t(n) > s.out->size()) s.out->resize(size_t(s.pos + uint64_t(n)));
  } catch (...) {
    return -1;
  }
  std::memcpy(s.out->data() + s.pos, src, size_t(n));
  s.pos += uint64_t(n);
  return n;
}

toff_t tiff_seek(thandle_t h, toff_t offset, int whence) {
  TiffStream& s = stream_of(h);
  const uint64_t base = whence == SEEK_CUR ? s.pos : whence == SEEK_END ? s.size() : 0;
  const uint64_t target = base + offset;
  if (!s.out && target > s.in_size) return toff_t(-1);  // reads never go past the end
  s.pos = target;
  return s.pos;
}

int tiff_close(thandle_t) { return 0; }
toff_t tiff_size(thandle_t h) { return stream_of(h).size(); }

// Reading maps the whole buffer: libtiff then reads strips in place, without copies.
int tiff_map(thandle_t h, void** base, toff_t* size) {
  TiffStream& s = stream_of(h);
  if (s.out) return 0;
  *base = const_cast<uint8_t*>(s.in);
  *size = s.in_size;
  return 1;
}
void tiff_unmap(thandle_t, void*, toff_t) {}

int tiff_keep_error(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
  TiffStream& s = *static_cast<TiffStream*>(user);
  if (s.error.empty()) {
    char text[256];
    std::vsnprintf(text, sizeof text, fmt, ap);
    for (char* c = text; *c; ++c)
      if (*c == '\n' || *c == '\r') *c = ' ';
    s.error = module && *module ? std::string(module) + ": " + text : text;
  }
  return 1;  // handled: the global handler (stderr) is not called
}
int tiff_ignore_warning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

struct TiffCloser {
  void operator()(TIFF* t) const { TIFFClose(t); }
};
using TiffPtr = std::unique_ptr<TIFF, TiffCloser>;

TiffPtr open_tiff(TiffStream& s, const char* mode) {
  std::unique_ptr<TIFFOpenOptions, void (*)(TIFFOpenOptions*)> opts(TIFFOpenOptionsAlloc(), TIFFOpenOptionsFree);
  if (!opts) fail("TIFF: out of memory");
  TIFFOpenOptionsSetMaxSingleMemAlloc(opts.get(), kMaxLibtiffAlloc);
  TIFFOpenOptionsSetErrorHandlerExtR(opts.get(), tiff_keep_error, &s);
  TIFFOpenOptionsSetWarningHandlerExtR(opts.get(), tiff_ignore_warning, &s);
  TIFF* t = TIFFClientOpenExt("memory", mode, &s, tiff_read, tiff_write, tiff_seek, tiff_close, tiff_size, tiff_map,
                              tiff_unmap, opts.get());
  return TiffPtr(t);
}

[[noreturn]] void fail_tiff(const TiffStream& s, const char* what) {
  fail("TIFF: ", what, " (", s.error.empty() ? "no reason given" : s.error, ")");
}

TiffPtr open_for_reading(TiffStream& s, const uint8_t* data, size_t size) {
  s.in = data;
  s.in_size = size;
  TiffPtr t = open_tiff(s, "r");
  if (!t) fail_tiff(s, "corrupt or truncated header");
  return t;
}

ImageInfo read_info(TIFF* t, const TiffStream& s) {
  uint32_t w = 0, h = 0;
  uint16_t orientation = ORIENTATION_TOPLEFT;
  if (!TIFFGetField(t, TIFFTAG_IMAGEWIDTH, &w) || !TIFFGetField(t, TIFFTAG_IMAGELENGTH, &h))
    fail_tiff(s, "the first page has no image size");
  TIFFGetFieldDefaulted(t, TIFFTAG_ORIENTATION, &orientation);
  ImageInfo info;
  info.format = ImageFormat::Tiff;
  info.width = int(std::min<uint32_t>(w, 0x7fffffff));
  info.height = int(std::min<uint32_t>(h, 0x7fffffff));
  info.orientation = orientation >= 1 && orientation <= 8 ? orientation : 1;
  return info;
}

struct Layout {
  bool gray = false, alpha = false;
};

Layout read_layout(TIFF* t) {
  uint16_t spp = 1, photometric = PHOTOMETRIC_MINISBLACK, extra_count = 0;
  uint16_t* extra = nullptr;
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetFieldDefaulted(t, TIFFTAG_PHOTOMETRIC, &photometric);
  TIFFGetFieldDefaulted(t, TIFFTAG_EXTRASAMPLES, &extra_count, &extra);
  Layout l;
  l.alpha = extra_count > 0 && extra &&
            (extra[0] == EXTRASAMPLE_ASSOCALPHA || extra[0] == EXTRASAMPLE_UNASSALPHA);
  l.gray = (photometric == PHOTOMETRIC_MINISBLACK || photometric == PHOTOMETRIC_MINISWHITE) &&
           spp - extra_count == 1;
  return l;
}

void read_metadata(TIFF* t, ImageMetadata& meta) {
  uint32_t icc_size = 0;
  void* icc = nullptr;
  if (TIFFGetField(t, TIFFTAG_ICCPROFILE, &icc_size, &icc) && icc && icc_size)
    meta.icc.assign(static_cast<uint8_t*>(icc), static_cast<uint8_t*>(icc) + icc_size);
  uint32_t xmp_size = 0;
  void* xmp = nullptr;
  if (TIFFGetField(t, TIFFTAG_XMLPACKET, &xmp_size, &xmp) && xmp && xmp_size)
    meta.xmp.assign(static_cast<const char*>(xmp), xmp_size);
  float x = 0, y = 0;
  uint16_t unit = RESUNIT_INCH;
  TIFFGetFieldDefaulted(t, TIFFTAG_RESOLUTIONUNIT, &unit);
  if (unit != RESUNIT_NONE && TIFFGetField(t, TIFFTAG_XRESOLUTION, &x) && TIFFGetField(t, TIFFTAG_YRESOLUTION, &y) &&
      std::isfinite(x) && std::isfinite(y) && x > 0 && y > 0) {
    const double per_inch = unit == RESUNIT_CENTIMETER ? 2.54 : 1.0;
    meta.dpi_x = x * per_inch;
    meta.dpi_y = y * per_inch;
  }
}

// libtiff's RGBA pixels (A << 24 | B << 16 | G << 8 | R, alpha premultiplied) -> our channels.
void unpack_rgba(const std::vector<uint32_t>& raster, Image& img, const Layout& l) {
  const size_t n = size_t(img.width) * size_t(img.height);
  uint8_t* dst = img.pixels.data();
  for (size_t i = 0; i < n; ++i, dst += img.channels) {
    const uint32_t p = raster[i];
    const uint32_t a = p >> 24;
    uint32_t rgb[3] = {p & 0xff, (p >> 8) & 0xff, (p >> 16) & 0xff};
    if (l.alpha)
      for (uint32_t& c : rgb) c = a == 0 ? 0 : std::min<uint32_t>(255, (c * 255 + a / 2) / a);
    if (img.channels == 1) {
      dst[0] = uint8_t(rgb[0]);
      continue;
    }
    dst[0] = uint8_t(rgb[0]);
    dst[1] = uint8_t(rgb[1]);
    dst[2] = uint8_t(rgb[2]);
    if (img.channels == 4) dst[3] = uint8_t(a);
  }
}

// The common layouts -- 8- or 16-bit contiguous strips of gray or RGB, with at most an
// unassociated alpha (what scanners and gpen write) -- read row by row as stored: exact (the RGBA
// reader's premultiplication would round colours under partial alpha, and it keeps only the high
// byte of 16-bit samples) and without the 4-byte raster. 16-bit files also fill `samples16`.
// False when the file needs the RGBA reader.
bool read_plain_rows(TIFF* t, const TiffStream& s, Image& out, std::shared_ptr<Samples16>& samples16) {
  uint16_t bits = 1, planar = PLANARCONFIG_CONTIG, format = SAMPLEFORMAT_UINT, spp = 1, extra_count = 0;
  uint16_t photometric = PHOTOMETRIC_MINISBLACK;
  uint16_t* extra = nullptr;
  TIFFGetFieldDefaulted(t, TIFFTAG_BITSPERSAMPLE, &bits);
  TIFFGetFieldDefaulted(t, TIFFTAG_PLANARCONFIG, &planar);
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLEFORMAT, &format);
  TIFFGetFieldDefaulted(t, TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetFieldDefaulted(t, TIFFTAG_PHOTOMETRIC, &photometric);
  TIFFGetFieldDefaulted(t, TIFFTAG_EXTRASAMPLES, &extra_count, &extra);
  const bool straight_alpha = extra_count == 1 && extra && extra[0] == EXTRASAMPLE_UNASSALPHA;
  const bool gray = photometric == PHOTOMETRIC_MINISBLACK && (spp == 1 || (spp == 2 && straight_alpha));
  const bool rgb = photometric == PHOTOMETRIC_RGB && (spp == 3 || (spp == 4 && straight_alpha));
  if ((bits != 8 && bits != 16) || planar != PLANARCONFIG_CONTIG || format != SAMPLEFORMAT_UINT || TIFFIsTiled(t) ||
      !(gray || rgb))
    return false;
  if (extra_count > 0 && !straight_alpha) return false;
  // The channels decode_tiff made room for (read_layout) must be what these samples fill: a
  // gray page whose EXTRASAMPLES claims more samples than it has is left to the RGBA reader.
  if (out.channels != (spp == 2 ? 4 : spp)) return false;
  const size_t bytes = bits / 8;
  if (TIFFScanlineSize64(t) != uint64_t(out.width) * spp * bytes) return false;
  if (bits == 16) {
    samples16 = std::make_shared<Samples16>();
    samples16->width = out.width, samples16->height = out.height, samples16->channels = out.channels;
    samples16->data.resize(out.pixels.size());
  }
  std::vector<uint16_t> row(size_t(out.width) * spp);  // 8-bit rows use its first half as bytes
  auto* row8 = reinterpret_cast<uint8_t*>(row.data());
  for (int y = 0; y < out.height; ++y) {
    if (TIFFReadScanline(t, row.data(), uint32_t(y), 0) < 0) fail_tiff(s, "corrupt or truncated data");
    uint16_t* deep = samples16 ? samples16->data.data() + size_t(y) * out.row_bytes() : nullptr;
    const auto sample = [&](size_t i) { return bits == 16 ? row[i] : uint16_t(row8[i]); };
    const auto put = [&](size_t at, uint16_t v) {
      out.row(y)[at] = deep ? sample_to_8bit(v) : uint8_t(v);
      if (deep) deep[at] = v;
    };
    if (spp != 2 && !deep) {
      std::memcpy(out.row(y), row8, out.row_bytes());
      continue;
    }
    if (spp != 2) {
      for (size_t i = 0; i < size_t(out.width) * spp; ++i) put(i, sample(i));
      continue;
    }
    for (size_t x = 0; x < size_t(out.width); ++x) {  // gray + alpha -> RGBA, as PNG's
      for (size_t c = 0; c < 3; ++c) put(4 * x + c, sample(2 * x));
      put(4 * x + 3, sample(2 * x + 1));
    }
  }
  return true;
}

}  // namespace

ImageInfo probe_tiff(const uint8_t* data, size_t size) {
  TiffStream s;
  TiffPtr t = open_for_reading(s, data, size);
  return read_info(t.get(), s);
}

Image decode_tiff(const uint8_t* data, size_t size, const DecodeLimits& limits) {
  TiffStream s;
  TiffPtr t = open_for_reading(s, data, size);
  const ImageInfo info = read_info(t.get(), s);
  check_limits(ImageFormat::Tiff, info.width, info.height, limits);
  const Layout layout = read_layout(t.get());
  Image stored(info.width, info.height, layout.alpha ? 4 : layout.gray ? 1 : 3);
  std::shared_ptr<Samples16> samples16;
  if (!read_plain_rows(t.get(), s, stored, samples16)) {
    char why[1024] = "";
    if (!TIFFRGBAImageOK(t.get(), why)) fail("TIFF: cannot read this kind of image (", why, ")");
    std::vector<uint32_t> raster(size_t(info.width) * size_t(info.height));
    // Requesting the file's own orientation means no flips: rows come out as stored.
    if (!TIFFReadRGBAImageOriented(t.get(), uint32_t(info.width), uint32_t(info.height), raster.data(),
                                   info.orientation, /*stop_on_error=*/1))
      fail_tiff(s, "corrupt or truncated data");
    unpack_rgba(raster, stored, layout);
  }
  ImageMetadata meta;
  read_metadata(t.get(), meta);
  if (info.orientation >= 5) std::swap(meta.dpi_x, meta.dpi_y);
  Image upright = apply_exif_orientation(std::move(stored), info.orientation);
  upright.meta = std::move(meta);
  upright.samples16 = oriented_samples16(std::move(samples16), info.orientation);
  return upright;
}

std::vector<uint8_t> encode_tiff(const Image& img, const ImageMetadata& meta, const std::vector<uint16_t>& samples16) {
  std::vector<uint8_t> out;
  TiffStream s;
  s.out = &out;
  TiffPtr t = open_tiff(s, "w");
  if (!t) fail_tiff(s, "cannot create the encoder");
  TIFF* tif = t.get();
  const uint16_t extra_alpha = EXTRASAMPLE_UNASSALPHA;
  // ~256 KB strips: Deflate restarts per strip, and libtiff's default (8 KB) costs ratio.
  const size_t bytes = samples16.empty() ? 1 : 2, row_bytes = img.row_bytes() * bytes;
  const uint32_t rows_per_strip = uint32_t(std::max<size_t>(1, (size_t(256) << 10) / row_bytes));
  bool ok = TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, uint32_t(img.width)) &&
            TIFFSetField(tif, TIFFTAG_IMAGELENGTH, uint32_t(img.height)) &&
            TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, int(8 * bytes)) &&
            TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, img.channels) &&
            TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, img.channels == 1 ? PHOTOMETRIC_MINISBLACK : PHOTOMETRIC_RGB) &&
            TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG) &&
            TIFFSetField(tif, TIFFTAG_ORIENTATION, ORIENTATION_TOPLEFT) &&
            TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE) &&
            TIFFSetField(tif, TIFFTAG_PREDICTOR, PREDICTOR_HORIZONTAL) &&
            TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, rows_per_strip) &&
            TIFFSetField(tif, TIFFTAG_SOFTWARE, "gpen");
  if (ok && img.channels == 4) ok = TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, 1, &extra_alpha);
  if (ok && !meta.icc.empty())
    ok = TIFFSetField(tif, TIFFTAG_ICCPROFILE, uint32_t(meta.icc.size()), meta.icc.data());
  if (ok && !meta.xmp.empty())
    ok = TIFFSetField(tif, TIFFTAG_XMLPACKET, uint32_t(meta.xmp.size()), meta.xmp.data());
  if (ok && meta.dpi_x > 0 && meta.dpi_y > 0)
    ok = TIFFSetField(tif, TIFFTAG_RESOLUTIONUNIT, RESUNIT_INCH) &&
         TIFFSetField(tif, TIFFTAG_XRESOLUTION, float(meta.dpi_x)) &&
         TIFFSetField(tif, TIFFTAG_YRESOLUTION, float(meta.dpi_y));
  if (!ok) fail_tiff(s, "cannot set the image's tags");
  // libtiff's predictor differences the row in the buffer it is given: hand it a copy.
  std::vector<uint8_t> row(row_bytes);
  for (int y = 0; y < img.height; ++y) {
    const void* src = bytes == 2 ? static_cast<const void*>(samples16.data() + size_t(y) * img.row_bytes()) : img.row(y);
    std::memcpy(row.data(), src, row.size());
    if (TIFFWriteScanline(tif, row.data(), uint32_t(y), 0) < 0) fail_tiff(s, "encoding failed");
  }
  if (!TIFFWriteDirectory(tif)) fail_tiff(s, "encoding failed");
  t.reset();  // flushes
  if (!s.error.empty()) fail_tiff(s, "encoding failed");
  return out;
}

}  // namespace gpen::detail
