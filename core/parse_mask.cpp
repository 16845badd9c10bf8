#include "core/parse_mask.h"

#include <algorithm>

#include "core/error.h"

namespace gpen {

std::vector<uint8_t> parsing_labels(const Tensor& logits) {
  if (logits.ndim() != 4 || logits.dim(0) != 1 || logits.dim(1) < 1 || logits.dim(1) > 255 ||
      logits.dtype() != DType::F32)
    fail("parsing_labels: expected f32 logits [1, C <= 255, H, W], got ", shape_str(logits.shape()));
  const int64_t C = logits.dim(1), plane = logits.dim(2) * logits.dim(3);
  const float* p = logits.data<float>();
  std::vector<uint8_t> labels(size_t(plane), 0);
  std::vector<float> best(p, p + plane);
  for (int64_t c = 1; c < C; ++c)
    for (int64_t i = 0; i < plane; ++i)
      if (p[c * plane + i] > best[size_t(i)]) {  // strictly greater: ties keep the first class
        best[size_t(i)] = p[c * plane + i];
        labels[size_t(i)] = uint8_t(c);
      }
  return labels;
}

FloatImage face_region(const std::vector<uint8_t>& labels, int width, int height, const ParseMaskOptions& options) {
  if (int64_t(labels.size()) != int64_t(width) * height)
    fail("face_region: ", labels.size(), " labels for a ", width, "x", height, " plane");
  FloatImage region(width, height, 1, 0.f);
  for (size_t i = 0; i < labels.size(); ++i)
    region.pixels[i] = labels[i] < kFaceClassCount && options.face_classes[labels[i]] ? 1.f : 0.f;
  return region;
}

FloatImage soften_face_region(FloatImage region, const ParseMaskOptions& options) {
  const int b = options.border;
  for (int y = 0; y < region.height; ++y)
    for (int x = 0; x < region.width; ++x)
      if (y < b || y >= region.height - b || x < b || x >= region.width - b) region.at(x, y) = 0.f;
  region = gaussian_blur(region, options.blur_ksize, options.blur_sigma);
  return gaussian_blur(region, options.blur_ksize, options.blur_sigma);
}

ParseNetMask::ParseNetMask(const ParseNetModel& model, const CompileOptions& compile, ParseMaskOptions options)
    : options_(options) {
  if (options_.parse_size < 16) fail("ParseNetMask: parse size ", options_.parse_size, " is too small");
  exe_ = make_cpu_backend()->compile(model.build_graph(1, options_.parse_size), compile);
}

std::vector<uint8_t> ParseNetMask::labels(const Image& crop) const {
  const int P = options_.parse_size;
  const Image rgb = crop.channels == 3 ? crop : to_rgb(crop);
  // GPEN: cv2.resize(face, (512, 512)) -- bilinear; a no-op for GPEN-512 crops.
  const Tensor input = parsenet_input(rgb.width == P && rgb.height == P ? rgb : resize_bilinear(rgb, P, P));
  std::vector<Tensor> outputs;
  {
    std::lock_guard<std::mutex> lock(run_mutex_);
    exe_->run({input}, outputs);
  }
  const Tensor& logits = outputs.at(0);
  if (logits.dim(2) != P || logits.dim(3) != P)
    fail("ParseNetMask: the parser makes ", shape_str(logits.shape()), " for a ", P, "x", P, " input");
  return parsing_labels(logits);
}

FloatImage ParseNetMask::face_mask(const Image& crop) const {
  if (crop.empty() || crop.width != crop.height) fail("ParseNetMask: crop must be square, got ", crop.width, "x", crop.height);
  const int P = options_.parse_size;
  FloatImage mask = soften_face_region(face_region(labels(crop), P, P, options_), options_);
  return crop.width == P ? mask : resize_bilinear(mask, crop.width, crop.width);
}

std::unique_ptr<FaceMaskSource> make_parse_mask(const std::string& parsenet_path, const CompileOptions& compile,
                                                const ParseMaskOptions& options) {
  if (parsenet_path.rfind("random", 0) == 0) {
    const std::string seed = parsenet_path.size() > 7 ? parsenet_path.substr(7) : "1";
    if (parsenet_path.size() > 6 && parsenet_path[6] != ':') fail("ParseNet: expected random[:SEED], got '", parsenet_path, "'");
    uint64_t s = 0;
    try {
      s = std::stoull(seed);
    } catch (const std::exception&) {
      fail("ParseNet: bad seed in '", parsenet_path, "'");
    }
    const ParseNetModel m = ParseNetModel::from_state_dict(parsenet_random_state_dict(parsenet_official_config(), s));
    return std::make_unique<ParseNetMask>(m, compile, options);
  }
  return std::make_unique<ParseNetMask>(ParseNetModel::load(parsenet_path), compile, options);
}

}  // namespace gpen
