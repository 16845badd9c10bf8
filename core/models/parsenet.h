// GPEN's ParseNet face parser (face_parsing/parse_model.py; ParseNet-latest.pth) as an engine graph.
//
// The published network: 19 classes (CelebAMask-HQ) at 512 x 512, BatchNorm, LeakyReLU 0.2,
// channels clipped to [32, 256]. Layout: ../shared/reference/parsenet.keys.tsv.
//   ConvLayer      [nearest x2] -> reflection pad 1 -> conv 3x3 (stride 2 when downsampling)
//                  -> [BatchNorm, folded into the conv at load] -> [LeakyReLU 0.2]
//   ResidualBlock  shortcut(x) + conv2(conv1(x)); shortcut is a plain ConvLayer with the block's
//                  scale, or the identity (no keys) when the block keeps size and width;
//                  down blocks stride in conv2, up blocks upsample before conv1
//   encoder.0      ConvLayer(3 -> base);  encoder.1..D  down blocks
//   body.0..R-1    blocks at the bottleneck;  x = feat + body(feat)
//   decoder.0..U-1 up blocks;  out_mask_conv -> classes, out_img_conv -> 3 (plain convs)
// The configuration (D, R, U, widths, classes) is inferred from the keys and shapes; the key set
// must then be exactly the expected one (a missing, unexpected or mis-shaped tensor is a
// gpen::Error naming the key). num_batches_tracked is ignored.
//
// Graph input "input" [N, 3, S, S]: RGB in [-1, 1] (parsenet_input()). Outputs, in
// Graph::outputs() order: "mask" [N, classes, S', S'] logits and "image" [N, 3, S', S'], with
// S' = S when S is divisible by 2^D (GPEN: S = 512).
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/graph.h"
#include "core/models/conv_table.h"
#include "core/image.h"
#include "core/tensor.h"
#include "weights/state_dict.h"

namespace gpen {

struct ParseNetConfig {
  int base_channels = 64;
  std::vector<int> encoder_channels{128, 256, 256, 256};  // out channels of encoder.1..D
  int body_blocks = 10;
  std::vector<int> decoder_channels{256, 256, 128, 64};   // out channels of decoder.0..U-1
  int classes = 19;
  static constexpr int kInputSize = 512;                  // what GPEN feeds the published weights
  std::string describe() const;
};
ParseNetConfig parsenet_official_config();

class ParseNetModel {
 public:
  static ParseNetModel from_state_dict(const StateDict& sd);
  static ParseNetModel load(const std::string& path);

  const ParseNetConfig& config() const { return cfg_; }
  int64_t parameter_count() const { return params_; }
  Graph build_graph(int batch, int size) const;
  // Every (key, shape) of a checkpoint with this configuration (num_batches_tracked as {}).
  static std::vector<std::pair<std::string, Shape>> expected_layout(const ParseNetConfig& cfg);

 private:
  using Conv = PreparedConv;
  const Conv& conv(const std::string& name) const { return convs_.at(name); }
  ParseNetConfig cfg_;
  int64_t params_ = 0;
  ConvTable convs_{"ParseNet"};  // by ConvLayer prefix, e.g. "encoder.1.conv1"
  friend struct ParseNetBuilder;
};

// [1, 3, H, W] RGB in [-1, 1] (v / 255 * 2 - 1) from an RGB image (gray / RGBA converted).
Tensor parsenet_input(const Image& img);

// Seeded random weights with the layout of `cfg` (BatchNorm statistics included, running_var > 0),
// scaled so that activations stay O(1). For tests and benchmarks; the parsing is meaningless.
StateDict parsenet_random_state_dict(const ParseNetConfig& cfg, uint64_t seed);

}  // namespace gpen
