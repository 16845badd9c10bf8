// TIFF, BMP and HEIF/AVIF decoding and encoding, and the metadata (ICC profile, EXIF, density)
// that every format carries from the input photo to the output: files made here with the
// libraries themselves (libtiff, libheif) in layouts our encoder never writes, the shared
// photos' real profile and EXIF, and malformed EXIF blocks.
#include <catch2/catch.hpp>

#include <tiffio.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#ifdef GPEN_HAVE_LIBHEIF
#include <libheif/heif.h>
#endif

#include "core/error.h"
#include "core/image.h"
#include "core/image_metadata.h"
#include "tests/image_test_util.h"

using namespace gpen;
using namespace gpen::test_images;

namespace {

// A real ICC profile: the one embedded in the shared Solvay photo (PNG iCCP). libpng checks
// profiles it writes, so made-up bytes would not do.
const std::vector<uint8_t>& real_icc_profile() {
  static const std::vector<uint8_t> icc = load_image(shared_image("group_solvay_1927.png")).meta.icc;
  return icc;
}

// A little-endian or big-endian EXIF block: IFD0 {Make, Orientation, ExifIFD pointer} -> IFD1
// (a thumbnail's IFD); the Exif IFD holds PixelXDimension (LONG) and PixelYDimension (SHORT).
std::vector<uint8_t> exif_block(bool big, int orientation, uint32_t px, uint32_t py) {
  std::vector<uint8_t> b;
  auto u16 = [&](uint32_t v) {
    if (big) b.insert(b.end(), {uint8_t(v >> 8), uint8_t(v)});
    else b.insert(b.end(), {uint8_t(v), uint8_t(v >> 8)});
  };
  auto u32 = [&](uint32_t v) {
    if (big) { u16(v >> 16); u16(v & 0xFFFF); }
    else { u16(v & 0xFFFF); u16(v >> 16); }
  };
  auto entry = [&](uint32_t tag, uint32_t type, uint32_t value) {
    u16(tag);
    u16(type);
    u32(1);
    if (type == 3) { u16(value); u16(0); } else { u32(value); }
  };
  b.insert(b.end(), {uint8_t(big ? 'M' : 'I'), uint8_t(big ? 'M' : 'I')});
  u16(42);
  u32(8);
  // IFD0 at 8: 3 entries (2 + 36 + 4 = 42 bytes) -> Exif IFD at 50, IFD1 at 80.
  u16(3);
  entry(0x010F, 2, 0x00434241);  // Make "ABC", inline ASCII
  entry(0x0112, 3, uint32_t(orientation));
  entry(0x8769, 4, 50);
  u32(80);  // next IFD: IFD1
  u16(2);
  entry(0xA002, 4, px);
  entry(0xA003, 3, py);
  u32(0);
  u16(1);  // IFD1 at 80: one entry
  entry(0x0112, 3, 1);
  u32(0);
  return b;
}

// Reads a one-value SHORT/LONG tag of the IFD at `ifd` (test-side parser, independent of ours).
uint32_t tag_value(const std::vector<uint8_t>& b, uint32_t ifd, uint16_t tag) {
  const bool big = b[0] == 'M';
  auto u16 = [&](size_t at) { return big ? uint32_t(b[at] << 8 | b[at + 1]) : uint32_t(b[at] | b[at + 1] << 8); };
  auto u32 = [&](size_t at) {
    return big ? (u16(at) << 16 | u16(at + 2)) : (u16(at) | u16(at + 2) << 16);
  };
  const uint32_t n = u16(ifd);
  for (uint32_t i = 0; i < n; ++i) {
    const size_t e = ifd + 2 + 12 * i;
    if (u16(e) == tag) return u16(e + 2) == 3 ? u16(e + 8) : u32(e + 8);
  }
  return 0xFFFFFFFF;
}
uint32_t next_ifd(const std::vector<uint8_t>& b, uint32_t ifd) {
  const bool big = b[0] == 'M';
  const size_t n = big ? size_t(b[ifd] << 8 | b[ifd + 1]) : size_t(b[ifd] | b[ifd + 1] << 8);
  const size_t at = ifd + 2 + 12 * n;
  return big ? uint32_t(b[at]) << 24 | uint32_t(b[at + 1]) << 16 | uint32_t(b[at + 2]) << 8 | b[at + 3]
             : uint32_t(b[at]) | uint32_t(b[at + 1]) << 8 | uint32_t(b[at + 2]) << 16 | uint32_t(b[at + 3]) << 24;
}

EncodeOptions as(ImageFormat f) {
  EncodeOptions o;
  o.format = f;
  return o;
}

}  // namespace

TEST_CASE("TIFF round trips are exact for gray, RGB and RGBA", "[image][tiff]") {
  for (int c : {1, 3, 4}) {
    INFO(c << " channels");
    Image img = noise_image(61, 37, c, uint32_t(c));  // odd sizes: strips and rows of any length
    const std::vector<uint8_t> bytes = encode_image(img, as(ImageFormat::Tiff));
    CHECK(detect_image_format(bytes.data(), bytes.size()) == ImageFormat::Tiff);
    const ImageInfo info = probe_image(bytes.data(), bytes.size());
    CHECK((info.width == 61 && info.height == 37));
    CHECK(same_pixels(decode_image(bytes), img));
  }
}

TEST_CASE("TIFF layouts our encoder never writes decode as libtiff stores them", "[image][tiff]") {
  const Image rgb = noise_image(23, 17, 3, 5);

  SECTION("a one-sample gray page whose EXTRASAMPLES claims that sample as alpha: no overrun") {
    // Found by fuzz_image: the reader sized the image for gray + alpha (4 channels) and copied
    // that many bytes from a one-sample row. Under ASan (CI) an overrun fails this test.
    for (int bits : {8, 16}) {
      INFO(bits << " bits");
      const Image gray = noise_image(19, 5, 1, 3);
      std::vector<std::vector<uint8_t>> rows;
      for (int y = 0; y < gray.height; ++y) {
        std::vector<uint8_t> r;
        for (size_t i = 0; i < gray.row_bytes(); ++i) {
          r.push_back(gray.row(y)[i]);
          if (bits == 16) r.push_back(gray.row(y)[i]);
        }
        rows.push_back(r);
      }
      auto bytes = libtiff_file(rows, [&](TIFF* t) {
        basic_tags(t, gray, bits, PHOTOMETRIC_MINISBLACK);
        const uint16_t alpha = EXTRASAMPLE_UNASSALPHA;
        TIFFSetField(t, TIFFTAG_EXTRASAMPLES, 1, &alpha);
      });
      try {
        const Image img = decode_image(bytes);
        CHECK((img.width == 19 && img.height == 5));
        CHECK(img.pixels.size() == size_t(19 * 5 * img.channels));
      } catch (const Error& e) {
        CHECK(std::string(e.what()).rfind("TIFF: ", 0) == 0);
      }
    }
  }

  SECTION("16-bit RGB, LZW: v * 257 comes back as v") {
    std::vector<std::vector<uint8_t>> rows;
    for (int y = 0; y < rgb.height; ++y) {
      std::vector<uint8_t> r;
      for (size_t i = 0; i < rgb.row_bytes(); ++i) {
        const uint16_t v = uint16_t(rgb.row(y)[i] * 257);
        r.push_back(uint8_t(v));  // the file's byte order is the host's (little-endian)
        r.push_back(uint8_t(v >> 8));
      }
      rows.push_back(r);
    }
    auto bytes = libtiff_file(rows, [&](TIFF* t) {
      basic_tags(t, rgb, 16, PHOTOMETRIC_RGB);
      TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_LZW);
    });
    CHECK(same_pixels(decode_image(bytes), rgb));
  }
  SECTION("Orientation 6 is applied: stored 23x17, upright 17x23") {
    auto bytes = libtiff_file(rows_of(rgb), [&](TIFF* t) {
      basic_tags(t, rgb, 8, PHOTOMETRIC_RGB);
      TIFFSetField(t, TIFFTAG_ORIENTATION, ORIENTATION_RIGHTTOP);
    });
    const ImageInfo info = probe_image(bytes.data(), bytes.size());
    CHECK(info.orientation == 6);
    CHECK(same_pixels(decode_image(bytes), apply_exif_orientation(rgb, 6)));
  }
  SECTION("Orientation 3 (upside down) is applied too") {
    auto bytes = libtiff_file(rows_of(rgb), [&](TIFF* t) {
      basic_tags(t, rgb, 8, PHOTOMETRIC_RGB);
      TIFFSetField(t, TIFFTAG_ORIENTATION, ORIENTATION_BOTRIGHT);
    });
    CHECK(same_pixels(decode_image(bytes), apply_exif_orientation(rgb, 3)));
  }
  SECTION("8-bit palette -> RGB") {
    Image idx(23, 17, 1);
    for (size_t i = 0; i < idx.pixels.size(); ++i) idx.pixels[i] = uint8_t(i % 256);
    std::vector<uint16_t> r(256), g(256), b(256);
    for (int i = 0; i < 256; ++i) {
      r[size_t(i)] = uint16_t(i * 257);
      g[size_t(i)] = uint16_t((255 - i) * 257);
      b[size_t(i)] = uint16_t(((i * 7) & 255) * 257);
    }
    auto bytes = libtiff_file(rows_of(idx), [&](TIFF* t) {
      basic_tags(t, idx, 8, PHOTOMETRIC_PALETTE);
      TIFFSetField(t, TIFFTAG_COLORMAP, r.data(), g.data(), b.data());
    });
    const Image out = decode_image(bytes);
    REQUIRE(out.channels == 3);
    for (size_t i = 0; i < idx.pixels.size(); i += 37) {
      const int v = idx.pixels[i];
      CHECK(out.pixels[3 * i] == v);
      CHECK(out.pixels[3 * i + 1] == 255 - v);
      CHECK(out.pixels[3 * i + 2] == ((v * 7) & 255));
    }
  }
  SECTION("associated (premultiplied) alpha comes back straight") {
    Image straight = gradient_image(23, 17, 4);
    Image premult = straight;
    for (size_t i = 0; i < premult.pixels.size(); i += 4)
      for (int c = 0; c < 3; ++c)
        premult.pixels[i + size_t(c)] = uint8_t((straight.pixels[i + size_t(c)] * straight.pixels[i + 3] + 127) / 255);
    const uint16_t assoc = EXTRASAMPLE_ASSOCALPHA;
    auto bytes = libtiff_file(rows_of(premult), [&](TIFF* t) {
      basic_tags(t, premult, 8, PHOTOMETRIC_RGB);
      TIFFSetField(t, TIFFTAG_EXTRASAMPLES, 1, &assoc);
    });
    const Image out = decode_image(bytes);
    REQUIRE(out.channels == 4);
    for (size_t i = 0; i < out.pixels.size(); i += 4) {
      CHECK(out.pixels[i + 3] == straight.pixels[i + 3]);
      if (straight.pixels[i + 3] >= 64)  // below that, premultiplying itself lost the precision
        for (int c = 0; c < 3; ++c) CHECK(std::abs(out.pixels[i + size_t(c)] - straight.pixels[i + size_t(c)]) <= 2);
    }
  }
  SECTION("gray stays one channel; MINISWHITE is inverted") {
    Image gray = noise_image(23, 17, 1, 8);
    auto bytes = libtiff_file(rows_of(gray), [&](TIFF* t) { basic_tags(t, gray, 8, PHOTOMETRIC_MINISWHITE); });
    const Image out = decode_image(bytes);
    REQUIRE(out.channels == 1);
    for (size_t i = 0; i < gray.pixels.size(); ++i) CHECK(out.pixels[i] == 255 - gray.pixels[i]);
  }
  SECTION("Deflate, two pages: the first page") {
    Image big = noise_image(40, 36, 3, 9);
    auto bytes = libtiff_file(rows_of(big), [&](TIFF* t) {
      basic_tags(t, big, 8, PHOTOMETRIC_RGB);
      TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
    }, 2);
    CHECK(same_pixels(decode_image(bytes), big));
  }
  SECTION("floating-point samples are refused with a reason") {
    Image one(4, 4, 1);
    std::vector<std::vector<uint8_t>> rows(4, std::vector<uint8_t>(16, 0));
    auto bytes = libtiff_file(rows, [&](TIFF* t) {
      basic_tags(t, one, 32, PHOTOMETRIC_MINISBLACK);
      TIFFSetField(t, TIFFTAG_SAMPLEFORMAT, SAMPLEFORMAT_IEEEFP);
    });
    CHECK_THROWS_WITH(decode_image(bytes), Catch::Contains("TIFF: cannot read this kind of image"));
  }
}

TEST_CASE("TIFF size limits are checked from the header", "[image][tiff]") {
  const std::vector<uint8_t> bytes = encode_image(noise_image(64, 48, 3, 1), as(ImageFormat::Tiff));
  DecodeLimits tight;
  tight.max_pixels = 64 * 48 - 1;
  CHECK_THROWS_WITH(decode_image(bytes, tight), Catch::Contains("over the limit"));
  tight = DecodeLimits{};
  tight.max_side = 63;
  CHECK_THROWS_WITH(decode_image(bytes, tight), Catch::Contains("per side"));
}

TEST_CASE("BMP round trips: RGB exact, RGBA exact, gray written as RGB; density read", "[image][bmp]") {
  for (int c : {3, 4}) {
    Image img = noise_image(31, 19, c, uint32_t(10 + c));
    const std::vector<uint8_t> bytes = encode_image(img, as(ImageFormat::Bmp));
    CHECK(detect_image_format(bytes.data(), bytes.size()) == ImageFormat::Bmp);
    CHECK(same_pixels(decode_image(bytes), img));
  }
  Image gray = noise_image(31, 19, 1, 3);
  std::vector<uint8_t> bytes = encode_image(gray, as(ImageFormat::Bmp));
  const Image back = decode_image(bytes);
  REQUIRE(back.channels == 3);
  for (size_t i = 0; i < gray.pixels.size(); ++i) CHECK(back.pixels[3 * i + 1] == gray.pixels[i]);
  CHECK(back.meta.dpi_x == 0);  // stb writes no density

  // biXPelsPerMeter / biYPelsPerMeter = 11811 (300 dpi), 5906 (150 dpi).
  auto put_le32 = [&](size_t at, uint32_t v) {
    for (int i = 0; i < 4; ++i) bytes[at + size_t(i)] = uint8_t(v >> (8 * i));
  };
  put_le32(38, 11811);
  put_le32(42, 5906);
  const Image dense = decode_image(bytes);
  CHECK(dense.meta.dpi_x == Approx(300.0).margin(0.1));
  CHECK(dense.meta.dpi_y == Approx(150.0).margin(0.1));

  // A width stb's header reader reports as negative (found by fuzz_image): the probe refuses it
  // as it refuses every size it cannot use, instead of returning it.
  std::vector<uint8_t> odd = bytes;
  for (int i = 0; i < 4; ++i) odd[18 + size_t(i)] = uint8_t(0xFFFF000Du >> (8 * i));
  CHECK_THROWS_WITH(probe_image(odd.data(), odd.size()), Catch::Contains("BMP: invalid image size"));

  // A header that claims 40000 x 40000 fails on the limits, before any allocation.
  put_le32(18, 40000);
  put_le32(22, 40000);
  CHECK_THROWS_WITH(decode_image(bytes), Catch::Contains("BMP"));
}

#ifdef GPEN_HAVE_LIBHEIF
namespace {

// Encodes `img` (RGB or RGBA) with libheif's own HEVC or AV1 encoder, with optional ICC, EXIF
// and an orientation that libheif stores as irot/imir boxes.
std::vector<uint8_t> heif_file(const Image& img, heif_compression_format codec, const std::vector<uint8_t>& icc,
                               const std::vector<uint8_t>& exif, int orientation) {
  heif_context* ctx = heif_context_alloc();
  heif_image* him = nullptr;
  const bool alpha = img.channels == 4;
  REQUIRE(heif_image_create(img.width, img.height, heif_colorspace_RGB,
                            alpha ? heif_chroma_interleaved_RGBA : heif_chroma_interleaved_RGB, &him)
              .code == heif_error_Ok);
  REQUIRE(heif_image_add_plane(him, heif_channel_interleaved, img.width, img.height, 8).code == heif_error_Ok);
  int stride = 0;
  uint8_t* plane = heif_image_get_plane(him, heif_channel_interleaved, &stride);
  for (int y = 0; y < img.height; ++y) std::memcpy(plane + size_t(y) * size_t(stride), img.row(y), img.row_bytes());
  if (!icc.empty()) heif_image_set_raw_color_profile(him, "prof", icc.data(), icc.size());
  heif_encoder* enc = nullptr;
  REQUIRE(heif_context_get_encoder_for_format(ctx, codec, &enc).code == heif_error_Ok);
  heif_encoder_set_lossy_quality(enc, 95);
  heif_encoding_options* opts = heif_encoding_options_alloc();
  opts->image_orientation = heif_orientation(orientation);
  heif_image_handle* handle = nullptr;
  REQUIRE(heif_context_encode_image(ctx, him, enc, opts, &handle).code == heif_error_Ok);
  if (!exif.empty()) heif_context_add_exif_metadata(ctx, handle, exif.data(), int(exif.size()));
  const std::string xmp = "<x:xmpmeta><tiff:Orientation>6</tiff:Orientation></x:xmpmeta>";
  if (!exif.empty()) heif_context_add_XMP_metadata(ctx, handle, xmp.data(), int(xmp.size()));
  std::vector<uint8_t> out;
  heif_writer writer;
  writer.writer_api_version = 1;
  writer.write = [](heif_context*, const void* data, size_t size, void* user) {
    auto* v = static_cast<std::vector<uint8_t>*>(user);
    v->insert(v->end(), static_cast<const uint8_t*>(data), static_cast<const uint8_t*>(data) + size);
    return heif_error{heif_error_Ok, heif_suberror_Unspecified, "ok"};
  };
  REQUIRE(heif_context_write(ctx, &writer, &out).code == heif_error_Ok);
  heif_image_handle_release(handle);
  heif_encoding_options_free(opts);
  heif_encoder_release(enc);
  heif_image_release(him);
  heif_context_free(ctx);
  return out;
}

}  // namespace

TEST_CASE("HEIC and AVIF decode close to what was encoded, with rotation, profile and EXIF", "[image][heif]") {
  REQUIRE(heif_supported());
  const Image img = gradient_image(64, 48, 3);
  const std::vector<uint8_t> exif = exif_block(false, 6, 64, 48);  // a HEIF file's EXIF orientation is ignored
  for (heif_compression_format codec : {heif_compression_HEVC, heif_compression_AV1}) {
    INFO((codec == heif_compression_HEVC ? "HEIC" : "AVIF"));
    const std::vector<uint8_t> bytes = heif_file(img, codec, real_icc_profile(), exif, 1);
    REQUIRE(detect_image_format(bytes.data(), bytes.size()) == ImageFormat::Heif);
    const Image out = decode_image(bytes);
    REQUIRE((out.width == 64 && out.height == 48 && out.channels == 3));
    CHECK(mean_abs_diff(out, img) < 3.0);
    CHECK(out.meta.icc == real_icc_profile());
    CHECK(exif_orientation(out.meta.exif.data(), out.meta.exif.size()) == 6);  // as stored, untouched
    CHECK(out.meta.xmp == "<x:xmpmeta><tiff:Orientation>6</tiff:Orientation></x:xmpmeta>");
  }
  // irot/imir: rotated 90 degrees clockwise on decode, like apply_exif_orientation(6).
  const std::vector<uint8_t> rotated = heif_file(img, heif_compression_HEVC, {}, {}, 6);
  const ImageInfo info = probe_image(rotated.data(), rotated.size());
  CHECK((info.width == 48 && info.height == 64));
  const Image upright = decode_image(rotated);
  REQUIRE((upright.width == 48 && upright.height == 64));
  CHECK(mean_abs_diff(upright, apply_exif_orientation(img, 6)) < 3.0);
  CHECK(upright.meta.icc.empty());

  Image rgba = gradient_image(64, 48, 4);
  const Image with_alpha = decode_image(heif_file(rgba, heif_compression_HEVC, {}, {}, 1));
  REQUIRE(with_alpha.channels == 4);
  CHECK(mean_abs_diff(with_alpha, rgba) < 3.0);

  DecodeLimits tight;
  tight.max_side = 63;
  CHECK_THROWS_WITH(decode_image(rotated, tight), Catch::Contains("HEIF/AVIF"));
}
#else
TEST_CASE("without libheif, HEIF/AVIF is recognised and refused with the reason", "[image][heif]") {
  REQUIRE_FALSE(heif_supported());
  const std::vector<uint8_t> heic = {0, 0, 0, 24, 'f', 't', 'y', 'p', 'h', 'e', 'i', 'c', 0, 0, 0, 0,
                                     'm', 'i', 'f', '1', 'h', 'e', 'i', 'c'};
  REQUIRE(detect_image_format(heic.data(), heic.size()) == ImageFormat::Heif);
  CHECK_THROWS_WITH(decode_image(heic), Catch::Contains("built without libheif"));
}
#endif

TEST_CASE("exif_for_output: orientation 1, new pixel size, no thumbnail IFD; both byte orders", "[image][metadata]") {
  for (bool big : {false, true}) {
    INFO((big ? "big-endian" : "little-endian"));
    const std::vector<uint8_t> in = exif_block(big, 6, 4032, 3024);
    CHECK(exif_orientation(in.data(), in.size()) == 6);
    REQUIRE(next_ifd(in, 8) == 80);
    const std::vector<uint8_t> out = exif_for_output(in, 3024, 4032);
    REQUIRE(out.size() == in.size());  // patched in place
    CHECK(exif_orientation(out.data(), out.size()) == 1);
    CHECK(tag_value(out, 8, 0x010F) == 0x00434241);  // other tags untouched
    CHECK(tag_value(out, 50, 0xA002) == 3024);
    CHECK(tag_value(out, 50, 0xA003) == 4032);
    CHECK(next_ifd(out, 8) == 0);
  }
}

TEST_CASE("malformed EXIF blocks are dropped or read as orientation 1, never overrun", "[image][metadata]") {
  const std::vector<uint8_t> good = exif_block(false, 8, 10, 10);
  CHECK(exif_for_output({}, 1, 1).empty());
  CHECK(exif_for_output({'I', 'I', 42, 0}, 1, 1).empty());
  CHECK(exif_for_output({'X', 'X', 42, 0, 8, 0, 0, 0, 0, 0}, 1, 1).empty());
  std::vector<uint8_t> far = good;
  far[4] = 0xF0;  // IFD0 past the end
  CHECK(exif_for_output(far, 1, 1).empty());
  CHECK(exif_orientation(far.data(), far.size()) == 1);
  // Every truncation and thousands of random byte flips: ASan watches the reads and writes.
  for (size_t n = 0; n <= good.size(); ++n) {
    std::vector<uint8_t> cut(good.begin(), good.begin() + long(n));
    (void)exif_for_output(cut, 5, 5);
    CHECK(exif_orientation(cut.data(), cut.size()) >= 1);
  }
  std::mt19937 rng(7);
  for (int i = 0; i < 5000; ++i) {
    std::vector<uint8_t> b = good;
    for (int k = 0; k < 3; ++k) b[rng() % b.size()] = uint8_t(rng());
    const std::vector<uint8_t> out = exif_for_output(b, 5, 5);
    CHECK((out.empty() || out.size() == b.size()));
    const int o = exif_orientation(b.data(), b.size());
    CHECK((o >= 1 && o <= 8));
  }
}

TEST_CASE("the ICC profile, EXIF and density travel into every output format", "[image][metadata]") {
  Image img = load_image(shared_image("group_solvay_1927.png"));  // iCCP, eXIf and pHYs (144 dpi)
  REQUIRE(!img.meta.icc.empty());
  REQUIRE(!img.meta.exif.empty());
  REQUIRE(img.meta.dpi_x == Approx(144.0).margin(0.1));
  REQUIRE(img.meta.xmp.find("x:xmpmeta") != std::string::npos);
  img = to_rgb(img);  // JPEG drops alpha anyway; the metadata comes along with the copy
  img.meta = load_image(shared_image("group_solvay_1927.png")).meta;

  struct Expect {
    ImageFormat format;
    bool exif, density;
  };
  for (Expect e : {Expect{ImageFormat::Png, true, true}, Expect{ImageFormat::Jpeg, true, true},
                   Expect{ImageFormat::Webp, true, false}, Expect{ImageFormat::Tiff, false, true}}) {
    INFO(image_format_name(e.format));
    const Image back = decode_image(encode_image(img, as(e.format)));
    CHECK(back.meta.icc == img.meta.icc);
    CHECK(back.meta.xmp == img.meta.xmp);
    CHECK(back.meta.exif.empty() == !e.exif);
    if (e.density) CHECK(back.meta.dpi_x == Approx(144.0).margin(0.5));
    EncodeOptions strip = as(e.format);
    strip.keep_metadata = false;
    CHECK(decode_image(encode_image(img, strip)).meta.empty());
  }
}

TEST_CASE("a rotated phone photo is written upright once: EXIF orientation 1, sizes updated", "[image][metadata]") {
  // The selfie is stored 4032x3024 with EXIF orientation 6 and a thumbnail in IFD1.
  const Image upright = load_image(shared_image("selfie_child_4032x3024.jpg"));
  REQUIRE((upright.width == 3024 && upright.height == 4032));
  REQUIRE(exif_orientation(upright.meta.exif.data(), upright.meta.exif.size()) == 6);
  // A small upright picture with the photo's real EXIF (orientation 6, thumbnail): encoding the
  // full 12 Mpx three times would test the same and cost seconds under ASan.
  Image small = gradient_image(30, 40, 3);
  small.meta = upright.meta;
  for (ImageFormat f : {ImageFormat::Jpeg, ImageFormat::Png, ImageFormat::Webp}) {
    INFO(image_format_name(f));
    const Image again = decode_image(encode_image(small, as(f)));
    CHECK((again.width == 30 && again.height == 40));  // not turned a second time
    CHECK(exif_orientation(again.meta.exif.data(), again.meta.exif.size()) == 1);
    CHECK(again.meta.exif.size() == upright.meta.exif.size());
  }
}

TEST_CASE("xmp_for_output sets tiff:Orientation to 1 in attribute and element form only", "[image][metadata]") {
  CHECK(xmp_for_output(R"(<rdf:Description tiff:Orientation="6" tiff:Make="X"/>)") ==
        R"(<rdf:Description tiff:Orientation="1" tiff:Make="X"/>)");
  CHECK(xmp_for_output("<tiff:Orientation>8</tiff:Orientation>\n <exif:PixelXDimension>8</exif:PixelXDimension>") ==
        "<tiff:Orientation>1</tiff:Orientation>\n <exif:PixelXDimension>8</exif:PixelXDimension>");
  CHECK(xmp_for_output("tiff:Orientation = '3' a tiff:Orientation") == "tiff:Orientation = '1' a tiff:Orientation");
  CHECK(xmp_for_output("<dc:title>tiff:OrientationX=6</dc:title>") == "<dc:title>tiff:OrientationX=6</dc:title>");
  CHECK(xmp_for_output("").empty());
}

TEST_CASE("resampled_metadata keeps the print size", "[image][metadata]") {
  ImageMetadata m;
  m.dpi_x = 300;
  m.dpi_y = 150;
  m.icc = {1, 2, 3};
  const ImageMetadata up = resampled_metadata(m, 1000, 2000);
  CHECK(up.dpi_x == Approx(600));
  CHECK(up.dpi_y == Approx(300));
  CHECK(up.icc == m.icc);
  CHECK(resampled_metadata(m, 1000, 1000).dpi_x == Approx(300));
  CHECK(resampled_metadata(m, 0, 1000).dpi_x == Approx(300));
}

TEST_CASE("damaged TIFF, BMP and HEIF files fail with one-line errors or decode whole", "[image][metadata]") {
  // Byte flips in valid files, headers included: every outcome is a gpen::Error with one line or
  // an image of exactly width * height * channels bytes (ASan watches stb's reads in CI).
  Image img = noise_image(33, 21, 3, 4);
  img.meta.icc = real_icc_profile();
  std::vector<std::vector<uint8_t>> files = {encode_image(img, as(ImageFormat::Tiff)),
                                             encode_image(img, as(ImageFormat::Bmp))};
#ifdef GPEN_HAVE_LIBHEIF
  files.push_back(heif_file(gradient_image(32, 24, 3), heif_compression_HEVC, {}, exif_block(true, 3, 32, 24), 1));
#endif
  std::mt19937 rng(11);
  DecodeLimits limits;
  limits.max_pixels = 1 << 20;
  for (const std::vector<uint8_t>& good : files) {
    for (int i = 0; i < 300; ++i) {
      std::vector<uint8_t> b = good;
      const size_t span = i % 2 ? b.size() : std::min<size_t>(b.size(), 64);  // half of them in the header
      for (int k = 0; k < 4; ++k) b[rng() % span] = uint8_t(rng());
      try {
        const Image out = decode_image(b, limits);
        CHECK(out.pixels.size() == size_t(out.width) * size_t(out.height) * size_t(out.channels));
      } catch (const Error& e) {
        CHECK(std::string(e.what()).find('\n') == std::string::npos);
      }
    }
  }
}
