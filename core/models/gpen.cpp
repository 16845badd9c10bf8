#include "core/models/gpen.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <functional>
#include <map>
#include <set>
#include <sstream>

#include "core/device.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/face_tensor.h"

namespace gpen {
namespace {

std::string key(const std::string& a, int i, const std::string& b) { return a + std::to_string(i) + b; }

// Copy of `t` (any float dtype) as f32, multiplied by `scale`.
Tensor scaled(const Tensor& t, float scale) {
  Tensor f = t.to(DType::F32).clone();
  float* p = f.data<float>();
  const int64_t n = f.numel();
  for (int64_t i = 0; i < n; ++i) p[i] *= scale;
  return f;
}

// Elements [begin, end) of a 1-D f32 tensor as a new tensor.
Tensor slice1d(const Tensor& t, int64_t begin, int64_t end) {
  Tensor r = Tensor::empty(DType::F32, {end - begin});
  std::memcpy(r.data<float>(), t.data<float>() + begin, size_t(end - begin) * sizeof(float));
  return r;
}

// A StyledConv's 3x3 conv, C -> K (padding or stride/transposition set by the caller).
cpu::ConvDesc conv3x3(int C, int K) {
  cpu::ConvDesc cd;
  cd.C = C;
  cd.K = K;
  cd.kh = cd.kw = 3;
  return cd;
}

// Rows [begin, end) of a 2-D f32 tensor as a new tensor.
Tensor rows(const Tensor& t, int64_t begin, int64_t end) {
  const int64_t cols = t.dim(1);
  Tensor r = Tensor::empty(DType::F32, {end - begin, cols});
  std::memcpy(r.data<float>(), t.data<float>() + begin * cols, size_t((end - begin) * cols) * sizeof(float));
  return r;
}

Tensor weight_sq(const Tensor& w /* [K][C][kh][kw] f32 */) {
  const int64_t K = w.dim(0), C = w.dim(1), khkw = w.dim(2) * w.dim(3);
  Tensor r = Tensor::empty(DType::F32, {K, C});
  const float* p = w.data<float>();
  for (int64_t i = 0; i < K * C; ++i) {
    double s = 0;
    for (int64_t j = 0; j < khkw; ++j) s += double(p[i * khkw + j]) * p[i * khkw + j];
    r.data<float>()[i] = float(s);
  }
  return r;
}

int count_keys(const StateDict& sd, const std::string& prefix, const std::string& suffix, int start) {
  int n = 0;
  while (sd.has(key(prefix, start + n, suffix))) ++n;
  return n;
}

}  // namespace

int GpenConfig::log_size() const { return int(std::lround(std::log2(size))); }

std::string GpenConfig::describe() const {
  std::ostringstream os;
  os << "GPEN-" << size << " (channel_multiplier=" << channel_multiplier << " narrow=" << narrow
     << " style_dim=" << style_dim << " n_mlp=" << n_mlp << ")";
  return os.str();
}

std::map<std::string, std::string> GpenConfig::to_metadata() const {
  std::ostringstream cm, nw;
  cm << channel_multiplier;
  nw << narrow;
  return {{"gpen.model", "gpen_full_generator"},
          {"gpen.size", std::to_string(size)},
          {"gpen.style_dim", std::to_string(style_dim)},
          {"gpen.n_mlp", std::to_string(n_mlp)},
          {"gpen.channel_multiplier", cm.str()},
          {"gpen.narrow", nw.str()}};
}

std::vector<std::pair<std::string, Shape>> GpenModel::expected_layout(const GpenConfig& c) {
  std::vector<std::pair<std::string, Shape>> k;
  const int64_t sd = c.style_dim, c4 = c.channels.at(4);
  for (int i = 1; i <= c.n_mlp; ++i) {
    k.push_back({key("generator.style.", i, ".weight"), {sd, sd}});
    k.push_back({key("generator.style.", i, ".bias"), {sd}});
  }
  k.push_back({"generator.input.input", {1, c4, 4, 4}});
  auto styled = [&](const std::string& p, int64_t in, int64_t out, bool up) {
    k.push_back({p + ".conv.weight", {1, out, in, 3, 3}});
    if (up) k.push_back({p + ".conv.blur.kernel", {4, 4}});
    k.push_back({p + ".conv.modulation.weight", {in, sd}});
    k.push_back({p + ".conv.modulation.bias", {in}});
    k.push_back({p + ".noise.weight", {1}});
    k.push_back({p + ".activate.bias", {2 * out}});
  };
  auto to_rgb = [&](const std::string& p, int64_t in, bool up) {
    k.push_back({p + ".bias", {1, 3, 1, 1}});
    if (up) k.push_back({p + ".upsample.kernel", {4, 4}});
    k.push_back({p + ".conv.weight", {1, 3, in, 1, 1}});
    k.push_back({p + ".conv.modulation.weight", {in, sd}});
    k.push_back({p + ".conv.modulation.bias", {in}});
  };
  styled("generator.conv1", c4, c4, false);
  to_rgb("generator.to_rgb1", 2 * c4, false);
  int64_t in = c4;
  for (int i = 3; i <= c.log_size(); ++i) {
    const int64_t out = c.channels.at(1 << i);
    styled(key("generator.convs.", 2 * (i - 3), ""), 2 * in, out, true);
    styled(key("generator.convs.", 2 * (i - 3) + 1, ""), 2 * out, out, false);
    to_rgb(key("generator.to_rgbs.", i - 3, ""), 2 * out, true);
    in = out;
  }
  k.push_back({"ecd0.0.0.weight", {c.channels.at(c.size), 3, 1, 1}});
  k.push_back({"ecd0.0.1.bias", {c.channels.at(c.size)}});
  for (int j = 1; j <= c.log_size() - 2; ++j) {
    const int64_t cin = c.channels.at(c.size >> (j - 1)), cout = c.channels.at(c.size >> j);
    k.push_back({key("ecd", j, ".0.0.kernel"), {4, 4}});
    k.push_back({key("ecd", j, ".0.1.weight"), {cout, cin, 3, 3}});
    k.push_back({key("ecd", j, ".0.2.bias"), {cout}});
  }
  k.push_back({"final_linear.0.weight", {sd, c4 * 16}});
  k.push_back({"final_linear.0.bias", {sd}});
  return k;
}

static GpenConfig infer_config(const StateDict& sd) {
  GpenConfig c;
  if (!sd.has("ecd0.0.0.weight") || !sd.has("generator.input.input"))
    fail("not a GPEN checkpoint: no 'ecd0.0.0.weight' / 'generator.input.input' (keys: ", sd.tensors.size(), ")");
  const int stages = 1 + count_keys(sd, "ecd", ".0.1.weight", 1);
  const int log_size = stages + 1;
  if (log_size < 3 || log_size > 12) fail("GPEN checkpoint has ", stages, " encoder stages: unsupported size");
  c.size = 1 << log_size;
  c.n_mlp = count_keys(sd, "generator.style.", ".weight", 1);
  if (c.n_mlp == 0) fail("GPEN checkpoint has no mapping network ('generator.style.1.weight')");
  c.style_dim = int(sd.at("generator.style.1.weight").dim(0));
  c.channels[4] = int(sd.at("generator.input.input").dim(1));
  for (int i = 3; i <= log_size; ++i) {
    const Tensor& t = sd.at(key("generator.convs.", 2 * (i - 3), ".conv.weight"));
    if (t.ndim() != 5) fail("key '", key("generator.convs.", 2 * (i - 3), ".conv.weight"), "' must be 5-D, got ",
                            shape_str(t.shape()));
    c.channels[1 << i] = int(t.dim(1));
  }
  c.narrow = c.channels[4] / 512.0;
  c.channel_multiplier = c.size >= 64 ? c.channels[64] / (256.0 * c.narrow) : 0;
  return c;
}

GpenModel GpenModel::from_state_dict(const StateDict& sd) {
  GpenModel m;
  m.cfg_ = infer_config(sd);
  const GpenConfig& c = m.cfg_;
  m.params_ = sd.expect_exact_layout(expected_layout(c), c.describe());

  // Effective weights: StyleGAN's equalized learning rate multiplies each weight by
  // 1/sqrt(fan_in) (and lr_mul for the mapping network) at run time; we do it once here.
  auto& p = m.prepared_;
  const float sd_scale = 1.f / std::sqrt(float(c.style_dim));
  const float lr_mlp = 0.01f;
  for (int i = 1; i <= c.n_mlp; ++i) {
    p[key("style.", i, ".w")] = scaled(sd.at(key("generator.style.", i, ".weight")), sd_scale * lr_mlp);
    p[key("style.", i, ".b")] = scaled(sd.at(key("generator.style.", i, ".bias")), lr_mlp);
  }
  for (const auto& [k, shape] : expected_layout(c)) {
    if (k.rfind("generator.style.", 0) == 0) continue;
    const Tensor& t = sd.at(k);
    const bool conv_w = k.size() > 12 && k.compare(k.size() - 12, 12, ".conv.weight") == 0;
    const bool mod_w = k.find(".modulation.weight") != std::string::npos;
    if (conv_w) {  // [1][out][in][k][k] -> [out][in][k][k], times 1/sqrt(in*k*k)
      const float fan_in = float(shape[2] * shape[3] * shape[4]);
      p[k] = scaled(t, 1.f / std::sqrt(fan_in)).reshape({shape[1], shape[2], shape[3], shape[4]});
      m.conv_keys_.push_back(k);
    } else if (mod_w) {
      p[k] = scaled(t, sd_scale);
    } else if (k.rfind("ecd", 0) == 0 && shape.size() == 4) {
      p[k] = scaled(t, 1.f / std::sqrt(float(shape[1] * shape[2] * shape[3])));
      m.conv_keys_.push_back(k);
    } else if (k == "final_linear.0.weight") {
      p[k] = scaled(t, 1.f / std::sqrt(float(shape[1])));
    } else {
      p[k] = scaled(t, 1.f);
    }
  }
  for (const auto& [k, shape] : expected_layout(c))
    if (shape.size() == 5 && shape[3] == 3) p[k + ".sq"] = weight_sq(p[k]);
  return m;
}

GpenModel GpenModel::load(const std::string& path) {
  GpenModel m = from_state_dict(load_gpen_weights(path));
  release_free_heap();  // the checkpoint's own copy, freed just now
  return m;
}

GpenModel GpenModel::without_conv_weights() const {
  GpenModel m = *this;
  for (const std::string& k : conv_keys_) {
    Tensor& t = m.prepared_.at(k);
    t = Tensor::shape_only(t.dtype(), t.shape());
  }
  return m;
}

const Tensor& GpenModel::w(const std::string& k) const {
  auto it = prepared_.find(k);
  if (it == prepared_.end()) fail("GPEN: internal: no prepared weight '", k, "'");
  return it->second;
}

namespace {

struct Builder {
  const GpenModel& m;
  Graph& g;
  int latent;  // w, [N][style_dim]
  std::function<const Tensor&(const std::string&)> w;
  int image = -1, top_feature = -1;  // the input, and ecd0's output (recomputed, see below)

  // Style vectors s = modulation(w), [N][Cin], and demodulation factors, [N][K], of every
  // modulated conv, made in one run right after the mapping network (precompute_styles): they
  // depend on the latent alone, and a backend may then compute each run in one pass (CUDA: one
  // kernel for all styles, one for all factors, instead of ~45 tiny launches). The values are
  // the same as made beside each conv; the vectors stay live a little longer (a few KB).
  std::map<std::string, int> styles{}, demods{};
  int modulation(const std::string& p) { return styles.at(p); }
  // The last ToRGB (`split_rgb`) gets one style vector per half of its input instead (see
  // last_styled_conv_to_rgb): "<p>_conv" and "<p>_noise".
  void precompute_styles(const std::vector<std::string>& styled, const std::vector<std::string>& to_rgb,
                         const std::string& split_rgb) {
    for (const auto* list : {&styled, &to_rgb})
      for (const std::string& p : *list) {
        const Tensor& mw = w(p + ".conv.modulation.weight");
        const Tensor& mb = w(p + ".conv.modulation.bias");
        if (p != split_rgb) {
          styles[p] = g.linear(p + ".modulation", latent, mw, EpilogueSpec::with_bias(mb));
          continue;
        }
        const int64_t half = mw.dim(0) / 2;
        styles[p + "_conv"] = g.linear(p + ".modulation_conv", latent, rows(mw, 0, half),
                                       EpilogueSpec::with_bias(slice1d(mb, 0, half)));
        styles[p + "_noise"] = g.linear(p + ".modulation_noise", latent, rows(mw, half, 2 * half),
                                        EpilogueSpec::with_bias(slice1d(mb, half, 2 * half)));
      }
    for (const std::string& p : styled) demods[p] = g.demod_factors(p + ".demod", styles[p], w(p + ".conv.weight.sq"), 1e-8f);
  }

  // StyledConv: modulated 3x3 conv (optionally transposed x2 + blur) || noise_w * feature, then
  // bias + fused leaky-ReLU, both halves written straight into one concat buffer.
  int styled_conv(const std::string& p, int x, int feature, bool up) {
    const Tensor& wt = w(p + ".conv.weight");
    const Shape xs = g.value(x).shape;
    const int K = int(wt.dim(0)), C = int(wt.dim(1));
    const int s = modulation(p), d = demods.at(p);
    const Shape fs = g.value(feature).shape;
    const int buf = g.buffer(p + ".out", {xs[0], 2 * int64_t(K), fs[2], fs[3]});
    const int lo = g.channel_slice(buf, 0, K), hi = g.channel_slice(buf, K, 2 * int64_t(K));
    const Tensor& bias = w(p + ".activate.bias");
    const EpilogueSpec act_lo = EpilogueSpec::fused_lrelu(slice1d(bias, 0, K));
    const EpilogueSpec act_hi = EpilogueSpec::fused_lrelu(slice1d(bias, K, 2 * int64_t(K)));
    cpu::ConvDesc cd = conv3x3(C, K);
    if (!up) {
      cd.pad = 1;
      g.conv2d(p + ".conv", x, cd, wt, act_lo, s, d, lo);
    } else {
      cd.stride = 2;
      cd.transposed = true;
      const int t = g.conv2d(p + ".conv_t", x, cd, wt, EpilogueSpec{}, s, d);
      g.upfirdn2d(p + ".blur", t, w(p + ".conv.blur.kernel"), 1, 1, 1, 1, act_lo, lo);
    }
    const float noise_w = w(p + ".noise.weight").data<float>()[0];
    if (feature == top_feature)
      recompute_top_feature(p, hi);  // then the activation runs in place on it
    g.scale_bias_act(p + ".noise", feature == top_feature ? hi : feature, noise_w, act_hi, hi);
    return buf;
  }

  // The full-resolution encoder feature (ecd0: 1x1 conv of the image) is the largest activation
  // (64 x S x S) and would stay live from the first layer to the last two. Recomputing it where
  // the decoder needs it costs a cheap 3->64 pointwise conv and frees that buffer for the whole
  // forward (67 MB at S = 512). The values are identical: same conv, same weights.
  // out: a view to write into, or -1 for a new value. Returns what it wrote.
  int recompute_top_feature(const std::string& p, int out) {
    const Tensor& w0 = w("ecd0.0.0.weight");
    cpu::ConvDesc cd;
    cd.C = 3;
    cd.K = int(w0.dim(0));
    return g.conv2d(p + ".ecd0", image, cd, w0, EpilogueSpec::fused_lrelu(w("ecd0.0.1.bias")), -1, -1, out);
  }

  int to_rgb(const std::string& p, int x, int skip) {
    const Tensor& wt = w(p + ".conv.weight");
    const int s = modulation(p);
    cpu::ConvDesc cd;
    cd.C = int(wt.dim(1));
    cd.K = 3;
    const Tensor bias = w(p + ".bias").reshape({3});
    const int y = g.conv2d(p + ".conv", x, cd, wt, EpilogueSpec::with_bias(bias), s);
    return add_upsampled_skip(p, y, skip);
  }

  int add_upsampled_skip(const std::string& p, int y, int skip) {
    if (skip < 0) return y;
    const int up = g.upfirdn2d(p + ".upsample", skip, w(p + ".upsample.kernel"), 2, 1, 2, 1, EpilogueSpec{});
    return g.add(p + ".add", y, up);
  }

  // The last StyledConv (p) and the last ToRGB (rgb) together, ordered so that the noise half of
  // the StyledConv's output is never held beside both full-resolution conv buffers. ToRGB is a
  // 1x1 conv, so it splits over the two halves of its input:
  //   rgb = torgb[:, :K](conv half) + torgb[:, K:](noise half) + bias,
  // and the noise half (recomputed from the image) is reduced to its 3 channels before the 3x3
  // conv runs. The arena's peak -- the previous StyledConv's output beside this one's -- drops
  // from 4 to 3 full-resolution feature maps (67 MB at GPEN-512, batch 1). Same products, summed
  // in another order.
  int last_styled_conv_to_rgb(const std::string& p, const std::string& rgb, int x, int skip) {
    const Tensor& wt = w(p + ".conv.weight");
    const int K = int(wt.dim(0)), C = int(wt.dim(1));
    const Tensor& bias = w(p + ".activate.bias");
    const int noise = recompute_top_feature(p, -1);
    g.scale_bias_act(p + ".noise", noise, w(p + ".noise.weight").data<float>()[0],
                     EpilogueSpec::fused_lrelu(slice1d(bias, K, 2 * int64_t(K))), noise);
    const int rgb_noise = to_rgb_half(rgb, "noise", noise, K, EpilogueSpec{});
    cpu::ConvDesc cd = conv3x3(C, K);
    cd.pad = 1;
    const int conv = g.conv2d(p + ".conv", x, cd, wt, EpilogueSpec::fused_lrelu(slice1d(bias, 0, K)), modulation(p),
                              demods.at(p));
    const int rgb_conv = to_rgb_half(rgb, "conv", conv, 0, EpilogueSpec::with_bias(w(rgb + ".bias").reshape({3})));
    return add_upsampled_skip(rgb, g.add(rgb + ".halves", rgb_conv, rgb_noise), skip);
  }

  // ToRGB's 1x1 conv over input channels [c0, c0 + C) of its (concatenated) input, read from x.
  int to_rgb_half(const std::string& p, const std::string& half, int x, int64_t c0, EpilogueSpec epi) {
    const Tensor& wt = w(p + ".conv.weight");  // [3][2C][1][1], shape-only once the runner packed it
    const int64_t C = g.value(x).shape[1];
    cpu::ConvDesc cd;
    cd.C = int(C);
    cd.K = 3;
    Tensor part = Tensor::shape_only(DType::F32, {3, C, 1, 1});
    if (wt.defined()) {
      part = Tensor::empty(DType::F32, {3, C, 1, 1});
      for (int k = 0; k < 3; ++k)
        std::memcpy(part.data<float>() + k * C, wt.data<float>() + k * wt.dim(1) + c0, size_t(C) * sizeof(float));
    }
    return g.conv2d(p + ".conv_" + half, x, cd, part, std::move(epi), styles.at(p + "_" + half));
  }
};

}  // namespace

Graph GpenModel::build_graph(int batch) const {
  if (batch < 1) fail("batch size must be at least 1");
  const GpenConfig& c = cfg_;
  const int S = c.size, L = c.log_size() - 2;
  Graph g;
  Builder b{*this, g, -1, [this](const std::string& k) -> const Tensor& { return w(k); }};
  int x = g.input("input", {batch, 3, S, S});
  b.image = x;

  // Encoder: one feature map per resolution, S down to 4.
  std::vector<int> feats;
  {
    const Tensor& w0 = w("ecd0.0.0.weight");
    cpu::ConvDesc cd;
    cd.C = 3;
    cd.K = int(w0.dim(0));
    x = g.conv2d("ecd0", x, cd, w0, EpilogueSpec::fused_lrelu(w("ecd0.0.1.bias")));
    feats.push_back(x);
    b.top_feature = x;
  }
  for (int j = 1; j <= L; ++j) {
    const std::string p = key("ecd", j, ".0");
    const Tensor& wj = w(p + ".1.weight");
    x = g.upfirdn2d(key("ecd", j, ".blur"), x, w(p + ".0.kernel"), 1, 1, 2, 2, EpilogueSpec{});
    cpu::ConvDesc cd;
    cd.C = int(wj.dim(1));
    cd.K = int(wj.dim(0));
    cd.kh = cd.kw = 3;
    cd.stride = 2;
    x = g.conv2d(key("ecd", j, ""), x, cd, wj, EpilogueSpec::fused_lrelu(w(p + ".2.bias")));
    feats.push_back(x);
  }

  // Style: final_linear on the flattened 4x4 feature, then the mapping network.
  const int flat = g.reshape(feats.back(), {batch, int64_t(c.channels.at(4)) * 16});
  int st = g.linear("final_linear", flat, w("final_linear.0.weight"),
                    EpilogueSpec::fused_lrelu(w("final_linear.0.bias")));
  st = g.pixel_norm("style.norm", st, 1e-8f);
  for (int i = 1; i <= c.n_mlp; ++i)
    st = g.linear(key("style.", i, ""), st, w(key("style.", i, ".w")), EpilogueSpec::fused_lrelu(w(key("style.", i, ".b"))));
  b.latent = st;
  {
    std::vector<std::string> styled = {"generator.conv1"}, rgb = {"generator.to_rgb1"};
    for (int i = 3; i <= c.log_size(); ++i) {
      styled.push_back(key("generator.convs.", 2 * (i - 3), ""));
      styled.push_back(key("generator.convs.", 2 * (i - 3) + 1, ""));
      rgb.push_back(key("generator.to_rgbs.", i - 3, ""));
    }
    b.precompute_styles(styled, rgb, rgb.back());
  }

  // Decoder: the encoder feature of each resolution is injected twice (except at 4x4: once).
  int out = g.broadcast("const_input", w("generator.input.input"), batch);
  out = b.styled_conv("generator.conv1", out, feats[size_t(L)], false);
  int skip = b.to_rgb("generator.to_rgb1", out, -1);
  for (int i = 3; i <= c.log_size(); ++i) {
    const int feature = feats[size_t(L - (i - 2))];
    const std::string second = key("generator.convs.", 2 * (i - 3) + 1, ""), rgb = key("generator.to_rgbs.", i - 3, "");
    out = b.styled_conv(key("generator.convs.", 2 * (i - 3), ""), out, feature, true);
    if (i == c.log_size()) {  // full resolution: the encoder feature is the recomputed ecd0
      skip = b.last_styled_conv_to_rgb(second, rgb, out, skip);
      break;
    }
    out = b.styled_conv(second, out, feature, false);
    skip = b.to_rgb(rgb, out, skip);
  }
  g.mark_output(skip);
  return g;
}

GpenRunner::GpenRunner(std::shared_ptr<const GpenModel> model, std::shared_ptr<Backend> backend, CompileOptions opt)
    : model_(std::move(model)), backend_(std::move(backend)), opt_(opt) {
  if (!opt_.kernel_cache) opt_.kernel_cache = backend_->make_kernel_cache();
  if (!opt_.shared_arena) opt_.shared_arena = std::make_shared<SharedArena>();  // forwards never overlap
}

std::unique_ptr<Executable> GpenRunner::compile(int batch, bool quick) {
  CompileOptions opt = opt_;
  opt.quick_algorithms = quick;
  return backend_->compile(model_->build_graph(batch), opt);
}

Executable& GpenRunner::executable(int batch) {
  const int uses = ++uses_[batch];
  auto it = cache_.find(batch);
  if (it != cache_.end()) {
    if (uses == kTimedAfterUses)
      retime_executable(it->second, [&] { return compile(batch, false); }, "GPEN batch " + std::to_string(batch));
    return *it->second;
  }
  std::unique_ptr<Executable> exe = compile(batch, opt_.quick_algorithms && backend_->times_algorithms());
  // Packed now: keep a model without the f32 conv weights, so they are freed (unless the caller
  // kept the model) before the arena is first touched. Only after a successful compile: a failed
  // one (e.g. out of device memory) leaves the runner able to try again or elsewhere.
  // A shared runner keeps them: other threads read model() while this one compiles. So does a
  // GPU runner: a later batch size may meet a cuDNN refusal whose fallback (another layout)
  // uploads the filters again from the host (host memory is rarely what a GPU machine lacks).
  if (opt_.kernel_cache && !conv_weights_dropped_ && !oom_fallback_ && !coalescer_ && runs_on_cpu()) {
    model_ = std::make_shared<const GpenModel>(model_->without_conv_weights());
    conv_weights_dropped_ = true;
    release_free_heap();  // the packing's temporaries and the dropped weights
  }
  return *cache_.emplace(batch, std::move(exe)).first->second;
}

Tensor GpenRunner::forward(const Tensor& x) {
  const int S = model_->config().size;
  if (x.ndim() != 4 || x.dim(1) != 3 || x.dim(2) != S || x.dim(3) != S)
    fail("GPEN-", S, " expects input N x 3 x ", S, " x ", S, ", got ", shape_str(x.shape()));
  if (coalescer_) return (*coalescer_)(x.to(DType::F32));
  return oom_fallback_ ? oom_fallback_(x.to(DType::F32)) : forward_here(x);
}

std::vector<Image> GpenRunner::forward_faces(const std::vector<const Image*>& faces, Tensor& scratch,
                                             ThreadPool* pool) {
  const int S = model_->config().size;
  const bool square_rgb = std::all_of(faces.begin(), faces.end(), [&](const Image* f) {
    return f->width == S && f->height == S && f->channels == 3;
  });
  if (!faces.empty() && square_rgb && coalescer_) {
    // A shared runner: the faces queue as bytes; the dispatcher's runner takes the device's byte
    // path or converts the batch (forward_unshared).
    const int64_t face_bytes = int64_t(S) * S * 3;
    Tensor in = Tensor::empty(DType::U8, {int64_t(faces.size()), S, S, 3});
    for (size_t i = 0; i < faces.size(); ++i)
      std::memcpy(in.data<uint8_t>() + int64_t(i) * face_bytes, faces[i]->pixels.data(), size_t(face_bytes));
    const Tensor out = (*coalescer_)(in);
    std::vector<Image> restored(faces.size(), Image(S, S, 3));
    for (size_t i = 0; i < faces.size(); ++i)
      std::memcpy(restored[i].pixels.data(), out.data<uint8_t>() + int64_t(i) * face_bytes, size_t(face_bytes));
    return restored;
  }
  if (!faces.empty() && square_rgb && !coalescer_) {
    std::vector<Image> restored(faces.size(), Image(S, S, 3));
    std::vector<const uint8_t*> in;
    std::vector<uint8_t*> out;
    for (size_t i = 0; i < faces.size(); ++i) {
      in.push_back(faces[i]->pixels.data());
      out.push_back(restored[i].pixels.data());
    }
    if (forward_bytes_here(in.data(), int(faces.size()), out.data())) return restored;
  }
  faces_into_tensor(faces, scratch, pool);  // the previous call's buffer, when it fits; says what is wrong
  return tensor_to_faces(forward(scratch), pool);
}

std::vector<int> GpenRunner::compiled_batches() const {
  std::vector<int> b;
  for (const auto& [batch, exe] : cache_) b.push_back(batch);
  return b;
}

void GpenRunner::set_batch_limit(int faces) {
  batch_limit_.store(std::max(0, faces));
  for (const auto& t : stream_twins_) t->set_batch_limit(faces);
}

int GpenRunner::padded_batch(int n) const {
  if (n < 1 || !backend_->times_algorithms()) return n;
  const int limit = batch_limit_.load();
  if (limit > 0 && n > limit) return n;  // beyond what the caller announced: as asked
  int bucket = 1;
  while (bucket < n) bucket *= 2;
  return limit > 0 ? std::min(bucket, limit) : bucket;
}

// The device's byte path for n faces; false (nothing run) where the float path must take them.
// Padded up to padded_batch(n): the extra slots read the first face again and write into faces
// of their own (the staging copies may run on several threads), which are dropped.
bool GpenRunner::forward_bytes_here(const uint8_t* const* in, int n, uint8_t* const* out) {
  if (bytes_refused_ || runs_on_cpu() || n < 1) return false;
  if (oom_policy_ && (oom_policy_->on_cpu() || oom_policy_->batch() < n)) return false;
  int m = padding_failed_ ? n : padded_batch(n);
  if (oom_policy_) m = std::min(m, oom_policy_->batch());  // what the fallback found to fit
  std::vector<const uint8_t*> in_m(in, in + n);
  std::vector<uint8_t*> out_m(out, out + n);
  if (m > n) {
    const size_t face_bytes = size_t(model_->config().size) * model_->config().size * 3;
    if (padding_out_.size() < size_t(m - n) * face_bytes) padding_out_.resize(size_t(m - n) * face_bytes);
    in_m.resize(size_t(m), in[0]);
    for (int i = n; i < m; ++i) out_m.push_back(padding_out_.data() + size_t(i - n) * face_bytes);
  }
  try {
    if (executable(m).run_rgb_bytes(gpen_rgb_bytes_io(), in_m.data(), m, out_m.data())) return true;
    bytes_refused_ = true;
  } catch (const OutOfDeviceMemory&) {
    if (m > n) {  // the padding itself did not fit: free that size, pad no more, run the faces as they are
      cache_.erase(m);
      padding_failed_ = true;
      return forward_bytes_here(in, n, out);
    }
    if (!oom_fallback_) throw;  // no fallback asked for: the caller sees the error, as with forward()
  }
  return false;
}

// What a dispatcher of the shared runner runs: f32 [n, 3, S, S] as forward() does, or faces as
// bytes [n, S, S, 3] through the device's byte path, else converted around the float path.
Tensor GpenRunner::forward_unshared(const Tensor& x) {
  if (x.dtype() != DType::U8) return oom_fallback_ ? oom_fallback_(x.to(DType::F32)) : forward_here(x);
  const int n = int(x.dim(0));
  const int64_t face_bytes = x.numel() / n;
  Tensor y = Tensor::empty(DType::U8, x.shape());
  std::vector<const uint8_t*> in;
  std::vector<uint8_t*> out;
  for (int i = 0; i < n; ++i) {
    in.push_back(x.data<uint8_t>() + i * face_bytes);
    out.push_back(y.data<uint8_t>() + i * face_bytes);
  }
  if (forward_bytes_here(in.data(), n, out.data())) return y;
  Tensor floats;
  rgb_bytes_into_tensor(in.data(), n, int(x.dim(1)), floats);
  tensor_into_rgb_bytes(oom_fallback_ ? oom_fallback_(floats) : forward_here(floats), out.data());
  return y;
}

Tensor GpenRunner::forward_here(const Tensor& x) {
  const int batch = int(x.dim(0));
  std::vector<Tensor> outs(1);
  // The last output of this batch size, when its caller has let go of it: a batch of 16
  // GPEN-512 faces is 50 MB, and a fresh allocation of it costs its page faults every forward.
  if (auto it = spare_outputs_.find(batch); it != spare_outputs_.end() && it->second.unshared())
    outs[0] = std::move(it->second);
  executable(batch).run({x.to(DType::F32)}, outs);
  spare_outputs_[batch] = outs.at(0);
  return outs[0];
}

Tensor GpenRunner::forward_on_cpu(const Tensor& x) {
  if (!cpu_runner_) {
    CompileOptions cpu_opt;
    cpu_opt.threads = opt_.threads;
    cpu_runner_ = std::make_unique<GpenRunner>(model_, std::shared_ptr<Backend>(make_cpu_backend()), cpu_opt);
  }
  return cpu_runner_->forward(x);
}

void GpenRunner::enable_oom_fallback(std::function<void(const std::string&)> warn) {
  if (conv_weights_dropped_) fail("GpenRunner: enable_oom_fallback after the first forward (the host weights are gone)");
  // The first try is the whole input; OomFallbackForward keeps the batch that fitted.
  oom_warn_ = warn;
  auto policy = std::make_shared<OomFallbackForward>([this](const Tensor& x) { return forward_here(x); },
                                                     [this](const Tensor& x) { return forward_on_cpu(x); },
                                                     1 << 20, std::move(warn));
  oom_policy_ = policy;
  oom_fallback_ = [policy](const Tensor& x) { return (*policy)(x); };
}

std::shared_ptr<GpenRunner> GpenRunner::twin() const {
  if (conv_weights_dropped_ && !opt_.kernel_cache) fail("GpenRunner: twin after the weights were dropped");
  CompileOptions o = opt_;
  o.shared_arena = nullptr;  // its own activations: the twins run at the same time
  auto t = std::make_shared<GpenRunner>(model_, backend_, o);
  if (oom_fallback_) t->enable_oom_fallback(oom_warn_);
  return t;
}

void GpenRunner::share_between_threads(int max_batch, int streams) {
  if (conv_weights_dropped_ || !cache_.empty()) fail("GpenRunner: share_between_threads after the first forward");
  if (streams < 1) fail("GpenRunner: streams must be at least 1, got ", streams);
  if (coalescer_) fail("GpenRunner: share_between_threads twice");
  // Each forward runs on its own dispatcher thread only, one batch at a time.
  std::vector<ForwardCoalescer::Forward> forwards = {[this](const Tensor& x) { return forward_unshared(x); }};
  for (int k = 1; k < streams; ++k) {
    stream_twins_.push_back(twin());
    GpenRunner* t = stream_twins_.back().get();
    forwards.push_back([t](const Tensor& x) { return t->forward_unshared(x); });
  }
  coalescer_ = std::make_unique<ForwardCoalescer>(std::move(forwards), max_batch);
  set_batch_limit(max_batch);
}

void GpenRunner::set_max_batch(int max_batch) {
  if (!coalescer_) fail("GpenRunner: set_max_batch needs share_between_threads first");
  coalescer_->set_max_batch(max_batch);
  set_batch_limit(max_batch);
}

ForwardCoalescer::Stats GpenRunner::sharing_stats() const {
  return coalescer_ ? coalescer_->stats() : ForwardCoalescer::Stats{};
}

}  // namespace gpen

#include <cstdio>
#include <random>

namespace gpen {

GpenConfig gpen_official_config(int size) {
  if (size != 256 && size != 512 && size != 1024 && size != 2048)
    fail("no official GPEN-BFR configuration for size ", size, " (256, 512, 1024, 2048)");
  GpenConfig c;
  c.size = size;
  c.style_dim = 512;
  c.n_mlp = 8;
  c.channel_multiplier = size == 256 ? 1 : 2;
  c.narrow = size == 256 ? 0.5 : 1;
  const int base[] = {512, 512, 512, 512, 256, 128, 64, 32, 16, 8};  // 4 .. 2048 before multipliers
  for (int i = 2, j = 0; i <= 11; ++i, ++j) {
    const double mult = i <= 5 ? 1 : c.channel_multiplier;
    c.channels[1 << i] = int(base[j] * mult * c.narrow);
  }
  return c;
}

StateDict gpen_random_state_dict(const GpenConfig& cfg, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::normal_distribution<float> normal(0.f, 1.f);
  const float blur[4] = {1, 3, 3, 1};
  StateDict sd;
  for (const auto& [k, shape] : GpenModel::expected_layout(cfg)) {
    Tensor t = Tensor::empty(DType::F32, shape);
    float* p = t.data<float>();
    const bool is_kernel = k.size() > 7 && k.compare(k.size() - 7, 7, ".kernel") == 0;
    const bool is_bias = k.size() > 5 && k.compare(k.size() - 5, 5, ".bias") == 0;
    const bool is_noise = k.find(".noise.weight") != std::string::npos;
    const bool is_mod_bias = k.find(".modulation.bias") != std::string::npos;
    for (int64_t i = 0; i < t.numel(); ++i) {
      if (is_kernel) {  // ecd blur sums to 1; the upsampling blurs carry the factor 4
        const float gain = k.rfind("ecd", 0) == 0 ? 1.f / 64 : 4.f / 64;
        p[i] = blur[i / 4] * blur[i % 4] * gain;
      } else if (is_mod_bias) {
        p[i] = 1.f + 0.1f * normal(rng);
      } else if (is_noise) {
        p[i] = 0.2f + 0.05f * normal(rng);
      } else if (is_bias) {
        p[i] = 0.1f * normal(rng);
      } else {
        p[i] = normal(rng);
      }
    }
    sd.tensors[k] = t;
  }
  // The mapping network's stored weights are divided by its lr_mul (0.01), as at StyleGAN init.
  for (int i = 1; i <= cfg.n_mlp; ++i) {
    Tensor& t = sd.tensors[key("generator.style.", i, ".weight")];
    for (int64_t j = 0; j < t.numel(); ++j) t.data<float>()[j] *= 100.f;
  }
  sd.metadata = cfg.to_metadata();
  return sd;
}

}  // namespace gpen

namespace gpen {

StateDict load_gpen_weights(const std::string& spec) {
  if (spec.rfind("random:", 0) != 0) return load_weights(spec);
  int size = 0;
  unsigned long long seed = 1;
  const int fields = std::sscanf(spec.c_str() + 7, "%d:%llu", &size, &seed);
  if (fields < 1) fail("bad model spec '", spec, "': expected random:SIZE[:SEED]");
  return gpen_random_state_dict(gpen_official_config(size), seed);
}

}  // namespace gpen
