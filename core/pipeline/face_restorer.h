// The whole-photo pipeline: detect faces -> align each to GPEN's 5-point template -> restore all
// faces of one or several photos in GPEN batches -> blend (strength) and paste back with the
// feathered mask. RGBA photos keep their alpha channel untouched; gray photos are processed and
// returned as RGB (GPEN works on colour).
#pragma once
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/face_detector.h"
#include "core/image.h"
#include "core/models/gpen.h"
#include "core/paste_back.h"

namespace gpen {

struct RestoreOptions {
  DetectOptions detect;          // threshold, NMS, min face, max faces, centre face only
  double strength = 1.0;         // 0: input returned unchanged; 1: GPEN's output as is
  int batch_size = 4;            // faces per GPEN forward
  bool keep_crops = false;       // fill RestoredFace::aligned / restored (for --save-faces)
  const FaceMaskSource* mask = nullptr;  // null: GPEN's rectangle mask
  // Warps for alignment and paste-back. GPEN's cv2.warpAffine(flags=3) means INTER_AREA, which
  // warpAffine runs as bilinear: Linear reproduces GPEN; Cubic is sharper.
  WarpInterpolation warp = WarpInterpolation::Linear;
};

struct RestoredFace {
  Detection detection;
  Image aligned;   // the S x S crop fed to GPEN (when keep_crops)
  Image restored;  // GPEN's output for it (when keep_crops)
};

struct StageTimes {
  double detect_ms = 0, align_ms = 0, gpen_ms = 0, paste_ms = 0;
  StageTimes& operator+=(const StageTimes& o);
};

struct RestoreResult {
  Image image;
  std::vector<RestoredFace> faces;
  StageTimes times;
};

class FaceRestorer {
 public:
  FaceRestorer(std::shared_ptr<FaceDetector> detector, std::shared_ptr<GpenRunner> gpen, ThreadPool* pool = nullptr);

  RestoreResult restore(const Image& photo, const RestoreOptions& opt);
  // Several photos at once: their faces share GPEN batches.
  std::vector<RestoreResult> restore_many(const std::vector<const Image*>& photos, const RestoreOptions& opt);

  int face_size() const;

 private:
  std::shared_ptr<FaceDetector> detector_;
  std::shared_ptr<GpenRunner> gpen_;
  ThreadPool* pool_;
};

}  // namespace gpen
