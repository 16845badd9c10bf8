// Runs of per-sample vector ops, each run in one launch: GPEN computes every layer's style
// (a Linear of the latent) and every demodulation factor from the latent alone, in two runs of
// consecutive graph nodes (core/models/gpen.cpp, precompute_styles). One launch per run instead
// of ~45 tiny cuBLAS and kernel launches matters at batch 1, where each costs more than its
// work. Everything f32; the per-row tables live on the device and are built once per executable.
// Launchers return cudaGetLastError() after the launch; the caller checks it.
#pragma once
#include <cuda_runtime.h>

#include "kernels/cuda/types.cuh"

namespace gpen::cuda {

// Every output row r of every Linear in the run: y[n] at dst[r] + n * dst_stride[r] gets
// act(sum_k weight[r][k] * x[n][k] + bias[r]) * gain (act: slope for negatives, as DevEpilogue).
struct GroupedLinearRows {
  const float* weight = nullptr;      // [rows][in], the run's weights one after another
  const float* bias = nullptr;        // [rows] or null
  float* const* dst = nullptr;        // [rows]
  const int* dst_stride = nullptr;    // [rows]
  int rows = 0, in = 0;
  float slope = 1.f, gain = 1.f;
};
// x: [n][in] with rows x_stride apart.
cudaError_t launch_grouped_linear(const float* x, int n, int x_stride, const GroupedLinearRows& g,
                                  cudaStream_t stream);

// Every factor row r (layer l, output channel k) of every DemodFactors in the run:
// d at dst[r] + n * dst_stride[r] = 1 / sqrt(sum_c style[r][n * style_stride[r] + c]^2 * wsq[r][c] + eps).
struct GroupedDemodRows {
  const float* const* wsq = nullptr;    // [rows]: layer l's wsq row k (C[r] values)
  const float* const* style = nullptr;  // [rows]: layer l's style
  const int* C = nullptr;               // [rows]
  const int* style_stride = nullptr;    // [rows]
  float* const* dst = nullptr;          // [rows]
  const int* dst_stride = nullptr;      // [rows]
  int rows = 0;
  float eps = 0.f;
};
cudaError_t launch_grouped_demod(int n, const GroupedDemodRows& g, cudaStream_t stream);

}  // namespace gpen::cuda
