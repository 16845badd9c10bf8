#include "core/pipeline/face_restorer.h"

#include <chrono>

#include "core/error.h"
#include "core/face_align.h"
#include "core/face_tensor.h"

namespace gpen {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

Landmarks5 landmarks_of(const Detection& d) {
  Landmarks5 lm;
  for (int i = 0; i < 5; ++i) lm[size_t(i)] = Point2{d.landmarks[2 * i], d.landmarks[2 * i + 1]};
  return lm;
}

// One face on its way through the pipeline.
struct FaceJob {
  size_t photo;
  Detection det;
  AlignedFace aligned;
  Image restored;
};

}  // namespace

StageTimes& StageTimes::operator+=(const StageTimes& o) {
  detect_ms += o.detect_ms;
  align_ms += o.align_ms;
  gpen_ms += o.gpen_ms;
  paste_ms += o.paste_ms;
  return *this;
}

FaceRestorer::FaceRestorer(std::shared_ptr<FaceDetector> detector, std::shared_ptr<GpenRunner> gpen, ThreadPool* pool)
    : detector_(std::move(detector)), gpen_(std::move(gpen)), pool_(pool) {}

int FaceRestorer::face_size() const { return gpen_->model().config().size; }

RestoreResult FaceRestorer::restore(const Image& photo, const RestoreOptions& opt) {
  return std::move(restore_many({&photo}, opt).at(0));
}

std::vector<RestoreResult> FaceRestorer::restore_many(const std::vector<const Image*>& photos, const RestoreOptions& opt) {
  if (opt.strength < 0 || opt.strength > 1) fail("strength must be in [0, 1], got ", opt.strength);
  const int S = face_size();
  std::vector<RestoreResult> results(photos.size());
  std::vector<RgbAndAlpha> split(photos.size());
  std::vector<FaceJob> jobs;

  for (size_t p = 0; p < photos.size(); ++p) {
    split[p] = split_alpha(*photos[p]);
    auto t0 = Clock::now();
    std::vector<Detection> dets = detector_->detect(split[p].rgb, opt.detect);
    results[p].times.detect_ms = ms_since(t0);
    t0 = Clock::now();
    for (const Detection& d : dets) {
      FaceJob job{p, d, align_face(split[p].rgb, landmarks_of(d), S, opt.warp, pool_), {}};
      jobs.push_back(std::move(job));
    }
    results[p].times.align_ms = ms_since(t0);
  }

  // GPEN in batches across all photos; time is charged to photos by their share of faces.
  const int batch = std::max(1, opt.batch_size);
  auto t0 = Clock::now();
  if (opt.strength > 0)
    for (size_t i = 0; i < jobs.size(); i += size_t(batch)) {
      std::vector<const Image*> crops;
      for (size_t j = i; j < std::min(jobs.size(), i + size_t(batch)); ++j) crops.push_back(&jobs[j].aligned.crop);
      Tensor y = gpen_->forward(faces_to_tensor(crops));
      for (size_t j = 0; j < crops.size(); ++j) jobs[i + j].restored = tensor_to_face(y, int(j));
    }
  const double gpen_ms = ms_since(t0);

  for (size_t p = 0; p < photos.size(); ++p) {
    std::vector<PasteFace> paste;
    for (FaceJob& job : jobs) {
      if (job.photo != p) continue;
      RestoredFace rf;
      rf.detection = job.det;
      if (opt.keep_crops) {
        rf.aligned = job.aligned.crop;
        rf.restored = opt.strength > 0 ? job.restored : job.aligned.crop;
      }
      results[p].faces.push_back(std::move(rf));
      if (opt.strength > 0)
        paste.push_back(PasteFace{job.restored, job.aligned.crop, job.aligned.inverse,
                                  {job.det.box[0], job.det.box[1], job.det.box[2], job.det.box[3]}});
    }
    results[p].times.gpen_ms = jobs.empty() ? 0 : gpen_ms * double(results[p].faces.size()) / double(jobs.size());
    auto t1 = Clock::now();
    if (paste.empty()) {
      results[p].image = *photos[p];  // nothing to restore (or strength 0): the input, byte for byte
    } else {
      PasteOptions po;
      po.strength = opt.strength;
      po.mask = opt.mask;
      po.interpolation = opt.warp;
      po.pool = pool_;
      paste_faces_into(split[p].rgb, paste, po);  // in place: no copy of a large photo
      results[p].image = split[p].alpha.empty() ? std::move(split[p].rgb) : attach_alpha(split[p].rgb, split[p].alpha);
    }
    results[p].times.paste_ms = ms_since(t1);
  }
  return results;
}

}  // namespace gpen
