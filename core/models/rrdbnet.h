// RRDBNet (ESRGAN's Residual-in-Residual Dense Block network) as Real-ESRGAN / Real-ESRNet use it,
// and GPEN as its background upsampler (use_sr). Layout of GPEN's realesrnet_x2.pth:
// ../shared/reference/realesrnet_x2.keys.tsv (num_feat 32, 23 blocks, grow 32).
//
//   x2 only: pixel-unshuffle by 2 (conv_first then takes 12 channels; x4 takes the 3 as is)
//   feat = conv_first(x)
//   RDB(x):  x_i = lrelu(conv_i([x, x_1, .., x_{i-1}])) for i = 1..4 (each adds `grow` channels),
//            0.2 * conv5([x, x_1, .., x_4]) + x          -- the concat is done in place
//   RRDB(x): 0.2 * rdb3(rdb2(rdb1(x))) + x;   body = num_block RRDBs
//   feat = feat + conv_body(body(feat))
//   feat = lrelu(conv_up1(nearest_x2(feat)));  feat = lrelu(conv_up2(nearest_x2(feat)))
//   out  = conv_last(lrelu(conv_hr(feat)))
// All convs 3x3, zero padding 1, with bias; lrelu slope 0.2.
// The configuration (scale from conv_first's input channels, widths, block count) is inferred
// from the checkpoint; the key set must then be exactly the expected one.
//
// Graph input "input" [N, 3, H, W]: RGB in [0, 1] (H, W even for x2). Output [N, 3, sH, sW],
// not clamped.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/graph.h"
#include "core/models/conv_table.h"
#include "core/tensor.h"
#include "weights/state_dict.h"

namespace gpen {

struct RrdbConfig {
  int scale = 2;       // 2 or 4
  int features = 32;   // num_feat
  int grow = 32;       // num_grow_ch
  int blocks = 23;     // num_block (RRDBs)
  std::string describe() const;
};
RrdbConfig realesrnet_config(int scale);  // GPEN's realesrnet_x2 / _x4 layout

class RrdbNetModel {
 public:
  static RrdbNetModel from_state_dict(const StateDict& sd);
  static RrdbNetModel load(const std::string& path);

  const RrdbConfig& config() const { return cfg_; }
  int64_t parameter_count() const { return params_; }
  Graph build_graph(int batch, int height, int width) const;
  static std::vector<std::pair<std::string, Shape>> expected_layout(const RrdbConfig& cfg);

 private:
  using Conv = PreparedConv;
  const Conv& conv(const std::string& name) const { return convs_.at(name); }
  RrdbConfig cfg_;
  int64_t params_ = 0;
  ConvTable convs_{"RRDBNet"};  // by module prefix, e.g. "body.3.rdb2.conv5"
  friend struct RrdbBuilder;
};

// Seeded random weights with the layout of `cfg`: He-scaled convs, small biases, a 20x smaller
// conv_last with 0.5 added to its bias, so that outputs spread around mid-grey rather than clip.
// For tests and benchmarks.
StateDict rrdbnet_random_state_dict(const RrdbConfig& cfg, uint64_t seed);

}  // namespace gpen
