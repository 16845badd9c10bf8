#include "core/pipeline/adjustments.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rounding.h"
#include "core/paste_back.h"
#include "core/thread_pool.h"
#include "kernels/cpu/photo_colour.h"
#include "kernels/cpu/photo_rows.h"

namespace gpen {
namespace {


int color_channels(const Image& img) { return std::min(img.channels, 3); }  // alpha is never filtered

// The odd Gaussian kernel size that covers +-3 sigma.
int ksize_for(double sigma) { return 2 * int(std::ceil(3 * sigma)) + 1; }

// img - blur(img): the detail layer, float, all channels.
FloatImage high_pass(const Image& img, double sigma) {
  FloatImage f = to_float(img);
  const FloatImage low = gaussian_blur(f, ksize_for(sigma), sigma);
  for (size_t i = 0; i < f.pixels.size(); ++i) f.pixels[i] -= low.pixels[i];
  return f;
}

// Detail scale of a face crop: about 2 px at GPEN-512, never under 1 px.
double detail_sigma(int face_size) { return std::max(1.0, face_size / 256.0); }

constexpr float kDetailBoost = 0.75f;  // mode detail: restored detail layer x 1.75

bool target_is_restored_as_is(const Controls& c) { return c.mode != RestoreMode::Detail && !c.detail; }

using namespace photo_colour;

float skin_weight(const uint8_t* p) {
  const float r = p[0], g = p[1], b = p[2];
  return skin_weight_of(cb_of(r, g, b), cr_of(r, g, b));
}

// Mean |Cb - 128| + |Cr - 128| under 2 levels over `area` of an RGB image: black and white.
bool is_monochrome(const Image& rgb, const Rect& area) {
  const double limit = 2.0 * std::max(1.0, double(area.width) * area.height);
  double sum = 0;
  for (int y = area.y; y < area.bottom(); ++y) {
    for (int x = area.x; x < area.right(); ++x) {
      const uint8_t* p = rgb.row(y) + size_t(x) * 3;
      float cb, cr;
      rgb_to_cbcr(p[0], p[1], p[2], &cb, &cr);
      sum += std::fabs(cb - 128.f) + std::fabs(cr - 128.f);
    }
    // The sum only grows: a colour photo is known after a few rows (the same answer, sooner).
    if (sum >= limit) return false;
  }
  return sum < limit;
}

}  // namespace

void rgb_to_cbcr(float r, float g, float b, float* cb, float* cr) {
  *cb = cb_of(r, g, b);
  *cr = cr_of(r, g, b);
}

double face_blend_weight(const Controls& c) {
  const double s = c.strength / 100.0;
  return c.mode == RestoreMode::Strong ? 1.0 - (1.0 - s) * (1.0 - s) : s;
}

FloatImage skin_mask(const Image& img) {
  if (img.channels != 3) return skin_mask(to_rgb(img));
  const bool mono = is_monochrome(img, Rect{0, 0, img.width, img.height});
  FloatImage mask(img.width, img.height, 1, 1.f);
  if (mono) return mask;
  for (int y = 0; y < img.height; ++y)
    for (int x = 0; x < img.width; ++x) {
      const uint8_t* p = img.row(y) + size_t(x) * 3;
      mask.at(x, y) = skin_weight(p);
    }
  return mask;
}

namespace {

// protect_skin_colour over `r` (inside `restored`), the original's pixel of photo (x, y) being
// `orig` (RGB) at (x - ox, y - oy).
void protect_skin_rect(Image& restored, const Image& orig, int ox, int oy, const Rect& r, ThreadPool* pool) {
  const bool mono = is_monochrome(orig, Rect{r.x - ox, r.y - oy, r.width, r.height});
  const int C = restored.channels;
  const cpu::PhotoRowKernels& rows = cpu::photo_row_kernels();
  parallel_for(pool, r.height, 32, [&](int64_t y0, int64_t y1) {
    for (int y = r.y + int(y0); y < r.y + int(y1); ++y) {
      uint8_t* p = restored.row(y) + size_t(r.x) * size_t(C);
      const uint8_t* o = orig.row(y - oy) + size_t(r.x - ox) * 3;
      (C == 3 ? rows.protect_skin_rgb : rows.protect_skin_rgba)(p, o, r.width, mono);
    }
  });
}

}  // namespace

void protect_skin_colour(Image& restored, const Image& original, const Rect& area, ThreadPool* pool) {
  if (restored.channels < 3 || original.width != restored.width || original.height != restored.height)
    fail("protect_skin_colour: expected an RGB(A) photo and its original of the same size");
  const Rect r = intersect(area, Rect{0, 0, restored.width, restored.height});
  if (r.empty()) return;
  const Image rgb_original = original.channels == 3 ? Image{} : to_rgb(original);
  protect_skin_rect(restored, original.channels == 3 ? original : rgb_original, 0, 0, r, pool);
}

void protect_skin_colour_in(Image& restored, const Image& original_area, const Rect& area, ThreadPool* pool) {
  if (restored.channels < 3 || original_area.channels != 3 || original_area.width != area.width ||
      original_area.height != area.height || area.x < 0 || area.y < 0 || area.right() > restored.width ||
      area.bottom() > restored.height)
    fail("protect_skin_colour_in: expected an RGB(A) photo and the RGB original of an area inside it");
  if (area.empty()) return;
  protect_skin_rect(restored, original_area, area.x, area.y, area, pool);
}

Image restoration_target(const Image& aligned, Image restored, const Controls& c) {
  if (aligned.width != restored.width || aligned.height != restored.height || aligned.channels != 3 ||
      restored.channels != 3)
    fail("restoration_target: the aligned and restored crops must be RGB of one size");
  if (target_is_restored_as_is(c)) return restored;
  FloatImage t = to_float(restored);
  if (c.mode == RestoreMode::Detail) {
    const FloatImage hp = high_pass(restored, detail_sigma(restored.width));
    for (size_t i = 0; i < t.pixels.size(); ++i) t.pixels[i] += kDetailBoost * hp.pixels[i];
  }
  if (c.detail) {  // the original's own fine texture, which GPEN's prior tends to smooth away
    const FloatImage hp = high_pass(aligned, detail_sigma(aligned.width));
    for (size_t i = 0; i < t.pixels.size(); ++i) t.pixels[i] += hp.pixels[i];
  }
  for (size_t i = 0; i < t.pixels.size(); ++i) restored.pixels[i] = saturate_round_u8(t.pixels[i]);
  return restored;
}

Image compose_face(const Image& aligned, const Image& restored, const Controls& c, bool small_face) {
  Image target = restoration_target(aligned, restored, c);
  if (small_face) target = smooth_3x3(target);
  return add_weighted(target, face_blend_weight(c), aligned);
}

// ------------------------------------------------------------------------------------------------
// Photo filters

bool has_photo_filters(const Controls& c) {
  return c.denoise > 0 || c.sharpen > 0 || c.contrast != 0 || c.brightness != 0;
}

// Bilateral filter: 7 x 7 window, spatial sigma 1.5 px, range sigma 0.6 * amount levels over the
// colour distance, so flat areas are averaged and edges (large colour steps) are kept.
Image denoise_photo(const Image& photo, double amount, ThreadPool* pool) {
  if (amount <= 0) return photo;
  constexpr int kRadius = 3;
  constexpr double kSpatialSigma = 1.5;
  const double range_sigma = 0.6 * amount;
  const int C = photo.channels, CC = color_channels(photo), W = photo.width, H = photo.height;
  float spatial[2 * kRadius + 1][2 * kRadius + 1];
  for (int dy = -kRadius; dy <= kRadius; ++dy)
    for (int dx = -kRadius; dx <= kRadius; ++dx)
      spatial[dy + kRadius][dx + kRadius] = float(std::exp(-(dx * dx + dy * dy) / (2 * kSpatialSigma * kSpatialSigma)));
  // Range weight by squared colour distance (integer), tabulated once.
  std::vector<float> range(size_t(CC) * 255 * 255 + 1);
  for (size_t d2 = 0; d2 < range.size(); ++d2) range[d2] = float(std::exp(-double(d2) / (2 * range_sigma * range_sigma)));

  Image out = photo;
  parallel_for(pool, H, 8, [&](int64_t y0, int64_t y1) {
    for (int y = int(y0); y < int(y1); ++y)
      for (int x = 0; x < W; ++x) {
        const uint8_t* centre = photo.row(y) + size_t(x) * C;
        float acc[3] = {0, 0, 0}, wsum = 0;
        for (int dy = -kRadius; dy <= kRadius; ++dy) {
          const int yy = std::clamp(y + dy, 0, H - 1);
          for (int dx = -kRadius; dx <= kRadius; ++dx) {
            const uint8_t* p = photo.row(yy) + size_t(std::clamp(x + dx, 0, W - 1)) * C;
            int d2 = 0;
            for (int c = 0; c < CC; ++c) d2 += (p[c] - centre[c]) * (p[c] - centre[c]);
            const float w = spatial[dy + kRadius][dx + kRadius] * range[size_t(d2)];
            wsum += w;
            for (int c = 0; c < CC; ++c) acc[c] += w * p[c];
          }
        }
        uint8_t* o = out.row(y) + size_t(x) * C;
        for (int c = 0; c < CC; ++c) o[c] = saturate_round_u8(acc[c] / wsum);
      }
  });
  return out;
}

// Unsharp mask: v + k * (v - gaussian(v, sigma 1 px)), k = 2 * amount / 100.
Image sharpen_photo(const Image& photo, double amount, ThreadPool* pool) {
  if (amount <= 0) return photo;
  const float k = float(2.0 * amount / 100.0);
  const int C = photo.channels, CC = color_channels(photo);
  const FloatImage hp = high_pass(photo, 1.0);
  Image out = photo;
  parallel_for(pool, photo.height, 64, [&](int64_t y0, int64_t y1) {
    for (int y = int(y0); y < int(y1); ++y) {
      uint8_t* o = out.row(y);
      const float* h = hp.row(y);
      for (int x = 0; x < photo.width; ++x)
        for (int c = 0; c < CC; ++c) {
          const size_t i = size_t(x) * C + c;
          o[i] = saturate_round_u8(o[i] + k * h[i]);
        }
    }
  });
  return out;
}

// out = (v - 128) * 2^(contrast / 50) + 128 + 1.275 * brightness, per colour channel.
void adjust_tone(Image& photo, double contrast, double brightness) {
  if (contrast == 0 && brightness == 0) return;
  const double gain = std::exp2(contrast / 50.0), offset = 1.275 * brightness;
  uint8_t lut[256];
  for (int v = 0; v < 256; ++v) lut[v] = saturate_round_u8(float((v - 128) * gain + 128 + offset));
  const int C = photo.channels, CC = color_channels(photo);
  for (size_t i = 0; i < photo.pixels.size(); i += size_t(C))
    for (int c = 0; c < CC; ++c) photo.pixels[i + size_t(c)] = lut[photo.pixels[i + size_t(c)]];
}

void apply_finishing_filters(Image& photo, const Controls& c, ThreadPool* pool) {
  if (c.sharpen > 0) photo = sharpen_photo(photo, c.sharpen, pool);
  adjust_tone(photo, c.contrast, c.brightness);
}

}  // namespace gpen
