#include "core/models/parsenet.h"

#include <cmath>
#include <random>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/memory.h"
#include "core/models/batch_norm.h"

namespace gpen {
namespace {

constexpr float kLeakySlope = 0.2f;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string indexed(const std::string& stage, int i) { return stage + "." + std::to_string(i); }

enum class Scale { None, Down, Up };

// One residual block: where it sits, its widths and whether it resamples.
struct BlockSpec {
  std::string prefix;
  int cin, cout;
  Scale scale;
  bool has_shortcut() const { return scale != Scale::None || cin != cout; }
};

std::vector<BlockSpec> blocks_of(const ParseNetConfig& cfg) {
  std::vector<BlockSpec> blocks;
  int ch = cfg.base_channels;
  for (size_t i = 0; i < cfg.encoder_channels.size(); ++i) {
    blocks.push_back({indexed("encoder", int(i) + 1), ch, cfg.encoder_channels[i], Scale::Down});
    ch = cfg.encoder_channels[i];
  }
  for (int i = 0; i < cfg.body_blocks; ++i) blocks.push_back({indexed("body", i), ch, ch, Scale::None});
  for (size_t i = 0; i < cfg.decoder_channels.size(); ++i) {
    blocks.push_back({indexed("decoder", int(i)), ch, cfg.decoder_channels[i], Scale::Up});
    ch = cfg.decoder_channels[i];
  }
  return blocks;
}

int head_channels(const ParseNetConfig& cfg) {
  if (!cfg.decoder_channels.empty()) return cfg.decoder_channels.back();
  return cfg.encoder_channels.empty() ? cfg.base_channels : cfg.encoder_channels.back();
}

struct LayoutBuilder {
  std::vector<std::pair<std::string, Shape>> rows;
  void conv(const std::string& p, int64_t cin, int64_t cout, bool with_bias) {
    rows.push_back({p + ".conv2d.weight", {cout, cin, 3, 3}});
    if (with_bias) rows.push_back({p + ".conv2d.bias", {cout}});
  }
  void conv_bn(const std::string& p, int64_t cin, int64_t cout) {
    conv(p, cin, cout, false);
    for (const char* s : {"weight", "bias", "running_mean", "running_var"})
      rows.push_back({p + ".norm.norm." + s, {cout}});
    rows.push_back({p + ".norm.norm.num_batches_tracked", {}});
  }
};

// The number of "<stage>.<i>." indices present, checking they run 0..n-1 without gaps.
int count_indexed(const StateDict& sd, const std::string& stage) {
  std::set<int> seen;
  const std::string p = stage + ".";
  for (const auto& [k, t] : sd.tensors) {
    if (k.rfind(p, 0) != 0) continue;
    const size_t dot = k.find('.', p.size());
    try {
      seen.insert(std::stoi(k.substr(p.size(), dot - p.size())));
    } catch (const std::exception&) {
      fail("ParseNet: unexpected key '", k, "'");
    }
  }
  if (!seen.empty() && (*seen.begin() != 0 || *seen.rbegin() != int(seen.size()) - 1))
    fail("ParseNet: the '", stage, ".N' blocks are not numbered 0..", seen.size() - 1);
  return int(seen.size());
}

int out_channels(const StateDict& sd, const std::string& key) {
  const Tensor& t = sd.at(key);
  if (t.ndim() != 4) fail("ParseNet: key '", key, "' must be a 4-D conv weight, got ", shape_str(t.shape()));
  return int(t.dim(0));
}

ParseNetConfig infer_config(const StateDict& sd) {
  if (!sd.has("encoder.0.conv2d.weight") || !sd.has("out_mask_conv.conv2d.weight"))
    fail("not a ParseNet checkpoint: no 'encoder.0.conv2d.weight' / 'out_mask_conv.conv2d.weight' (",
         sd.tensors.size(), " tensors)");
  ParseNetConfig cfg;
  cfg.base_channels = out_channels(sd, "encoder.0.conv2d.weight");
  cfg.encoder_channels.clear();
  cfg.decoder_channels.clear();
  const int enc = count_indexed(sd, "encoder");
  for (int i = 1; i < enc; ++i) cfg.encoder_channels.push_back(out_channels(sd, indexed("encoder", i) + ".conv1.conv2d.weight"));
  cfg.body_blocks = count_indexed(sd, "body");
  const int dec = count_indexed(sd, "decoder");
  for (int i = 0; i < dec; ++i) cfg.decoder_channels.push_back(out_channels(sd, indexed("decoder", i) + ".conv1.conv2d.weight"));
  cfg.classes = out_channels(sd, "out_mask_conv.conv2d.weight");
  return cfg;
}

}  // namespace

std::string ParseNetConfig::describe() const {
  std::ostringstream os;
  os << "ParseNet (base " << base_channels << ", " << encoder_channels.size() << " down, " << body_blocks
     << " body, " << decoder_channels.size() << " up blocks, " << classes << " classes)";
  return os.str();
}

ParseNetConfig parsenet_official_config() { return ParseNetConfig{}; }

std::vector<std::pair<std::string, Shape>> ParseNetModel::expected_layout(const ParseNetConfig& cfg) {
  LayoutBuilder L;
  L.conv("encoder.0", 3, cfg.base_channels, true);
  for (const BlockSpec& b : blocks_of(cfg)) {
    if (b.has_shortcut()) L.conv(b.prefix + ".shortcut_func", b.cin, b.cout, true);
    L.conv_bn(b.prefix + ".conv1", b.cin, b.cout);
    L.conv_bn(b.prefix + ".conv2", b.cout, b.cout);
  }
  L.conv("out_img_conv", head_channels(cfg), 3, true);
  L.conv("out_mask_conv", head_channels(cfg), cfg.classes, true);
  return L.rows;
}

ParseNetModel ParseNetModel::from_state_dict(const StateDict& sd) {
  ParseNetModel m;
  m.cfg_ = infer_config(sd);
  const auto layout = expected_layout(m.cfg_);
  m.params_ = sd.expect_exact_layout(layout, m.cfg_.describe());

  for (const auto& [k, shape] : layout) {
    if (!ends_with(k, ".conv2d.weight")) continue;
    const std::string p = k.substr(0, k.size() - std::string(".conv2d.weight").size());
    const Tensor w = sd.f32(k);
    if (sd.has(p + ".conv2d.bias")) {
      m.convs_.put(p, Conv{w, sd.f32(p + ".conv2d.bias")});
      continue;
    }
    const std::string bn = p + ".norm.norm";
    m.convs_.put(p, fold_batch_norm(w, sd.f32(bn + ".weight"), sd.f32(bn + ".bias"), sd.f32(bn + ".running_mean"),
                                    sd.f32(bn + ".running_var"), bn));
  }
  return m;
}

ParseNetModel ParseNetModel::load(const std::string& path) {
  ParseNetModel m = from_state_dict(load_weights(path));
  release_free_heap();  // the checkpoint's own copy, freed just now
  return m;
}

struct ParseNetBuilder {
  const ParseNetModel& m;
  Graph& g;
  std::set<std::string> used;

  // GPEN's ConvLayer: [nearest x2] -> reflection pad 1 -> 3x3 conv -> (folded BN) -> [lrelu].
  int conv_layer(const std::string& name, int x, Scale scale, bool act) {
    const ParseNetModel::Conv& c = m.conv(name);
    used.insert(name);
    if (scale == Scale::Up) {
      const Shape& s = g.value(x).shape;
      x = g.upsample_nearest(name + ".up", x, s[2] * 2, s[3] * 2);
    }
    x = g.reflect_pad2d(name + ".pad", x, 1);
    cpu::ConvDesc d;
    d.K = int(c.w.dim(0));
    d.C = int(c.w.dim(1));
    d.kh = d.kw = 3;
    d.stride = scale == Scale::Down ? 2 : 1;
    d.pad = 0;
    EpilogueSpec e = EpilogueSpec::with_bias(c.b);
    if (act) e.slope = kLeakySlope;
    return g.conv2d(name, x, d, c.w, e);
  }

  int block(const BlockSpec& b, int x) {
    const int identity = b.has_shortcut() ? conv_layer(b.prefix + ".shortcut_func", x, b.scale, false) : x;
    const int r = conv_layer(b.prefix + ".conv1", x, b.scale == Scale::Up ? Scale::Up : Scale::None, true);
    const int res = conv_layer(b.prefix + ".conv2", r, b.scale == Scale::Down ? Scale::Down : Scale::None, false);
    return g.add(b.prefix + ".add", identity, res);
  }
};

Graph ParseNetModel::build_graph(int batch, int size) const {
  if (batch < 1 || size < 2) fail("ParseNet: bad input size ", batch, "x3x", size, "x", size);
  Graph g;
  ParseNetBuilder b{*this, g, {}};
  int x = b.conv_layer("encoder.0", g.input("input", {batch, 3, size, size}), Scale::None, false);
  const std::vector<BlockSpec> blocks = blocks_of(cfg_);
  size_t next = 0;
  auto run_stage = [&](const std::string& stage) {
    for (; next < blocks.size() && blocks[next].prefix.rfind(stage + ".", 0) == 0; ++next) x = b.block(blocks[next], x);
  };
  run_stage("encoder");
  const int feat = x;
  run_stage("body");
  x = g.add("body.skip", feat, x);  // x = feat + body(feat)
  run_stage("decoder");
  const int mask = b.conv_layer("out_mask_conv", x, Scale::None, false);
  const int image = b.conv_layer("out_img_conv", x, Scale::None, false);
  g.mark_output(mask);
  g.mark_output(image);
  if (b.used.size() != convs_.size())
    fail("ParseNet: internal: the graph uses ", b.used.size(), " of ", convs_.size(), " convs");
  return g;
}

Tensor parsenet_input(const Image& img) {
  const Image rgb = img.channels == 3 ? img : to_rgb(img);
  const int64_t H = rgb.height, W = rgb.width, plane = H * W;
  Tensor t = Tensor::empty(DType::F32, {1, 3, H, W});
  float* p = t.data<float>();
  for (int64_t i = 0; i < plane; ++i)
    for (int c = 0; c < 3; ++c) p[c * plane + i] = float(rgb.pixels[size_t(i * 3 + c)]) / 255.f * 2.f - 1.f;
  return t;
}

StateDict parsenet_random_state_dict(const ParseNetConfig& cfg, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> uni(0.5f, 1.5f);
  StateDict sd;
  for (const auto& [k, shape] : ParseNetModel::expected_layout(cfg)) {
    if (shape.empty()) {  // num_batches_tracked
      Tensor t = Tensor::empty(DType::I64, {});
      t.data<int64_t>()[0] = 1000;
      sd.tensors[k] = t;
      continue;
    }
    Tensor t = Tensor::empty(DType::F32, shape);
    float* p = t.data<float>();
    const int64_t n = t.numel();
    if (shape.size() == 4) {
      const float s = std::sqrt(1.f / float(shape[1] * shape[2] * shape[3]));
      for (int64_t i = 0; i < n; ++i) p[i] = normal(rng) * s;
    } else if (ends_with(k, ".running_var")) {
      for (int64_t i = 0; i < n; ++i) p[i] = uni(rng);
    } else if (ends_with(k, ".norm.norm.weight")) {
      for (int64_t i = 0; i < n; ++i) p[i] = 1.f + 0.1f * normal(rng);
    } else {
      for (int64_t i = 0; i < n; ++i) p[i] = 0.1f * normal(rng);
    }
    sd.tensors[k] = t;
  }
  return sd;
}

}  // namespace gpen
