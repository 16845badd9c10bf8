// Which values of a graph a GPU backend can hold as NHWC f16 ("f16 activation mode", the CUDA
// backend's GPEN_CUDA_NHWC16), decided on the graph alone so that it is tested without a GPU.
//
// In that mode the image-like values ([N, C, H, W]: whole buffers and their channel slices) live
// in the arena as NHWC f16 at their memory plan offsets (a slice is a strided view of its root:
// its first channel, the root's channel count as pixel stride), the per-sample vectors ([N, C]:
// styles, demodulation factors, the mapping network) stay f32, and a reshape of an image to
// vectors (GPEN's final_linear input) is flattened to f32 NCHW order for its Linear. A graph with
// any op or value outside that set runs in the f32 layout instead (`why` says what stopped it).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/graph.h"

namespace gpen {

enum class ActivationForm {
  F32,        // NCHW / NC f32, as the CPU backend holds it
  F16Nhwc,    // NHWC f16 view of its root buffer
  Flattened,  // a reshape of an F16Nhwc buffer to [N, C*H*W]: f32 in a side buffer
};

struct F16ActivationPlan {
  bool supported = false;
  std::string why;                   // the first obstacle, when not supported
  std::vector<ActivationForm> form;  // per value (when supported)
  // Demodulation moved into the FIR that follows (StyleGAN's transposed conv + blur): per node,
  // for a modulated Conv2d with nothing after its demodulation whose output (a whole buffer) only
  // an Upfirdn2d reads, that node's index, else -1. The convolution then writes cuDNN's raw
  // output straight into its value and the FIR multiplies by the demodulation factors first,
  // sparing a read and a write of the largest activations; exact in real arithmetic, as the
  // FIR is linear and acts on each channel alone.
  std::vector<int> demod_fir;
  // Per node: for a Conv2d whose result the next node, a ScaleBiasAct, rewrites in place (GPEN's
  // recomputed encoder feature, then scaled as noise), that node's index, else -1: the backend
  // may apply both in one pass and skip the second node.
  std::vector<int> fused_after;
  // Runs of per-sample vector ops a backend may compute in one launch each (GPEN: every style, then
  // every demodulation factor, right after its mapping network): consecutive Linears reading the
  // same f32 input with the same activation, or consecutive DemodFactors with the same eps. Per
  // node: for a run's first node, one past its last; for its other nodes -2; else -1. Computing
  // the whole run at its first node is safe because a run is cut where that would not be: no
  // node reads an earlier run node's output, and every value the run touches lives to its end,
  // so no output can share memory with a value that dies inside the run.
  std::vector<int> run_end;
};

F16ActivationPlan plan_f16_activations(const Graph& g);

// Where an F16Nhwc value sits in its root [N, Cr, H, W] buffer: channels [c0, c0 + C) of every
// pixel, pixels Cr elements apart, samples Cr*H*W apart.
struct NhwcPlacement {
  int64_t root = -1;  // the root value
  int c0 = 0, pixel_stride = 0;
  int64_t batch_stride = 0;
};
NhwcPlacement nhwc_placement(const Graph& g, int v);

}  // namespace gpen
