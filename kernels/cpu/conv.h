// Convolution kernels behind one interface. A kernel is made once per layer at load time: it
// prepacks the weights into the layout it wants (blocked channels, Winograd-transformed, bf16...)
// and is then run many times. make_conv_kernel() asks each ISA's factory, best first, and falls
// back to the generic reference, so every layer always has a kernel.
#pragma once
#include <memory>
#include <string>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/kernel_types.h"

namespace gpen::cpu {

struct ConvRun {
  View x;                             // input  N x C x H x W
  View y;                             // output N x K x OH x OW (may be a channel slice)
  const float* in_scale = nullptr;    // [N][C] or null (modulation)
  const float* out_scale = nullptr;   // [N][K] or null (demodulation)
  Epilogue ep;
  ThreadPool* pool = nullptr;
  // Working memory of at least scratch_bytes(x.n, x.h, x.w), 64-byte aligned, or null: then the
  // kernel uses a per-thread buffer of its own (which stays allocated between runs).
  void* scratch = nullptr;
};

class ConvKernel {
 public:
  virtual ~ConvKernel() = default;
  // e.g. "f32_conv3x3_winograd_f43__avx512" -- says dtype, op, algorithm/tile and ISA.
  virtual std::string name() const = 0;
  virtual void run(const ConvRun& r) const = 0;
  // Bytes of ConvRun::scratch this kernel wants for an N x C x H x W input (0: none).
  virtual size_t scratch_bytes(int n, int h, int w) const { return 0; }
};

struct KernelOptions {
  Isa isa = Isa::Generic;               // the highest ISA a kernel may use
  Precision precision = Precision::F32;
  // Input map size when the caller knows it (0: unknown). A graph's shapes are static, so the
  // dispatcher can skip building algorithms that would never run for this layer: Winograd on maps
  // too small for a vector of tiles, or the direct fallback of a Winograd layer on large maps.
  // Both copies of prepacked weights would otherwise stay in memory.
  int map_h = 0, map_w = 0;
  // Winograd's transformed weights (36/9 = 4x the 3x3 weights): transformed once at load, or kept
  // as 3x3 weights and transformed in every run. Auto: in every run where they would outweigh the
  // layer's output map by more than 2x (needs map_h/map_w) -- in GPEN-512 the wide layers on
  // 16..64 px maps, 226 MB of transformed weights -- else at load.
  WinogradWeights winograd_weights = WinogradWeights::Auto;
  // Lean memory: every Winograd layer transforms its weights per run (Auto does so only where they
  // outweigh the output): least memory, a few % slower on large maps.
  bool lean_memory = false;
  // Winograd where it applies (3x3 stride 1, and GPEN's transposed 3x3 stride 2); false: the
  // direct kernels only (tests of the direct paths on shapes Winograd would take).
  bool winograd = true;
};

// weight: f32 [K][C/groups][kh][kw] (copied/prepacked; the caller may free it afterwards).
std::unique_ptr<ConvKernel> make_conv_kernel(const ConvDesc& d, const Tensor& weight, const KernelOptions& opt);

// A depthwise conv (dw, with its epilogue dw_ep; groups == C == K) and the 1x1 conv (pw) that alone
// reads its output, as one kernel working row by row, so the depthwise map stays in cache
// (MobileNet's conv_dw blocks on large photos). Its ConvRun: x the depthwise input, y the
// pointwise output, ep the pointwise epilogue; no modulation scales. Null when the ISA or the
// shapes do not allow it, or where it is not faster (stride 2, over 32 channels: see conv.cpp);
// the two convs then run as they are. The reference is the two
// convolutions one after the other.
std::unique_ptr<ConvKernel> make_conv_dw_pw(const ConvDesc& dw, const Tensor& dw_weight, const Epilogue& dw_ep,
                                            const ConvDesc& pw, const Tensor& pw_weight, const KernelOptions& opt);

// The generic reference wrapped as a ConvKernel (always available).
std::unique_ptr<ConvKernel> make_conv_generic(const ConvDesc& d, const Tensor& weight);

}  // namespace gpen::cpu
