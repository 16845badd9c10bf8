// The whole-photo pipeline: (denoise) -> detect faces -> align each to GPEN's 5-point template ->
// restore all faces of one or several photos in GPEN batches -> face controls (strength, mode,
// skin protection; core/pipeline/adjustments.h) -> paste back with the feathered mask ->
// finishing filters (sharpen, contrast, brightness). RGBA photos keep their alpha channel
// untouched; gray photos whose faces are restored come back as RGB (GPEN works on colour).
//
// restore() / restore_many() run the stages one after the other. The three stage functions are
// public so that a caller can overlap them across photos (core/pipeline/batch.h):
//   PhotoInProgress p = r.detect_faces(photo, opt);    // one thread
//   r.run_gpen({&p.faces[0], ...}, opt);                // another; faces of several photos per batch
//   RestoreResult out = r.finish(std::move(p), opt);    // a third
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/colour_management.h"
#include "core/face_align.h"
#include "core/face_detector.h"
#include "core/image.h"
#include "core/models/gpen.h"
#include "core/paste_back.h"
#include "core/pipeline/upscale.h"
#include "core/pipeline/controls.h"

namespace gpen {

struct RestoreOptions {
  DetectOptions detect;          // threshold, NMS, min face, max faces, centre face only
  Controls controls;             // strength, mode, filters: docs/CONTROLS.md
  int batch_size = 4;            // faces per GPEN forward
  bool keep_crops = false;       // fill RestoredFace::aligned / restored (for --save-faces)
  const FaceMaskSource* mask = nullptr;  // null: GPEN's rectangle mask
  // Warps for alignment and paste-back. GPEN's cv2.warpAffine(flags=3) means INTER_AREA, which
  // warpAffine runs as bilinear: Linear reproduces GPEN; Cubic is sharper.
  WarpInterpolation warp = WarpInterpolation::Linear;
  // GPEN's use_sr (null: off): the whole photo is upsampled by this RealESRNet first; faces are
  // detected and aligned on a bilinear resize of the (denoised) photo to that size and pasted on
  // the upsampled one. Used from the detect stage only (one thread at a time).
  RrdbRunner* upscaler = nullptr;
  UpscaleOptions upscale;
};

struct RestoredFace {
  Detection detection;
  Image aligned;   // the S x S crop fed to GPEN (when keep_crops)
  Image restored;  // GPEN's output for it (when keep_crops; the crop itself at strength 0)
};

struct StageTimes {
  double upscale_ms = 0, detect_ms = 0, align_ms = 0, gpen_ms = 0, paste_ms = 0;
  StageTimes& operator+=(const StageTimes& o);
};

struct RestoreResult {
  Image image;
  std::vector<RestoredFace> faces;
  StageTimes times;
  std::string colour_profile;  // faces went through GPEN in sRGB from this profile; empty: as they were
};

// What GPEN sees of a face crop: the crop itself, or, when the photo's ICC profile is not sRGB,
// the crop converted to sRGB -- the colours GPEN learnt -- whose output then goes back to the
// photo's colours (core/colour_management.h). Both the photo stages and the aligned path use it.
struct GpenCrop {
  std::shared_ptr<const SrgbConversion> colour;  // null: the crop is used as it is
  Image srgb;                                    // the crop in sRGB, when colour

  GpenCrop() = default;
  GpenCrop(const Image& crop, std::shared_ptr<const SrgbConversion> conversion);
  const Image& input(const Image& crop) const { return colour ? srgb : crop; }
  void to_photo_colours(Image& gpen_output) const;  // no-op without a conversion
};

// One face between the stages.
struct FaceInProgress {
  Detection detection;
  AlignedFace aligned;
  GpenCrop gpen_crop;    // what run_gpen feeds GPEN; finish() takes the output back with it
  Image restored;        // GPEN's output, once run_gpen has seen this face (sRGB when converted)
  double gpen_ms = 0;    // this face's share of its GPEN batch
};

// One photo between the stages.
struct PhotoInProgress {
  Image photo;           // the input (denoised when asked) when not RGB; empty for RGB: it is split.rgb
  RgbAndAlpha split;     // its RGB and alpha (pasted into in place)
  std::vector<FaceInProgress> faces;
  std::vector<uint8_t> icc;  // the input's ICC profile, given to the saved face crops
  StageTimes times;
};

// Whether faces go through GPEN at all (strength 0 leaves them as they are).
bool restores_faces(const RestoreOptions& opt);

// An FFHQ-aligned face crop (any size; bilinear-resized to the model's) with the controls applied
// as to a face in a photo, the crop being the whole face: denoise, GPEN (skipped at strength 0; in
// sRGB when the crop's `meta.icc` is another profile),
// mode / --detail / strength, skin protection over the crop, sharpen, contrast, brightness.
// Returns the S x S RGB result. Shared by `gpen enhance --aligned`, `gpen serve` and the C API.
Image restore_aligned_crop(GpenRunner& gpen, const Image& crop, const Controls& controls);

class FaceRestorer {
 public:
  FaceRestorer(std::shared_ptr<FaceDetector> detector, std::shared_ptr<GpenRunner> gpen, ThreadPool* pool = nullptr);

  RestoreResult restore(const Image& photo, const RestoreOptions& opt);
  // Several photos at once: their faces share GPEN batches.
  std::vector<RestoreResult> restore_many(const std::vector<const Image*>& photos, const RestoreOptions& opt);

  // Stage 1: denoise (when asked), detect, align. The photo's `meta.icc` (when it is not sRGB)
  // makes its faces go through GPEN in sRGB. Not thread-safe (the detector caches graphs):
  // use one with_own_detector() copy per thread.
  PhotoInProgress detect_faces(Image photo, const RestoreOptions& opt);
  // Stage 2: GPEN on these faces, opt.batch_size per forward. Not thread-safe.
  void run_gpen(const std::vector<FaceInProgress*>& faces, const RestoreOptions& opt);
  // Stage 3: face controls, paste-back, finishing filters. Safe to call from several threads at
  // once, beside the other two stages.
  RestoreResult finish(PhotoInProgress photo, const RestoreOptions& opt) const;

  bool gpen_on_cpu() const { return gpen_->runs_on_cpu(); }
  int face_size() const;

  // A restorer sharing this one's GPEN runner and thread pool, with its own copy of the detector
  // using `detector_threads` CPU threads: several such copies can run detect_faces() at once, one
  // per thread (the batch's stage-1 workers). Its run_gpen() is still this one's: not concurrently.
  FaceRestorer with_own_detector(int detector_threads) const;
  int detector_threads() const { return detector_->threads(); }
  // A restorer whose run_gpen() runs on a twin of this one's GPEN runner (GpenRunner::twin): the
  // two can run GPEN at the same time (two GPU streams). Call before the first run_gpen().
  FaceRestorer with_own_gpen() const;

 private:
  std::shared_ptr<FaceDetector> detector_;
  std::shared_ptr<GpenRunner> gpen_;
  ThreadPool* pool_;
  Tensor gpen_input_;  // run_gpen's input batch, reused from one batch to the next
};

}  // namespace gpen
