#include "core/f16_activations.h"

#include <sstream>

#include "core/error.h"

namespace gpen {
namespace {

bool is_image(const Shape& s) { return s.size() == 4; }
bool is_vectors(const Shape& s) { return s.size() == 2; }

// The form of value v from its shape and its root's, or false when it has none.
bool value_form(const Graph& g, int v, ActivationForm* form) {
  const Value& val = g.value(v);
  const Shape& root = g.value(val.root).shape;
  if (is_image(val.shape) && is_image(root) && val.shape[0] == root[0] && val.shape[2] == root[2] &&
      val.shape[3] == root[3]) {
    *form = ActivationForm::F16Nhwc;  // a whole buffer or a channel slice
    return true;
  }
  if (is_vectors(val.shape) && is_vectors(root) && val.root == v) {
    *form = ActivationForm::F32;
    return true;
  }
  if (is_vectors(val.shape) && is_image(root) && val.shape[0] == root[0]) {
    *form = ActivationForm::Flattened;
    return true;
  }
  return false;
}

struct Checker {
  const Graph& g;
  const std::vector<ActivationForm>& form;
  std::ostringstream why;

  bool is(int v, ActivationForm f) const { return v >= 0 && form[size_t(v)] == f; }
  bool images(const Node& n) const {
    for (int v : n.inputs)
      if (!is(v, ActivationForm::F16Nhwc)) return false;
    return is(n.output, ActivationForm::F16Nhwc);
  }
  bool vectors_in(const Node& n, size_t from) const {
    for (size_t i = from; i < n.inputs.size(); ++i)
      if (!is(n.inputs[i], ActivationForm::F32)) return false;
    return true;
  }

  bool node_ok(const Node& n) const {
    switch (n.op) {
      case OpType::Broadcast: return is(n.output, ActivationForm::F16Nhwc);
      case OpType::Linear:
        return (is(n.inputs[0], ActivationForm::F32) || is(n.inputs[0], ActivationForm::Flattened)) &&
               is(n.output, ActivationForm::F32);
      case OpType::PixelNorm:
      case OpType::DemodFactors: return vectors_in(n, 0) && is(n.output, ActivationForm::F32);
      case OpType::Conv2d:
        return n.conv.groups == 1 && is(n.inputs[0], ActivationForm::F16Nhwc) && vectors_in(n, 1) &&
               is(n.output, ActivationForm::F16Nhwc);
      case OpType::Upfirdn2d:
        return images(n) && n.weight.dim(0) <= 8 && n.weight.dim(1) <= 8 && n.up >= 1 && n.down >= 1;
      case OpType::ScaleBiasAct:
      case OpType::Add: return images(n);
      default: return false;
    }
  }
};

bool identity(const EpilogueSpec& e) { return !(e.bias.defined() && e.bias.numel()) && e.slope == 1.f && e.gain == 1.f; }

// Conv2d (modulated, nothing after the demodulation) -> its output, a whole buffer read by one
// Upfirdn2d only: that FIR applies the demodulation instead (see F16ActivationPlan).
void move_demodulation_into_firs(const Graph& g, F16ActivationPlan* plan) {
  const size_t nodes = g.nodes().size();
  plan->demod_fir.assign(nodes, -1);
  std::vector<int> readers(g.values().size(), 0), reader(g.values().size(), -1);
  for (size_t i = 0; i < nodes; ++i)
    for (int v : g.nodes()[i].inputs) {
      ++readers[size_t(g.value(v).root)];
      reader[size_t(g.value(v).root)] = int(i);
    }
  for (size_t i = 0; i < nodes; ++i) {
    const Node& conv = g.nodes()[i];
    const int t = conv.output;
    if (conv.op != OpType::Conv2d || conv.inputs.size() != 3 || !identity(conv.epi)) continue;
    if (g.value(t).root != t || g.value(t).is_output || readers[size_t(t)] != 1) continue;
    const int j = reader[size_t(t)];
    if (g.nodes()[size_t(j)].op == OpType::Upfirdn2d && g.nodes()[size_t(j)].inputs[0] == t) plan->demod_fir[i] = j;
  }
}

// Conv2d -> ScaleBiasAct in place on its output, next in order (nothing runs in between).
void fuse_in_place_scale_bias_act(const Graph& g, F16ActivationPlan* plan) {
  const size_t nodes = g.nodes().size();
  plan->fused_after.assign(nodes, -1);
  for (size_t i = 0; i + 1 < nodes; ++i) {
    const Node &conv = g.nodes()[i], &next = g.nodes()[i + 1];
    if (conv.op == OpType::Conv2d && next.op == OpType::ScaleBiasAct && next.inputs[0] == conv.output &&
        next.output == conv.output && plan->demod_fir[i] < 0)
      plan->fused_after[i] = int(i + 1);
  }
}

bool same_run(const std::vector<ActivationForm>& form, const Node& a, const Node& b) {
  if (a.op != b.op) return false;
  if (a.op == OpType::Linear)
    return a.inputs[0] == b.inputs[0] && form[size_t(a.inputs[0])] == ActivationForm::F32 &&
           a.epi.slope == b.epi.slope && a.epi.gain == b.epi.gain && a.weight.dim(1) == b.weight.dim(1);
  return a.op == OpType::DemodFactors && a.eps == b.eps;
}

// The last node touching each root value (graph outputs: past the last node), as plan_memory
// computes lifetimes.
std::vector<int> last_use(const Graph& g) {
  std::vector<int> last(g.values().size(), -1);
  const auto touch = [&](int v, int t) { last[size_t(g.value(v).root)] = std::max(last[size_t(g.value(v).root)], t); };
  for (int t = 0; t < int(g.nodes().size()); ++t) {
    for (int v : g.nodes()[size_t(t)].inputs) touch(v, t);
    touch(g.nodes()[size_t(t)].output, t);
  }
  for (int v : g.outputs()) touch(v, int(g.nodes().size()));
  return last;
}

// Whether node k may join the run [i, k): it reads no output of the run, and every value the
// run [i, k] touches lives at least to k (so no output can share memory with a value that dies
// inside the run: the memory plan only reuses memory of values dead before a node).
bool may_join(const Graph& g, const std::vector<int>& last, int i, int k) {
  for (int v : g.nodes()[size_t(k)].inputs)
    for (int m = i; m < k; ++m)
      if (g.value(v).root == g.value(g.nodes()[size_t(m)].output).root) return false;
  for (int m = i; m <= k; ++m) {
    const Node& n = g.nodes()[size_t(m)];
    for (int v : n.inputs)
      if (last[size_t(g.value(v).root)] < k) return false;
    if (last[size_t(g.value(n.output).root)] < k) return false;
  }
  return true;
}

void find_vector_runs(const Graph& g, F16ActivationPlan* plan) {
  const int nodes = int(g.nodes().size());
  const std::vector<int> last = last_use(g);
  plan->run_end.assign(size_t(nodes), -1);
  for (int i = 0; i < nodes;) {
    int j = i + 1;
    while (j < nodes && same_run(plan->form, g.nodes()[size_t(i)], g.nodes()[size_t(j)]) && may_join(g, last, i, j)) ++j;
    if (j - i >= 2) {
      plan->run_end[size_t(i)] = j;
      for (int k = i + 1; k < j; ++k) plan->run_end[size_t(k)] = -2;
    }
    i = j;
  }
}

}  // namespace

F16ActivationPlan plan_f16_activations(const Graph& g) {
  F16ActivationPlan plan;
  plan.form.resize(g.values().size());
  for (size_t v = 0; v < g.values().size(); ++v)
    if (!value_form(g, int(v), &plan.form[v])) {
      plan.why = "value '" + g.value(int(v)).name + "' " + shape_str(g.value(int(v)).shape) + " has no f16 NHWC form";
      return plan;
    }
  Checker check{g, plan.form, {}};
  for (const Node& n : g.nodes())
    if (!check.node_ok(n)) {
      plan.why = std::string(op_name(n.op)) + " '" + n.name + "' does not run on f16 NHWC activations";
      return plan;
    }
  // A flattened value is read by Linear only (checked above); the graph keeps views out of its
  // inputs and outputs, so one is never staged from or to the host.
  plan.supported = true;
  move_demodulation_into_firs(g, &plan);
  fuse_in_place_scale_bias_act(g, &plan);
  find_vector_runs(g, &plan);
  return plan;
}

NhwcPlacement nhwc_placement(const Graph& g, int v) {
  const Value& val = g.value(v);
  const Shape& root = g.value(val.root).shape;
  if (!is_image(val.shape) || !is_image(root)) fail("nhwc_placement: '", val.name, "' is not an image value");
  const int64_t plane = root[2] * root[3];
  NhwcPlacement p;
  p.root = val.root;
  p.c0 = int(plane ? val.offset / plane : 0);
  p.pixel_stride = int(root[1]);
  p.batch_stride = root[1] * plane;
  return p;
}

}  // namespace gpen
