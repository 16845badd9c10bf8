// GPEN's paste-back (face_enhancement.py, FaceEnhancement.process): each restored crop is mixed
// with its aligned original by `strength`, warped back into the photo with the inverse alignment
// (cv2.warpAffine flags=3, i.e. bilinear), and blended through a soft mask; where faces overlap,
// the face whose warped mask is larger wins, pixel by pixel. Only each face's warped footprint is
// touched, so the cost depends on the face sizes, not the photo size; pixels outside every mask
// keep their bytes. With GPEN's double-precision alignment matrices the result is byte-identical
// to GPEN's numpy/OpenCV 4.6 code (checked on the shared Solvay photo, 24 faces, S = 256/512/1024).
#pragma once
#include <array>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "core/image.h"
#include "core/image_ops.h"

namespace gpen {

class ThreadPool;

// Where each face's blend mask comes from. GPEN's default is a fixed soft rectangle; its
// face-parsing variant (ParseNet) derives the mask from the restored face. Implementations must
// be safe to call from several threads.
class FaceMaskSource {
 public:
  virtual ~FaceMaskSource() = default;
  // A mask in [0, 1] of the restored crop's size (S x S, 1 channel).
  virtual FloatImage face_mask(const Image& restored_crop) const = 0;
};

// GPEN's rectangle mask, built once per crop size and cached.
class RectangleMask : public FaceMaskSource {
 public:
  FloatImage face_mask(const Image& restored_crop) const override;

 private:
  mutable std::mutex mutex_;
  mutable std::map<int, std::shared_ptr<const FloatImage>> by_size_;
};

// The 512 x 512 plane: filled rectangle (26,26)-(486,486) = 1 (cv2.rectangle, LINE_AA), then
// cv2.GaussianBlur((101, 101), 4) twice; bit-identical to OpenCV 4.6's.
FloatImage gpen_rectangle_mask_512();
// That plane resized to size x size with resize_bilinear (GPEN uses cv2.resize, whose float
// arithmetic can differ in the last bits; 512 is returned as is).
FloatImage gpen_rectangle_mask(int size);

// cv2.addWeighted(a, alpha, b, 1 - alpha, 0) on uint8: float arithmetic, round half to even,
// saturated. Images must have the same shape.
Image add_weighted(const Image& a, double alpha, const Image& b);

struct PasteFace {
  Image restored;                // S x S RGB output of the face model
  Image aligned;                 // S x S RGB crop that was fed to it (AlignedFace::crop)
  Affine inverse;                // crop -> photo (AlignedFace::inverse)
  std::array<float, 4> box{};    // detection box x0, y0, x1, y1 in photo pixels
};

struct PasteOptions {
  double strength = 1.0;          // GPEN's alpha: restored * alpha + original * (1 - alpha)
  float small_face_size = 100.f;  // faces with min(box w, h) below this get the 3x3 smoothing
  const FaceMaskSource* mask = nullptr;  // null: GPEN's rectangle mask
  // GPEN's cv2.warpAffine(flags=3) is bilinear (INTER_AREA becomes INTER_LINEAR there).
  WarpInterpolation interpolation = WarpInterpolation::Linear;
  ThreadPool* pool = nullptr;
};

// Pastes the faces, in order, into a copy of `photo` (RGB, or RGBA whose alpha is left as is).
// out = round(photo * (1 - m) + faces * m) per pixel, with m the composite mask; pixels where
// m == 0 are byte-identical to the input. Strength <= 0 returns the photo unchanged (GPEN would
// paste back the re-sampled original crops).
Image paste_faces(const Image& photo, const std::vector<PasteFace>& faces, const PasteOptions& options = {});
// The same, in place: saves copying a large photo when the caller no longer needs the original.
void paste_faces_into(Image& photo, const std::vector<PasteFace>& faces, const PasteOptions& options = {});

}  // namespace gpen
