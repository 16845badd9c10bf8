// Static computation graph. A model builds it once per (batch size, input size) from its weights;
// a backend compiles it (picks kernels, prepacks or uploads weights, allocates the memory plan's
// arena) and then runs it many times.
//
// Values are f32 tensors (NCHW for images, NC for vectors). A value is either a buffer of its own
// or a view of another: a channel slice (how concat is done in place: two producers write the two
// halves of one buffer) or a reshape. Nodes are stored in execution order; the builder only lets
// a node read values that already exist, so that order is a valid schedule.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/cpu/kernel_types.h"

namespace gpen {

// One op enum with a name table (op_name); each backend implements every op.
enum class OpType {
  Broadcast,        // out[n] = param[0] for every sample n (StyleGAN's constant input)
  Linear,           // out[n][o] = epi(sum_i x[n][i] w[o][i])
  PixelNorm,        // x * rsqrt(mean_c x^2 + eps)
  Conv2d,           // ConvDesc; inputs x[, in_scale[N][C], out_scale[N][K]]; then epilogue
  Upfirdn2d,        // FIR filter with zero-insertion upsampling / decimation; then epilogue
  ScaleBiasAct,     // epi(x * scalar)
  Add,              // a + b
  DemodFactors,     // d[n][k] = rsqrt(sum_c s[n][c]^2 wsq[k][c] + eps)
  UpsampleNearest,  // nearest-neighbour resize to the output's H x W
  MaxPool2d,        // max over conv.kh x conv.kw windows (conv.stride, conv.pad; padding never wins)
  ReflectPad2d,     // pad0 on every side, mirrored without repeating the edge (torch ReflectionPad2d)
  PixelUnshuffle,   // [N,C,H*r,W*r] -> [N,C*r*r,H,W], channel c*r*r + dy*r + dx (r = down)
  Count
};
const char* op_name(OpType op);

struct EpilogueSpec {
  Tensor bias;  // [K] f32 or undefined
  float slope = 1.f, gain = 1.f;
  static EpilogueSpec fused_lrelu(const Tensor& bias);  // StyleGAN: lrelu(x + b, 0.2) * sqrt(2)
  static EpilogueSpec with_bias(const Tensor& bias);
};

struct Value {
  Shape shape;
  std::string name;
  int root = -1;               // the value owning the buffer (itself when not a view)
  int64_t offset = 0;          // element offset of this view inside the root buffer
  int64_t batch_stride = 0;    // elements between consecutive samples
  bool is_input = false, is_output = false;
};

struct Node {
  OpType op = OpType::Count;
  std::string name;
  std::vector<int> inputs;
  int output = -1;
  // attributes (used per op; see OpType)
  cpu::ConvDesc conv;
  EpilogueSpec epi;
  Tensor weight;  // Conv2d [K][C/g][kh][kw]; Linear [out][in]; Upfirdn2d kernel [kh][kw]; DemodFactors wsq [K][C]; Broadcast param
  int up = 1, down = 1, pad0 = 0, pad1 = 0;
  float scalar = 1.f, eps = 0.f;
};

struct MemoryPlan {
  std::vector<int64_t> offset;  // per value: element offset of its root buffer in the arena (-1 unused)
  std::vector<int64_t> scratch_offset;  // per node: its scratch region (-1: none asked for)
  int64_t arena_elems = 0;       // peak: everything the graph needs at once, known before running
  int64_t naive_elems = 0;       // what one buffer per value would take, for comparison
};

class Graph {
 public:
  // --- building ---
  int input(const std::string& name, Shape shape);
  void mark_output(int v);
  int buffer(const std::string& name, Shape shape);                 // written by several views
  int channel_slice(int v, int64_t c0, int64_t c1, const std::string& name = "");
  int reshape(int v, Shape shape);                                  // v must be a whole buffer

  int broadcast(const std::string& name, const Tensor& param, int64_t batch);
  int linear(const std::string& name, int x, const Tensor& w, EpilogueSpec epi);
  int pixel_norm(const std::string& name, int x, float eps);
  // `out` (optional) is an existing view to write into, e.g. a slice of a concat buffer.
  int conv2d(const std::string& name, int x, const cpu::ConvDesc& d, const Tensor& w, EpilogueSpec epi,
             int in_scale = -1, int out_scale = -1, int out = -1);
  int upfirdn2d(const std::string& name, int x, const Tensor& kernel, int up, int down, int pad0, int pad1,
                EpilogueSpec epi, int out = -1);
  int scale_bias_act(const std::string& name, int x, float scale, EpilogueSpec epi, int out = -1);
  int add(const std::string& name, int a, int b, int out = -1);
  int demod_factors(const std::string& name, int style, const Tensor& wsq, float eps);
  int upsample_nearest(const std::string& name, int x, int64_t h, int64_t w);
  int max_pool2d(const std::string& name, int x, int kernel, int stride, int pad);
  int reflect_pad2d(const std::string& name, int x, int pad);
  int pixel_unshuffle(const std::string& name, int x, int factor);

  // --- reading ---
  const std::vector<Value>& values() const { return values_; }
  const std::vector<Node>& nodes() const { return nodes_; }
  const Value& value(int v) const { return values_.at(size_t(v)); }
  std::vector<int> inputs() const;
  // The value a node named `name` writes (its output), or -1.
  int find(const std::string& name) const;
  std::vector<int> outputs() const;
  int64_t flops() const;  // multiply-adds x 2 of convs and linears
  // The same graph with every node's weight replaced by a shape-only tensor: what an executable
  // keeps once its kernels hold (or have packed) their own weights.
  Graph without_weights() const;
  // node_scratch (optional, elements per node): working memory a node's kernel needs only while it
  // runs (e.g. a padded copy of a conv's input). It is placed in the arena like a value alive for
  // that one node, so it reuses space of values that are dead at that point instead of adding a
  // separate buffer to the peak.
  // extra_reads (optional): (node, value) pairs a backend adds to the nodes' inputs -- a node
  // that runs the work of an earlier one too (a fused kernel) and so reads that one's input;
  // the value then stays live up to that node.
  MemoryPlan plan_memory(const std::vector<int64_t>& node_scratch = {},
                         const std::vector<std::pair<int, int>>& extra_reads = {}) const;

 private:
  int new_value(const std::string& name, Shape shape);
  int output_value(const std::string& name, Shape shape, int out);
  int push(Node n);
  void check_value(int v) const;

  std::vector<Value> values_;
  std::vector<Node> nodes_;
  std::vector<bool> written_;
};

// A View of value v inside an arena (f32).
cpu::View view_of(const Graph& g, const MemoryPlan& plan, float* arena, int v);

}  // namespace gpen
