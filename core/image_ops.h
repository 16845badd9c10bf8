// Pixel operations that reproduce the OpenCV / PyTorch calls of the GPEN reference pipeline:
// bilinear resize, affine warp (bilinear / bicubic), Gaussian blur, 3x3 filter, filled rectangle,
// and the small 2x3 affine-matrix helpers they need.
#pragma once
#include <array>
#include <cstdint>
#include <vector>

#include "core/image.h"

namespace gpen {

class ThreadPool;

// Interleaved float pixels (HWC, row-major); 1 channel for masks.
struct FloatImage {
  int width = 0, height = 0, channels = 1;
  std::vector<float> pixels;

  FloatImage() = default;
  FloatImage(int width, int height, int channels = 1, float fill = 0.f);

  bool empty() const { return pixels.empty(); }
  size_t row_size() const { return size_t(width) * size_t(channels); }
  float* row(int y) { return pixels.data() + size_t(y) * row_size(); }
  const float* row(int y) const { return pixels.data() + size_t(y) * row_size(); }
  float& at(int x, int y, int c = 0) { return row(y)[size_t(x) * size_t(channels) + size_t(c)]; }
  float at(int x, int y, int c = 0) const { return row(y)[size_t(x) * size_t(channels) + size_t(c)]; }
};

FloatImage to_float(const Image& img);  // same values, 0..255

struct Rect {
  int x = 0, y = 0, width = 0, height = 0;
  bool empty() const { return width <= 0 || height <= 0; }
  int right() const { return x + width; }    // exclusive
  int bottom() const { return y + height; }  // exclusive
};
Rect intersect(const Rect& a, const Rect& b);
Rect unite(const Rect& a, const Rect& b);  // bounding box; an empty rect is ignored
// A copy of the pixels of `r` (which must lie inside `img`).
Image crop_image(const Image& img, const Rect& r);

// 2x3 affine matrix, row-major [a b c; d e f]: (x, y) -> (a x + b y + c, d x + e y + f).
using Affine = std::array<double, 6>;
Affine invert_affine(const Affine& m);  // throws gpen::Error when singular
void apply_affine(const Affine& m, double x, double y, double& out_x, double& out_y);

// --- resize ---------------------------------------------------------------------------------------
// Bilinear with half-pixel centres and no antialiasing: src = (dst + 0.5) * in/out - 0.5, clamped
// to the image (cv2.resize INTER_LINEAR geometry, F.interpolate(bilinear, align_corners=False)).
// Computed in float exactly like PyTorch's CPU kernel (float scale, per-axis weights, x then y).
// The uint8 version rounds half to even (torch.round, cv2's cvRound) and clips to 0..255; it is
// *not* OpenCV's 11-bit fixed-point uint8 resize.
FloatImage resize_bilinear(const FloatImage& src, int width, int height);
Image resize_bilinear(const Image& src, int width, int height);

// --- affine warp ----------------------------------------------------------------------------------
// cv2.warpAffine(src, M, (dst_width, dst_height), flags, borderMode=BORDER_CONSTANT, borderValue=0),
// reproduced to the bit (checked against OpenCV 4.6 for uint8 and float, 1..4 channels):
// M maps source -> destination and is inverted as OpenCV does; each pixel's source position is
// quantised to 1/32 px with OpenCV's fixed-point arithmetic; weights come from OpenCV's 32 x 32
// tables (15-bit integers for uint8, rounded and saturated; float for FloatImage); source pixels
// outside the image count as 0.
//
// GPEN calls warpAffine with flags=3, which is INTER_AREA, and warpAffine silently turns
// INTER_AREA into INTER_LINEAR: GPEN's alignment and paste-back are bilinear. Linear is therefore
// what reproduces GPEN; Cubic (INTER_CUBIC, a = -0.75) is there for callers that want it.
// OpenCV >= 4.11 replaced the INTER_LINEAR kernels with float-coordinate ones, which differ from
// this (and from OpenCV <= 4.10) by about one grey level here and there.
enum class WarpInterpolation { Linear, Cubic };

Image warp_affine(const Image& src, const Affine& M, int dst_width, int dst_height,
                  WarpInterpolation interpolation = WarpInterpolation::Linear, ThreadPool* pool = nullptr);
FloatImage warp_affine(const FloatImage& src, const Affine& M, int dst_width, int dst_height,
                       WarpInterpolation interpolation = WarpInterpolation::Linear, ThreadPool* pool = nullptr);

// Only the `roi` part (destination coordinates) of that same output: a roi.width x roi.height
// result whose pixel (i, j) equals full-output pixel (roi.x + i, roi.y + j). The roi may extend
// past the destination; pixels there are computed all the same.
Image warp_affine_roi(const Image& src, const Affine& M, const Rect& roi,
                      WarpInterpolation interpolation = WarpInterpolation::Linear, ThreadPool* pool = nullptr);
FloatImage warp_affine_roi(const FloatImage& src, const Affine& M, const Rect& roi,
                           WarpInterpolation interpolation = WarpInterpolation::Linear, ThreadPool* pool = nullptr);

// warp_affine_roi in bands: the per-column terms are computed once for the region, then any rows
// [row_begin, row_end) of it are written to `out` (row row_begin first, roi.width * channels
// values per row), identical to those rows of warp_affine_roi. For passes that warp and consume
// a large region a few rows at a time, in cache, without a region-sized buffer (paste-back).
class AffineWarper {
 public:
  AffineWarper(const Affine& M, const Rect& roi, WarpInterpolation interpolation = WarpInterpolation::Linear);
  void rows(const Image& src, int row_begin, int row_end, uint8_t* out) const;
  void rows(const FloatImage& src, int row_begin, int row_end, float* out) const;

  const Affine& inverse() const { return inv_; }  // destination -> source, inverted as OpenCV does
  const Rect& roi() const { return roi_; }
  WarpInterpolation interpolation() const { return interpolation_; }
  const std::vector<int64_t>& adelta() const { return adelta_; }  // OpenCV's fixed-point column terms
  const std::vector<int64_t>& bdelta() const { return bdelta_; }
  // The same in int32 for the vector warp kernels; empty when some term is 2^30 or more.
  bool has_int32_deltas() const { return !adelta32_.empty() || roi_.width == 0; }
  const int32_t* adelta32() const { return adelta32_.data(); }
  const int32_t* bdelta32() const { return bdelta32_.data(); }

 private:
  void check_band(int row_begin, int row_end) const;
  Affine inv_;
  Rect roi_;
  WarpInterpolation interpolation_;
  std::vector<int64_t> adelta_, bdelta_;
  std::vector<int32_t> adelta32_, bdelta32_;
};

// A rectangle of the dst_width x dst_height destination outside which warp_affine's output is
// exactly 0, for either interpolation (the warped source plus the bicubic footprint and a
// quantisation margin).
Rect warp_affine_support(const Affine& M, int src_width, int src_height, int dst_width, int dst_height);

// --- filters --------------------------------------------------------------------------------------
// cv2.GaussianBlur(src, (ksize, ksize), sigma) on float planes: separable, border
// BORDER_REFLECT_101, OpenCV 4.x's kernel (getGaussianKernel; sigma <= 0 gives
// 0.3 * ((ksize - 1) * 0.5 - 1) + 0.8, or a fixed table for ksize <= 9), and the summation order
// and fused multiply-adds of its AVX2 kernels: bit-identical to OpenCV 4.6 on an AVX2 machine for
// ksize >= 7 (OpenCV's separate small-kernel code for ksize <= 5 can differ in the last bit).
std::vector<float> gaussian_kernel(int ksize, double sigma);
FloatImage gaussian_blur(const FloatImage& src, int ksize, double sigma);

// cv2.filter2D(src, -1, kernel) on uint8 for a 3x3 kernel of integers / divisor (GPEN's
// [[1,2,1],[2,4,2],[1,2,1]] / 16). Border BORDER_REFLECT_101. Exact integer sums, then
// round-half-even like OpenCV's float path (exact there too, as the weights are powers of two).
Image filter2d_3x3(const Image& src, const std::array<int, 9>& kernel, int divisor);
Image smooth_3x3(const Image& src);  // the GPEN small-face kernel above

// cv2.rectangle(plane, (x0, y0), (x1, y1), value, thickness=-1, LINE_AA) for integer corners:
// fills x0..x1, y0..y1 inclusive (clipped). With integer corners OpenCV's anti-aliased edge adds
// nothing outside the rectangle and leaves the border at full value (checked against OpenCV 4.6),
// so no partial coverage is drawn.
void fill_rectangle(FloatImage& plane, int x0, int y0, int x1, int y1, float value);

// --- downscale ------------------------------------------------------------------------------------
// Area-average downscale (cv2.INTER_AREA for shrinking): each output pixel is the mean of the
// source area it covers, fractional at the edges, so large reductions do not alias. Any channel
// count; width <= src.width and height <= src.height (otherwise use resize_bilinear).
Image downscale_area(const Image& src, int width, int height, ThreadPool* pool = nullptr);

// `src` (any channel count, made RGB) scaled to fit width x height (area for shrinking, bilinear
// for growing) and centred on seeded uniform noise (68..187): every face of the source stays
// whole. The test photos of `gpen bench --report` and the detector tests. Not on flat grey:
// RetinaFace-MobileNet0.25 reports faces with scores > 0.9 in large flat areas (the PyTorch
// reference does the same).
Image fit_on_noise(const Image& src, int width, int height);

}  // namespace gpen
