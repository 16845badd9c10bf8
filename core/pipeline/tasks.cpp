#include "core/pipeline/tasks.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/face_tensor.h"
#include "core/image_ops.h"

namespace gpen {
namespace {

Image to_gray(const Image& image) {
  if (image.channels == 1) return image;
  const Image rgb = to_rgb(image);  // drops alpha
  Image gray(rgb.width, rgb.height, 1);
  const size_t n = size_t(rgb.width) * size_t(rgb.height);
  for (size_t i = 0; i < n; ++i)
    gray.pixels[i] = gray_of(rgb.pixels[3 * i], rgb.pixels[3 * i + 1], rgb.pixels[3 * i + 2]);
  return gray;
}

Image resized(const Image& image, int width, int height) {
  return image.width == width && image.height == height ? image : resize_bilinear(image, width, height);
}

// One S x S RGB image through the network, with GPEN's uint8 <-> [-1, 1] conversions.
Image run_network(const Image& input, GpenRunner& runner) {
  Tensor scratch;
  return std::move(runner.forward_faces({&input}, scratch).at(0));
}

// `color` with its luma (BT.601 Y, as cv2's BGR2YUV) replaced by `gray`'s, keeping its chroma:
// in YUV -> RGB every channel is Y plus a chroma term, so each channel moves by Y_gray - Y_color.
Image with_luma_of(const Image& color, const Image& gray) {
  Image out = color;
  const size_t n = size_t(color.width) * size_t(color.height);
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* c = &color.pixels[3 * i];
    const float y = 0.299f * c[0] + 0.587f * c[1] + 0.114f * c[2];
    const float shift = float(gray.pixels[i]) - y;
    for (int k = 0; k < 3; ++k)
      out.pixels[3 * i + size_t(k)] = uint8_t(std::clamp(std::lround(c[k] + shift), 0L, 255L));
  }
  return out;
}

void check_image(const Image& image, const char* what) {
  if (image.empty() || image.width <= 0 || image.height <= 0) fail(what, " image is empty");
}

}  // namespace

uint8_t gray_of(uint8_t r, uint8_t g, uint8_t b) {
  return uint8_t((4899u * r + 9617u * g + 1868u * b + 8192u) >> 14);
}

Image colorize_input(const Image& image, int size) {
  check_image(image, "colorize: the");
  return to_rgb(resized(to_gray(image), size, size));
}

Image colorize(const Image& image, GpenRunner& runner) {
  const int S = runner.model().config().size;
  const Image out = run_network(colorize_input(image, S), runner);
  if (image.width == S && image.height == S) return out;
  return with_luma_of(resized(out, image.width, image.height), to_gray(image));
}

Image inpaint_input(const Image& image, const Image& mask, int size) {
  check_image(image, "inpaint: the");
  check_image(mask, "inpaint: the mask");
  if (mask.width != image.width || mask.height != image.height)
    fail("inpaint: the mask is ", mask.width, "x", mask.height, ", the image ", image.width, "x", image.height,
         "; they must be the same size");
  Image painted = to_rgb(image);
  const size_t n = size_t(image.width) * size_t(image.height);
  for (size_t i = 0; i < n; ++i)
    if (mask.pixels[i * size_t(mask.channels)] >= 128) std::fill_n(&painted.pixels[3 * i], 3, uint8_t(255));
  return resized(painted, size, size);
}

Image inpaint(const Image& image, const Image& mask, GpenRunner& runner) {
  const int S = runner.model().config().size;
  const Image out = run_network(inpaint_input(image, mask, S), runner);
  return resized(out, image.width, image.height);
}

}  // namespace gpen
