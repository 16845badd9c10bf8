// Helpers shared by the image tests (test_image.cpp, test_image_formats.cpp).
#pragma once
#include <catch2/catch.hpp>

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

}  // namespace gpen::test_images
