// 5-point face alignment as GPEN does it (align_faces.py, warp_and_crop_face): a least-squares
// similarity (Umeyama, no reflection) from the detected landmarks to GPEN's reference points,
// then cv2.warpAffine(flags=3) into an S x S crop -- bilinear, see warp_affine in image_ops.h.
#pragma once
#include <array>
#include <vector>

#include "core/image.h"
#include "core/image_ops.h"

namespace gpen {

class ThreadPool;

struct Point2 {
  double x = 0, y = 0;
};

// Order: left eye, right eye, nose tip, left mouth corner, right mouth corner (image coordinates,
// "left" as seen in the picture).
using Landmarks5 = std::array<Point2, 5>;

// GPEN's reference points for an S x S crop: the 96x112 template REFERENCE_FACIAL_POINTS made
// square (x += 8), padded by inner_padding_factor 0.25 (+28, crop 168), scaled by S / 168.
Landmarks5 gpen_reference_points(int crop_size);

struct SimilarityTransform {
  Affine forward;  // src -> dst
  Affine inverse;  // dst -> src
  double scale = 1;
};

// Umeyama (1991) least-squares similarity src -> dst without reflection, as skimage's _umeyama
// that GPEN copies. Computed in double; GPEN feeds it np.float32 points, so its matrices differ in
// the 7th digit and its crops by at most a grey level or two at a few hundred pixels (with the
// same matrix the crop is byte-identical). The inverse is what GPEN computes too: Umeyama
// dst -> src with the scale fixed to 1 / scale (equal to the matrix inverse up to rounding).
// Needs >= 2 distinct points; throws gpen::Error for degenerate input (all points equal, sizes
// differ, non-finite values).
SimilarityTransform similarity_transform(const std::vector<Point2>& src, const std::vector<Point2>& dst);
SimilarityTransform similarity_transform(const Landmarks5& src, const Landmarks5& dst);

struct AlignedFace {
  Image crop;      // size x size, same channels as the photo (RGB in the pipeline)
  Affine forward;  // photo -> crop
  Affine inverse;  // crop -> photo (for paste-back)
};

// warp_and_crop_face: similarity from `landmarks` to gpen_reference_points(size), then
// warp_affine (black border) of the photo into the crop. Linear is what GPEN does.
AlignedFace align_face(const Image& photo, const Landmarks5& landmarks, int size,
                       WarpInterpolation interpolation = WarpInterpolation::Linear, ThreadPool* pool = nullptr);

}  // namespace gpen
