// Helpers shared by the image tests (test_image.cpp, test_image_formats.cpp, test_image_16bit.cpp):
// test pictures, and PNG / TIFF files written with libpng / libtiff directly, in layouts our
// encoder never produces.
#pragma once
#include <catch2/catch.hpp>

#include <png.h>
#include <tiffio.h>
#include <unistd.h>

#include <cstdint>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "core/image.h"

namespace gpen::test_images {

inline std::string shared_image(const std::string& name) {
  return std::string(GPEN_SOURCE_DIR) + "/../shared/images/" + name;
}

inline std::vector<uint8_t> read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(f), {});
}

// A smooth test picture: gradients without wrap-around (lossy codecs should keep it close).
inline Image gradient_image(int w, int h, int channels) {
  Image img(w, h, channels);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < channels; ++c)
        img.at(x, y, c) = uint8_t(c == 3 ? 255 * x / w : 20 + 140 * x / w + 60 * y / h + 30 * c);
  return img;
}

inline Image noise_image(int w, int h, int channels, uint32_t seed) {
  Image img(w, h, channels);
  std::mt19937 rng(seed);
  for (auto& p : img.pixels) p = uint8_t(rng() & 0xFF);
  return img;
}

inline double mean_abs_diff(const Image& a, const Image& b) {
  REQUIRE(a.pixels.size() == b.pixels.size());
  double sum = 0;
  for (size_t i = 0; i < a.pixels.size(); ++i) sum += std::abs(int(a.pixels[i]) - int(b.pixels[i]));
  return sum / double(a.pixels.size());
}

inline bool same_pixels(const Image& a, const Image& b) {
  return a.width == b.width && a.height == b.height && a.channels == b.channels && a.pixels == b.pixels;
}

// Writes a PNG with libpng directly, for colour types / depths our encoder never produces.
struct RawPng {
  int width, height, bit_depth, color_type;
  std::vector<uint8_t> rows;  // packed rows as libpng expects them (16-bit big-endian)
  std::vector<png_color> palette;
  std::vector<uint8_t> trns;
};

inline std::vector<uint8_t> write_raw_png(const RawPng& spec) {
  std::vector<uint8_t> out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  png_set_write_fn(
      png, &out,
      [](png_structp p, png_bytep data, size_t n) {
        auto* v = static_cast<std::vector<uint8_t>*>(png_get_io_ptr(p));
        v->insert(v->end(), data, data + n);
      },
      nullptr);
  png_set_IHDR(png, info, png_uint_32(spec.width), png_uint_32(spec.height), spec.bit_depth, spec.color_type,
               PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (!spec.palette.empty()) png_set_PLTE(png, info, spec.palette.data(), int(spec.palette.size()));
  if (!spec.trns.empty()) png_set_tRNS(png, info, spec.trns.data(), int(spec.trns.size()), nullptr);
  png_write_info(png, info);
  const size_t row_bytes = spec.rows.size() / size_t(spec.height);
  for (int y = 0; y < spec.height; ++y) png_write_row(png, spec.rows.data() + size_t(y) * row_bytes);
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

inline std::string temp_path(const char* suffix) {
  static int n = 0;
  return "/tmp/gpen_formats_" + std::to_string(::getpid()) + "_" + std::to_string(n++) + suffix;
}

// Writes a TIFF with libtiff: `setup` sets the tags, rows come from `stored` (8 or 16 bits per
// sample, contiguous), pages > 1 append copies. Returns the file's bytes.
template <class Setup>
inline std::vector<uint8_t> libtiff_file(const std::vector<std::vector<uint8_t>>& rows, Setup setup, int pages = 1) {
  const std::string path = temp_path(".tif");
  TIFF* t = TIFFOpen(path.c_str(), "w");
  REQUIRE(t != nullptr);
  for (int p = 0; p < pages; ++p) {
    setup(t);
    for (size_t y = 0; y < rows.size(); ++y)
      REQUIRE(TIFFWriteScanline(t, const_cast<uint8_t*>(rows[y].data()), uint32_t(y), 0) >= 0);
    REQUIRE(TIFFWriteDirectory(t));
  }
  TIFFClose(t);
  std::vector<uint8_t> bytes = read_bytes(path);
  std::remove(path.c_str());
  return bytes;
}

inline std::vector<std::vector<uint8_t>> rows_of(const Image& img) {
  std::vector<std::vector<uint8_t>> rows;
  for (int y = 0; y < img.height; ++y) rows.emplace_back(img.row(y), img.row(y) + img.row_bytes());
  return rows;
}

inline void basic_tags(TIFF* t, const Image& img, int bits, int photometric) {
  TIFFSetField(t, TIFFTAG_IMAGEWIDTH, uint32_t(img.width));
  TIFFSetField(t, TIFFTAG_IMAGELENGTH, uint32_t(img.height));
  TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, bits);
  TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, img.channels);
  TIFFSetField(t, TIFFTAG_PHOTOMETRIC, photometric);
  TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(t, TIFFTAG_ROWSPERSTRIP, 7);
}

}  // namespace gpen::test_images
