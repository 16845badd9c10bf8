// 16 bits per sample (core/image.h, Samples16): 16-bit PNG and TIFF files keep their samples
// beside the 8-bit pixels, and the result is written back with 16 bits -- untouched pixels bit for
// bit, changed ones moved by their 8-bit change -- through encode_image and the batch pipeline.
// Files are made with libpng / libtiff directly (tests/image_test_util.h).
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <random>

#include "core/image.h"
#include "core/image_ops.h"
#include "core/pipeline/batch.h"
#include "core/pipeline/face_restorer.h"
#include "core/face_detector.h"
#include "core/models/gpen.h"
#include "tests/image_test_util.h"
#include "tests/test_util.h"

using namespace gpen;
using namespace gpen::test_images;

namespace {

std::vector<uint16_t> random_samples(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint16_t> v(n);
  for (uint16_t& s : v) s = uint16_t(rng());
  return v;
}

uint8_t rounded(uint16_t v) { return uint8_t((uint32_t(v) * 255 + 32767) / 65535); }

// A 16-bit PNG (big-endian rows, as the format stores them) of these samples.
std::vector<uint8_t> png16(int w, int h, int color_type, const std::vector<uint16_t>& samples) {
  RawPng spec{w, h, 16, color_type, {}, {}, {}};
  for (uint16_t v : samples) spec.rows.insert(spec.rows.end(), {uint8_t(v >> 8), uint8_t(v & 0xFF)});
  return write_raw_png(spec);
}

// A 16-bit TIFF (host byte order, LZW) of these samples.
std::vector<uint8_t> tiff16(int w, int h, int channels, const std::vector<uint16_t>& samples, int orientation = 1) {
  std::vector<std::vector<uint8_t>> rows;
  const size_t row_samples = size_t(w) * size_t(channels);
  for (int y = 0; y < h; ++y) {
    const auto* p = reinterpret_cast<const uint8_t*>(samples.data() + size_t(y) * row_samples);
    rows.emplace_back(p, p + row_samples * 2);
  }
  const Image shape(w, h, channels);
  return libtiff_file(rows, [&](TIFF* t) {
    basic_tags(t, shape, 16, channels == 1 ? PHOTOMETRIC_MINISBLACK : PHOTOMETRIC_RGB);
    TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_LZW);
    TIFFSetField(t, TIFFTAG_ORIENTATION, orientation);
    if (channels == 4) {
      const uint16_t alpha = EXTRASAMPLE_UNASSALPHA;
      TIFFSetField(t, TIFFTAG_EXTRASAMPLES, 1, &alpha);
    }
  });
}

void check_decoded(const Image& img, const std::vector<uint16_t>& samples, int channels) {
  REQUIRE(img.samples16);
  CHECK(img.samples16->channels == channels);
  CHECK((img.samples16->width == img.width && img.samples16->height == img.height));
  CHECK(img.samples16->data == samples);
  std::vector<uint8_t> expected;
  for (uint16_t v : samples) expected.push_back(rounded(v));
  CHECK(img.pixels == expected);
}

}  // namespace

TEST_CASE("16-bit PNG and TIFF keep their samples; the 8-bit pixels are them rounded", "[image][16bit]") {
  for (int channels : {1, 3, 4}) {
    INFO("channels " << channels);
    const std::vector<uint16_t> samples = random_samples(size_t(29 * 11 * channels), uint32_t(channels));
    const int png_type = channels == 1 ? PNG_COLOR_TYPE_GRAY : channels == 3 ? PNG_COLOR_TYPE_RGB : PNG_COLOR_TYPE_RGBA;
    check_decoded(decode_image(png16(29, 11, png_type, samples)), samples, channels);
    check_decoded(decode_image(tiff16(29, 11, channels, samples)), samples, channels);
  }
  // 8-bit files carry none.
  CHECK_FALSE(decode_image(encode_image(noise_image(5, 4, 3, 1), EncodeOptions{ImageFormat::Png})).samples16);
}

TEST_CASE("a turned 16-bit TIFF's samples are turned upright with its pixels", "[image][16bit]") {
  const std::vector<uint16_t> samples = random_samples(5 * 4 * 3, 9);
  for (int orientation = 1; orientation <= 8; ++orientation) {
    INFO("orientation " << orientation);
    const Image turned = decode_image(tiff16(5, 4, 3, samples, orientation));
    REQUIRE(turned.samples16);
    const Samples16& s = *turned.samples16;
    CHECK((s.width == turned.width && s.height == turned.height && s.channels == 3));
    std::vector<uint8_t> expected;
    for (uint16_t v : s.data) expected.push_back(rounded(v));
    CHECK(turned.pixels == expected);  // the same turn as the 8-bit pixels
    std::vector<uint16_t> sorted_in = samples, sorted_out = s.data;  // and the same samples
    std::sort(sorted_in.begin(), sorted_in.end());
    std::sort(sorted_out.begin(), sorted_out.end());
    CHECK(sorted_in == sorted_out);
  }
}

TEST_CASE("16-bit gray + alpha PNG becomes RGBA samples, as its 8-bit pixels do", "[image][16bit]") {
  const std::vector<uint16_t> ga = {1000, 65535, 40000, 0};  // two pixels: gray, alpha
  const Image img = decode_image(png16(2, 1, PNG_COLOR_TYPE_GRAY_ALPHA, ga));
  REQUIRE(img.channels == 4);
  REQUIRE(img.samples16);
  CHECK(img.samples16->data == std::vector<uint16_t>{1000, 1000, 1000, 65535, 40000, 40000, 40000, 0});
}

TEST_CASE("encode_image writes 16 bits: untouched samples exact, changed ones moved, 8-bit on request", "[image][16bit]") {
  const std::vector<uint16_t> samples = random_samples(31 * 17 * 3, 4);
  for (ImageFormat format : {ImageFormat::Png, ImageFormat::Tiff}) {
    INFO(image_format_name(format));
    Image img = decode_image(tiff16(31, 17, 3, samples));
    // Unchanged: the file's samples come back bit for bit.
    const Image same = decode_image(encode_image(img, EncodeOptions{format}));
    REQUIRE(same.samples16);
    CHECK(same.samples16->data == samples);

    // A restored region: its 8-bit pixels change; the 16-bit samples follow, the rest stays.
    for (int y = 3; y < 9; ++y)
      for (int x = 4; x < 20; ++x)
        for (int c = 0; c < 3; ++c) img.at(x, y, c) = uint8_t(255 - img.at(x, y, c));
    const Image changed = decode_image(encode_image(img, EncodeOptions{format}));
    REQUIRE(changed.samples16);
    CHECK(changed.pixels == img.pixels);  // the 16-bit file reads back as the 8-bit result
    int outside_moved = 0, inside_off = 0;
    for (int y = 0; y < 17; ++y)
      for (int x = 0; x < 31; ++x)
        for (int c = 0; c < 3; ++c) {
          const size_t i = (size_t(y) * 31 + size_t(x)) * 3 + size_t(c);
          const bool inside = y >= 3 && y < 9 && x >= 4 && x < 20;
          if (!inside) outside_moved += changed.samples16->data[i] != samples[i];
          else inside_off += std::abs(int(changed.samples16->data[i]) - 257 * int(img.pixels[i])) > 129;
        }
    CHECK(outside_moved == 0);  // bit for bit
    CHECK(inside_off == 0);     // the new value, give or take the scan's own sub-8-bit residue

    EncodeOptions eight{format};
    eight.keep_16bit = false;
    const Image shallow = decode_image(encode_image(img, eight));
    CHECK_FALSE(shallow.samples16);
    CHECK(shallow.pixels == img.pixels);
  }
  // Formats without 16 bits, and a result of another size, give 8 bits.
  Image img = decode_image(tiff16(31, 17, 3, samples));
  CHECK(decode_image(encode_image(img, EncodeOptions{ImageFormat::Webp, 95, true})).pixels == img.pixels);
  const Image smaller = resize_bilinear(img, 15, 8);
  CHECK_FALSE(decode_image(encode_image(smaller, EncodeOptions{ImageFormat::Png})).samples16);
}

TEST_CASE("a 16-bit gray scan whose faces made it RGB is written as 16-bit RGB", "[image][16bit]") {
  const std::vector<uint16_t> gray = random_samples(9 * 7, 6);
  Image img = to_rgb(decode_image(png16(9, 7, PNG_COLOR_TYPE_GRAY, gray)));
  img.samples16 = decode_image(png16(9, 7, PNG_COLOR_TYPE_GRAY, gray)).samples16;
  const Image out = decode_image(encode_image(img, EncodeOptions{ImageFormat::Png}));
  REQUIRE(out.channels == 3);
  REQUIRE(out.samples16);
  std::vector<uint16_t> expected;
  for (uint16_t v : gray) expected.insert(expected.end(), {v, v, v});
  CHECK(out.samples16->data == expected);
}

TEST_CASE("batch: a 16-bit TIFF scan comes out 16-bit, pixels away from the faces bit for bit", "[image][16bit][batch]") {
  static auto gpen = std::make_shared<GpenRunner>(
      std::make_shared<GpenModel>(GpenModel::load(test::source_path("tests/fixtures/gpen_tiny/gpen_tiny.pth"))),
      std::shared_ptr<Backend>(make_cpu_backend()), CompileOptions{});
  FaceRestorer restorer(std::make_shared<FaceDetector>(
                            FaceDetector::load(test::shared_path("weights/retinaface_mobilenet0.25.pth"))),
                        gpen);
  // The Solvay photo's left part, widened to 16 bits with a sub-8-bit ramp the 8-bit pixels lose.
  const Image photo = load_image(test::shared_path("images/group_solvay_1927.png"));
  const int w = 300, h = photo.height;
  std::vector<uint16_t> samples(size_t(w) * size_t(h) * 3);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c)
        samples[(size_t(y) * w + size_t(x)) * 3 + size_t(c)] =
            uint16_t(std::clamp(photo.at(x, y, c) * 257 + (x + y) % 120 - 60, 0, 65535));
  const std::string dir = test::fresh_scratch("16bit", "batch");
  const std::string in = dir + "/scan.tif";
  {
    const std::vector<uint8_t> bytes = tiff16(w, h, 3, samples);
    write_file_atomic(in, bytes);
  }
  BatchOptions o;
  o.restore.controls.strength = 100;
  const BatchSummary s = run_batch(restorer, {BatchItem{in, dir + "/out.tif", ""}, BatchItem{in, dir + "/out.png", ""},
                                              BatchItem{in, dir + "/out.jpg", ""}},
                                   o);
  REQUIRE(s.progress.done == 3);
  REQUIRE(s.items[0].faces > 0);
  const Image input = decode_image(read_bytes(in));
  for (const char* name : {"/out.tif", "/out.png"}) {
    INFO(name);
    const Image out = load_image(dir + name);
    REQUIRE(out.samples16);
    size_t same = 0, changed = 0, moved = 0;  // moved: untouched pixels whose 16-bit sample changed
    for (size_t i = 0; i < samples.size(); ++i) {
      if (out.pixels[i] == input.pixels[i]) {
        moved += out.samples16->data[i] != samples[i];
        ++same;
      } else {
        ++changed;
      }
    }
    CHECK(moved == 0);  // untouched: the scan's own 16 bits
    CHECK(same > samples.size() / 2);
    CHECK(changed > 1000);  // faces were restored
  }
  CHECK_FALSE(load_image(dir + "/out.jpg").samples16);

  o.keep_16bit = false;
  o.overwrite = true;
  REQUIRE(run_batch(restorer, {BatchItem{in, dir + "/out.png", ""}}, o).progress.done == 1);
  CHECK_FALSE(load_image(dir + "/out.png").samples16);
}
