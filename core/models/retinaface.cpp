#include "core/models/retinaface.h"

#include <cmath>
#include <cstring>
#include <random>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/memory.h"
#include "core/models/batch_norm.h"
#include "kernels/cpu/photo_rows.h"

namespace gpen {
namespace {


std::string cat(const std::string& a, int i) { return a + std::to_string(i); }

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// --- the published layouts -----------------------------------------------------------------------

struct LayoutBuilder {
  std::vector<std::pair<std::string, Shape>> rows;
  void add(const std::string& k, Shape s) { rows.push_back({k, std::move(s)}); }
  void bn(const std::string& p, int64_t c) {
    add(p + ".weight", {c});
    add(p + ".bias", {c});
    add(p + ".running_mean", {c});
    add(p + ".running_var", {c});
    add(p + ".num_batches_tracked", {});
  }
  // nn.Sequential(conv, bn[, act]): "<p>.0.weight", "<p>.1.*"
  void conv_bn(const std::string& p, int64_t cin, int64_t cout, int64_t k, int64_t groups = 1) {
    add(p + ".0.weight", {cout, cin / groups, k, k});
    bn(p + ".1", cout);
  }
};

// MobileNetV1-0.25 of Pytorch_Retinaface: (in, out, stride) of every block; block 0 of stage1 is
// conv_bn, all others conv_dw (depthwise 3x3 + bn + lrelu, pointwise 1x1 + bn + lrelu).
struct MbBlock {
  int cin, cout, stride;
};
const std::vector<std::vector<MbBlock>>& mobilenet_stages() {
  static const std::vector<std::vector<MbBlock>> s = {
      {{3, 8, 2}, {8, 16, 1}, {16, 32, 2}, {32, 32, 1}, {32, 64, 2}, {64, 64, 1}},
      {{64, 128, 2}, {128, 128, 1}, {128, 128, 1}, {128, 128, 1}, {128, 128, 1}, {128, 128, 1}},
      {{128, 256, 2}, {256, 256, 1}}};
  return s;
}

// torchvision resnet50: (blocks, planes, stride) per layer; expansion 4.
struct ResLayer {
  int blocks, planes, stride;
};
const ResLayer kResLayers[4] = {{3, 64, 1}, {4, 128, 2}, {6, 256, 2}, {3, 512, 2}};

void body_layout(LayoutBuilder& L, RetinaFaceBody body) {
  if (body == RetinaFaceBody::MobileNet025) {
    const auto& stages = mobilenet_stages();
    for (size_t s = 0; s < stages.size(); ++s)
      for (size_t b = 0; b < stages[s].size(); ++b) {
        const MbBlock& m = stages[s][b];
        const std::string p = "body.stage" + std::to_string(s + 1) + "." + std::to_string(b);
        if (s == 0 && b == 0) {
          L.conv_bn(p, m.cin, m.cout, 3);
        } else {
          L.conv_bn(p, m.cin, m.cin, 3, m.cin);  // .0 depthwise, .1 bn
          L.add(p + ".3.weight", {m.cout, m.cin, 1, 1});
          L.bn(p + ".4", m.cout);
        }
      }
    return;
  }
  L.add("body.conv1.weight", {64, 3, 7, 7});
  L.bn("body.bn1", 64);
  int64_t in = 64;
  for (int l = 0; l < 4; ++l) {
    const ResLayer& r = kResLayers[l];
    const int64_t planes = r.planes, out = planes * 4;
    for (int b = 0; b < r.blocks; ++b) {
      const std::string p = "body.layer" + std::to_string(l + 1) + "." + std::to_string(b);
      L.add(p + ".conv1.weight", {planes, in, 1, 1});
      L.bn(p + ".bn1", planes);
      L.add(p + ".conv2.weight", {planes, planes, 3, 3});
      L.bn(p + ".bn2", planes);
      L.add(p + ".conv3.weight", {out, planes, 1, 1});
      L.bn(p + ".bn3", out);
      if (b == 0) {
        L.add(p + ".downsample.0.weight", {out, in, 1, 1});
        L.bn(p + ".downsample.1", out);
      }
      in = out;
    }
  }
}

}  // namespace

const char* retinaface_body_name(RetinaFaceBody b) {
  return b == RetinaFaceBody::MobileNet025 ? "mobilenet0.25" : "resnet50";
}

std::string RetinaFaceConfig::describe() const {
  std::ostringstream os;
  os << "RetinaFace " << retinaface_body_name(body) << " (out_channel " << out_channel << ")";
  return os.str();
}

RetinaFaceConfig retinaface_config(RetinaFaceBody body) {
  RetinaFaceConfig c;
  c.body = body;
  if (body == RetinaFaceBody::MobileNet025) {
    c.out_channel = 64;
    c.in_channels = {64, 128, 256};
  } else {
    c.out_channel = 256;
    c.in_channels = {512, 1024, 2048};
  }
  c.neck_slope = c.out_channel <= 64 ? 0.1f : 0.f;
  return c;
}

std::vector<std::pair<std::string, Shape>> RetinaFaceModel::expected_layout(const RetinaFaceConfig& cfg) {
  LayoutBuilder L;
  body_layout(L, cfg.body);
  const int64_t oc = cfg.out_channel;
  for (int i = 0; i < 3; ++i) L.conv_bn(cat("fpn.output", i + 1), cfg.in_channels[size_t(i)], oc, 1);
  L.conv_bn("fpn.merge1", oc, oc, 3);
  L.conv_bn("fpn.merge2", oc, oc, 3);
  for (int i = 1; i <= 3; ++i) {
    const std::string p = cat("ssh", i);
    L.conv_bn(p + ".conv3X3", oc, oc / 2, 3);
    L.conv_bn(p + ".conv5X5_1", oc, oc / 4, 3);
    L.conv_bn(p + ".conv5X5_2", oc / 4, oc / 4, 3);
    L.conv_bn(p + ".conv7X7_2", oc / 4, oc / 4, 3);
    L.conv_bn(p + ".conv7x7_3", oc / 4, oc / 4, 3);
  }
  const int64_t A = RetinaFaceConfig::kAnchors;
  for (const auto& [head, per] : {std::pair<const char*, int64_t>{"ClassHead", 2}, {"BboxHead", 4},
                                  {"LandmarkHead", 10}})
    for (int i = 0; i < 3; ++i) {
      const std::string p = std::string(head) + "." + std::to_string(i) + ".conv1x1";
      L.add(p + ".weight", {A * per, oc, 1, 1});
      L.add(p + ".bias", {A * per});
    }
  return L.rows;
}

int RetinaFaceModel::level_size(int size, int level) {
  const int step = 8 << level;
  return (size + step - 1) / step;
}

static RetinaFaceConfig infer_config(const StateDict& sd) {
  bool mobilenet = false, resnet = false;
  for (const auto& [k, t] : sd.tensors) {
    if (k.rfind("body.stage1.", 0) == 0) mobilenet = true;
    if (k.rfind("body.layer1.", 0) == 0 || k.rfind("body.conv1.", 0) == 0) resnet = true;
  }
  if (mobilenet && resnet) fail("RetinaFace checkpoint has both body.stage1.* (mobilenet) and body.layer1.* (resnet) keys");
  if (!mobilenet && !resnet) {
    if (!sd.has("fpn.output1.0.weight"))
      fail("not a RetinaFace checkpoint: no 'body.stage1.*' / 'body.layer1.*' / 'fpn.output1.0.weight' keys (", sd.tensors.size(),
           " tensors)");
    fail("RetinaFace checkpoint: unknown body (no 'body.stage1.*' or 'body.layer1.*' keys)");
  }
  return retinaface_config(mobilenet ? RetinaFaceBody::MobileNet025 : RetinaFaceBody::ResNet50);
}

RetinaFaceModel RetinaFaceModel::from_state_dict(const StateDict& sd_in) {
  // Checkpoints saved from nn.DataParallel prefix every key with "module." (the .pth reader strips
  // it already; other sources may not).
  StateDict stripped;
  bool prefixed = false;
  for (const auto& [k, t] : sd_in.tensors) prefixed |= k.rfind("module.", 0) == 0;
  if (prefixed) {
    stripped.metadata = sd_in.metadata;
    for (const auto& [k, t] : sd_in.tensors) stripped.tensors[k.rfind("module.", 0) == 0 ? k.substr(7) : k] = t;
  }
  const StateDict& sd = prefixed ? stripped : sd_in;
  RetinaFaceModel m;
  m.cfg_ = infer_config(sd);
  const auto layout = expected_layout(m.cfg_);
  m.params_ = sd.expect_exact_layout(layout, m.cfg_.describe());

  std::set<std::string> consumed;
  auto take = [&](const std::string& k) {
    consumed.insert(k);
    return sd.f32(k);
  };
  // Fold each BatchNorm into the conv before it.
  auto fold = [&](const std::string& name, const std::string& wkey, const std::string& bn) {
    m.convs_.put(name, fold_batch_norm(take(wkey), take(bn + ".weight"), take(bn + ".bias"),
                                       take(bn + ".running_mean"), take(bn + ".running_var"), bn));
  };
  // Every "<p>.0.weight" followed by "<p>.1.*" BN (the Sequential form), and the ResNet names.
  for (const auto& [k, shape] : layout) {
    if (ends_with(k, ".0.weight") && shape.size() == 4) {
      const std::string p = k.substr(0, k.size() - 9);
      fold(p, k, p + ".1");
    } else if (ends_with(k, ".3.weight") && k.rfind("body.stage", 0) == 0) {
      const std::string p = k.substr(0, k.size() - 9);
      fold(p + ".pw", k, p + ".4");
    } else if (k.rfind("body.", 0) == 0 && shape.size() == 4) {  // resnet: convN.weight + bnN
      const std::string p = k.substr(0, k.size() - 7);     // "...convN"
      const size_t dot = p.rfind('.');
      const std::string bn = p.substr(0, dot + 1) + "bn" + p.substr(dot + 5);
      fold(p, k, bn);
    }
  }
  // The three heads of each level fused into one 1x1 conv: [cls(4) | bbox(8) | ldm(20)].
  const int64_t oc = m.cfg_.out_channel, KH = RetinaFaceConfig::kHeadChannels;
  for (int i = 0; i < 3; ++i) {
    Conv c{Tensor::empty(DType::F32, {KH, oc, 1, 1}), Tensor::empty(DType::F32, {KH})};
    int64_t row = 0;
    for (const char* head : {"ClassHead.", "BboxHead.", "LandmarkHead."}) {
      const std::string p = std::string(head) + std::to_string(i) + ".conv1x1";
      const Tensor w = take(p + ".weight"), b = take(p + ".bias");
      std::memcpy(c.w.data<float>() + row * oc, w.data<float>(), w.nbytes());
      std::memcpy(c.b.data<float>() + row, b.data<float>(), b.nbytes());
      row += w.dim(0);
    }
    m.convs_.put(cat("head", i), c);
  }
  for (const auto& [k, shape] : layout)
    if (!ends_with(k, ".num_batches_tracked") && !consumed.count(k))
      fail("RetinaFace: internal: key '", k, "' is not used by the ", m.cfg_.describe(), " graph");
  return m;
}

RetinaFaceModel RetinaFaceModel::load(const std::string& path) {
  RetinaFaceModel m = from_state_dict(load_weights(path));
  release_free_heap();  // the checkpoint's own copy, freed just now
  return m;
}

struct RetinaFaceBuilder {
  const RetinaFaceModel& m;
  Graph& g;
  std::set<std::string> used;

  EpilogueSpec epi(const RetinaFaceModel::Conv& c, float slope) const {
    EpilogueSpec e = EpilogueSpec::with_bias(c.b);
    e.slope = slope;
    return e;
  }
  // Conv (+ folded BN) + leaky(slope) (1 = none, 0 = ReLU); square kernel, pad k/2.
  int conv(const std::string& name, int x, int stride, float slope, int groups = 1, int out = -1) {
    const RetinaFaceModel::Conv& c = m.conv(name);
    used.insert(name);
    cpu::ConvDesc d;
    d.K = int(c.w.dim(0));
    d.C = int(c.w.dim(1)) * groups;
    d.kh = int(c.w.dim(2));
    d.kw = int(c.w.dim(3));
    d.stride = stride;
    d.pad = d.kh / 2;
    d.groups = groups;
    return g.conv2d(name, x, d, c.w, epi(c, slope), -1, -1, out);
  }

  std::array<int, 3> mobilenet(int x) {
    const auto& stages = mobilenet_stages();
    std::array<int, 3> feats{};
    for (size_t s = 0; s < stages.size(); ++s) {
      for (size_t b = 0; b < stages[s].size(); ++b) {
        const MbBlock& mb = stages[s][b];
        const std::string p = "body.stage" + std::to_string(s + 1) + "." + std::to_string(b);
        if (s == 0 && b == 0) {
          x = conv(p, x, mb.stride, 0.1f);
        } else {
          x = conv(p, x, mb.stride, 0.1f, mb.cin);
          x = conv(p + ".pw", x, 1, 0.1f);
        }
      }
      feats[s] = x;
    }
    return feats;
  }

  std::array<int, 3> resnet50(int x) {
    x = conv("body.conv1", x, 2, 0.f);
    x = g.max_pool2d("body.maxpool", x, 3, 2, 1);
    std::array<int, 3> feats{};
    for (int l = 0; l < 4; ++l) {
      const ResLayer& r = kResLayers[l];
      for (int b = 0; b < r.blocks; ++b) {
        const std::string p = "body.layer" + std::to_string(l + 1) + "." + std::to_string(b);
        const int stride = b == 0 ? r.stride : 1;
        int y = conv(p + ".conv1", x, 1, 0.f);
        y = conv(p + ".conv2", y, stride, 0.f);
        y = conv(p + ".conv3", y, 1, 1.f);
        const int identity = b == 0 ? conv(p + ".downsample", x, stride, 1.f) : x;
        const int sum = g.add(p + ".add", y, identity);
        EpilogueSpec relu;
        relu.slope = 0.f;
        x = g.scale_bias_act(p + ".relu", sum, 1.f, relu);
      }
      if (l >= 1) feats[size_t(l - 1)] = x;
    }
    return feats;
  }

  int ssh(const std::string& p, int f) {
    const float slope = m.config().neck_slope;
    const Shape fs = g.value(f).shape;
    const int64_t oc = m.config().out_channel;
    const int buf = g.buffer(p + ".out", {fs[0], oc, fs[2], fs[3]});
    conv(p + ".conv3X3", f, 1, 0.f, 1, g.channel_slice(buf, 0, oc / 2));
    const int c5 = conv(p + ".conv5X5_1", f, 1, slope);
    conv(p + ".conv5X5_2", c5, 1, 0.f, 1, g.channel_slice(buf, oc / 2, oc / 2 + oc / 4));
    const int c7 = conv(p + ".conv7X7_2", c5, 1, slope);
    conv(p + ".conv7x7_3", c7, 1, 0.f, 1, g.channel_slice(buf, oc / 2 + oc / 4, oc));
    return buf;
  }
};

Graph RetinaFaceModel::build_graph(int batch, int height, int width) const {
  if (batch < 1 || height < 1 || width < 1)
    fail("RetinaFace: bad input size ", batch, "x3x", height, "x", width);
  Graph g;
  RetinaFaceBuilder b{*this, g, {}};
  const int x = g.input("input", {batch, 3, height, width});
  const std::array<int, 3> feats = cfg_.body == RetinaFaceBody::MobileNet025 ? b.mobilenet(x) : b.resnet50(x);
  const float slope = cfg_.neck_slope;
  const int o1 = b.conv("fpn.output1", feats[0], 1, slope);
  int o2 = b.conv("fpn.output2", feats[1], 1, slope);
  const int o3 = b.conv("fpn.output3", feats[2], 1, slope);
  const Shape s1 = g.value(o1).shape, s2 = g.value(o2).shape;
  o2 = b.conv("fpn.merge2", g.add("fpn.add2", o2, g.upsample_nearest("fpn.up3", o3, s2[2], s2[3])), 1, slope);
  const int m1 = b.conv("fpn.merge1", g.add("fpn.add1", o1, g.upsample_nearest("fpn.up2", o2, s1[2], s1[3])), 1, slope);
  const int levels[3] = {m1, o2, o3};
  for (int i = 0; i < 3; ++i) {
    const int s = b.ssh(cat("ssh", i + 1), levels[i]);
    const int h = b.conv(cat("head", i), s, 1, 1.f);
    const Shape hs = g.value(h).shape;
    if (hs[2] != level_size(height, i) || hs[3] != level_size(width, i))
      fail("RetinaFace: internal: level ", i, " is ", shape_str(hs), " for a ", height, "x", width, " input");
    g.mark_output(h);
  }
  if (b.used.size() != convs_.size())  // every tensor of the checkpoint ends up in the graph
    fail("RetinaFace: internal: the graph uses ", b.used.size(), " of ", convs_.size(), " prepared convs");
  return g;
}

constexpr float kMeanRgb[3] = {123.f, 117.f, 104.f};  // the reference's (104, 117, 123), in RGB order

const RgbBytesIo& retinaface_rgb_bytes_io() {
  static const RgbBytesIo io = [] {
    RgbBytesIo r;
    r.reverse_channels = true;  // planes B, G, R from RGB pixels
    for (int plane = 0; plane < 3; ++plane)
      for (int v = 0; v < 256; ++v) r.in_levels[size_t(plane) * 256 + size_t(v)] = float(v) - kMeanRgb[2 - plane];
    return r;
  }();
  return io;
}

Tensor retinaface_input(const Image& img, ThreadPool* pool) {
  const Image rgb = img.channels == 3 ? Image() : to_rgb(img);
  const Image& src = img.channels == 3 ? img : rgb;
  const int H = src.height, W = src.width;
  Tensor t = Tensor::empty(DType::F32, {1, 3, H, W});
  float* b = t.data<float>();
  float* gch = b + int64_t(H) * W;
  float* r = gch + int64_t(H) * W;
  const auto to_planes = cpu::photo_row_kernels().rgb_to_planes;
  parallel_for(pool, H, 16, [&](int64_t y0, int64_t y1) {
    for (int64_t y = y0; y < y1; ++y) to_planes(src.row(int(y)), W, kMeanRgb, r + y * W, gch + y * W, b + y * W);
  });
  return t;
}

StateDict retinaface_random_state_dict(RetinaFaceBody body, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::uniform_real_distribution<float> uni(0.5f, 1.5f);
  StateDict sd;
  for (const auto& [k, shape] : RetinaFaceModel::expected_layout(retinaface_config(body))) {
    if (shape.empty()) {  // num_batches_tracked: int64 scalar
      Tensor t = Tensor::empty(DType::I64, {});
      t.data<int64_t>()[0] = 1000;
      sd.tensors[k] = t;
      continue;
    }
    Tensor t = Tensor::empty(DType::F32, shape);
    float* p = t.data<float>();
    const int64_t n = t.numel();
    if (shape.size() == 4) {  // conv: He-normal-ish, so the activations stay O(1)
      const float s = std::sqrt(1.f / float(shape[1] * shape[2] * shape[3]));
      for (int64_t i = 0; i < n; ++i) p[i] = normal(rng) * s;
    } else if (ends_with(k, ".running_var")) {
      for (int64_t i = 0; i < n; ++i) p[i] = uni(rng);
    } else if (ends_with(k, ".running_mean") || ends_with(k, ".bias")) {
      for (int64_t i = 0; i < n; ++i) p[i] = 0.1f * normal(rng);
    } else {  // bn weight (gamma)
      for (int64_t i = 0; i < n; ++i) p[i] = 1.f + 0.1f * normal(rng);
    }
    sd.tensors[k] = t;
  }
  return sd;
}

}  // namespace gpen
