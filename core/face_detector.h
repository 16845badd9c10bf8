// Face detection: RetinaFace (core/models/retinaface.h) run on one or more scales of a photo, with
// the published post-processing of Pytorch_Retinaface / GPEN: prior boxes, box and landmark
// decoding, score threshold, greedy NMS.
//
//   FaceDetector det = FaceDetector::load("retinaface_mobilenet0.25.pth", {});
//   std::vector<Detection> faces = det.detect(photo, DetectOptions{});
//
// Scales ("passes"). A RetinaFace pass finds faces of roughly 10 to 600 pixels (its anchors are
// 16..512 px). The reference pipeline runs one pass on the image as it is (long side <= 1500) and
// so misses faces larger than that -- a selfie, a face crop. We run:
//   1. the base pass: the image itself, or, when its long side exceeds
//      DetectOptions::max_base_side (default 2000), a copy area-downscaled to that long side.
//      Why 2000: the pass costs ~4.8 GFLOP per Mpx. A 12 Mpx phone photo at full resolution is
//      58 GFLOP with a 341 MB arena (plus a 146 MB input tensor), and on the shared selfie it adds
//      ~10 spurious "faces" (fragments of the big face); at 2000 px (3 Mpx) it is 14 GFLOP, 84 MB,
//      and faces down to ~20 px of the original are still found (the smallest anchor is 16 px).
//   2. coarser passes for large faces: copies downscaled by 1/pyramid_factor (3) each time while
//      the previous pass's long side exceeds pyramid_min_side (320), so a face filling the whole
//      frame fits the largest anchors. Each costs 1/9 of the pass before it.
// A coarse pass only contributes faces that are large for the pass before it (box long side above
// DetectOptions::coarse_min_face of that finer pass's pixels, default 256), so it never replaces a
// face the finer pass found and sized itself; then all passes go through one NMS, and a face of one
// pass lying mostly (> 80 %) inside a better-scoring face of another pass is dropped as a duplicate.
// On a photo whose faces are all small (the Solvay group photo) the result is exactly the
// single-pass reference.
//
// Output: boxes and landmarks in pixels of the given image (a resized pass is mapped back; boxes
// are not clipped to the image, as in the reference), sorted by score, highest first.
//
// Cost: one compiled graph per input size (an LRU of 4 by default, each holding its arena); the
// first image of a new size pays the compile (weight prepacking, arena). Photos of one size, e.g.
// a camera's, reuse them.
//
// Thread safety: detect() mutates the cache; use one FaceDetector per thread (clone() shares the
// weights).
//
// Known limits of the shared mobilenet0.25 weights (not of this code; the reference pipeline gives
// the same): boxes and landmarks come out spread about twice too far from their anchor centres
// (on the group photo too: the reference's own landmarks sit around, not on, the eyes and mouth),
// large faces are found with poor boxes and landmarks, the blurry lowq_face_512.png crop is not
// found at any scale, and large smooth ramps can fire the stride-32 head at scores up to 0.98.
#pragma once
#include <cstdint>
#include <list>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/backend.h"
#include "core/image.h"
#include "core/models/retinaface.h"
#include "core/thread_pool.h"

namespace gpen {

struct Detection {
  float box[4] = {0, 0, 0, 0};  // x1, y1, x2, y2 in pixels (continuous; the reference's convention)
  float score = 0;               // face probability (softmax), 0..1
  float landmarks[10] = {};      // x1, y1, ..., x5, y5: left eye, right eye, nose, left mouth, right mouth
                                 // ("left" = image left, i.e. the subject's right)
  float width() const { return box[2] - box[0]; }
  float height() const { return box[3] - box[1]; }
};

struct DetectOptions {
  float score_threshold = 0.9f;  // keep scores > this (strict, as the reference)
  float nms_iou = 0.4f;          // greedy NMS overlap (the reference's py_cpu_nms, with its +1 areas)
  float min_face = 0;            // drop faces whose box's shorter side is under this many pixels
  int max_faces = 0;             // > 0: keep only this many, the highest scores
  bool only_center_face = false; // keep only the face whose box centre is nearest the image centre
  bool multi_scale = true;       // false: only the base pass (the reference's behaviour)
  int max_base_side = 2000;      // base pass long side limit (larger images are downscaled); 0: none
  int pyramid_min_side = 320;    // coarse passes go down to a long side of at most this
  float pyramid_factor = 3.f;    // downscale factor between passes (> 1)
  float coarse_min_face = 256;   // a coarse pass keeps faces longer than this, in the finer pass's px
  // A face of one pass lying more than this fraction (of the smaller box) inside a better-scoring
  // face of another pass is that face seen at another scale, and dropped. RetinaFace-MobileNet0.25
  // answers a face filling a 1080p photo with fragments at the finer pass and oversized phantoms
  // at the coarser one; both overlap the real face by 50-70 % (test "a close-up ... one face").
  float cross_pass_overlap = 0.5f;
};

// Greedy NMS of py_cpu_nms: sort by score (stable), keep the best, drop others with
// IoU > iou, areas (x2 - x1 + 1) * (y2 - y1 + 1). Returns indices into `dets`, best first.
std::vector<size_t> nms(const std::vector<Detection>& dets, float iou);
// IoU with the same +1 areas.
float box_iou_plus1(const float a[4], const float b[4]);
// Intersection area / the smaller box's area (plain areas), 0 for empty boxes.
float box_overlap_of_smaller(const float a[4], const float b[4]);

class FaceDetector {
 public:
  // Loads a RetinaFace checkpoint (mobilenet0.25 or resnet50, any weights format).
  static FaceDetector load(const std::string& path, const CompileOptions& opt = {});
  FaceDetector(std::shared_ptr<const RetinaFaceModel> model, std::shared_ptr<Backend> backend, CompileOptions opt);

  // All faces of an 8-bit image (RGB; gray and RGBA are converted), see the header comment.
  std::vector<Detection> detect(const Image& image, const DetectOptions& opt = {});

  // One pass on the image exactly as given (no resize, no filtering beyond score and NMS) -- the
  // reference pipeline. Raw candidates before NMS when nms_iou >= 1.
  std::vector<Detection> detect_single(const Image& rgb, float score_threshold, float nms_iou);

  // A detector sharing these weights with its own graph cache, using `threads` CPU threads (0: all
  // hardware threads): one per thread that detects concurrently (the batch's stage-1 workers).
  // Cheap: graphs are compiled on first use of each size.
  FaceDetector clone(int threads) const;
  int threads() const { return pool_->size(); }

  const RetinaFaceModel& model() const { return *model_; }
  // Compiled graphs kept, one per input size, least recently used dropped beyond this.
  void set_cache_capacity(size_t n) { capacity_ = n ? n : 1; }
  size_t cached_sizes() const { return cache_.size(); }

 private:
  // A compiled graph per input size. Where compiling times algorithms (a GPU: cudnnFind, about a
  // second for this model at a new size), a size is compiled quickly first (heuristic algorithms)
  // and compiled again, timed, only when it is used kTimedAfterUses times: a folder of differently
  // sized photos never waits for the timing, a camera's folder of one size gets measured
  // algorithms after its first few photos.
  static constexpr int kTimedAfterUses = 3;
  struct Compiled {
    std::pair<int, int> size;  // height, width
    std::unique_ptr<Executable> exe;
    int uses = 0;
  };
  Executable& executable(int height, int width);
  std::unique_ptr<Executable> compile(int height, int width, bool quick);
  std::shared_ptr<const RetinaFaceModel> model_;
  std::shared_ptr<Backend> backend_;
  CompileOptions opt_;
  size_t capacity_ = 4;
  std::list<Compiled> cache_;  // most recent first
  std::unique_ptr<ThreadPool> pool_;  // resizing and input conversion (a pointer: FaceDetector stays movable)
};

}  // namespace gpen
