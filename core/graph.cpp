#include "core/graph.h"

#include <cstdint>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "core/error.h"

namespace gpen {

const char* op_name(OpType op) {
  static const char* names[] = {"broadcast",  "linear",      "pixel_norm", "conv2d",           "upfirdn2d",
                                "scale_bias_act", "add",     "demod_factors", "upsample_nearest",
                                "max_pool2d", "reflect_pad2d", "pixel_unshuffle"};
  static_assert(sizeof(names) / sizeof(names[0]) == size_t(OpType::Count), "op name table out of date");
  return op < OpType::Count ? names[int(op)] : "?";
}

EpilogueSpec EpilogueSpec::fused_lrelu(const Tensor& bias) {
  EpilogueSpec e;
  e.bias = bias;
  e.slope = 0.2f;
  e.gain = std::sqrt(2.f);
  return e;
}

EpilogueSpec EpilogueSpec::with_bias(const Tensor& bias) {
  EpilogueSpec e;
  e.bias = bias;
  return e;
}

void Graph::check_value(int v) const {
  if (v < 0 || size_t(v) >= values_.size()) fail("graph: value ", v, " does not exist");
}

int Graph::new_value(const std::string& name, Shape shape) {
  Value val;
  val.shape = std::move(shape);
  val.name = name;
  val.root = int(values_.size());
  val.batch_stride = val.shape.empty() ? 1 : shape_numel(val.shape) / std::max<int64_t>(1, val.shape[0]);
  values_.push_back(val);
  written_.push_back(false);
  return val.root;
}

int Graph::output_value(const std::string& name, Shape shape, int out) {
  if (out < 0) return new_value(name, std::move(shape));
  check_value(out);
  if (values_[size_t(out)].shape != shape)
    fail("graph: node '", name, "' makes ", shape_str(shape), " but its output view is ",
         shape_str(values_[size_t(out)].shape));
  return out;
}

int Graph::push(Node n) {
  for (int v : n.inputs) {
    check_value(v);
    const int root = values_[size_t(v)].root;
    if (!written_[size_t(v)] && !written_[size_t(root)] && !values_[size_t(v)].is_input)
      fail("graph: node '", n.name, "' reads value '", values_[size_t(v)].name, "' before anything writes it");
  }
  written_[size_t(n.output)] = true;
  written_[size_t(values_[size_t(n.output)].root)] = true;  // a slice written: its buffer has data
  nodes_.push_back(std::move(n));
  return nodes_.back().output;
}

int Graph::input(const std::string& name, Shape shape) {
  int v = new_value(name, std::move(shape));
  values_[size_t(v)].is_input = true;
  written_[size_t(v)] = true;
  return v;
}

void Graph::mark_output(int v) {
  check_value(v);
  if (values_[size_t(v)].root != v) fail("graph: an output must be a whole buffer, not a view");
  values_[size_t(v)].is_output = true;
}

int Graph::buffer(const std::string& name, Shape shape) { return new_value(name, std::move(shape)); }

int Graph::channel_slice(int v, int64_t c0, int64_t c1, const std::string& name) {
  check_value(v);
  const Value parent = values_[size_t(v)];
  if (parent.shape.size() != 4 || c0 < 0 || c1 > parent.shape[1] || c0 >= c1)
    fail("graph: bad channel slice [", c0, ", ", c1, ") of ", shape_str(parent.shape));
  const int64_t plane = parent.shape[2] * parent.shape[3];
  Value s;
  s.shape = {parent.shape[0], c1 - c0, parent.shape[2], parent.shape[3]};
  s.name = name.empty() ? parent.name + "[" + std::to_string(c0) + ":" + std::to_string(c1) + "]" : name;
  s.root = parent.root;
  s.offset = parent.offset + c0 * plane;
  s.batch_stride = parent.batch_stride;
  values_.push_back(s);
  written_.push_back(false);
  return int(values_.size()) - 1;
}

int Graph::reshape(int v, Shape shape) {
  check_value(v);
  const Value parent = values_[size_t(v)];
  if (parent.root != v) fail("graph: reshape of a view is not supported");
  if (shape_numel(shape) != shape_numel(parent.shape))
    fail("graph: cannot reshape ", shape_str(parent.shape), " to ", shape_str(shape));
  Value r = parent;
  r.shape = std::move(shape);
  r.name = parent.name + ".reshape";
  r.is_input = r.is_output = false;
  r.batch_stride = shape_numel(r.shape) / std::max<int64_t>(1, r.shape[0]);
  values_.push_back(r);
  written_.push_back(written_[size_t(v)]);
  return int(values_.size()) - 1;
}

int Graph::broadcast(const std::string& name, const Tensor& param, int64_t batch) {
  Node n;
  n.op = OpType::Broadcast;
  n.name = name;
  n.weight = param;
  Shape s = param.shape();
  s[0] = batch;
  n.output = new_value(name, s);
  return push(std::move(n));
}

int Graph::linear(const std::string& name, int x, const Tensor& w, EpilogueSpec epi) {
  check_value(x);
  const Shape& xs = values_[size_t(x)].shape;
  if (xs.size() != 2 || w.ndim() != 2 || w.dim(1) != xs[1])
    fail("graph: linear '", name, "' input ", shape_str(xs), " does not fit weight ", shape_str(w.shape()));
  Node n;
  n.op = OpType::Linear;
  n.name = name;
  n.inputs = {x};
  n.weight = w;
  n.epi = std::move(epi);
  n.output = new_value(name, {xs[0], w.dim(0)});
  return push(std::move(n));
}

int Graph::pixel_norm(const std::string& name, int x, float eps) {
  check_value(x);
  Node n;
  n.op = OpType::PixelNorm;
  n.name = name;
  n.inputs = {x};
  n.eps = eps;
  n.output = new_value(name, values_[size_t(x)].shape);
  return push(std::move(n));
}

int Graph::conv2d(const std::string& name, int x, const cpu::ConvDesc& d, const Tensor& w, EpilogueSpec epi,
                  int in_scale, int out_scale, int out) {
  check_value(x);
  const Shape& xs = values_[size_t(x)].shape;
  if (xs.size() != 4 || xs[1] != d.C)
    fail("graph: conv '", name, "' expects ", d.C, " input channels, got ", shape_str(xs));
  if (w.numel() != int64_t(d.K) * (d.C / d.groups) * d.kh * d.kw)
    fail("graph: conv '", name, "' weight ", shape_str(w.shape()), " does not fit its description");
  Node n;
  n.op = OpType::Conv2d;
  n.name = name;
  n.inputs = {x};
  if (in_scale >= 0) n.inputs.push_back(in_scale);
  if (out_scale >= 0) {
    if (in_scale < 0) fail("graph: conv '", name, "' out_scale without in_scale");
    n.inputs.push_back(out_scale);
  }
  n.conv = d;
  n.weight = w;
  n.epi = std::move(epi);
  n.output = output_value(name, {xs[0], d.K, d.out_h(int(xs[2])), d.out_w(int(xs[3]))}, out);
  return push(std::move(n));
}

int Graph::upfirdn2d(const std::string& name, int x, const Tensor& kernel, int up, int down, int pad0, int pad1,
                     EpilogueSpec epi, int out) {
  check_value(x);
  const Shape& xs = values_[size_t(x)].shape;
  if (kernel.ndim() != 2) fail("graph: upfirdn2d '", name, "' kernel must be 2-D");
  auto size = [&](int64_t in, int64_t k) { return (in * up + pad0 + pad1 - k) / down + 1; };
  Node n;
  n.op = OpType::Upfirdn2d;
  n.name = name;
  n.inputs = {x};
  n.weight = kernel;
  n.up = up;
  n.down = down;
  n.pad0 = pad0;
  n.pad1 = pad1;
  n.epi = std::move(epi);
  n.output = output_value(name, {xs[0], xs[1], size(xs[2], kernel.dim(0)), size(xs[3], kernel.dim(1))}, out);
  return push(std::move(n));
}

int Graph::scale_bias_act(const std::string& name, int x, float scale, EpilogueSpec epi, int out) {
  check_value(x);
  Node n;
  n.op = OpType::ScaleBiasAct;
  n.name = name;
  n.inputs = {x};
  n.scalar = scale;
  n.epi = std::move(epi);
  n.output = output_value(name, values_[size_t(x)].shape, out);
  return push(std::move(n));
}

int Graph::add(const std::string& name, int a, int b, int out) {
  check_value(a);
  check_value(b);
  if (values_[size_t(a)].shape != values_[size_t(b)].shape)
    fail("graph: add '", name, "' of ", shape_str(values_[size_t(a)].shape), " and ",
         shape_str(values_[size_t(b)].shape));
  Node n;
  n.op = OpType::Add;
  n.name = name;
  n.inputs = {a, b};
  n.output = output_value(name, values_[size_t(a)].shape, out);
  return push(std::move(n));
}

int Graph::demod_factors(const std::string& name, int style, const Tensor& wsq, float eps) {
  check_value(style);
  const Shape& ss = values_[size_t(style)].shape;
  if (wsq.ndim() != 2 || ss.size() != 2 || wsq.dim(1) != ss[1])
    fail("graph: demod '", name, "' style ", shape_str(ss), " does not fit ", shape_str(wsq.shape()));
  Node n;
  n.op = OpType::DemodFactors;
  n.name = name;
  n.inputs = {style};
  n.weight = wsq;
  n.eps = eps;
  n.output = new_value(name, {ss[0], wsq.dim(0)});
  return push(std::move(n));
}

int Graph::upsample_nearest(const std::string& name, int x, int64_t h, int64_t w) {
  check_value(x);
  const Shape& xs = values_[size_t(x)].shape;
  Node n;
  n.op = OpType::UpsampleNearest;
  n.name = name;
  n.inputs = {x};
  n.output = new_value(name, {xs[0], xs[1], h, w});
  return push(std::move(n));
}

int Graph::max_pool2d(const std::string& name, int x, int kernel, int stride, int pad) {
  check_value(x);
  const Shape& xs = values_[size_t(x)].shape;
  if (xs.size() != 4 || kernel < 1 || stride < 1 || pad < 0 || 2 * pad >= kernel + 1)
    fail("graph: max_pool2d '", name, "' kernel ", kernel, " stride ", stride, " pad ", pad, " on ", shape_str(xs));
  Node n;
  n.op = OpType::MaxPool2d;
  n.name = name;
  n.inputs = {x};
  n.conv.C = n.conv.K = int(xs[1]);
  n.conv.kh = n.conv.kw = kernel;
  n.conv.stride = stride;
  n.conv.pad = pad;
  n.output = new_value(name, {xs[0], xs[1], n.conv.out_h(int(xs[2])), n.conv.out_w(int(xs[3]))});
  return push(std::move(n));
}

Graph Graph::without_weights() const {
  Graph g = *this;
  for (Node& n : g.nodes_)
    if (n.weight.defined()) n.weight = Tensor::shape_only(n.weight.dtype(), n.weight.shape());
  return g;
}

int Graph::reflect_pad2d(const std::string& name, int x, int pad) {
  check_value(x);
  const Shape& xs = values_[size_t(x)].shape;
  // A mirror of `pad` pixels needs pad + 1 of them (torch's rule: pad < size).
  if (xs.size() != 4 || pad < 0 || pad >= xs[2] || pad >= xs[3])
    fail("graph: reflect_pad2d '", name, "' of ", pad, " on ", shape_str(xs), " (needs pad < height, width)");
  Node n;
  n.op = OpType::ReflectPad2d;
  n.name = name;
  n.inputs = {x};
  n.pad0 = n.pad1 = pad;
  n.output = new_value(name, {xs[0], xs[1], xs[2] + 2 * pad, xs[3] + 2 * pad});
  return push(std::move(n));
}

int Graph::pixel_unshuffle(const std::string& name, int x, int factor) {
  check_value(x);
  const Shape& xs = values_[size_t(x)].shape;
  if (xs.size() != 4 || factor < 1 || xs[2] % factor || xs[3] % factor)
    fail("graph: pixel_unshuffle '", name, "' by ", factor, " of ", shape_str(xs), " (needs H, W divisible)");
  Node n;
  n.op = OpType::PixelUnshuffle;
  n.name = name;
  n.inputs = {x};
  n.down = factor;
  n.output = new_value(name, {xs[0], xs[1] * factor * factor, xs[2] / factor, xs[3] / factor});
  return push(std::move(n));
}

int Graph::find(const std::string& name) const {
  for (const Node& n : nodes_)
    if (n.name == name) return n.output;
  for (size_t i = 0; i < values_.size(); ++i)
    if (values_[i].name == name) return int(i);
  return -1;
}

std::vector<int> Graph::inputs() const {
  std::vector<int> r;
  for (size_t i = 0; i < values_.size(); ++i)
    if (values_[i].is_input) r.push_back(int(i));
  return r;
}

std::vector<int> Graph::outputs() const {
  std::vector<int> r;
  for (size_t i = 0; i < values_.size(); ++i)
    if (values_[i].is_output) r.push_back(int(i));
  return r;
}

int64_t Graph::flops() const {
  int64_t f = 0;
  for (const Node& n : nodes_) {
    const Shape& xs = values_[size_t(n.inputs.empty() ? n.output : n.inputs[0])].shape;
    if (n.op == OpType::Conv2d) f += n.conv.flops(int(xs[0]), int(xs[2]), int(xs[3]));
    if (n.op == OpType::Linear) f += 2 * xs[0] * n.weight.numel();
  }
  return f;
}

// Greedy placement, largest buffers first: each root buffer lives from the first node that
// touches it to the last; it goes at the lowest offset that overlaps no buffer alive at the same
// time. Inputs are alive from the start, outputs to the end.
MemoryPlan Graph::plan_memory(const std::vector<int64_t>& node_scratch,
                               const std::vector<std::pair<int, int>>& extra_reads) const {
  if (!node_scratch.empty() && node_scratch.size() != nodes_.size())
    fail("graph: plan_memory got ", node_scratch.size(), " scratch sizes for ", nodes_.size(), " nodes");
  const int nv = int(values_.size());
  const int end = int(nodes_.size());
  std::vector<int> first(size_t(nv), -1), last(size_t(nv), -1);
  auto touch = [&](int v, int t) {
    int r = values_[size_t(v)].root;
    if (first[size_t(r)] < 0 || t < first[size_t(r)]) first[size_t(r)] = t;
    last[size_t(r)] = std::max(last[size_t(r)], t);
  };
  for (int v = 0; v < nv; ++v) {
    if (values_[size_t(v)].is_input) touch(v, 0);
    if (values_[size_t(v)].is_output) touch(v, end);
  }
  for (int t = 0; t < end; ++t) {
    for (int v : nodes_[size_t(t)].inputs) touch(v, t);
    touch(nodes_[size_t(t)].output, t);
  }
  for (const auto& [t, v] : extra_reads) {
    if (t < 0 || t >= end) fail("graph: plan_memory got an extra read at node ", t, " of ", end);
    check_value(v);
    touch(v, t);
  }
  MemoryPlan plan;
  plan.offset.assign(size_t(nv), -1);
  plan.scratch_offset.assign(nodes_.size(), -1);
  // Blocks to place: root buffers (id = value) and node scratch regions (id = -1 - node).
  struct Block { int id; int64_t size; int first, last; };
  std::vector<Block> blocks;
  auto aligned = [](int64_t elems) { return (elems + 15) / 16 * 16; };  // 64-byte aligned
  for (int v = 0; v < nv; ++v)
    if (values_[size_t(v)].root == v && first[size_t(v)] >= 0)
      blocks.push_back({v, aligned(shape_numel(values_[size_t(v)].shape)), first[size_t(v)], last[size_t(v)]});
  for (int t = 0; t < int(node_scratch.size()); ++t)
    if (node_scratch[size_t(t)] > 0) blocks.push_back({-1 - t, aligned(node_scratch[size_t(t)]), t, t});
  for (const Block& blk : blocks) plan.naive_elems += blk.size;
  // Offline placement is NP-hard; a few cheap greedy orders, each placed first-fit and best-fit,
  // and the smallest arena kept. (Largest-first alone left GPEN-512's arena at 260 MiB for a
  // live peak of 197 MiB: the 128 MiB buffer of the last StyledConv went to offset 0, so the
  // transposed conv before it -- live beside it -- sat above it, and that conv's input and
  // scratch no longer fitted in the gap below.)
  struct Placed { int64_t off, size; int first, last; };
  auto place = [&](const std::vector<Block>& order, bool best_fit, std::vector<int64_t>& offsets) {
    std::vector<Placed> placed;
    int64_t arena = 0;
    offsets.assign(order.size(), 0);
    for (size_t i = 0; i < order.size(); ++i) {
      const Block& blk = order[i];
      std::vector<std::pair<int64_t, int64_t>> busy;
      for (const Placed& p : placed)
        if (p.first <= blk.last && blk.first <= p.last) busy.push_back({p.off, p.off + p.size});
      std::sort(busy.begin(), busy.end());
      int64_t off = 0, chosen = -1, chosen_gap = INT64_MAX;
      for (auto& [b0, b1] : busy) {
        if (off + blk.size <= b0) {  // a gap that fits
          if (!best_fit) break;
          if (b0 - off < chosen_gap) chosen = off, chosen_gap = b0 - off;
        }
        off = std::max(off, b1);
      }
      if (!best_fit || chosen < 0) chosen = off;  // first fit, or above everything live
      offsets[i] = chosen;
      placed.push_back({chosen, blk.size, blk.first, blk.last});
      arena = std::max(arena, chosen + blk.size);
    }
    return arena;
  };
  using Order = bool (*)(const Block&, const Block&);
  const Order orders[] = {
      [](const Block& a, const Block& b) { return a.size > b.size; },
      [](const Block& a, const Block& b) { return a.size != b.size ? a.size > b.size : a.first < b.first; },
      [](const Block& a, const Block& b) { return a.last - a.first > b.last - b.first; },
      [](const Block& a, const Block& b) { return a.first != b.first ? a.first < b.first : a.size > b.size; },
  };
  // No placement beats the most memory live at one node: the search stops once it reaches that.
  int64_t live_peak = 0;
  {
    std::vector<int64_t> live(size_t(end) + 1, 0);  // difference array over node indices
    for (const Block& b : blocks) {
      live[size_t(b.first)] += b.size;
      if (b.last + 1 <= end) live[size_t(b.last) + 1] -= b.size;
    }
    int64_t now = 0;
    for (int64_t l : live) live_peak = std::max(live_peak, now += l);
  }
  std::vector<Block> best_order;
  std::vector<int64_t> best_offsets, offsets;
  int64_t best = -1;
  for (Order order : orders)
    for (bool best_fit : {false, true}) {
      if (best == live_peak) break;
      std::vector<Block> sorted = blocks;
      std::stable_sort(sorted.begin(), sorted.end(), order);
      const int64_t arena = place(sorted, best_fit, offsets);
      if (best < 0 || arena < best) best = arena, best_order = sorted, best_offsets = offsets;
    }
  // Then orders by size with seeded random weights (each block's size times a factor in [0.5, 2)),
  // which lets a block that must sit below a larger one be placed first.
  std::mt19937 rng(12345);
  std::uniform_real_distribution<double> factor(0.5, 2.0);
  for (int attempt = 0; attempt < 48 && !blocks.empty() && best > live_peak; ++attempt) {
    std::vector<std::pair<double, size_t>> keys;
    for (size_t i = 0; i < blocks.size(); ++i) keys.push_back({double(blocks[i].size) * factor(rng), i});
    std::sort(keys.begin(), keys.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    std::vector<Block> sorted;
    for (const auto& k : keys) sorted.push_back(blocks[k.second]);
    for (bool best_fit : {false, true}) {
      const int64_t arena = place(sorted, best_fit, offsets);
      if (arena < best) best = arena, best_order = sorted, best_offsets = offsets;
    }
  }
  plan.arena_elems = std::max<int64_t>(best, 0);
  for (size_t i = 0; i < best_order.size(); ++i) {
    const Block& blk = best_order[i];
    if (blk.id >= 0)
      plan.offset[size_t(blk.id)] = best_offsets[i];
    else
      plan.scratch_offset[size_t(-1 - blk.id)] = best_offsets[i];
  }
  for (int v = 0; v < nv; ++v) {
    int r = values_[size_t(v)].root;
    if (plan.offset[size_t(r)] >= 0) plan.offset[size_t(v)] = plan.offset[size_t(r)] + values_[size_t(v)].offset;
  }
  return plan;
}

cpu::View view_of(const Graph& g, const MemoryPlan& plan, float* arena, int v) {
  const Value& val = g.value(v);
  if (plan.offset[size_t(v)] < 0) fail("graph: value '", val.name, "' has no memory");
  cpu::View view;
  view.data = arena + plan.offset[size_t(v)];
  const Shape& s = val.shape;
  view.n = int(s.size() > 0 ? s[0] : 1);
  view.c = int(s.size() > 1 ? s[1] : 1);
  view.h = int(s.size() > 2 ? s[2] : 1);
  view.w = int(s.size() > 3 ? s[3] : 1);
  view.batch_stride = val.batch_stride;
  return view;
}

}  // namespace gpen
