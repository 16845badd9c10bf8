#include "core/pipeline/face_restorer.h"

#include <chrono>

#include "core/error.h"
#include "core/face_tensor.h"
#include "core/pipeline/adjustments.h"

namespace gpen {
namespace {

using Clock = std::chrono::steady_clock;
double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

Landmarks5 landmarks_of(const Detection& d) {
  Landmarks5 lm;
  for (int i = 0; i < 5; ++i) lm[size_t(i)] = Point2{d.landmarks[2 * i], d.landmarks[2 * i + 1]};
  return lm;
}

// Where paste-back can have changed pixels: the union of the faces' warped footprints.
Rect pasted_area(const std::vector<PasteFace>& faces, const Image& photo) {
  Rect area;
  for (const PasteFace& f : faces)
    area = unite(area, warp_affine_support(f.inverse, f.restored.width, f.restored.height, photo.width, photo.height));
  return area;
}

}  // namespace

StageTimes& StageTimes::operator+=(const StageTimes& o) {
  upscale_ms += o.upscale_ms;
  detect_ms += o.detect_ms;
  align_ms += o.align_ms;
  gpen_ms += o.gpen_ms;
  paste_ms += o.paste_ms;
  return *this;
}

bool restores_faces(const RestoreOptions& opt) { return opt.controls.strength > 0; }

GpenCrop::GpenCrop(const Image& crop, std::shared_ptr<const SrgbConversion> conversion) : colour(std::move(conversion)) {
  if (!colour) return;
  srgb = crop;
  colour->to_srgb(srgb);
}

void GpenCrop::to_photo_colours(Image& gpen_output) const {
  if (colour) colour->from_srgb(gpen_output);
}

Image restore_aligned_crop(GpenRunner& gpen, const Image& crop, const Controls& controls) {
  validate(controls);
  const int S = gpen.model().config().size;
  Image rgb = to_rgb(crop);
  Image face = (rgb.width == S && rgb.height == S) ? std::move(rgb) : resize_bilinear(rgb, S, S);
  face = denoise_photo(face, controls.denoise);
  Image out = face;
  if (controls.strength > 0) {
    Tensor scratch;
    const GpenCrop gpen_crop(face, SrgbConversion::for_profile(crop.meta.icc));
    Image restored = std::move(gpen.forward_faces({&gpen_crop.input(face)}, scratch).at(0));
    gpen_crop.to_photo_colours(restored);
    out = compose_face(face, restored, controls, /*small_face=*/false);
    if (controls.skin_protect) protect_skin_colour(out, face, Rect{0, 0, S, S});
  }
  apply_finishing_filters(out, controls);
  return out;
}

FaceRestorer::FaceRestorer(std::shared_ptr<FaceDetector> detector, std::shared_ptr<GpenRunner> gpen, ThreadPool* pool)
    : detector_(std::move(detector)), gpen_(std::move(gpen)), pool_(pool) {}

int FaceRestorer::face_size() const { return gpen_->model().config().size; }

FaceRestorer FaceRestorer::with_own_detector(int detector_threads) const {
  return FaceRestorer(std::make_shared<FaceDetector>(detector_->clone(detector_threads)), gpen_, pool_);
}

FaceRestorer FaceRestorer::with_own_gpen() const { return FaceRestorer(detector_, gpen_->twin(), pool_); }

RestoreResult FaceRestorer::restore(const Image& photo, const RestoreOptions& opt) {
  return std::move(restore_many({&photo}, opt).at(0));
}

std::vector<RestoreResult> FaceRestorer::restore_many(const std::vector<const Image*>& photos, const RestoreOptions& opt) {
  std::vector<PhotoInProgress> stage;
  std::vector<FaceInProgress*> faces;
  stage.reserve(photos.size());  // the face pointers below must stay valid
  for (const Image* p : photos) stage.push_back(detect_faces(*p, opt));
  for (PhotoInProgress& p : stage)
    for (FaceInProgress& f : p.faces) faces.push_back(&f);
  run_gpen(faces, opt);
  std::vector<RestoreResult> results;
  for (PhotoInProgress& p : stage) results.push_back(finish(std::move(p), opt));
  return results;
}

PhotoInProgress FaceRestorer::detect_faces(Image photo, const RestoreOptions& opt) {
  validate(opt.controls);
  PhotoInProgress p;
  p.icc = photo.meta.icc;
  const auto colour = restores_faces(opt) ? SrgbConversion::for_profile(p.icc) : nullptr;
  p.photo = opt.controls.denoise > 0 ? denoise_photo(photo, opt.controls.denoise, pool_) : std::move(photo);
  if (p.photo.channels == 3) {
    p.split.rgb = std::move(p.photo);  // an RGB photo is its own split: no full-size copy
    p.photo = Image{};
  } else {
    p.split = split_alpha(p.photo);
  }
  // use_sr: faces come from the bilinear resize (as GPEN does), the background from RealESRNet.
  Image resized;
  if (opt.upscaler) {
    const auto t_sr = Clock::now();
    Image up = upscale_photo(p.split.rgb, *opt.upscaler, opt.upscale);
    resized = resize_bilinear(p.split.rgb, up.width, up.height);
    p.split.rgb = std::move(up);
    if (!p.split.alpha.empty()) p.split.alpha = resize_bilinear(p.split.alpha, p.split.rgb.width, p.split.rgb.height);
    p.photo = p.split.alpha.empty() ? Image{} : attach_alpha(p.split.rgb, p.split.alpha);
    p.times.upscale_ms = ms_since(t_sr);
  }
  const Image& faces_from = opt.upscaler ? resized : p.split.rgb;
  auto t0 = Clock::now();
  const std::vector<Detection> dets = detector_->detect(faces_from, opt.detect);
  p.times.detect_ms = ms_since(t0);
  t0 = Clock::now();
  for (const Detection& d : dets) {
    FaceInProgress f{d, align_face(faces_from, landmarks_of(d), face_size(), opt.warp, pool_), {}, {}, 0};
    f.gpen_crop = GpenCrop(f.aligned.crop, colour);
    p.faces.push_back(std::move(f));
  }
  p.times.align_ms = ms_since(t0);
  return p;
}

void FaceRestorer::run_gpen(const std::vector<FaceInProgress*>& faces, const RestoreOptions& opt) {
  if (!restores_faces(opt)) return;
  const size_t batch = size_t(std::max(1, opt.batch_size));
  gpen_->set_batch_limit(int(batch));  // a device pads partial batches up to a few compiled sizes
  for (size_t i = 0; i < faces.size(); i += batch) {
    const size_t n = std::min(faces.size() - i, batch);
    std::vector<const Image*> crops;
    for (size_t j = 0; j < n; ++j) {
      const FaceInProgress& f = *faces[i + j];
      crops.push_back(&f.gpen_crop.input(f.aligned.crop));
    }
    const auto t0 = Clock::now();
    std::vector<Image> restored = gpen_->forward_faces(crops, gpen_input_, pool_);
    for (size_t j = 0; j < n; ++j) faces[i + j]->restored = std::move(restored[j]);
    const double share = ms_since(t0) / double(n);
    for (size_t j = 0; j < n; ++j) faces[i + j]->gpen_ms = share;
  }
}

RestoreResult FaceRestorer::finish(PhotoInProgress p, const RestoreOptions& opt) const {
  RestoreResult r;
  r.times = p.times;
  const bool restore = restores_faces(opt);
  const auto t0 = Clock::now();
  std::vector<PasteFace> paste;
  for (FaceInProgress& f : p.faces) {
    if (restore && f.restored.empty()) fail("internal: face ", paste.size(), " was not run through GPEN");
    if (restore) f.gpen_crop.to_photo_colours(f.restored);
    RestoredFace rf;
    rf.detection = f.detection;
    if (opt.keep_crops) {
      rf.aligned = f.aligned.crop;
      rf.restored = restore ? f.restored : f.aligned.crop;
      rf.aligned.meta.icc = rf.restored.meta.icc = p.icc;  // so that saved crops show true colours
    }
    r.faces.push_back(std::move(rf));
    r.times.gpen_ms += f.gpen_ms;
    if (!restore) continue;
    if (f.gpen_crop.colour) r.colour_profile = f.gpen_crop.colour->description();
    const auto& b = f.detection.box;
    // The mask source sees GPEN's own output in modes natural and strong, as in GPEN.
    paste.push_back(PasteFace{restoration_target(f.aligned.crop, std::move(f.restored), opt.controls),
                              f.aligned.crop, f.aligned.inverse, {b[0], b[1], b[2], b[3]}});
  }
  if (paste.empty()) {
    // Nothing to restore (or strength 0): the input, byte for byte.
    r.image = p.photo.empty() ? std::move(p.split.rgb) : std::move(p.photo);
  } else {
    PasteOptions po;
    po.strength = face_blend_weight(opt.controls);  // GPEN's blend and small-face smoothing
    po.mask = opt.mask;
    po.interpolation = opt.warp;
    po.pool = pool_;
    // Skin protection needs the original under the faces only: that area is kept, not the photo.
    const Rect area = opt.controls.skin_protect ? pasted_area(paste, p.split.rgb) : Rect{};
    const Image original_area = area.empty() ? Image{} : crop_image(p.split.rgb, area);
    paste_faces_into(p.split.rgb, paste, po);  // in place: no copy of a large photo
    if (!area.empty()) protect_skin_colour_in(p.split.rgb, original_area, area, pool_);
    r.image = p.split.alpha.empty() ? std::move(p.split.rgb) : attach_alpha(p.split.rgb, p.split.alpha);
  }
  apply_finishing_filters(r.image, opt.controls, pool_);
  r.times.paste_ms = ms_since(t0);
  return r;
}

}  // namespace gpen
