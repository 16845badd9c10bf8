#include "core/face_detector.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/error.h"
#include "core/image_ops.h"
#include "core/thread_pool.h"

namespace gpen {
namespace {

constexpr size_t kTopKBeforeNms = 5000;  // the reference's top_k
constexpr size_t kKeepTopK = 750;        // the reference's keep_top_k

}  // namespace

float box_iou_plus1(const float a[4], const float b[4]) {
  const float area_a = (a[2] - a[0] + 1) * (a[3] - a[1] + 1), area_b = (b[2] - b[0] + 1) * (b[3] - b[1] + 1);
  const float w = std::max(0.f, std::min(a[2], b[2]) - std::max(a[0], b[0]) + 1);
  const float h = std::max(0.f, std::min(a[3], b[3]) - std::max(a[1], b[1]) + 1);
  const float inter = w * h;
  return inter / (area_a + area_b - inter);
}

float box_overlap_of_smaller(const float a[4], const float b[4]) {
  const float w = std::max(0.f, std::min(a[2], b[2]) - std::max(a[0], b[0]));
  const float h = std::max(0.f, std::min(a[3], b[3]) - std::max(a[1], b[1]));
  const float area_a = std::max(0.f, a[2] - a[0]) * std::max(0.f, a[3] - a[1]);
  const float area_b = std::max(0.f, b[2] - b[0]) * std::max(0.f, b[3] - b[1]);
  const float smaller = std::min(area_a, area_b);
  return smaller > 0 ? w * h / smaller : 0.f;
}

std::vector<size_t> nms(const std::vector<Detection>& dets, float iou) {
  std::vector<size_t> order(dets.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return dets[a].score > dets[b].score; });
  std::vector<size_t> keep;
  std::vector<bool> dropped(dets.size(), false);
  for (size_t oi = 0; oi < order.size(); ++oi) {
    const size_t i = order[oi];
    if (dropped[i]) continue;
    keep.push_back(i);
    for (size_t oj = oi + 1; oj < order.size(); ++oj) {
      const size_t j = order[oj];
      if (!dropped[j] && box_iou_plus1(dets[i].box, dets[j].box) > iou) dropped[j] = true;
    }
  }
  return keep;
}

FaceDetector FaceDetector::load(const std::string& path, const CompileOptions& opt) {
  return FaceDetector(std::make_shared<const RetinaFaceModel>(RetinaFaceModel::load(path)),
                      std::shared_ptr<Backend>(make_cpu_backend()), opt);
}

FaceDetector::FaceDetector(std::shared_ptr<const RetinaFaceModel> model, std::shared_ptr<Backend> backend,
                           CompileOptions opt)
    : model_(std::move(model)), backend_(std::move(backend)), opt_(opt), pool_(std::make_unique<ThreadPool>(opt.threads)) {
  if (!model_ || !backend_) fail("FaceDetector: null model or backend");
}

FaceDetector FaceDetector::clone(int threads) const {
  CompileOptions opt = opt_;
  opt.threads = threads;
  // Neither may be used by two threads at once; the clone exists to run beside this detector.
  opt.kernel_cache = nullptr;
  opt.shared_arena = nullptr;
  FaceDetector copy(model_, backend_, opt);
  copy.capacity_ = capacity_;
  return copy;
}

std::unique_ptr<Executable> FaceDetector::compile(int height, int width, bool quick) {
  CompileOptions opt = opt_;
  opt.quick_algorithms = quick;
  return backend_->compile(model_->build_graph(1, height, width), opt);
}

Executable& FaceDetector::executable(int height, int width) {
  const std::pair<int, int> key{height, width};
  for (auto it = cache_.begin(); it != cache_.end(); ++it)
    if (it->size == key) {
      cache_.splice(cache_.begin(), cache_, it);
      Compiled& c = cache_.front();
      if (++c.uses == kTimedAfterUses)
        retime_executable(c.exe, [&] { return compile(height, width, false); },
                          "detector, " + std::to_string(width) + "x" + std::to_string(height));
      return *c.exe;
    }
  while (cache_.size() >= capacity_) cache_.pop_back();  // free the old arena before compiling
  cache_.push_front(Compiled{key, compile(height, width, backend_->times_algorithms()), 1});
  return *cache_.front().exe;
}

std::vector<Detection> FaceDetector::detect_single(const Image& image, float score_threshold, float nms_iou) {
  if (image.empty() || image.width < 1 || image.height < 1) fail("detect: empty image");
  const int H = image.height, W = image.width;
  std::vector<Tensor> outs;
  Executable& exe = executable(H, W);
  // A GPU takes the photo as bytes (a quarter of the float input) and scales it itself.
  const uint8_t* bytes = image.pixels.data();
  if (image.channels != 3 || !exe.run_from_rgb_bytes(retinaface_rgb_bytes_io(), &bytes, 1, outs))
    exe.run({retinaface_input(image, pool_.get())}, outs);
  const RetinaFaceConfig& cfg = model_->config();
  if (outs.size() != 3) fail("RetinaFace: internal: ", outs.size(), " outputs");

  std::vector<Detection> cand;
  for (int l = 0; l < 3; ++l) {
    const Tensor& o = outs[size_t(l)];
    const int Hl = int(o.dim(2)), Wl = int(o.dim(3)), step = cfg.steps[size_t(l)];
    const int64_t plane = int64_t(Hl) * Wl;
    const float* p = o.data<float>();
    for (int a = 0; a < RetinaFaceConfig::kAnchors; ++a) {
      const double ms = cfg.min_sizes[size_t(l)][size_t(a)];
      const float* bg = p + (2 * a) * plane;
      const float* fg = p + (2 * a + 1) * plane;
      for (int i = 0; i < Hl; ++i)
        for (int j = 0; j < Wl; ++j) {
          const int64_t q = int64_t(i) * Wl + j;
          // softmax over (background, face), as F.softmax: exp(x - max) / sum
          const float m = std::max(bg[q], fg[q]);
          const float eb = std::exp(bg[q] - m), ef = std::exp(fg[q] - m);
          const float score = ef / (eb + ef);
          if (!(score > score_threshold)) continue;
          auto at = [&](int ch) { return double(p[ch * plane + q]); };
          const double cx = (j + 0.5) * step, cy = (i + 0.5) * step;  // prior centre in pixels
          const double v0 = cfg.variance[0], v1 = cfg.variance[1];
          const int bb = 4 + 4 * a, lb = 12 + 10 * a;
          const double bcx = cx + at(bb) * v0 * ms, bcy = cy + at(bb + 1) * v0 * ms;
          const double bw = ms * std::exp(at(bb + 2) * v1), bh = ms * std::exp(at(bb + 3) * v1);
          Detection d;
          d.score = score;
          d.box[0] = float(bcx - bw / 2);
          d.box[1] = float(bcy - bh / 2);
          d.box[2] = float(bcx - bw / 2 + bw);
          d.box[3] = float(bcy - bh / 2 + bh);
          for (int k = 0; k < 5; ++k) {
            d.landmarks[2 * k] = float(cx + at(lb + 2 * k) * v0 * ms);
            d.landmarks[2 * k + 1] = float(cy + at(lb + 2 * k + 1) * v0 * ms);
          }
          cand.push_back(d);
        }
    }
  }
  // The reference: candidates in anchor order, sorted by score, top 5000, NMS, first 750.
  std::vector<size_t> order(cand.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return cand[a].score > cand[b].score; });
  if (order.size() > kTopKBeforeNms) order.resize(kTopKBeforeNms);
  std::vector<Detection> top;
  top.reserve(order.size());
  for (size_t i : order) top.push_back(cand[i]);
  if (nms_iou >= 1.f) return top;
  std::vector<Detection> kept;
  for (size_t i : nms(top, nms_iou)) {
    if (kept.size() >= kKeepTopK) break;
    kept.push_back(top[i]);
  }
  return kept;
}

std::vector<Detection> FaceDetector::detect(const Image& image, const DetectOptions& opt) {
  if (image.empty()) fail("detect: empty image");
  if (!(opt.pyramid_factor > 1.f)) fail("detect: pyramid_factor must be > 1, got ", opt.pyramid_factor);
  if (opt.max_base_side < 0 || opt.pyramid_min_side < 1)
    fail("detect: max_base_side must be >= 0 and pyramid_min_side >= 1, got ", opt.max_base_side, " and ",
         opt.pyramid_min_side);
  const Image converted = image.channels == 3 ? Image() : to_rgb(image);
  const Image& rgb = image.channels == 3 ? image : converted;
  const int W = rgb.width, H = rgb.height, long_side = std::max(W, H);

  // Pass scales: the base pass, then coarser ones down to pyramid_min_side.
  std::vector<double> scales;
  scales.push_back(opt.max_base_side > 0 && long_side > opt.max_base_side ? double(opt.max_base_side) / long_side
                                                                          : 1.0);
  if (opt.multi_scale)
    while (long_side * scales.back() > opt.pyramid_min_side && long_side * scales.back() / opt.pyramid_factor >= 16)
      scales.push_back(scales.back() / opt.pyramid_factor);

  std::vector<Detection> all;
  std::vector<size_t> pass_of;  // which pass found all[i]
  Image prev_image;           // the previous (finer) pass's image, when it was a resized copy
  const Image* prev = &rgb;   // what the next pass is downscaled from
  for (size_t k = 0; k < scales.size(); ++k) {
    const int w = std::max(1, int(std::lround(W * scales[k]))), h = std::max(1, int(std::lround(H * scales[k])));
    const bool resized = w != W || h != H;
    Image scaled;
    if (resized) scaled = downscale_area(*prev, w, h, pool_.get());
    std::vector<Detection> dets = detect_single(resized ? scaled : rgb, opt.score_threshold, opt.nms_iou);
    const float fx = float(W) / w, fy = float(H) / h;
    // a coarse pass keeps only faces that are large for the finer pass before it
    const double min_long = k == 0 ? 0.0 : opt.coarse_min_face / scales[k - 1];
    for (Detection d : dets) {
      for (int i = 0; i < 4; i += 2) {
        d.box[i] *= fx;
        d.box[i + 1] *= fy;
      }
      for (int i = 0; i < 10; i += 2) {
        d.landmarks[i] *= fx;
        d.landmarks[i + 1] *= fy;
      }
      if (std::max(d.width(), d.height()) > min_long) {
        all.push_back(d);
        pass_of.push_back(k);
      }
    }
    if (resized) {
      prev_image = std::move(scaled);
      prev = &prev_image;
    }
  }

  // One NMS over all passes; then a face found by one pass that lies mostly (> cross_pass_overlap
  // of the smaller box) inside a better-scoring face of another pass is the same face seen at two
  // scales (a fragment of a large face at the finer scale, or an oversized phantom at the coarser
  // one) and is dropped too. Faces of a single pass are left to NMS alone, as in the reference.
  std::vector<Detection> faces;
  std::vector<size_t> kept;
  for (size_t i : nms(all, opt.nms_iou)) {
    const Detection& d = all[i];
    bool duplicate = false;
    for (size_t j : kept)
      if (pass_of[j] != pass_of[i] && box_overlap_of_smaller(d.box, all[j].box) > opt.cross_pass_overlap)
        duplicate = true;
    if (duplicate) continue;
    kept.push_back(i);
    if (opt.min_face > 0 && std::min(d.width(), d.height()) < opt.min_face) continue;
    faces.push_back(d);
  }
  if (opt.only_center_face && faces.size() > 1) {
    auto dist = [&](const Detection& d) {
      const double dx = (d.box[0] + d.box[2]) / 2 - W / 2.0, dy = (d.box[1] + d.box[3]) / 2 - H / 2.0;
      return dx * dx + dy * dy;
    };
    size_t best = 0;
    for (size_t i = 1; i < faces.size(); ++i)
      if (dist(faces[i]) < dist(faces[best])) best = i;
    faces = {faces[best]};
  }
  if (opt.max_faces > 0 && faces.size() > size_t(opt.max_faces)) faces.resize(size_t(opt.max_faces));
  return faces;
}

}  // namespace gpen
