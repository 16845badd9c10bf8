// One graph convolution as cuDNN runs it: descriptors, weights in cuDNN's filter layout, the
// algorithm chosen once per shape. Normal convolutions are cudnnConvolutionForward; transposed
// ones are cudnnConvolutionBackwardData of the forward convolution they are the adjoint of.
//
// Operands: the output goes to a packed scratch buffer (the backend's epilogue kernel then
// applies demodulation, bias and activation and writes the destination view), or in the f16
// activation mode, when nothing follows the convolution, straight into its arena value. The input is read
// straight from the arena view in f32 NCHW without modulation (or, in the f16 activation mode,
// from a packed NHWC f16 view); otherwise the backend first fills a packed scratch buffer with
// x * style in the operand's type and layout (needs_prepared_input).
//
// Precision: FP32 runs FMA-only kernels (no TF32), TF32 lets cuDNN use TF32 tensor cores, FP16
// runs f16 operands with f32 accumulation (cuDNN's pseudo-half configuration) in NHWC.
#pragma once
#include <memory>
#include <string>

#include "core/backend_cuda.h"
#include "core/cuda/resources.h"
#include "kernels/cpu/kernel_types.h"
#include "kernels/cuda/types.cuh"

namespace gpen::cuda {

struct ConvAlgo {
  int algo = -1;  // cudnnConvolutionFwdAlgo_t or cudnnConvolutionBwdDataAlgo_t
  size_t workspace = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  float ms = 0;  // what cudnnFind measured
  bool timed = true;  // false: cuDNN's heuristic choice (CompileOptions::quick_algorithms), never timed
  bool deterministic = true;
};

// The filter as cuDNN wants it (f32): [Kf][Cf/groups][kh][kw] (NCHW) or [Kf][kh][kw][Cf/groups]
// (NHWC), where a transposed convolution's forward filter has Kf = C and Cf = K.
std::vector<float> cudnn_filter_layout(const cpu::ConvDesc& d, const float* weight, ScratchLayout layout);

class CudnnConv {
 public:
  // n, h, w: the input's size; x_batch_stride: the input view's (used when not prepared).
  // x_packed_operand: the input view already is the operand (f16 activation mode: a packed NHWC
  // f16 arena value), so without modulation cuDNN reads it in place.
  CudnnConv(const cpu::ConvDesc& d, int n, int h, int w, int64_t x_batch_stride, bool has_in_scale,
            GpuPrecision precision, ScratchLayout layout, bool x_packed_operand = false);

  bool needs_prepared_input() const { return prepared_; }
  ScratchLayout layout() const { return layout_; }
  ScratchType type() const { return type_; }
  size_t input_scratch_bytes() const;   // 0 when not prepared
  size_t output_scratch_bytes() const;
  // Everything that decides the algorithm; the backend caches ConvAlgo under it.
  const std::string& key() const { return key_; }
  std::string kernel_name() const;  // for profiles: "cudnn_fwd_algo1_f16_nhwc" (+ "_nondet")

  // Times cuDNN's algorithms on real buffers (not inside a graph capture) and returns the fastest
  // that needs at most workspace_cap bytes and honours the precision; an Error if none does.
  ConvAlgo find(cudnnHandle_t h, const void* x, const void* weight, void* y, void* workspace,
                size_t workspace_cap) const;
  // cuDNN's heuristic choice (no timing, microseconds), under the same rules as find(): within
  // workspace_cap, honouring the precision, deterministic first. An Error if it has none.
  ConvAlgo heuristic(cudnnHandle_t h, size_t workspace_cap);
  // Whether cuDNN still takes `a` (e.g. from the algorithm cache file of an earlier process) for
  // this convolution within workspace_cap; then `a->workspace` is set to what it needs now.
  bool accepts(cudnnHandle_t h, ConvAlgo* a, size_t workspace_cap);
  void use(const ConvAlgo& a);
  const ConvAlgo& algo() const { return algo_; }
  void run(cudnnHandle_t h, const void* x, const void* weight, void* y, void* workspace) const;

 private:
  cpu::ConvDesc d_;
  GpuPrecision precision_;
  ScratchLayout layout_;
  ScratchType type_;
  bool prepared_;
  int n_, h_, w_, oh_, ow_;
  std::string key_;
  TensorDesc x_desc_, y_desc_;
  FilterDesc w_desc_;
  ConvDescriptor conv_desc_;
  ConvAlgo algo_;
};

}  // namespace gpen::cuda
