#include "core/models/rrdbnet.h"

#include <cmath>
#include <random>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/memory.h"

namespace gpen {
namespace {

constexpr float kLeakySlope = 0.2f;
constexpr float kResidualScale = 0.2f;  // both the RDB and the RRDB residuals

std::string block_name(int b) { return "body." + std::to_string(b); }
std::string rdb_name(int b, int r) { return block_name(b) + ".rdb" + std::to_string(r); }

int conv_dim(const StateDict& sd, const std::string& key, int dim) {
  const Tensor& t = sd.at(key);
  if (t.ndim() != 4) fail("RRDBNet: key '", key, "' must be a 4-D conv weight, got ", shape_str(t.shape()));
  return int(t.dim(dim));
}

RrdbConfig infer_config(const StateDict& sd) {
  if (!sd.has("conv_first.weight") || !sd.has("conv_last.weight"))
    fail("not an RRDBNet checkpoint: no 'conv_first.weight' / 'conv_last.weight' (", sd.tensors.size(), " tensors)");
  RrdbConfig cfg;
  const int in = conv_dim(sd, "conv_first.weight", 1);
  if (in != 12 && in != 3)
    fail("RRDBNet: conv_first takes ", in, " channels; expected 12 (x2, pixel-unshuffled) or 3 (x4)");
  cfg.scale = in == 12 ? 2 : 4;
  cfg.features = conv_dim(sd, "conv_first.weight", 0);
  cfg.grow = sd.has("body.0.rdb1.conv1.weight") ? conv_dim(sd, "body.0.rdb1.conv1.weight", 0) : 32;
  cfg.blocks = 0;
  while (sd.has(block_name(cfg.blocks) + ".rdb1.conv1.weight")) ++cfg.blocks;
  return cfg;
}

}  // namespace

std::string RrdbConfig::describe() const {
  std::ostringstream os;
  os << "RRDBNet x" << scale << " (" << blocks << " blocks, " << features << " features, grow " << grow << ")";
  return os.str();
}

RrdbConfig realesrnet_config(int scale) {
  if (scale != 2 && scale != 4) fail("RRDBNet: scale must be 2 or 4, got ", scale);
  RrdbConfig c;
  c.scale = scale;
  return c;
}

std::vector<std::pair<std::string, Shape>> RrdbNetModel::expected_layout(const RrdbConfig& cfg) {
  std::vector<std::pair<std::string, Shape>> rows;
  auto conv = [&](const std::string& p, int64_t cin, int64_t cout) {
    rows.push_back({p + ".weight", {cout, cin, 3, 3}});
    rows.push_back({p + ".bias", {cout}});
  };
  const int64_t F = cfg.features, G = cfg.grow;
  conv("conv_first", cfg.scale == 2 ? 12 : 3, F);
  for (int b = 0; b < cfg.blocks; ++b)
    for (int r = 1; r <= 3; ++r) {
      for (int i = 1; i <= 4; ++i) conv(rdb_name(b, r) + ".conv" + std::to_string(i), F + (i - 1) * G, G);
      conv(rdb_name(b, r) + ".conv5", F + 4 * G, F);
    }
  for (const char* p : {"conv_body", "conv_up1", "conv_up2", "conv_hr"}) conv(p, F, F);
  conv("conv_last", F, 3);
  return rows;
}

RrdbNetModel RrdbNetModel::from_state_dict(const StateDict& sd) {
  RrdbNetModel m;
  m.cfg_ = infer_config(sd);
  const auto layout = expected_layout(m.cfg_);
  m.params_ = sd.expect_exact_layout(layout, m.cfg_.describe());
  for (size_t i = 0; i < layout.size(); i += 2) {  // (weight, bias) pairs
    const std::string p = layout[i].first.substr(0, layout[i].first.size() - std::string(".weight").size());
    m.convs_.put(p, Conv{sd.f32(layout[i].first), sd.f32(layout[i + 1].first)});
  }
  return m;
}

RrdbNetModel RrdbNetModel::load(const std::string& path) {
  RrdbNetModel m = from_state_dict(load_weights(path));
  release_free_heap();  // the checkpoint's own copy, freed just now
  return m;
}

struct RrdbBuilder {
  const RrdbNetModel& m;
  Graph& g;
  std::set<std::string> used;

  // 3x3 conv, zero pad 1, bias, then y = act(y) * gain.
  int conv(const std::string& name, int x, float slope, float gain = 1.f, int out = -1) {
    const RrdbNetModel::Conv& c = m.conv(name);
    used.insert(name);
    cpu::ConvDesc d;
    d.K = int(c.w.dim(0));
    d.C = int(c.w.dim(1));
    d.kh = d.kw = 3;
    d.pad = 1;
    EpilogueSpec e = EpilogueSpec::with_bias(c.b);
    e.slope = slope;
    e.gain = gain;
    return g.conv2d(name, x, d, c.w, e, -1, -1, out);
  }

  // One dense block. Its growing concat [x, x1, .., x4] is one buffer whose channel slices the
  // convs write in place; x is copied into the first slice.
  int rdb(const std::string& name, int x) {
    const Shape xs = g.value(x).shape;
    const int64_t F = xs[1], G = m.config().grow;
    const int dense = g.buffer(name + ".concat", {xs[0], F + 4 * G, xs[2], xs[3]});
    g.scale_bias_act(name + ".in", x, 1.f, EpilogueSpec{}, g.channel_slice(dense, 0, F));
    for (int i = 1; i <= 4; ++i) {
      const int64_t c0 = F + (i - 1) * G;
      conv(name + ".conv" + std::to_string(i), g.channel_slice(dense, 0, c0), kLeakySlope, 1.f,
           g.channel_slice(dense, c0, c0 + G));
    }
    const int scaled = conv(name + ".conv5", dense, 1.f, kResidualScale);
    return g.add(name + ".residual", scaled, x);
  }

  int rrdb(int b, int x) {
    int y = x;
    for (int r = 1; r <= 3; ++r) y = rdb(rdb_name(b, r), y);
    const int scaled = g.scale_bias_act(block_name(b) + ".scale", y, kResidualScale, EpilogueSpec{});
    return g.add(block_name(b) + ".residual", scaled, x);
  }

  int upsample_conv(const std::string& name, int x) {
    const Shape& s = g.value(x).shape;
    return conv(name, g.upsample_nearest(name + ".up", x, s[2] * 2, s[3] * 2), kLeakySlope);
  }
};

Graph RrdbNetModel::build_graph(int batch, int height, int width) const {
  if (batch < 1 || height < 1 || width < 1) fail("RRDBNet: bad input size ", batch, "x3x", height, "x", width);
  if (cfg_.scale == 2 && (height % 2 || width % 2))
    fail("RRDBNet x2: the input size must be even (pixel-unshuffle by 2), got ", height, "x", width);
  Graph g;
  RrdbBuilder b{*this, g, {}};
  int x = g.input("input", {batch, 3, height, width});
  if (cfg_.scale == 2) x = g.pixel_unshuffle("unshuffle", x, 2);
  const int feat = b.conv("conv_first", x, 1.f);
  int body = feat;
  for (int i = 0; i < cfg_.blocks; ++i) body = b.rrdb(i, body);
  x = g.add("body.skip", feat, b.conv("conv_body", body, 1.f));
  x = b.upsample_conv("conv_up1", x);
  x = b.upsample_conv("conv_up2", x);
  const int out = b.conv("conv_last", b.conv("conv_hr", x, kLeakySlope), 1.f);
  g.mark_output(out);
  if (b.used.size() != convs_.size())
    fail("RRDBNet: internal: the graph uses ", b.used.size(), " of ", convs_.size(), " convs");
  return g;
}

StateDict rrdbnet_random_state_dict(const RrdbConfig& cfg, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  StateDict sd;
  for (const auto& [k, shape] : RrdbNetModel::expected_layout(cfg)) {
    Tensor t = Tensor::empty(DType::F32, shape);
    float* p = t.data<float>();
    const int64_t n = t.numel();
    float s = shape.size() == 4 ? std::sqrt(1.f / float(shape[1] * shape[2] * shape[3])) : 0.05f;
    // Activations grow through the body; a small last conv keeps most outputs inside [0, 1] so
    // that 8-bit comparisons of the result are not all about clipped values.
    if (k == "conv_last.weight") s *= 0.05f;
    for (int64_t i = 0; i < n; ++i) p[i] = normal(rng) * s;
    if (k == "conv_last.bias")
      for (int64_t i = 0; i < n; ++i) p[i] += 0.5f;
    sd.tensors[k] = t;
  }
  return sd;
}

}  // namespace gpen
