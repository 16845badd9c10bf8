#include "core/paste_back.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/error.h"
#include "core/rounding.h"
#include "core/thread_pool.h"
#include "kernels/cpu/photo_rows.h"

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

Image add_weighted(const Image& a, double alpha, const Image& b) {
  if (a.width != b.width || a.height != b.height || a.channels != b.channels)
    fail("add_weighted: images differ in shape (", a.width, "x", a.height, "x", a.channels, " vs ", b.width, "x",
         b.height, "x", b.channels, ")");
  // OpenCV takes alpha and beta = 1 - alpha as doubles and computes in float; its AVX2 path
  // fuses a * alpha + (b * beta) (v_muladd). a * alpha is exact in double, so this matches.
  Image out(a.width, a.height, a.channels);
  cpu::photo_row_kernels().add_weighted(a.pixels.data(), b.pixels.data(), float(alpha), float(1.0 - alpha),
                                        out.pixels.data(), a.pixels.size());
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
  if (std::min(box_w, box_h) < options.small_face_size)
    return add_weighted(smooth_3x3(face.restored), options.strength, face.aligned);
  return add_weighted(face.restored, options.strength, face.aligned);  // no copy of the crop
}

// out = convertScaleAbs(img * (1 - m) + face * m), float32 like numpy, for one row of `width`
// pixels (out: C channels, face: RGB); alpha untouched; pixels with m <= 0 keep their bytes.
// The per-ISA row kernels (kernels/cpu/photo_rows.h).
void blend_row(uint8_t* out, int C, const float* m, const uint8_t* face, int width) {
  const cpu::PhotoRowKernels& rows = cpu::photo_row_kernels();
  (C == 3 ? rows.blend_rgb : rows.blend_rgba)(out, m, face, width);
}

// One face ready to warp: its mask, its pixels after GPEN's smoothing and strength blend, and
// the warp of both onto its footprint in the photo.
struct FaceToPaste {
  FloatImage mask;
  Image pixels;
  std::unique_ptr<AffineWarper> warp;
  const Rect& roi() const { return warp->roi(); }
};

FaceToPaste prepare_to_paste(const PasteFace& face, size_t index, const Rect& roi, const FaceMaskSource& masks,
                             const PasteOptions& options) {
  FaceToPaste f;
  f.mask = masks.face_mask(face.restored);
  if (f.mask.width != face.restored.width || f.mask.height != face.restored.height || f.mask.channels != 1)
    fail("paste_faces: face ", index, ": mask is ", f.mask.width, "x", f.mask.height, "x", f.mask.channels,
         ", expected ", face.restored.width, "x", face.restored.height, "x1");
  f.pixels = prepare_face(face, options);
  f.warp = std::make_unique<AffineWarper>(face.inverse, roi, options.interpolation);
  return f;
}

// Rows [y0, y1) of the photo: each face's warped rows there, composited (per pixel the face
// whose warped mask is larger: GPEN's tmp_mask - full_mask > 0), then blended into the photo.
// One face needs no composite: its rows are blended straight from the warp.
struct BandScratch {
  std::vector<float> mask, face_mask;
  std::vector<uint8_t> img, face_img;
};

void paste_band(Image& photo, const std::vector<FaceToPaste>& faces, const Rect& area, int y0, int y1,
                BandScratch& s) {
  const int C = photo.channels;
  if (faces.size() == 1) {
    const FaceToPaste& f = faces[0];
    const int r0 = std::max(y0, f.roi().y), r1 = std::min(y1, f.roi().bottom()), w = f.roi().width;
    if (r0 >= r1) return;
    s.face_mask.resize(size_t(w) * (r1 - r0));
    s.face_img.resize(size_t(w) * (r1 - r0) * 3);
    f.warp->rows(f.mask, r0 - f.roi().y, r1 - f.roi().y, s.face_mask.data());
    f.warp->rows(f.pixels, r0 - f.roi().y, r1 - f.roi().y, s.face_img.data());
    for (int r = r0; r < r1; ++r)
      blend_row(photo.row(r) + size_t(f.roi().x) * C, C, s.face_mask.data() + size_t(r - r0) * w,
                s.face_img.data() + size_t(r - r0) * w * 3, w);
    return;
  }
  const int W = area.width, rows = y1 - y0;
  s.mask.assign(size_t(W) * rows, 0.f);
  s.img.resize(size_t(W) * rows * 3);
  for (const FaceToPaste& f : faces) {
    const int r0 = std::max(y0, f.roi().y), r1 = std::min(y1, f.roi().bottom());
    if (r0 >= r1) continue;
    const int w = f.roi().width;
    s.face_mask.resize(size_t(w) * (r1 - r0));
    s.face_img.resize(size_t(w) * (r1 - r0) * 3);
    f.warp->rows(f.mask, r0 - f.roi().y, r1 - f.roi().y, s.face_mask.data());
    f.warp->rows(f.pixels, r0 - f.roi().y, r1 - f.roi().y, s.face_img.data());
    for (int r = r0; r < r1; ++r) {
      const float* m = s.face_mask.data() + size_t(r - r0) * w;
      const uint8_t* p = s.face_img.data() + size_t(r - r0) * w * 3;
      float* fm = s.mask.data() + size_t(r - y0) * W + (f.roi().x - area.x);
      uint8_t* fp = s.img.data() + (size_t(r - y0) * W + size_t(f.roi().x - area.x)) * 3;
      for (int i = 0; i < w; ++i)
        if (m[i] - fm[i] > 0) {
          fm[i] = m[i];
          std::memcpy(fp + size_t(i) * 3, p + size_t(i) * 3, 3);
        }
    }
  }
  for (int r = 0; r < rows; ++r)
    blend_row(photo.row(y0 + r) + size_t(area.x) * C, C, s.mask.data() + size_t(r) * W,
              s.img.data() + size_t(r) * W * 3, W);
}

}  // namespace

void paste_faces_into(Image& photo, const std::vector<PasteFace>& faces, const PasteOptions& options) {
  if (photo.channels != 3 && photo.channels != 4)
    fail("paste_faces: photo must be RGB or RGBA, got ", photo.channels, " channels");
  static const RectangleMask default_mask;
  const FaceMaskSource& masks = options.mask ? *options.mask : default_mask;

  // Each face's footprint in the photo; the work covers only their union.
  std::vector<Rect> rois(faces.size());
  Rect area;
  for (size_t i = 0; i < faces.size(); ++i) {
    check_face(faces[i], i);
    const int S = faces[i].restored.width;
    rois[i] = warp_affine_support(faces[i].inverse, S, S, photo.width, photo.height);
    area = unite(area, rois[i]);
  }
  // Strength 0 means "no restoration": GPEN would still paste the resampled original (a slight
  // blur); we leave the photo untouched instead.
  if (area.empty() || options.strength <= 0) return;

  std::vector<FaceToPaste> visible;
  for (size_t i = 0; i < faces.size(); ++i)
    if (!rois[i].empty()) visible.push_back(prepare_to_paste(faces[i], i, rois[i], masks, options));
  // Bands of rows, warped and blended in cache: no buffer the size of a face's footprint.
  constexpr int kBandRows = 32;
  const int64_t bands = (area.height + kBandRows - 1) / kBandRows;
  parallel_for(options.pool, bands, 1, [&](int64_t b0, int64_t b1) {
    BandScratch scratch;
    for (int64_t b = b0; b < b1; ++b) {
      const int y0 = area.y + int(b) * kBandRows;
      paste_band(photo, visible, area, y0, std::min(y0 + kBandRows, area.bottom()), scratch);
    }
  });
}

Image paste_faces(const Image& photo, const std::vector<PasteFace>& faces, const PasteOptions& options) {
  Image out = photo;
  paste_faces_into(out, faces, options);
  return out;
}

}  // namespace gpen
