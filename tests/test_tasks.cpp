// Colorization and inpainting (core/pipeline/tasks.h) on the tiny GPEN checkpoint (S = 32, official
// layout): the network sees exactly what GPEN's scripts feed it, and outputs have the right size.
#include <catch2/catch.hpp>

#include <algorithm>
#include <random>

#include "core/error.h"
#include "core/face_tensor.h"
#include "core/image_ops.h"
#include "core/pipeline/tasks.h"
#include "tests/test_util.h"

using namespace gpen;

namespace {

GpenRunner tiny_runner() {
  auto model = std::make_shared<GpenModel>(
      GpenModel::from_state_dict(load_weights(test::source_path("tests/fixtures/gpen_tiny/gpen_tiny.pth"))));
  return GpenRunner(model, std::shared_ptr<Backend>(make_cpu_backend()), CompileOptions{});
}

Image random_image(int w, int h, int channels, uint32_t seed) {
  Image img(w, h, channels);
  std::mt19937 rng(seed);
  for (auto& p : img.pixels) p = uint8_t(rng() & 255);
  return img;
}

Image network_output(const Image& input, GpenRunner& runner) {
  return tensor_to_face(runner.forward(faces_to_tensor({&input})), 0);
}

bool same_pixels(const Image& a, const Image& b) {
  return a.width == b.width && a.height == b.height && a.channels == b.channels && a.pixels == b.pixels;
}

}  // namespace

TEST_CASE("gray_of matches OpenCV's BGR2GRAY fixed-point weights", "[tasks]") {
  REQUIRE(gray_of(0, 0, 0) == 0);
  REQUIRE(gray_of(255, 255, 255) == 255);
  // By hand: (4899*200 + 9617*100 + 1868*50 + 8192) >> 14 = 2043092 >> 14 = 124 (0.299*200 + ... = 124.2).
  REQUIRE(gray_of(200, 100, 50) == 124);
  REQUIRE(gray_of(255, 0, 0) == 76);   // 0.299 * 255 = 76.2
  REQUIRE(gray_of(0, 255, 0) == 150);  // 0.587 * 255 = 149.7
  REQUIRE(gray_of(0, 0, 255) == 29);   // 0.114 * 255 = 29.1
}

TEST_CASE("colorize feeds the network gray x 3 at its size", "[tasks]") {
  const Image color = random_image(32, 32, 3, 1);
  const Image in = colorize_input(color, 32);
  REQUIRE(in.width == 32);
  REQUIRE(in.height == 32);
  REQUIRE(in.channels == 3);
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x) {
      const uint8_t g = gray_of(color.at(x, y, 0), color.at(x, y, 1), color.at(x, y, 2));
      REQUIRE(in.at(x, y, 0) == g);
      REQUIRE(in.at(x, y, 1) == g);
      REQUIRE(in.at(x, y, 2) == g);
    }
  // Other sizes are resized as gray (bilinear), then replicated.
  const Image big = random_image(48, 40, 1, 2);
  const Image resized_in = colorize_input(big, 32);
  REQUIRE(same_pixels(resized_in, to_rgb(resize_bilinear(big, 32, 32))));
}

TEST_CASE("colorize: output depends only on the gray picture; S x S in gives the network's output", "[tasks]") {
  GpenRunner runner = tiny_runner();
  const Image color = random_image(32, 32, 3, 3);
  Image gray(32, 32, 1);
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x) gray.at(x, y, 0) = gray_of(color.at(x, y, 0), color.at(x, y, 1), color.at(x, y, 2));
  const Image out = colorize(color, runner);
  REQUIRE(out.width == 32);
  REQUIRE(out.channels == 3);
  REQUIRE(same_pixels(out, network_output(to_rgb(gray), runner)));  // exactly gray x 3 went in
  REQUIRE(same_pixels(out, colorize(gray, runner)));                // 1-channel input: same
  Image rgba(32, 32, 4);
  for (size_t i = 0; i < 32 * 32; ++i) {
    std::copy_n(&color.pixels[3 * i], 3, &rgba.pixels[4 * i]);
    rgba.pixels[4 * i + 3] = uint8_t(i);  // alpha must not matter
  }
  REQUIRE(same_pixels(out, colorize(rgba, runner)));
}

TEST_CASE("colorize at another size keeps the input's luma (GPEN's post_process)", "[tasks]") {
  GpenRunner runner = tiny_runner();
  const Image gray = random_image(45, 37, 1, 4);
  const Image out = colorize(gray, runner);
  REQUIRE(out.width == 45);
  REQUIRE(out.height == 37);
  REQUIRE(out.channels == 3);
  // Chroma comes from the network (resized), luma from the input: Y(out) == gray up to rounding,
  // except where a channel had to be clipped to 0 or 255.
  const Image net = resize_bilinear(network_output(colorize_input(gray, 32), runner), 45, 37);
  int checked = 0;
  for (int y = 0; y < 37; ++y)
    for (int x = 0; x < 45; ++x) {
      const uint8_t r = out.at(x, y, 0), g = out.at(x, y, 1), b = out.at(x, y, 2);
      if (std::min({r, g, b}) == 0 || std::max({r, g, b}) == 255) continue;
      ++checked;
      REQUIRE(std::abs(0.299 * r + 0.587 * g + 0.114 * b - gray.at(x, y, 0)) <= 1.0);
      // and the colour differences are the network's
      REQUIRE(std::abs((int(r) - int(g)) - (int(net.at(x, y, 0)) - int(net.at(x, y, 1)))) <= 1);
    }
  REQUIRE(checked > 45 * 37 / 2);
}

TEST_CASE("inpaint paints masked pixels white, the rest unchanged", "[tasks]") {
  const Image img = random_image(32, 32, 3, 5);
  Image mask(32, 32, 1);
  for (int y = 4; y < 12; ++y)
    for (int x = 0; x < 32; ++x) mask.at(x, y, 0) = y < 8 ? 255 : 128;
  mask.at(0, 20, 0) = 127;  // below the threshold: kept
  const Image in = inpaint_input(img, mask, 32);
  for (int y = 0; y < 32; ++y)
    for (int x = 0; x < 32; ++x)
      for (int c = 0; c < 3; ++c) {
        INFO(x << "," << y << "," << c);
        REQUIRE(in.at(x, y, c) == (mask.at(x, y, 0) >= 128 ? 255 : img.at(x, y, c)));
      }
  // A 3-channel (white-on-black RGB) mask reads the same.
  REQUIRE(same_pixels(in, inpaint_input(img, to_rgb(mask), 32)));
  REQUIRE_THROWS_WITH(inpaint_input(img, Image(31, 32, 1), 32), Catch::Contains("mask is 31x32, the image 32x32"));
}

TEST_CASE("inpaint: what is under the mask does not matter; an empty mask is a plain run", "[tasks]") {
  GpenRunner runner = tiny_runner();
  const Image img = random_image(32, 32, 3, 6);
  Image mask(32, 32, 1);
  for (int y = 10; y < 20; ++y)
    for (int x = 8; x < 24; ++x) mask.at(x, y, 0) = 255;
  Image other = img;
  for (int y = 10; y < 20; ++y)
    for (int x = 8; x < 24; ++x) other.at(x, y, 1) = uint8_t(255 - other.at(x, y, 1));
  const Image out = inpaint(img, mask, runner);
  REQUIRE(out.width == 32);
  REQUIRE(same_pixels(out, inpaint(other, mask, runner)));
  REQUIRE(!same_pixels(out, network_output(img, runner)));  // the painting changed what it saw
  REQUIRE(same_pixels(inpaint(img, Image(32, 32, 1), runner), network_output(img, runner)));
  // Another input size: resized to S, run, and the output brought back to the input's size.
  const Image wide = random_image(40, 36, 3, 7);
  const Image out_wide = inpaint(wide, Image(40, 36, 1), runner);
  REQUIRE(out_wide.width == 40);
  REQUIRE(out_wide.height == 36);
  REQUIRE(same_pixels(out_wide, resize_bilinear(network_output(resize_bilinear(wide, 32, 32), runner), 40, 36)));
}
