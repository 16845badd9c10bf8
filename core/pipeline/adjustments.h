// The pixel work behind the user controls (core/pipeline/controls.h); docs/CONTROLS.md defines
// each one. Two kinds:
//   - face controls (mode, strength, --detail) act on one face in its aligned S x S crop, between
//     GPEN and the paste-back: restoration_target() then paste-back's blend; skin protection acts on the photo right after
//     paste-back, on the pixels it changed, at the photo's full resolution: protect_skin_colour();
//   - photo filters act on the whole photo: denoise before detection (so the detector and GPEN
//     see the cleaner photo), sharpen then contrast/brightness after paste-back.
// Every filter at its neutral value (0) is skipped, so it is an exact identity.
#pragma once
#include <vector>

#include "core/image.h"
#include "core/image_ops.h"
#include "core/pipeline/controls.h"

namespace gpen {

class ThreadPool;

// Blend weight of the restored face for a strength 0..100: s/100 for natural and detail,
// 1 - (1 - s/100)^2 for strong (more of the restoration at every strength below 100).
double face_blend_weight(const Controls& c);

// What the strength blend starts from: GPEN's output `restored` as is (modes natural and strong),
// or with detail added and rounded to 8 bits (mode detail: its own detail layer boosted;
// --detail: the original crop's detail layer added). Both crops S x S RGB.
Image restoration_target(const Image& aligned, Image restored, const Controls& c);

// The face paste-back blends in, as paste_faces computes it: the target, smoothed by GPEN's 3x3
// kernel when `small_face` (GPEN does so for boxes under 100 px), then
// addWeighted(target, face_blend_weight, aligned). Mode natural, --detail off: exactly GPEN's.
Image compose_face(const Image& aligned, const Image& restored, const Controls& c, bool small_face);

// Soft skin mask (0..1, the image's size) of an RGB (or gray) image: pixels whose YCbCr chroma
// lies in the usual skin range (Cb 77..127, Cr 133..173; full weight up to 8 levels outside it,
// fading out until 24 levels outside). A monochrome image (mean |Cb-128| + |Cr-128| under 2
// levels: a black-and-white photo) is all "skin": there every colour GPEN adds would be invented.
FloatImage skin_mask(const Image& img);

// Skin protection, after paste-back: at every pixel of `area` that paste-back changed (it differs
// from `original`), the chroma (Cb, Cr) of `restored` (RGB or RGBA) moves to the original's by the
// original's skin weight k (skin_mask); its luma stays, unless that luma cannot carry the colour
// within 0..255 (then the nearest one that can). `original` is the photo as it was pasted into
// (1, 3 or 4 channels, same size); `area` bounds the pasted faces (anything larger is correct,
// only slower). The monochrome rule of skin_mask is judged over `area`.
void protect_skin_colour(Image& restored, const Image& original, const Rect& area, ThreadPool* pool = nullptr);
// The same with only the original's pixels under `area` kept: `original_area` is that rectangle
// of the original, in RGB (area.width x area.height); `area` must lie inside `restored`. Lets the
// pipeline paste into the photo in place, keeping a copy of the faces' area instead of the photo.
void protect_skin_colour_in(Image& restored, const Image& original_area, const Rect& area, ThreadPool* pool = nullptr);

// BT.601 full-range (JPEG) chroma of one pixel, as the skin mask and the tests measure it.
void rgb_to_cbcr(float r, float g, float b, float* cb, float* cr);

// Photo filters. RGB, RGBA (alpha untouched) and gray (one channel) photos.
bool has_photo_filters(const Controls& c);  // denoise, sharpen, contrast or brightness non-zero
Image denoise_photo(const Image& photo, double amount, ThreadPool* pool = nullptr);   // 0..100
Image sharpen_photo(const Image& photo, double amount, ThreadPool* pool = nullptr);   // 0..100
void adjust_tone(Image& photo, double contrast, double brightness);                   // -100..100
// Sharpen, then contrast/brightness: what runs after paste-back.
void apply_finishing_filters(Image& photo, const Controls& c, ThreadPool* pool = nullptr);

}  // namespace gpen
