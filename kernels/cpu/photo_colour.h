// The colour arithmetic of skin-colour protection (core/pipeline/adjustments.h): BT.601
// full-range chroma, the skin weight, and moving a pixel's chroma with its luma kept. Shared by
// the scalar code in adjustments.cpp and the per-ISA row kernels (photo_rows_impl_internal.h).
//
// Written branch-free (ternaries, no libm) so that loops over float lanes vectorise. Every
// function is `static`: each translation unit keeps its own copy built with its own flags, and
// every copy gives the same bits because the kernel files are compiled with -ffp-contract=off
// (no fused multiply-adds the scalar build would not have).
#pragma once

namespace gpen::photo_colour {

static inline float cb_of(float r, float g, float b) { return 128.f - 0.168736f * r - 0.331264f * g + 0.5f * b; }
static inline float cr_of(float r, float g, float b) { return 128.f + 0.5f * r - 0.418688f * g - 0.081312f * b; }
static inline float max2(float a, float b) { return a < b ? b : a; }
static inline float min2(float a, float b) { return b < a ? b : a; }

// The skin mask's weight from a pixel's chroma: 1 within 8 chroma levels of the skin box
// (Cb 77..127, Cr 133..173), 0 beyond 24. d is the distance outside the box, in chroma levels
// (0 inside). Full weight up to 8 levels out (real faces straddle the box: shade, make-up,
// white balance), then fading out until 24.
static inline float skin_weight_of(float cb, float cr) {
  const float d = max2(max2(max2(77.f - cb, cb - 127.f), max2(133.f - cr, cr - 173.f)), 0.f);
  return min2(max2(1.f - (d - 8.f) / 16.f, 0.f), 1.f);
}

// Y of the restored pixel (r, g, b), its Cb/Cr (cb_f, cr_f) moved towards the original's
// (cb_o, cr_o) by w; the new R, G, B before rounding.
static inline void moved_chroma(float r, float g, float b, float cb_f, float cr_f, float cb_o, float cr_o, float w,
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

}  // namespace gpen::photo_colour
