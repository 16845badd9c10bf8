#include "core/pipeline/adjustments.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "core/rounding.h"
#include "core/paste_back.h"
#include "core/thread_pool.h"

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

// The colour arithmetic on float lanes, written branch-free (ternaries, no libm) so that the
// block loop of protect_skin_row vectorises; the scalar helpers below use the same functions.
inline float cb_of(float r, float g, float b) { return 128.f - 0.168736f * r - 0.331264f * g + 0.5f * b; }
inline float cr_of(float r, float g, float b) { return 128.f + 0.5f * r - 0.418688f * g - 0.081312f * b; }
inline float max2(float a, float b) { return a < b ? b : a; }
inline float min2(float a, float b) { return b < a ? b : a; }

// The skin mask's weight (adjustments.h) from a pixel's chroma: 1 within 8 chroma levels of the
// skin box, 0 beyond 24. d is the distance outside the box, in chroma levels (0 inside). Full
// weight up to 8 levels out (real faces straddle the box: shade, make-up, white balance), then
// fading out until 24.
inline float skin_weight_of(float cb, float cr) {
  const float d = max2(max2(max2(77.f - cb, cb - 127.f), max2(133.f - cr, cr - 173.f)), 0.f);
  return min2(max2(1.f - (d - 8.f) / 16.f, 0.f), 1.f);
}

// Y of the restored pixel (r, g, b), its Cb/Cr (cb_f, cr_f) moved towards the original's
// (cb_o, cr_o) by w; the new R, G, B before rounding.
inline void moved_chroma(float r, float g, float b, float cb_f, float cr_f, float cb_o, float cr_o, float w,
                         float* out_r, float* out_g, float* out_b) {
  float y = 0.299f * r + 0.587f * g + 0.114f * b;
  const float cb = cb_f + w * (cb_o - cb_f) - 128.f, cr = cr_f + w * (cr_o - cr_f) - 128.f;
  // Not every luma can carry every colour (a bright red clips R): keep the colour, and move the
  // luma to the nearest level where R, G and B all fit in 0..255.
  const float lo = max2(max2(-1.402f * cr, 0.344136f * cb + 0.714136f * cr), -1.772f * cb);
  const float hi = min2(min2(255.f - 1.402f * cr, 255.f + 0.344136f * cb + 0.714136f * cr), 255.f - 1.772f * cb);
  const float clamped = y < lo ? lo : (hi < y ? hi : y);
  y = lo <= hi ? clamped : y;
  *out_r = y + 1.402f * cr;
  *out_g = y - 0.344136f * cb - 0.714136f * cr;
  *out_b = y + 1.772f * cb;
}

float skin_weight(const uint8_t* p) {
  const float r = p[0], g = p[1], b = p[2];
  return skin_weight_of(cb_of(r, g, b), cr_of(r, g, b));
}

// One row of protect_skin_colour: `p` (C = 3 or 4 channels) takes the chroma of `o` (RGB) by the skin
// weight of `o` (1 for a black-and-white original). Pixels equal to the original keep their
// bytes. Blocks of 16 pixels: converted to float lanes, computed in straight-line code the
// compiler vectorises, then written back where they changed.
// Blocks of B pixels: gathered into planar float lanes, the colour arithmetic on whole lanes in
// straight-line code (vectorised; whether a pixel changes is a select), then written back.
// C = 3 or 4 (alpha untouched).
template <int C>
void protect_skin_row(uint8_t* p, const uint8_t* o, int width, bool mono) {
  constexpr int B = 32;
  float pr[B], pg[B], pb[B], orr[B], og[B], ob[B];
  int32_t nr[B], ng[B], nb[B];  // 32-bit lanes like the floats: one vector width for the loop
  for (int x0 = 0; x0 < width; x0 += B) {
    const int n = std::min(B, width - x0);
    for (int i = 0; i < B; ++i) {
      const int x = x0 + (i < n ? i : 0);  // the tail repeats the first pixel; never written
      pr[i] = p[size_t(x) * C], pg[i] = p[size_t(x) * C + 1], pb[i] = p[size_t(x) * C + 2];
      orr[i] = o[size_t(x) * 3], og[i] = o[size_t(x) * 3 + 1], ob[i] = o[size_t(x) * 3 + 2];
    }
    for (int i = 0; i < B; ++i) {
      const float cb_o = cb_of(orr[i], og[i], ob[i]), cr_o = cr_of(orr[i], og[i], ob[i]);
      const float k = mono ? 1.f : skin_weight_of(cb_o, cr_o);
      float r, g, b;
      moved_chroma(pr[i], pg[i], pb[i], cb_of(pr[i], pg[i], pb[i]), cr_of(pr[i], pg[i], pb[i]), cb_o, cr_o, k, &r, &g,
                   &b);
      // Untouched pixels already have the original's colour, and must keep its bytes.
      const int32_t write = !(pr[i] == orr[i] && pg[i] == og[i] && pb[i] == ob[i]) && k > 0.f;
      nr[i] = write ? saturate_round_u8(r) : int32_t(pr[i]);
      ng[i] = write ? saturate_round_u8(g) : int32_t(pg[i]);
      nb[i] = write ? saturate_round_u8(b) : int32_t(pb[i]);
    }
    for (int i = 0; i < n; ++i) {
      uint8_t* q = p + size_t(x0 + i) * C;
      q[0] = uint8_t(nr[i]), q[1] = uint8_t(ng[i]), q[2] = uint8_t(nb[i]);
    }
  }
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
  parallel_for(pool, r.height, 32, [&](int64_t y0, int64_t y1) {
    for (int y = r.y + int(y0); y < r.y + int(y1); ++y) {
      uint8_t* p = restored.row(y) + size_t(r.x) * size_t(C);
      const uint8_t* o = orig.row(y - oy) + size_t(r.x - ox) * 3;
      if (C == 3)
        protect_skin_row<3>(p, o, r.width, mono);
      else
        protect_skin_row<4>(p, o, r.width, mono);
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
