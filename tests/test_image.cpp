// Image decoding / encoding / saving: the shared photos, round trips, EXIF orientation, bad input,
// size limits checked before allocation, and atomic saves that leave nothing behind on failure.
#include <catch2/catch.hpp>

#include <dirent.h>
#include <png.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/image.h"
#include "tests/image_test_util.h"

using namespace gpen;
using namespace gpen::test_images;

namespace {

uint32_t crc32_of(const uint8_t* data, size_t n) {
  uint32_t crc = 0xFFFFFFFFu;
  for (size_t i = 0; i < n; ++i) {
    crc ^= data[i];
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

void put_be32(std::vector<uint8_t>& v, uint32_t x) {
  for (int s = 24; s >= 0; s -= 8) v.push_back(uint8_t(x >> s));
}

// PNG signature + IHDR (with a correct CRC) + IEND: a valid header for any claimed size.
std::vector<uint8_t> png_header_only(uint32_t width, uint32_t height) {
  std::vector<uint8_t> png = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'};
  std::vector<uint8_t> ihdr = {'I', 'H', 'D', 'R'};
  put_be32(ihdr, width);
  put_be32(ihdr, height);
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});  // 8-bit RGB, deflate, adaptive filter, no interlace
  put_be32(png, 13);
  png.insert(png.end(), ihdr.begin(), ihdr.end());
  put_be32(png, crc32_of(ihdr.data(), ihdr.size()));
  const uint8_t iend[] = {'I', 'E', 'N', 'D'};
  put_be32(png, 0);
  png.insert(png.end(), iend, iend + 4);
  put_be32(png, crc32_of(iend, 4));
  return png;
}

// APP1 Exif segment with one IFD0 entry: Orientation (0x0112, SHORT) = value.
std::vector<uint8_t> exif_segment(int orientation, bool big_endian) {
  std::vector<uint8_t> tiff;
  auto u16 = [&](uint32_t v) {
    if (big_endian) tiff.insert(tiff.end(), {uint8_t(v >> 8), uint8_t(v)});
    else tiff.insert(tiff.end(), {uint8_t(v), uint8_t(v >> 8)});
  };
  auto u32 = [&](uint32_t v) {
    if (big_endian) { u16(v >> 16); u16(v & 0xFFFF); }
    else { u16(v & 0xFFFF); u16(v >> 16); }
  };
  const uint8_t order = big_endian ? 'M' : 'I';
  tiff.insert(tiff.end(), {order, order});
  u16(42);
  u32(8);       // IFD0 offset
  u16(2);       // two entries: an unrelated one first, then Orientation
  u16(0x010F);  // Make, ASCII, 4 bytes inline
  u16(2);
  u32(4);
  tiff.insert(tiff.end(), {'A', 'B', 'C', 0});
  u16(0x0112);
  u16(3);
  u32(1);
  u16(uint32_t(orientation));
  u16(0);
  u32(0);       // no next IFD
  std::vector<uint8_t> seg = {0xFF, 0xE1};
  const size_t length = 2 + 6 + tiff.size();
  seg.push_back(uint8_t(length >> 8));
  seg.push_back(uint8_t(length));
  seg.insert(seg.end(), {'E', 'x', 'i', 'f', 0, 0});
  seg.insert(seg.end(), tiff.begin(), tiff.end());
  return seg;
}

std::vector<uint8_t> with_exif(const std::vector<uint8_t>& jpeg, int orientation, bool big_endian) {
  std::vector<uint8_t> out(jpeg.begin(), jpeg.begin() + 2);  // SOI
  auto seg = exif_segment(orientation, big_endian);
  out.insert(out.end(), seg.begin(), seg.end());
  out.insert(out.end(), jpeg.begin() + 2, jpeg.end());
  return out;
}

// A fresh directory under /tmp, removed (with its files) at scope exit.
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/gpen_image_test_XXXXXX";
    REQUIRE(::mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() {
    ::chmod(path.c_str(), 0755);
    for (const auto& name : entries()) ::unlink((path + "/" + name).c_str());
    ::rmdir(path.c_str());
  }
  std::vector<std::string> entries() const {
    std::vector<std::string> names;
    if (DIR* d = ::opendir(path.c_str())) {
      while (dirent* e = ::readdir(d))
        if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) names.push_back(e->d_name);
      ::closedir(d);
    }
    return names;
  }
};

bool file_exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

}  // namespace

TEST_CASE("shared images decode with the documented sizes", "[image]") {
  Image solvay = load_image(shared_image("group_solvay_1927.png"));
  CHECK(solvay.width == 1328);
  CHECK(solvay.height == 568);
  CHECK(solvay.channels == 4);  // stored as RGBA

  Image ffhq = load_image(shared_image("aligned_ffhq_00002.png"));
  CHECK((ffhq.width == 1024 && ffhq.height == 1024 && ffhq.channels == 3));

  Image lowq = load_image(shared_image("lowq_face_512.png"));
  CHECK((lowq.width == 512 && lowq.height == 512 && lowq.channels == 3));

  Image official = load_image(shared_image("group_solvay_1927.official_gpen512.jpg"));
  CHECK((official.width == 2656 && official.height == 1136 && official.channels == 3));
}

TEST_CASE("the selfie's EXIF orientation 6 is applied: 4032x3024 stored, 3024x4032 upright", "[image]") {
  const std::vector<uint8_t> bytes = read_bytes(shared_image("selfie_child_4032x3024.jpg"));
  REQUIRE(!bytes.empty());
  ImageInfo info = probe_image(bytes.data(), bytes.size());
  CHECK(info.format == ImageFormat::Jpeg);
  CHECK((info.width == 4032 && info.height == 3024));
  CHECK(info.orientation == 6);
  CHECK(jpeg_exif_orientation(bytes.data(), bytes.size()) == 6);

  Image upright = decode_image(bytes);
  CHECK((upright.width == 3024 && upright.height == 4032 && upright.channels == 3));

  // Same file with the tag rewritten to 1 (big-endian entry: tag, type 3, count 1, value):
  // decodes as stored, and rotating that by orientation 6 gives the upright picture exactly.
  std::vector<uint8_t> as_stored = bytes;
  const uint8_t entry[] = {0x01, 0x12, 0x00, 0x03, 0x00, 0x00, 0x00, 0x01, 0x00, 0x06};
  auto it = std::search(as_stored.begin(), as_stored.end(), std::begin(entry), std::end(entry));
  REQUIRE(it != as_stored.end());
  *(it + 9) = 1;
  Image stored = decode_image(as_stored);
  CHECK((stored.width == 4032 && stored.height == 3024));
  CHECK(same_pixels(apply_exif_orientation(stored, 6), upright));
}

TEST_CASE("apply_exif_orientation maps all eight orientations", "[image]") {
  // a b c
  // d e f
  Image img(3, 2, 1);
  const char* letters = "abcdef";
  for (int i = 0; i < 6; ++i) img.pixels[size_t(i)] = uint8_t(letters[i]);
  auto as_text = [](const Image& m) {
    std::string s;
    for (int y = 0; y < m.height; ++y) {
      for (int x = 0; x < m.width; ++x) s += char(m.at(x, y, 0));
      s += '/';
    }
    return s;
  };
  CHECK(as_text(apply_exif_orientation(img, 1)) == "abc/def/");
  CHECK(as_text(apply_exif_orientation(img, 2)) == "cba/fed/");
  CHECK(as_text(apply_exif_orientation(img, 3)) == "fed/cba/");
  CHECK(as_text(apply_exif_orientation(img, 4)) == "def/abc/");
  CHECK(as_text(apply_exif_orientation(img, 5)) == "ad/be/cf/");
  CHECK(as_text(apply_exif_orientation(img, 6)) == "da/eb/fc/");
  CHECK(as_text(apply_exif_orientation(img, 7)) == "fc/eb/da/");
  CHECK(as_text(apply_exif_orientation(img, 8)) == "cf/be/ad/");
}

TEST_CASE("JPEG EXIF orientation is read in both byte orders and applied on decode", "[image]") {
  EncodeOptions jpg;
  jpg.format = ImageFormat::Jpeg;
  jpg.quality = 90;
  const std::vector<uint8_t> plain = encode_image(gradient_image(40, 24, 3), jpg);
  const Image stored = decode_image(plain);
  CHECK(jpeg_exif_orientation(plain.data(), plain.size()) == 1);
  for (bool big_endian : {true, false}) {
    for (int o = 1; o <= 8; ++o) {
      const std::vector<uint8_t> tagged = with_exif(plain, o, big_endian);
      INFO("orientation " << o << (big_endian ? " MM" : " II"));
      CHECK(jpeg_exif_orientation(tagged.data(), tagged.size()) == o);
      CHECK(same_pixels(decode_image(tagged), apply_exif_orientation(stored, o)));
    }
  }
  // Out-of-range or malformed Exif means "no orientation".
  CHECK(jpeg_exif_orientation(with_exif(plain, 9, true).data(), with_exif(plain, 9, true).size()) == 1);
  std::vector<uint8_t> broken = with_exif(plain, 6, true);
  broken[2 + 4 + 6 + 4] = 0xFF;  // IFD0 offset points far outside the segment
  CHECK(jpeg_exif_orientation(broken.data(), broken.size()) == 1);
  CHECK(same_pixels(decode_image(broken), stored));
}

TEST_CASE("PNG round trips are exact for gray, RGB and RGBA", "[image]") {
  EncodeOptions png;
  png.format = ImageFormat::Png;
  for (int channels : {1, 3, 4}) {
    Image img = noise_image(37, 23, channels, uint32_t(channels));
    Image back = decode_image(encode_image(img, png));
    CHECK(same_pixels(back, img));
  }
}

TEST_CASE("JPEG and WebP round trips stay close; lossless WebP is exact", "[image]") {
  Image img = gradient_image(96, 64, 3);
  EncodeOptions jpg;
  jpg.format = ImageFormat::Jpeg;
  jpg.quality = 95;
  Image j = decode_image(encode_image(img, jpg));
  REQUIRE((j.width == 96 && j.height == 64 && j.channels == 3));
  CHECK(mean_abs_diff(j, img) < 3.0);

  EncodeOptions webp;
  webp.format = ImageFormat::Webp;
  webp.quality = 95;
  Image w = decode_image(encode_image(img, webp));
  REQUIRE((w.width == 96 && w.height == 64 && w.channels == 3));
  CHECK(mean_abs_diff(w, img) < 3.0);

  webp.lossless = true;
  CHECK(same_pixels(decode_image(encode_image(img, webp)), img));
  Image rgba = noise_image(33, 17, 4, 7);
  CHECK(same_pixels(decode_image(encode_image(rgba, webp)), rgba));

  // JPEG has no alpha: RGBA is saved as its RGB part; gray stays gray.
  Image from_rgba = decode_image(encode_image(attach_alpha(img, Image(96, 64, 1)), jpg));
  CHECK(from_rgba.channels == 3);
  CHECK(mean_abs_diff(from_rgba, img) < 3.0);
  CHECK(decode_image(encode_image(gradient_image(16, 16, 1), jpg)).channels == 1);
}

TEST_CASE("PNG colour types and depths decode to 8-bit gray, RGB or RGBA", "[image]") {
  SECTION("16-bit gray is scaled with rounding") {
    const uint16_t values[4] = {0, 1000, 0x8080, 0xFFFF};  // 1000 * 255 / 65535 = 3.89 -> 4
    RawPng spec{4, 1, 16, PNG_COLOR_TYPE_GRAY, {}, {}, {}};
    for (uint16_t v : values) spec.rows.insert(spec.rows.end(), {uint8_t(v >> 8), uint8_t(v & 0xFF)});
    Image img = decode_image(write_raw_png(spec));
    REQUIRE((img.width == 4 && img.height == 1 && img.channels == 1));
    CHECK(std::vector<int>(img.pixels.begin(), img.pixels.end()) == std::vector<int>{0, 4, 128, 255});
  }
  SECTION("16-bit RGBA") {
    RawPng spec{1, 1, 16, PNG_COLOR_TYPE_RGBA, {0x01, 0x01, 0x80, 0x80, 0xFF, 0xFF, 0x00, 0x00}, {}, {}};
    Image img = decode_image(write_raw_png(spec));
    REQUIRE(img.channels == 4);
    CHECK(std::vector<int>(img.pixels.begin(), img.pixels.end()) == std::vector<int>{1, 128, 255, 0});
  }
  SECTION("palette without and with transparency") {
    RawPng spec{3, 1, 8, PNG_COLOR_TYPE_PALETTE, {0, 1, 2}, {{255, 0, 0}, {0, 255, 0}, {0, 0, 255}}, {}};
    Image rgb = decode_image(write_raw_png(spec));
    REQUIRE(rgb.channels == 3);
    CHECK(std::vector<int>(rgb.pixels.begin(), rgb.pixels.end()) == std::vector<int>{255, 0, 0, 0, 255, 0, 0, 0, 255});
    spec.trns = {255, 128, 0};
    Image rgba = decode_image(write_raw_png(spec));
    REQUIRE(rgba.channels == 4);
    CHECK((rgba.at(0, 0, 3) == 255 && rgba.at(1, 0, 3) == 128 && rgba.at(2, 0, 3) == 0));
    CHECK(rgba.at(2, 0, 2) == 255);
  }
  SECTION("gray + alpha becomes RGBA, 1-bit gray becomes 0 / 255") {
    RawPng ga{2, 1, 8, PNG_COLOR_TYPE_GRAY_ALPHA, {10, 200, 99, 7}, {}, {}};
    Image img = decode_image(write_raw_png(ga));
    REQUIRE(img.channels == 4);
    CHECK(std::vector<int>(img.pixels.begin(), img.pixels.end()) == std::vector<int>{10, 10, 10, 200, 99, 99, 99, 7});
    RawPng bits{8, 1, 1, PNG_COLOR_TYPE_GRAY, {0xA5}, {}, {}};  // 10100101
    Image b = decode_image(write_raw_png(bits));
    REQUIRE(b.channels == 1);
    CHECK(std::vector<int>(b.pixels.begin(), b.pixels.end()) == std::vector<int>{255, 0, 255, 0, 0, 255, 0, 255});
  }
}

TEST_CASE("the format comes from the magic bytes, never from the file name", "[image]") {
  TempDir dir;
  EncodeOptions png;
  png.format = ImageFormat::Png;
  Image img = noise_image(8, 8, 3, 3);
  const std::string misnamed = dir.path + "/actually_png.jpg";
  save_image(misnamed, img, png);
  const auto bytes = read_bytes(misnamed);
  CHECK(detect_image_format(bytes.data(), bytes.size()) == ImageFormat::Png);
  CHECK(same_pixels(load_image(misnamed), img));

  CHECK(format_from_extension("a/b.PNG") == ImageFormat::Png);
  CHECK(format_from_extension("x.jpeg") == ImageFormat::Jpeg);
  CHECK(format_from_extension("x.JPG") == ImageFormat::Jpeg);
  CHECK(format_from_extension("x.webp") == ImageFormat::Webp);
  CHECK(format_from_extension("scan.TIF") == ImageFormat::Tiff);
  CHECK(format_from_extension("scan.tiff") == ImageFormat::Tiff);
  CHECK(format_from_extension("cctv.bmp") == ImageFormat::Bmp);
  CHECK(format_from_extension("IMG_0001.HEIC") == ImageFormat::Heif);
  CHECK(format_from_extension("x.avif") == ImageFormat::Heif);
  CHECK(format_from_extension("dir.png/file") == ImageFormat::Unknown);
  CHECK(format_from_extension("noext") == ImageFormat::Unknown);
}

TEST_CASE("bad input fails with one-line gpen::Error messages", "[image]") {
  auto message_of = [](const std::vector<uint8_t>& bytes) -> std::string {
    try {
      decode_image(bytes);
    } catch (const Error& e) {
      return e.what();
    }
    return "<no error>";
  };
  auto one_line = [](const std::string& s) { return s.find('\n') == std::string::npos; };

  CHECK_THAT(message_of({}), Catch::Contains("empty"));

  std::mt19937 rng(42);
  std::vector<uint8_t> random(4096);
  for (auto& b : random) b = uint8_t(rng());
  random[0] = 0x00;  // make sure it is no signature we know
  CHECK_THAT(message_of(random), Catch::Contains("not an image gpen reads"));
  CHECK_THAT(message_of({'G', 'I', 'F', '8', '9', 'a', 0, 0}), Catch::Contains("GIF"));

  Image img = noise_image(64, 48, 3, 9);
  for (ImageFormat f : {ImageFormat::Png, ImageFormat::Jpeg, ImageFormat::Webp, ImageFormat::Tiff, ImageFormat::Bmp}) {
    EncodeOptions o;
    o.format = f;
    const std::vector<uint8_t> good = encode_image(img, o);
    INFO(image_format_name(f));
    for (size_t keep : {size_t(3), size_t(12), good.size() / 4, good.size() / 2, good.size() - 30}) {
      std::vector<uint8_t> cut(good.begin(), good.begin() + long(keep));
      std::string msg = message_of(cut);
      INFO("truncated to " << keep << " bytes: " << msg);
      CHECK(msg != "<no error>");
      CHECK(one_line(msg));
    }
  }

  // A flipped byte inside PNG image data breaks its CRC.
  EncodeOptions png;
  png.format = ImageFormat::Png;
  std::vector<uint8_t> bad_png = encode_image(img, png);
  bad_png[bad_png.size() / 2] ^= 0x5A;
  CHECK_THAT(message_of(bad_png), Catch::Contains("PNG"));

  // Random bytes after valid signatures.
  for (std::vector<uint8_t> sig : {std::vector<uint8_t>{0x89, 'P', 'N', 'G', '\r', '\n', 0x1A, '\n'},
                                   std::vector<uint8_t>{0xFF, 0xD8, 0xFF},
                                   std::vector<uint8_t>{'R', 'I', 'F', 'F', 0, 1, 0, 0, 'W', 'E', 'B', 'P'},
                                   std::vector<uint8_t>{'I', 'I', '*', 0}, std::vector<uint8_t>{'M', 'M', 0, '*'},
                                   std::vector<uint8_t>{'B', 'M'},
                                   std::vector<uint8_t>{0, 0, 0, 24, 'f', 't', 'y', 'p', 'h', 'e', 'i', 'c'}}) {
    std::vector<uint8_t> junk = sig;
    for (int i = 0; i < 2000; ++i) junk.push_back(uint8_t(rng()));
    std::string msg = message_of(junk);
    CHECK(msg != "<no error>");
    CHECK(one_line(msg));
  }

  CHECK_THROWS_WITH(load_image("/nonexistent/dir/x.png"), Catch::Contains("/nonexistent/dir/x.png"));
  CHECK_THROWS_AS(load_image("/tmp"), Error);
}

TEST_CASE("size limits are checked from the header, before any pixel allocation", "[image]") {
  // 60000 x 60000 RGB would need 10.8 GB; only the 57-byte header exists.
  const std::vector<uint8_t> huge = png_header_only(60000, 60000);
  ImageInfo info = probe_image(huge.data(), huge.size());
  CHECK((info.format == ImageFormat::Png && info.width == 60000 && info.height == 60000));
  CHECK_THROWS_WITH(decode_image(huge), Catch::Contains("60000x60000") && Catch::Contains("limit"));

  // Within the side limit but over the pixel budget (20000 x 20000 = 400 Mpx > 100 Mpx).
  CHECK_THROWS_WITH(decode_image(png_header_only(20000, 20000)), Catch::Contains("Mpx"));

  // Configurable: a 64 x 48 image against a 1000-pixel budget, and against a 32-pixel side.
  EncodeOptions png;
  png.format = ImageFormat::Png;
  const std::vector<uint8_t> small = encode_image(noise_image(64, 48, 3, 1), png);
  DecodeLimits tight;
  tight.max_pixels = 1000;
  CHECK_THROWS_AS(decode_image(small, tight), Error);
  DecodeLimits narrow;
  narrow.max_side = 32;
  CHECK_THROWS_WITH(decode_image(small, narrow), Catch::Contains("per side"));
  for (ImageFormat f : {ImageFormat::Jpeg, ImageFormat::Webp}) {
    EncodeOptions o;
    o.format = f;
    CHECK_THROWS_AS(decode_image(encode_image(noise_image(64, 48, 3, 1), o), tight), Error);
  }
  CHECK_NOTHROW(decode_image(small));
}

TEST_CASE("save_image writes atomically and leaves nothing behind on failure", "[image]") {
  TempDir dir;
  const Image img = gradient_image(50, 40, 3);

  SECTION("success replaces the file and leaves no temporary") {
    const std::string path = dir.path + "/out.png";
    save_image(path, noise_image(10, 10, 3, 1));
    save_image(path, img);
    CHECK(same_pixels(load_image(path), img));
    CHECK(dir.entries() == std::vector<std::string>{"out.png"});
    for (const char* name : {"/a.jpg", "/b.webp", "/c.JPEG", "/d.tif", "/e.bmp"})
      CHECK_NOTHROW(save_image(dir.path + name, img));
    CHECK(dir.entries().size() == 6);
  }
  SECTION("unknown extension without an explicit format") {
    CHECK_THROWS_WITH(save_image(dir.path + "/out.gif", img), Catch::Contains("out.gif"));
    CHECK_THROWS_WITH(save_image(dir.path + "/out.heic", img), Catch::Contains("does not write"));
    CHECK(dir.entries().empty());
  }
  SECTION("missing directory") {
    CHECK_THROWS_WITH(save_image(dir.path + "/missing/out.png", img), Catch::Contains("No such file"));
    CHECK(dir.entries().empty());
  }
  SECTION("the target is a directory") {
    const std::string sub = dir.path + "/sub.png";
    REQUIRE(::mkdir(sub.c_str(), 0755) == 0);
    CHECK_THROWS_AS(save_image(sub, img), Error);
    CHECK(dir.entries() == std::vector<std::string>{"sub.png"});
    ::rmdir(sub.c_str());
  }
  SECTION("unwritable directory") {
    if (::geteuid() == 0) {
      WARN("running as root: directory permissions do not apply, checked via /proc instead");
      CHECK_THROWS_AS(save_image("/proc/gpen_test_out.png", img), Error);
    } else {
      REQUIRE(::chmod(dir.path.c_str(), 0555) == 0);
      CHECK_THROWS_WITH(save_image(dir.path + "/out.png", img), Catch::Contains("Permission denied"));
      ::chmod(dir.path.c_str(), 0755);
      CHECK(dir.entries().empty());
    }
  }
  SECTION("a write that fails half way (file size limit, like a full disk)") {
    // RLIMIT_FSIZE makes write() fail with EFBIG once the file would pass 1000 bytes.
    struct rlimit old_limit;
    REQUIRE(::getrlimit(RLIMIT_FSIZE, &old_limit) == 0);
    auto old_handler = std::signal(SIGXFSZ, SIG_IGN);
    struct rlimit small = old_limit;
    small.rlim_cur = 1000;
    REQUIRE(::setrlimit(RLIMIT_FSIZE, &small) == 0);
    std::string message;
    try {
      save_image(dir.path + "/big.png", noise_image(200, 200, 3, 5));
    } catch (const Error& e) {
      message = e.what();
    }
    ::setrlimit(RLIMIT_FSIZE, &old_limit);
    std::signal(SIGXFSZ, old_handler);
    CHECK_THAT(message, Catch::Contains("big.png") && Catch::Contains("large"));
    CHECK(dir.entries().empty());
    CHECK(!file_exists(dir.path + "/big.png"));
  }
}

TEST_CASE("gray and RGBA convert to RGB; alpha splits off and reattaches", "[image]") {
  Image gray(2, 1, 1);
  gray.pixels = {7, 200};
  Image rgb = to_rgb(gray);
  CHECK(std::vector<int>(rgb.pixels.begin(), rgb.pixels.end()) == std::vector<int>{7, 7, 7, 200, 200, 200});

  Image rgba = noise_image(5, 4, 4, 11);
  RgbAndAlpha parts = split_alpha(rgba);
  REQUIRE((parts.rgb.channels == 3 && parts.alpha.channels == 1));
  CHECK(parts.rgb.at(3, 2, 1) == rgba.at(3, 2, 1));
  CHECK(parts.alpha.at(3, 2, 0) == rgba.at(3, 2, 3));
  CHECK(same_pixels(attach_alpha(parts.rgb, parts.alpha), rgba));

  CHECK(split_alpha(rgb).alpha.empty());
  CHECK_THROWS_AS(attach_alpha(parts.rgb, Image(3, 3, 1)), Error);
  CHECK_THROWS_AS(Image(2, 2, 2), Error);
}

TEST_CASE("a JPEG frame header of height 0 (DNL) is refused by the probe, as by the decoder", "[image]") {
  // Found by tests/fuzz/fuzz_image: the probe returned 0 x 7, so `gpen serve` accepted the upload
  // and failed it later; it now refuses it at once, like the decoder.
  EncodeOptions eo;
  eo.format = ImageFormat::Jpeg;
  std::vector<uint8_t> jpg = encode_image(Image(13, 7, 3), eo);
  size_t sof = 0;
  for (size_t i = 2; i + 9 < jpg.size() && !sof; ++i)
    if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) sof = i;
  REQUIRE(sof > 0);
  CHECK(probe_image(jpg.data(), jpg.size()).height == 7);
  jpg[sof + 5] = jpg[sof + 6] = 0;  // marker, length (2), precision (1), then height
  CHECK_THROWS_WITH(probe_image(jpg.data(), jpg.size()), Catch::Contains("empty image"));
  CHECK_THROWS_AS(decode_image(jpg), Error);
}
