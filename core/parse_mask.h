// Paste-back masks from face parsing, as GPEN's FaceEnhancement does with use of its FaceParse:
// the restored face is parsed by ParseNet at 512 x 512, the face-region classes become 1 and the
// rest 0, a 26-px border is zeroed, the plane is blurred twice with a 101 x 101 Gaussian of
// sigma 4 and resized to the crop size; paste_back then warps it into the photo. Unlike the fixed
// rectangle it follows the face's outline, so no "box around the face" shows where the restored
// face meets an unrestored background.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "core/backend.h"
#include "core/image.h"
#include "core/image_ops.h"
#include "core/models/parsenet.h"
#include "core/paste_back.h"

namespace gpen {

// CelebAMask-HQ classes of ParseNet's 19 outputs.
enum FaceClass : uint8_t {
  kBackground, kSkin, kNose, kEyeGlasses, kLeftEye, kRightEye, kLeftBrow, kRightBrow, kLeftEar, kRightEar,
  kMouth, kUpperLip, kLowerLip, kHair, kHat, kEarRing, kNeckLace, kNeck, kCloth, kFaceClassCount
};

struct ParseMaskOptions {
  // Which classes count as face (GPEN's mask_map: all but background, hat, necklace, neck, cloth;
  // hair and earrings included).
  std::array<bool, kFaceClassCount> face_classes{false, true, true, true, true, true, true, true, true, true,
                                                 true, true, true, true, false, true, false, false, false};
  int parse_size = 512;   // ParseNet input side (GPEN: 512)
  int border = 26;        // zeroed on every side of the parse_size plane
  int blur_ksize = 101;   // two cv2.GaussianBlur passes
  double blur_sigma = 4;
};

// Per-pixel argmax over the classes of [1, C, H, W] logits (the first maximum wins, as
// torch.argmax). H * W labels, row-major.
std::vector<uint8_t> parsing_labels(const Tensor& logits);

// 1 where the label is a face class, else 0 (width x height, 1 channel).
FloatImage face_region(const std::vector<uint8_t>& labels, int width, int height, const ParseMaskOptions& options);

// GPEN's mask_postprocess: zero `border` pixels on every side, then Gaussian-blur twice.
FloatImage soften_face_region(FloatImage region, const ParseMaskOptions& options);

// ParseNet-driven FaceMaskSource. One compiled ParseNet graph (batch 1, parse_size); calls from
// several threads take turns on it.
class ParseNetMask : public FaceMaskSource {
 public:
  ParseNetMask(const ParseNetModel& model, const CompileOptions& compile, ParseMaskOptions options = {});
  // restored crop (S x S RGB) -> resize to parse_size -> ParseNet -> labels -> face region ->
  // soften -> resize to S x S.
  FloatImage face_mask(const Image& restored_crop) const override;
  // The labels for one crop (resized to parse_size), for inspection and tests.
  std::vector<uint8_t> labels(const Image& restored_crop) const;

 private:
  ParseMaskOptions options_;
  std::unique_ptr<Executable> exe_;
  mutable std::mutex run_mutex_;
};

// The checkpoint at `parsenet_path` (.pth / .safetensors) as a mask source; "random[:SEED]" gives
// the official layout with random weights (arbitrary masks; for tests and benchmarks).
std::unique_ptr<FaceMaskSource> make_parse_mask(const std::string& parsenet_path, const CompileOptions& compile,
                                                const ParseMaskOptions& options = {});

}  // namespace gpen
