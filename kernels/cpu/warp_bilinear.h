// Vectorised rows of the bilinear affine warp (core/image_ops.cpp, OpenCV's fixed-point
// cv::warpAffine), for the two warps paste-back runs over a face's whole footprint: the RGB
// face (uint8, 3 channels) and its float mask (1 channel). With GPEN on a GPU this warp is the
// largest per-photo host cost left after decode (docs/BENCHMARKS.md, "Per-photo CPU stages").
//
// A row kernel handles groups of 8 destination pixels whose four taps all lie inside the source
// (AVX2 gathers; the same integer / float operations in the same order as the scalar code, so
// the same bytes) and groups wholly outside it (zeros, the border value), and lists the pixels it
// left for the caller's scalar code: the groups that straddle the border. Coordinates follow image_ops.cpp: X = (x0 + adelta[i]) >> 5 in 1/32 px,
// integer part X >> 5, fraction X & 31 (Y likewise); the caller guarantees that x0 + adelta[i]
// and y0 + bdelta[i] fit in int32, that src_elems < 2^31, and that the source has at least
// 2 x 2 pixels (else nothing is inside and every pixel is left to it).
#pragma once
#include <cstddef>
#include <cstdint>

namespace gpen::cpu {

struct BilinearRow {
  int src_width, src_height;
  size_t stride;        // source elements per row
  size_t src_elems;     // source buffer size in elements (no tap may read past it)
  int32_t x0, y0;       // the row's fixed-point start (OpenCV's X0, Y0 with the rounding delta)
  const int32_t* adelta;
  const int32_t* bdelta;
  int width;            // destination pixels in the row
};

// uint8 RGB: `weights` is the 32x32 x 4 table of int16 weights (sum 2^15), of which the kernel
// reads row 0 (OpenCV's rounding makes it irregular) and computes the others; dst gets width * 3
// bytes. Returns how many pixel indices it wrote to `left` (ascending) for the caller.
int warp_bilinear_u8c3_row_avx2(const uint8_t* src, const BilinearRow& r, const int16_t* weights, uint8_t* dst,
                                int32_t* left);
// float, 1 channel. The bilinear float weights are products of 1/32 steps, exact in float: the
// kernel computes them rather than gathering them; `weights` (the table) keeps the signature
// common to both kernels.
int warp_bilinear_f32c1_row_avx2(const float* src, const BilinearRow& r, const float* weights, float* dst,
                                 int32_t* left);

}  // namespace gpen::cpu
