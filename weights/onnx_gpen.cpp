#include "weights/onnx_gpen.h"

#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/models/gpen.h"

namespace gpen {
namespace {

constexpr float kLrMlp = 0.01f;  // GPEN's mapping-network learning-rate multiplier (lr_mlp)

std::string key(const std::string& a, int i, const std::string& b) { return a + std::to_string(i) + b; }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool is_floating(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64; }

// The same factor GpenModel multiplies in (1.f / sqrt(float(fan_in))), so that dividing by it here
// and multiplying again there gives back the exported value to within a rounding.
float equal_lr_scale(int64_t fan_in) { return 1.f / std::sqrt(float(fan_in)); }

// ---- blur kernels ---------------------------------------------------------------------------------

// make_kernel([1,3,3,1]) (sums to 1), times `gain` (4 after a x2 upsampling).
Tensor blur_kernel(float gain) {
  const float k[4] = {1, 3, 3, 1};
  Tensor t = Tensor::empty(DType::F32, {4, 4});
  for (int i = 0; i < 16; ++i) t.data<float>()[i] = k[i / 4] * k[i % 4] / 64.f * gain;
  return t;
}

// Adds the fixed blur buffers that belong next to the weights present, unless the file has them.
void add_missing_blur_kernels(StateDict& sd) {
  std::vector<std::pair<std::string, float>> wanted;
  for (const auto& [k, t] : sd.tensors) {
    const std::string prefix = k.substr(0, k.rfind('.') == std::string::npos ? 0 : k.rfind('.'));
    if (k.rfind("generator.convs.", 0) == 0 && ends_with(k, ".conv.weight")) {
      const int index = std::atoi(k.c_str() + 16);
      if (index % 2 == 0) wanted.push_back({key("generator.convs.", index, ".conv.blur.kernel"), 4.f});
    } else if (k.rfind("generator.to_rgbs.", 0) == 0 && ends_with(k, ".conv.weight")) {
      wanted.push_back({key("generator.to_rgbs.", std::atoi(k.c_str() + 18), ".upsample.kernel"), 4.f});
    } else if (k.rfind("ecd", 0) == 0 && ends_with(k, ".0.1.weight")) {
      wanted.push_back({prefix.substr(0, prefix.size() - 4) + ".0.0.kernel", 1.f});  // "ecdJ.0.1" -> "ecdJ.0.0.kernel"
    }
  }
  for (const auto& [k, gain] : wanted)
    if (!sd.has(k)) sd.tensors[k] = blur_kernel(gain);
}

// ---- mapping by name ------------------------------------------------------------------------------

bool has_state_dict_names(const OnnxModel& m) {
  for (const char* k : {"ecd0.0.0.weight", "final_linear.0.weight", "generator.conv1.conv.weight"})
    if (!m.initializers.count(k)) return false;
  return true;
}

StateDict by_name(const OnnxModel& m) {
  StateDict sd;
  for (const auto& [name, t] : m.initializers)
    if (name.rfind("ecd", 0) == 0 || name.rfind("final_linear.", 0) == 0 || name.rfind("generator.", 0) == 0)
      sd.tensors[name] = t;
  add_missing_blur_kernels(sd);
  sd.metadata["gpen.onnx.mapping"] = "names";
  return sd;
}

// ---- mapping by graph structure ---------------------------------------------------------------------

struct Constant {
  std::string name;  // the ONNX initializer (or Constant node output)
  Tensor value;
};

struct Linear {
  Constant weight;  // as stored in the graph
  bool weight_is_in_out = false;  // [in, out] (MatMul, Gemm transB=0) rather than [out, in]
  Constant bias;    // value undefined when the graph has none
};

// Every parameter-like constant of a folded graph, by role, in the order the graph consumes them.
struct Collected {
  std::vector<Constant> encoder_convs, const_inputs, modulated_weights, noise_weights, biases;
  std::vector<Linear> linears;
  int foldable_nodes = 0;  // nodes computing on constant float arrays only: the export was not constant-folded
};

class GraphIndex {
 public:
  explicit GraphIndex(const OnnxModel& m) : m_(m) {
    for (size_t i = 0; i < m.nodes.size(); ++i) {
      const OnnxNode& n = m.nodes[i];
      for (const auto& in : n.inputs) consumers_[in].push_back(i);
      const OnnxAttribute* v = n.attribute("value");
      if (n.op_type == "Constant" && v && v->has_t && n.outputs.size() == 1) constant_nodes_[n.outputs[0]] = v->t;
    }
  }
  // A floating constant (initializer or Constant node output) by value name; nullptr otherwise.
  const Tensor* float_constant(const std::string& name) const {
    const Tensor* t = any_constant(name);
    return t && is_floating(t->dtype()) ? t : nullptr;
  }
  const Tensor* any_constant(const std::string& name) const {
    auto it = m_.initializers.find(name);
    if (it != m_.initializers.end()) return &it->second;
    auto c = constant_nodes_.find(name);
    return c == constant_nodes_.end() ? nullptr : &c->second;
  }
  const std::vector<size_t>& consumers(const std::string& value) const {
    static const std::vector<size_t> none;
    auto it = consumers_.find(value);
    return it == consumers_.end() ? none : it->second;
  }
  const OnnxNode& node(size_t i) const { return m_.nodes[i]; }

 private:
  const OnnxModel& m_;
  std::map<std::string, std::vector<size_t>> consumers_;
  std::map<std::string, Tensor> constant_nodes_;
};

class Collector {
 public:
  Collector(const GraphIndex& g, const std::string& file) : g_(g), file_(file) {}

  void visit(size_t index) {
    const OnnxNode& n = g_.node(index);
    if (n.op_type == "Constant" || taken_adds_.count(index)) return;
    if (all_inputs_constant(n)) {
      if (has_float_array_input(n)) ++c.foldable_nodes;  // e.g. Mul(weight, scale); not shape arithmetic
      return;
    }
    if (n.op_type == "Conv") conv(n);
    else if (n.op_type == "Expand" || n.op_type == "Tile") take(n, 0, c.const_inputs);
    else if (n.op_type == "Gemm") gemm(n);
    else if (n.op_type == "MatMul") matmul(n);
    else if (n.op_type == "Mul") mul(n);
    else if (n.op_type == "Add") add(n);
  }

  Collected c;

 private:
  // A non-empty floating constant at input k (GPEN has no empty parameters).
  const Tensor* input_constant(const OnnxNode& n, size_t k) const {
    const Tensor* t = k < n.inputs.size() && !n.inputs[k].empty() ? g_.float_constant(n.inputs[k]) : nullptr;
    return t && t->numel() > 0 ? t : nullptr;
  }
  bool all_inputs_constant(const OnnxNode& n) const {
    for (const auto& in : n.inputs)
      if (!in.empty() && !g_.any_constant(in)) return false;
    return !n.inputs.empty();
  }
  bool has_float_array_input(const OnnxNode& n) const {
    for (const auto& in : n.inputs)
      if (const Tensor* t = in.empty() ? nullptr : g_.float_constant(in); t && t->numel() > 1) return true;
    return false;
  }
  void take(const OnnxNode& n, size_t k, std::vector<Constant>& into) {
    if (const Tensor* t = input_constant(n, k)) into.push_back({n.inputs[k], *t});
  }

  void conv(const OnnxNode& n) {
    take(n, 0, c.const_inputs);  // the learned 4x4 input, folded into conv1's reshaped input
    const Tensor* w = input_constant(n, 1);
    if (!w) return;
    const bool blur = w->ndim() == 4 && w->dim(2) == 4 && w->dim(3) == 4;
    if (!blur) c.encoder_convs.push_back({n.inputs[1], *w});
  }

  void gemm(const OnnxNode& n) {
    const Tensor* w = input_constant(n, 1);
    if (!w) return;
    if (n.int_attribute("transA", 0) != 0 || n.float_attribute("alpha", 1.f) != 1.f ||
        n.float_attribute("beta", 1.f) != 1.f)
      fail("'", file_, "': Gemm node '", n.name, "' has transA/alpha/beta other than 0/1/1: not a GPEN linear layer");
    Linear l{{n.inputs[1], *w}, n.int_attribute("transB", 0) == 0, {}};
    if (const Tensor* b = input_constant(n, 2)) l.bias = {n.inputs[2], *b};
    c.linears.push_back(l);
  }

  // MatMul(x, W) with W [in, out]; its bias is the constant of the Add that consumes the product.
  void matmul(const OnnxNode& n) {
    const Tensor* w = input_constant(n, 1);
    if (!w || n.outputs.empty()) return;
    Linear l{{n.inputs[1], *w}, true, {}};
    for (size_t consumer : g_.consumers(n.outputs[0])) {
      const OnnxNode& add = g_.node(consumer);
      if (add.op_type != "Add" || add.inputs.size() != 2) continue;
      const size_t k = add.inputs[0] == n.outputs[0] ? 1 : 0;
      if (const Tensor* b = input_constant(add, k)) {
        l.bias = {add.inputs[k], *b};
        taken_adds_.insert(consumer);
        break;
      }
    }
    c.linears.push_back(l);
  }

  void mul(const OnnxNode& n) {
    if (n.inputs.size() != 2) return;
    const size_t k = input_constant(n, 0) ? 0 : 1;
    const Tensor* t = input_constant(n, k);
    if (!t) return;
    if (t->ndim() == 5) {
      c.modulated_weights.push_back({n.inputs[k], *t});
    } else if (t->numel() == 1) {
      // One per Concat fed: the two StyledConvs of a resolution inject the same encoder feature,
      // and torch merges their Muls into one when their weights are equal (deduplicated).
      for (int i = 0; i < concats_fed(n); ++i) c.noise_weights.push_back({n.inputs[k], *t});
    }
  }

  int concats_fed(const OnnxNode& n) const {
    int count = 0;
    for (const auto& out : n.outputs)
      for (size_t consumer : g_.consumers(out)) count += g_.node(consumer).op_type == "Concat";
    return count;
  }

  void add(const OnnxNode& n) {
    if (n.inputs.size() != 2) return;
    const size_t k = input_constant(n, 0) ? 0 : 1;
    const Tensor* t = input_constant(n, k);
    if (t && t->numel() > 1) c.biases.push_back({n.inputs[k], *t});  // single values are epsilons
  }

  const GraphIndex& g_;
  const std::string& file_;
  std::set<size_t> taken_adds_;
};

// One state-dict entry recovered from the graph: the constant, and how to undo the folding.
struct Source {
  Constant constant;
  float divisor = 1.f;          // effective = parameter * divisor
  bool transpose = false;       // 2-D [in, out] -> [out, in]
  bool first_channels = false;  // the constant input, possibly repeated for a batch
};

// Modulated convs in forward order: (state-dict prefix, is ToRGB).
std::vector<std::pair<std::string, bool>> modulated_convs(int log_size) {
  std::vector<std::pair<std::string, bool>> v = {{"generator.conv1", false}, {"generator.to_rgb1", true}};
  for (int i = 3; i <= log_size; ++i) {
    v.push_back({key("generator.convs.", 2 * (i - 3), ""), false});
    v.push_back({key("generator.convs.", 2 * (i - 3) + 1, ""), false});
    v.push_back({key("generator.to_rgbs.", i - 3, ""), true});
  }
  return v;
}

std::string names_of(const std::vector<Constant>& v, size_t from) {
  std::string s;
  for (size_t i = from; i < v.size() && i < from + 3; ++i) s += (s.empty() ? "'" : ", '") + v[i].name + "'";
  return s + (v.size() > from + 3 ? ", ..." : "");
}

void check_count(const std::string& file, const char* what, const std::vector<Constant>& found,
                 const std::vector<std::string>& expected_keys, const std::string& model, int foldable) {
  if (found.size() == expected_keys.size()) return;
  std::ostringstream os;
  os << "'" << file << "': cannot map the ONNX graph onto " << model << ": found " << found.size() << " " << what
     << ", expected " << expected_keys.size();
  if (found.size() < expected_keys.size())
    os << "; nothing for '" << expected_keys[found.size()] << "'" << (found.size() + 1 < expected_keys.size() ? " and after" : "");
  else
    os << "; extra: " << names_of(found, expected_keys.size());
  if (foldable > 0)
    os << " (the graph has " << foldable << " nodes computing on constant weights only: export it with "
       << "do_constant_folding=True, or keep the parameter names)";
  throw Error(os.str());
}

Collected collect(const OnnxModel& m, const std::string& file) {
  GraphIndex g(m);
  Collector col(g, file);
  for (size_t i = 0; i < m.nodes.size(); ++i) col.visit(i);
  return std::move(col.c);
}

// Assigns every collected constant to its state-dict key; returns the configuration it implies.
GpenConfig assign_by_structure(const Collected& c, const std::string& file, std::map<std::string, Source>& out) {
  const int stages = int(c.encoder_convs.size());
  bool all_4d = true;
  for (const auto& w : c.encoder_convs) all_4d = all_4d && w.value.ndim() == 4;
  if (stages < 2 || stages > 10 || !all_4d) {
    std::string hint = c.foldable_nodes ? " (it looks exported without constant folding and without parameter names)" : "";
    fail("'", file, "': not a GPEN generator graph: found ", stages, " encoder convolutions with constant weights", hint);
  }
  GpenConfig cfg;
  cfg.size = 1 << (stages + 1);
  const std::string model = "GPEN-" + std::to_string(cfg.size);
  const auto mods = modulated_convs(cfg.log_size());

  std::vector<std::string> enc_keys = {"ecd0.0.0.weight"}, bias_keys = {"ecd0.0.1.bias"}, mod_keys, noise_keys;
  for (int j = 1; j < stages; ++j) {
    enc_keys.push_back(key("ecd", j, ".0.1.weight"));
    bias_keys.push_back(key("ecd", j, ".0.2.bias"));
  }
  for (const auto& [prefix, to_rgb] : mods) {
    mod_keys.push_back(prefix + ".conv.weight");
    if (!to_rgb) noise_keys.push_back(prefix + ".noise.weight");
    bias_keys.push_back(prefix + (to_rgb ? ".bias" : ".activate.bias"));
  }
  check_count(file, "encoder convolution weights", c.encoder_convs, enc_keys, model, c.foldable_nodes);
  check_count(file, "modulated convolution weights", c.modulated_weights, mod_keys, model, c.foldable_nodes);
  check_count(file, "noise weights", c.noise_weights, noise_keys, model, c.foldable_nodes);
  check_count(file, "biases", c.biases, bias_keys, model, c.foldable_nodes);
  check_count(file, "learned input constants", c.const_inputs, {"generator.input.input"}, model, c.foldable_nodes);
  const int n_linear = int(c.linears.size());
  cfg.n_mlp = n_linear - 1 - int(mods.size());
  if (cfg.n_mlp < 1)
    fail("'", file, "': cannot map the ONNX graph onto ", model, ": found ", n_linear, " linear layers, expected 1 + n_mlp + ",
         mods.size());

  for (int j = 0; j < stages; ++j) {
    const Tensor& w = c.encoder_convs[size_t(j)].value;
    out[enc_keys[size_t(j)]] = {c.encoder_convs[size_t(j)], equal_lr_scale(w.numel() / w.dim(0))};
    out[bias_keys[size_t(j)]] = {c.biases[size_t(j)]};
    cfg.channels[cfg.size >> j] = int(w.dim(0));
  }
  for (size_t i = 0; i < mods.size(); ++i) {
    const Tensor& w = c.modulated_weights[i].value;
    out[mod_keys[i]] = {c.modulated_weights[i], w.ndim() == 5 ? equal_lr_scale(w.numel() / w.dim(1)) : 1.f};
    out[bias_keys[size_t(stages) + i]] = {c.biases[size_t(stages) + i]};
  }
  for (size_t i = 0; i < noise_keys.size(); ++i) out[noise_keys[i]] = {c.noise_weights[i]};
  out["generator.input.input"] = {c.const_inputs[0], 1.f, false, true};

  // Linear layers: final_linear, the style MLP, then one modulation per modulated conv.
  std::vector<std::pair<std::string, float>> linear_keys = {{"final_linear.0", 1.f}};
  for (int i = 1; i <= cfg.n_mlp; ++i) linear_keys.push_back({key("generator.style.", i, ""), kLrMlp});
  for (const auto& [prefix, to_rgb] : mods) linear_keys.push_back({prefix + ".conv.modulation", 1.f});
  for (size_t i = 0; i < linear_keys.size(); ++i) {
    const Linear& l = c.linears[i];
    const auto& [prefix, lr_mul] = linear_keys[i];
    if (!l.bias.value.defined() || l.bias.name.empty())
      fail("'", file, "': linear layer '", l.weight.name, "' (read as ", prefix, ") has no constant bias");
    if (l.weight.value.ndim() != 2)
      fail("'", file, "': linear weight '", l.weight.name, "' (read as ", prefix, ".weight) is ",
           shape_str(l.weight.value.shape()), ", expected 2-D");
    const int64_t fan_in = l.weight.value.dim(l.weight_is_in_out ? 0 : 1);
    out[prefix + ".weight"] = {l.weight, equal_lr_scale(fan_in) * lr_mul, l.weight_is_in_out};
    out[prefix + ".bias"] = {l.bias, lr_mul};
  }
  const Tensor& final_w = c.linears[0].weight.value;
  cfg.style_dim = int(final_w.dim(c.linears[0].weight_is_in_out ? 1 : 0));
  const Tensor& conv1 = c.modulated_weights[0].value;
  if (conv1.ndim() != 5) fail("'", file, "': modulated weight '", c.modulated_weights[0].name, "' is not 5-D");
  for (int i = 3; i <= cfg.log_size(); ++i) {
    const Tensor& w = c.modulated_weights[size_t(2 + 3 * (i - 3))].value;
    cfg.channels[1 << i] = int(w.ndim() == 5 ? w.dim(1) : 0);
  }
  cfg.channels[4] = int(conv1.dim(1));
  for (const auto& [res, ch] : cfg.channels)
    if (ch <= 0 || ch > 65536) fail("'", file, "': implausible channel count ", ch, " at ", res, "x", res);
  if (cfg.style_dim <= 0 || cfg.style_dim > 65536) fail("'", file, "': implausible style width ", cfg.style_dim);
  return cfg;
}

// Shapes equal once size-1 dims are ignored (a bias [C] exported as [1, C, 1, 1]).
bool same_squeezed(const Shape& a, const Shape& b) {
  Shape sa, sb;
  for (int64_t d : a) if (d != 1) sa.push_back(d);
  for (int64_t d : b) if (d != 1) sb.push_back(d);
  return sa == sb;
}

// The parameter, as the official checkpoint stores it, from its folded form in the graph.
Tensor recover(const std::string& k, const Source& s, const Shape& want, const std::string& file) {
  const Tensor v = s.constant.value.to(DType::F32);
  auto mismatch = [&](const Shape& got) {
    fail("'", file, "': ONNX initializer '", s.constant.name, "' (read as ", k, "): expected shape ", shape_str(want),
         ", got ", shape_str(got));
  };
  Tensor out = Tensor::empty(DType::F32, want);
  float* o = out.data<float>();
  const float* p = v.data<float>();
  const int64_t n = out.numel();
  if (s.transpose) {
    if (v.ndim() != 2 || v.dim(0) != want.at(1) || v.dim(1) != want.at(0)) mismatch(v.shape());  // stored [in, out]
    const int64_t rows = want[0], cols = want[1];
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t col = 0; col < cols; ++col) o[r * cols + col] = p[col * rows + r] / s.divisor;
    return out;
  }
  if (s.first_channels) {  // [1, C, 4, 4], or [1, B*C, 4, 4] / [B, C, 4, 4] with B equal copies
    if (v.ndim() != 4 || v.dim(2) != want.at(2) || v.dim(3) != want.at(3) || v.numel() % n != 0) mismatch(v.shape());
  } else if (v.shape() != want && !same_squeezed(v.shape(), want)) {
    mismatch(v.shape());
  }
  for (int64_t i = 0; i < n; ++i) o[i] = p[i] / s.divisor;
  return out;
}

StateDict by_structure(const OnnxModel& m, const std::string& file) {
  const Collected c = collect(m, file);
  std::map<std::string, Source> sources;
  const GpenConfig cfg = assign_by_structure(c, file, sources);
  StateDict sd;
  for (const auto& [k, shape] : GpenModel::expected_layout(cfg)) {
    auto it = sources.find(k);
    if (it != sources.end()) sd.tensors[k] = recover(k, it->second, shape, file);
  }
  add_missing_blur_kernels(sd);
  for (const auto& [k, s] : sources)
    if (!sd.has(k)) fail("'", file, "': internal: '", k, "' mapped from '", s.constant.name, "' is not a GPEN key");
  sd.metadata["gpen.onnx.mapping"] = "graph";
  return sd;
}

// A graph input of N x 3 x S x S must agree with the size the weights imply.
void check_graph_input(const OnnxModel& m, const StateDict& sd, const std::string& file) {
  if (!sd.has("ecd0.0.0.weight")) return;
  int stages = 1;
  while (sd.has(key("ecd", stages, ".0.1.weight"))) ++stages;
  const int64_t size = int64_t(1) << (stages + 1);
  for (const auto& in : m.inputs) {
    if (m.initializers.count(in.name) || in.dims.size() != 4) continue;
    const int64_t h = in.dims[2], w = in.dims[3];
    if ((h > 0 && h != size) || (w > 0 && w != size) || (in.dims[1] > 0 && in.dims[1] != 3))
      fail("'", file, "': graph input '", in.name, "' is ", shape_str(in.dims), " but the weights are GPEN-", size);
  }
}

}  // namespace

StateDict gpen_state_dict_from_onnx(const OnnxModel& model, const std::string& name) {
  StateDict sd = has_state_dict_names(model) ? by_name(model) : by_structure(model, name);
  check_graph_input(model, sd, name);
  if (!model.producer.empty()) sd.metadata["gpen.onnx.producer"] = model.producer;
  return sd;
}

StateDict load_onnx_gpen(const std::string& path) { return gpen_state_dict_from_onnx(read_onnx(path), path); }

}  // namespace gpen
