#include "core/paste_back.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/thread_pool.h"

namespace gpen {

// ------------------------------------------------------------------------------------------------
// Masks

FloatImage gpen_rectangle_mask_512() {
  FloatImage mask(512, 512, 1, 0.f);
  fill_rectangle(mask, 26, 26, 486, 486, 1.f);
  mask = gaussian_blur(mask, 101, 4.0);
  return gaussian_blur(mask, 101, 4.0);
}

FloatImage gpen_rectangle_mask(int size) {
  if (size <= 0) fail("face mask size must be positive, got ", size);
  FloatImage base = gpen_rectangle_mask_512();
  return size == 512 ? base : resize_bilinear(base, size, size);
}

FloatImage RectangleMask::face_mask(const Image& restored_crop) const {
  const int size = restored_crop.width;
  std::shared_ptr<const FloatImage> mask;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    auto it = by_size_.find(size);
    if (it != by_size_.end()) mask = it->second;
  }
  if (!mask) {  // built outside the lock; a racing duplicate build is harmless
    mask = std::make_shared<const FloatImage>(gpen_rectangle_mask(size));
    std::lock_guard<std::mutex> lock(mutex_);
    by_size_.emplace(size, mask);
  }
  return *mask;
}

// ------------------------------------------------------------------------------------------------
// Per-face preparation

namespace {

uint8_t saturate_round(float v) { return uint8_t(std::clamp(std::nearbyint(v), 0.f, 255.f)); }

}  // namespace

Image add_weighted(const Image& a, double alpha, const Image& b) {
  if (a.width != b.width || a.height != b.height || a.channels != b.channels)
    fail("add_weighted: images differ in shape (", a.width, "x", a.height, "x", a.channels, " vs ", b.width, "x",
         b.height, "x", b.channels, ")");
  // OpenCV takes alpha and beta = 1 - alpha as doubles and computes in float; its AVX2 path
  // fuses a * alpha + (b * beta) (v_muladd). a * alpha is exact in double, so this matches.
  const float alpha_f = float(alpha), beta_f = float(1.0 - alpha);
  Image out(a.width, a.height, a.channels);
  for (size_t i = 0; i < a.pixels.size(); ++i) {
    const float bb = float(b.pixels[i]) * beta_f;
    out.pixels[i] = saturate_round(float(double(a.pixels[i]) * double(alpha_f) + double(bb)));
  }
  return out;
}

namespace {

void check_face(const PasteFace& face, size_t index) {
  const Image& r = face.restored;
  const Image& a = face.aligned;
  if (r.channels != 3 || r.width <= 0 || r.width != r.height)
    fail("paste_faces: face ", index, ": restored crop must be square RGB, got ", r.width, "x", r.height, "x",
         r.channels);
  if (a.width != r.width || a.height != r.height || a.channels != 3)
    fail("paste_faces: face ", index, ": aligned crop is ", a.width, "x", a.height, "x", a.channels,
         ", restored crop is ", r.width, "x", r.height, "x3");
}

// GPEN: small faces get the 3x3 smoothing, then ef = addWeighted(ef, alpha, of, 1 - alpha).
Image prepare_face(const PasteFace& face, const PasteOptions& options) {
  const float box_w = face.box[2] - face.box[0], box_h = face.box[3] - face.box[1];
  Image restored = std::min(box_w, box_h) < options.small_face_size ? smooth_3x3(face.restored) : face.restored;
  return add_weighted(restored, options.strength, face.aligned);
}

// Keeps, per pixel of `area`, the face whose warped mask is larger (GPEN: where
// tmp_mask - full_mask > 0, take this face's mask and pixel).
void composite_face(const FloatImage& face_mask, const Image& face_pixels, const Rect& roi, const Rect& area,
                    FloatImage& full_mask, Image& full_img, ThreadPool* pool) {
  parallel_for(pool, roi.height, 64, [&](int64_t begin, int64_t end) {
    for (int r = int(begin); r < int(end); ++r) {
      const float* m = face_mask.row(r);
      const uint8_t* p = face_pixels.row(r);
      float* fm = full_mask.row(roi.y - area.y + r) + (roi.x - area.x);
      uint8_t* fp = full_img.row(roi.y - area.y + r) + size_t(roi.x - area.x) * 3;
      for (int i = 0; i < roi.width; ++i) {
        if (m[i] - fm[i] > 0) {
          fm[i] = m[i];
          std::memcpy(fp + size_t(i) * 3, p + size_t(i) * 3, 3);
        }
      }
    }
  });
}

// out = convertScaleAbs(img * (1 - m) + full_img * m), float32 like numpy; alpha channel untouched.
// Pixels with m <= 0 keep their bytes: img * 1 + f * 0 == img exactly, and GPEN's composite never
// takes a face pixel whose mask is not above 0.
void blend_into(Image& out, const FloatImage& full_mask, const Image& full_img, const Rect& area, ThreadPool* pool) {
  const int C = out.channels;
  parallel_for(pool, area.height, 64, [&](int64_t begin, int64_t end) {
    for (int r = int(begin); r < int(end); ++r) {
      const float* m = full_mask.row(r);
      const uint8_t* f = full_img.row(r);
      uint8_t* o = out.row(area.y + r) + size_t(area.x) * C;
      for (int i = 0; i < area.width; ++i) {
        const float w = m[i];
        if (!(w > 0.f)) continue;
        const float keep = 1.f - w;
        for (int c = 0; c < 3; ++c) {
          const float v = float(o[size_t(i) * C + c]) * keep + float(f[size_t(i) * 3 + c]) * w;
          o[size_t(i) * C + c] = saturate_round(std::fabs(v));
        }
      }
    }
  });
}

struct WarpedFace {
  FloatImage mask;  // the face's mask warped into `roi` of the photo
  Image pixels;     // the prepared face warped into `roi`
};

WarpedFace warp_face_into_photo(const PasteFace& face, size_t index, const Rect& roi, const FaceMaskSource& masks,
                                const PasteOptions& options) {
  const FloatImage mask = masks.face_mask(face.restored);
  if (mask.width != face.restored.width || mask.height != face.restored.height || mask.channels != 1)
    fail("paste_faces: face ", index, ": mask is ", mask.width, "x", mask.height, "x", mask.channels, ", expected ",
         face.restored.width, "x", face.restored.height, "x1");
  WarpedFace w;
  w.mask = warp_affine_roi(mask, face.inverse, roi, options.interpolation, options.pool);
  w.pixels = warp_affine_roi(prepare_face(face, options), face.inverse, roi, options.interpolation, options.pool);
  return w;
}

}  // namespace

void paste_faces_into(Image& photo, const std::vector<PasteFace>& faces, const PasteOptions& options) {
  if (photo.channels != 3 && photo.channels != 4)
    fail("paste_faces: photo must be RGB or RGBA, got ", photo.channels, " channels");
  static const RectangleMask default_mask;
  const FaceMaskSource& masks = options.mask ? *options.mask : default_mask;

  // Each face's footprint in the photo; the composite buffers cover only their union.
  std::vector<Rect> rois(faces.size());
  Rect area;
  size_t visible = 0;
  for (size_t i = 0; i < faces.size(); ++i) {
    check_face(faces[i], i);
    const int S = faces[i].restored.width;
    rois[i] = warp_affine_support(faces[i].inverse, S, S, photo.width, photo.height);
    area = unite(area, rois[i]);
    visible += !rois[i].empty();
  }
  // Strength 0 means "no restoration": GPEN would still paste the resampled original (a slight
  // blur); we leave the photo untouched instead.
  if (area.empty() || options.strength <= 0) return;

  if (visible == 1) {  // nothing to composite: blend the one face straight from its warp
    for (size_t i = 0; i < faces.size(); ++i)
      if (!rois[i].empty()) {
        const WarpedFace w = warp_face_into_photo(faces[i], i, rois[i], masks, options);
        blend_into(photo, w.mask, w.pixels, rois[i], options.pool);
      }
    return;
  }
  FloatImage full_mask(area.width, area.height, 1, 0.f);
  Image full_img(area.width, area.height, 3);
  for (size_t i = 0; i < faces.size(); ++i) {
    if (rois[i].empty()) continue;
    const WarpedFace w = warp_face_into_photo(faces[i], i, rois[i], masks, options);
    composite_face(w.mask, w.pixels, rois[i], area, full_mask, full_img, options.pool);
  }
  blend_into(photo, full_mask, full_img, area, options.pool);
}

Image paste_faces(const Image& photo, const std::vector<PasteFace>& faces, const PasteOptions& options) {
  Image out = photo;
  paste_faces_into(out, faces, options);
  return out;
}

}  // namespace gpen
