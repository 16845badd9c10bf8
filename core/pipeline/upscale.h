// Whole-photo super-resolution with RRDBNet (Real-ESRNet x2 / x4), GPEN's use_sr background
// upsampler, in tiles so that memory stays bounded whatever the photo size.
//
// The photo is cut into a grid of `tile` x `tile` cores. Each core is run inside a window that
// extends it by `overlap` pixels of real photo context on every side where the photo has them
// (windows are shifted inward at the photo's edges, so every window has the same size and one
// compiled graph serves them all); only the core of each window's output is kept. A core pixel
// thus sees the same neighbourhood as in an untiled run up to `overlap` pixels away, and the cores
// tile the output exactly: no seams from padding, no blending. Memory: the input and output
// photos plus one window's graph arena, independent of the photo size.
//
// Colours: RGB in [0, 1] in, the output clamped to [0, 1] and rounded to 8 bits (GPEN's
// RealESRNet.process). Odd sizes with the x2 model are reflection-padded by one pixel and
// cropped back. Alpha is not upscaled: RGBA and gray photos are converted to RGB first.
#pragma once
#include <map>
#include <memory>
#include <utility>

#include "core/backend.h"
#include "core/image.h"
#include "core/models/rrdbnet.h"

namespace gpen {

struct UpscaleOptions {
  int tile = 400;     // core side in input pixels; 0 = the whole photo in one window
  int overlap = 24;   // context pixels around each core (GPEN / Real-ESRGAN's tile_pad is 10)
};

// An RRDBNet with compiled graphs, one per window size it has seen (a photo uses at most a few).
class RrdbRunner {
 public:
  RrdbRunner(RrdbNetModel model, const CompileOptions& compile);
  int scale() const { return model_.config().scale; }
  const RrdbNetModel& model() const { return model_; }
  // [1, 3, H, W] RGB in [0, 1] -> [1, 3, sH, sW] (not clamped).
  Tensor run(const Tensor& input);
  // Arena bytes of the graph for an H x W window (compiled on first use).
  size_t arena_bytes(int height, int width);

 private:
  Executable& executable(int height, int width);
  RrdbNetModel model_;
  CompileOptions compile_;
  std::map<std::pair<int, int>, std::unique_ptr<Executable>> exes_;
};

// The window size (height, width) that upscale_photo runs for a photo of this size.
std::pair<int, int> upscale_window(int photo_height, int photo_width, int scale, const UpscaleOptions& options);

// The photo upscaled by the runner's scale (RGB, 8 bits).
Image upscale_photo(const Image& photo, RrdbRunner& runner, const UpscaleOptions& options = {});

// RRDBNet from a checkpoint path, or "random:2" / "random:4[:SEED]" (GPEN's realesrnet layout
// with random weights; for tests and benchmarks).
RrdbNetModel load_sr_model(const std::string& path);

}  // namespace gpen
