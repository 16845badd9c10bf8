#include "core/pipeline/upscale.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"

namespace gpen {

RrdbRunner::RrdbRunner(RrdbNetModel model, const CompileOptions& compile)
    : model_(std::move(model)), compile_(compile) {}

Executable& RrdbRunner::executable(int height, int width) {
  auto& exe = exes_[{height, width}];
  if (!exe) exe = make_cpu_backend()->compile(model_.build_graph(1, height, width), compile_);
  return *exe;
}

Tensor RrdbRunner::run(const Tensor& input) {
  if (input.ndim() != 4 || input.dim(0) != 1 || input.dim(1) != 3)
    fail("RrdbRunner: expected a [1, 3, H, W] input, got ", shape_str(input.shape()));
  std::vector<Tensor> outputs;
  executable(int(input.dim(2)), int(input.dim(3))).run({input}, outputs);
  return outputs.at(0);
}

size_t RrdbRunner::arena_bytes(int height, int width) { return executable(height, width).arena_bytes(); }

namespace {

// x2 windows start and end on even pixels so that every window's pixel-unshuffle grid is the
// photo's own.
int align_for(int scale) { return scale == 2 ? 2 : 1; }
int round_up(int v, int a) { return (v + a - 1) / a * a; }

struct Grid {
  int tile = 0, overlap = 0;  // aligned
  int window_h = 0, window_w = 0;
};

Grid make_grid(int height, int width, int scale, const UpscaleOptions& o) {
  if (o.tile < 0 || o.overlap < 0) fail("upscale: tile and overlap must be >= 0, got ", o.tile, " and ", o.overlap);
  const int a = align_for(scale);
  Grid g;
  g.tile = o.tile == 0 ? std::max(height, width) : round_up(std::max(o.tile, 8), a);
  g.overlap = round_up(o.overlap, a);
  g.window_h = std::min(height, g.tile + 2 * g.overlap);
  g.window_w = std::min(width, g.tile + 2 * g.overlap);
  return g;
}

// Start of the window around the core that starts at `core0`: `overlap` before it, shifted
// inside [0, size - window].
int window_start(int core0, int overlap, int window, int size) {
  return std::clamp(core0 - overlap, 0, size - window);
}

// The photo as RGB with even sides for the x2 model (the last row / column repeated).
Image model_ready(const Image& photo, int scale) {
  Image rgb = photo.channels == 3 ? photo : to_rgb(photo);
  const int a = align_for(scale);
  const int H = round_up(rgb.height, a), W = round_up(rgb.width, a);
  if (H == rgb.height && W == rgb.width) return rgb;
  Image padded(W, H, 3);
  for (int y = 0; y < H; ++y) {
    const uint8_t* src = rgb.row(std::min(y, rgb.height - 1));
    uint8_t* dst = padded.row(y);
    std::copy(src, src + rgb.row_bytes(), dst);
    for (int x = rgb.width; x < W; ++x) std::copy(src + size_t(rgb.width - 1) * 3, src + size_t(rgb.width) * 3, dst + size_t(x) * 3);
  }
  return padded;
}

Tensor window_tensor(const Image& rgb, int y0, int x0, int h, int w) {
  Tensor t = Tensor::empty(DType::F32, {1, 3, h, w});
  float* p = t.data<float>();
  const int64_t plane = int64_t(h) * w;
  for (int y = 0; y < h; ++y) {
    const uint8_t* row = rgb.row(y0 + y) + size_t(x0) * 3;
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) p[c * plane + int64_t(y) * w + x] = float(row[size_t(x) * 3 + c]) / 255.f;
  }
  return t;
}

uint8_t to_level(float v) { return uint8_t(std::nearbyint(std::clamp(v, 0.f, 1.f) * 255.f)); }

// Copies output rows [oy0, oy0 + h) x cols [ox0, ox0 + w) of the window's result (in output
// pixels, relative to the window) to (dy, dx) of `out`, clipped to `out`.
void paste_core(const Tensor& result, int oy0, int ox0, int h, int w, Image& out, int dy, int dx) {
  const int64_t RH = result.dim(2), RW = result.dim(3), plane = RH * RW;
  const float* p = result.data<float>();
  h = std::min(h, out.height - dy);
  w = std::min(w, out.width - dx);
  for (int y = 0; y < h; ++y) {
    uint8_t* row = out.row(dy + y) + size_t(dx) * 3;
    const int64_t src = int64_t(oy0 + y) * RW + ox0;
    for (int x = 0; x < w; ++x)
      for (int c = 0; c < 3; ++c) row[size_t(x) * 3 + c] = to_level(p[c * plane + src + x]);
  }
}

}  // namespace

std::pair<int, int> upscale_window(int photo_height, int photo_width, int scale, const UpscaleOptions& options) {
  const int a = align_for(scale);
  const Grid g = make_grid(round_up(photo_height, a), round_up(photo_width, a), scale, options);
  return {g.window_h, g.window_w};
}

Image upscale_photo(const Image& photo, RrdbRunner& runner, const UpscaleOptions& options) {
  if (photo.empty()) fail("upscale: empty photo");
  const int s = runner.scale();
  const Image rgb = model_ready(photo, s);
  const Grid g = make_grid(rgb.height, rgb.width, s, options);
  Image out(photo.width * s, photo.height * s, 3);
  for (int cy = 0; cy < rgb.height; cy += g.tile)
    for (int cx = 0; cx < rgb.width; cx += g.tile) {
      const int wy = window_start(cy, g.overlap, g.window_h, rgb.height);
      const int wx = window_start(cx, g.overlap, g.window_w, rgb.width);
      const int ch = std::min(g.tile, rgb.height - cy), cw = std::min(g.tile, rgb.width - cx);
      const Tensor result = runner.run(window_tensor(rgb, wy, wx, g.window_h, g.window_w));
      paste_core(result, (cy - wy) * s, (cx - wx) * s, ch * s, cw * s, out, cy * s, cx * s);
    }
  return out;
}

RrdbNetModel load_sr_model(const std::string& path) {
  if (path.rfind("random:", 0) == 0) {
    const std::string rest = path.substr(7);
    const size_t colon = rest.find(':');
    int scale = 0;
    uint64_t seed = 1;
    try {
      scale = std::stoi(rest.substr(0, colon));
      if (colon != std::string::npos) seed = std::stoull(rest.substr(colon + 1));
    } catch (const std::exception&) {
      fail("SR model: expected random:2 or random:4[:SEED], got '", path, "'");
    }
    return RrdbNetModel::from_state_dict(rrdbnet_random_state_dict(realesrnet_config(scale), seed));
  }
  return RrdbNetModel::load(path);
}

}  // namespace gpen
