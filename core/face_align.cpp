#include "core/face_align.h"

#include <cmath>
#include <limits>

#include <Eigen/Dense>

#include "core/error.h"

namespace gpen {

Landmarks5 gpen_reference_points(int crop_size) {
  if (crop_size <= 0) fail("face crop size must be positive, got ", crop_size);
  // REFERENCE_FACIAL_POINTS of the 96x112 template (left eye, right eye, nose, mouth corners).
  static const double kTemplate[5][2] = {{30.29459953, 51.69630051},
                                         {65.53179932, 51.50139999},
                                         {48.02519989, 71.73660278},
                                         {33.54930115, 92.3655014},
                                         {62.72990036, 92.20410156}};
  // Same steps and order as get_reference_facial_points(default_square=True,
  // inner_padding_factor=0.25): square it (x += (112 - 96) / 2), pad (+= 112 * 0.25 * 2 / 2),
  // scale from the 168 px padded crop to crop_size.
  const double scale = double(float(crop_size)) / 168.0;
  Landmarks5 ref;
  for (int i = 0; i < 5; ++i) {
    ref[size_t(i)].x = ((kTemplate[i][0] + 8.0) + 28.0) * scale;
    ref[size_t(i)].y = ((kTemplate[i][1] + 0.0) + 28.0) * scale;
  }
  return ref;
}

namespace {

struct UmeyamaResult {
  Eigen::Matrix<double, 2, 3> matrix;
  double scale;
};

// skimage's _umeyama, line for line: cross-covariance A = dst_c^T src_c / n, SVD, reflection
// suppressed through d, scale = (S . d) / total src variance (or the given one).
UmeyamaResult umeyama(const Eigen::MatrixX2d& src, const Eigen::MatrixX2d& dst, bool estimate_scale, double scale) {
  const double n = double(src.rows());
  const Eigen::RowVector2d src_mean = src.colwise().mean(), dst_mean = dst.colwise().mean();
  const Eigen::MatrixX2d src_c = src.rowwise() - src_mean, dst_c = dst.rowwise() - dst_mean;
  const Eigen::Matrix2d A = dst_c.transpose() * src_c / n;

  Eigen::Vector2d d(1.0, 1.0);
  if (A.determinant() < 0) d(1) = -1;
  Eigen::JacobiSVD<Eigen::Matrix2d> svd(A, Eigen::ComputeFullU | Eigen::ComputeFullV);
  const Eigen::Matrix2d U = svd.matrixU(), Vt = svd.matrixV().transpose();
  const Eigen::Vector2d S = svd.singularValues();
  const double tol = S(0) * 2 * std::numeric_limits<double>::epsilon();  // numpy matrix_rank
  const int rank = int(S(0) > tol) + int(S(1) > tol);
  if (rank == 0) fail("similarity_transform: the points are all identical");

  Eigen::Matrix2d R;
  if (rank == 1 && U.determinant() * Vt.determinant() <= 0)
    R = U * Eigen::Vector2d(1.0, -1.0).asDiagonal() * Vt;
  else if (rank == 1)
    R = U * Vt;
  else
    R = U * d.asDiagonal() * Vt;

  if (estimate_scale) {
    const double variance = src_c.array().square().sum() / n;  // sum of per-axis variances
    scale = S.dot(d) / variance;
  }
  UmeyamaResult r;
  r.scale = scale;
  r.matrix.leftCols<2>() = scale * R;
  r.matrix.col(2) = dst_mean.transpose() - scale * (R * src_mean.transpose());
  return r;
}

Eigen::MatrixX2d to_matrix(const std::vector<Point2>& pts) {
  Eigen::MatrixX2d m(pts.size(), 2);
  for (size_t i = 0; i < pts.size(); ++i) {
    if (!std::isfinite(pts[i].x) || !std::isfinite(pts[i].y)) fail("similarity_transform: point ", i, " is not finite");
    m(Eigen::Index(i), 0) = pts[i].x;
    m(Eigen::Index(i), 1) = pts[i].y;
  }
  return m;
}

Affine to_affine(const Eigen::Matrix<double, 2, 3>& m) {
  return Affine{m(0, 0), m(0, 1), m(0, 2), m(1, 0), m(1, 1), m(1, 2)};
}

}  // namespace

SimilarityTransform similarity_transform(const std::vector<Point2>& src, const std::vector<Point2>& dst) {
  if (src.size() != dst.size())
    fail("similarity_transform: ", src.size(), " source points but ", dst.size(), " targets");
  if (src.size() < 2) fail("similarity_transform: need at least 2 points, got ", src.size());
  const Eigen::MatrixX2d s = to_matrix(src), d = to_matrix(dst);
  const UmeyamaResult fwd = umeyama(s, d, true, 1.0);
  if (!std::isfinite(fwd.scale) || fwd.scale <= 0)
    fail("similarity_transform: degenerate points (scale ", fwd.scale, ")");
  // GPEN: params, _ = _umeyama(ref_pts, src_pts, False, scale=1.0 / scale)
  const UmeyamaResult inv = umeyama(d, s, false, 1.0 / fwd.scale);
  return SimilarityTransform{to_affine(fwd.matrix), to_affine(inv.matrix), fwd.scale};
}

SimilarityTransform similarity_transform(const Landmarks5& src, const Landmarks5& dst) {
  return similarity_transform(std::vector<Point2>(src.begin(), src.end()), std::vector<Point2>(dst.begin(), dst.end()));
}

AlignedFace align_face(const Image& photo, const Landmarks5& landmarks, int size, WarpInterpolation interpolation,
                       ThreadPool* pool) {
  if (photo.empty()) fail("align_face: the photo is empty");
  const SimilarityTransform t = similarity_transform(landmarks, gpen_reference_points(size));
  AlignedFace face;
  face.forward = t.forward;
  face.inverse = t.inverse;
  face.crop = warp_affine(photo, t.forward, size, size, interpolation, pool);
  return face;
}

}  // namespace gpen
