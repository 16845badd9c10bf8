// RetinaFace (Deng et al., CVPR 2020) as an engine graph, in the layout of the published
// Pytorch_Retinaface models (biubug6), which GPEN uses for face detection.
//
// Two bodies, told apart by the checkpoint's keys (never by the file name):
//   MobileNet-0.25  body.stage1.* / stage2.* / stage3.* (conv_bn and depthwise conv_dw blocks,
//                   LeakyReLU 0.1), returning stages 1..3 (64 / 128 / 256 channels, strides 8/16/32)
//   ResNet-50       body.conv1 / bn1 / layer1..4 (torchvision resnet50, stride in the 3x3 conv),
//                   returning layers 2..4 (512 / 1024 / 2048 channels, strides 8/16/32)
// then the shared neck and heads:
//   FPN   output_i = lrelu(bn(conv1x1(body_i)));  o2 = merge2(o2 + nearest_up(o3 -> size of o2));
//         o1 = merge1(o1 + nearest_up(o2 -> size of o1)); merge = lrelu(bn(conv3x3))
//   SSH   relu(concat(bn(conv3x3(f)), bn(conv3x3(g)), bn(conv3x3(lrelu(bn(conv3x3(g)))))) with
//         g = lrelu(bn(conv3x3(f))): the 3x3, "5x5" (two 3x3) and "7x7" (three 3x3) branches
//   heads ClassHead (2 anchors x 2 classes), BboxHead (x4), LandmarkHead (x10), 1x1 convs.
// The FPN / SSH leaky slope is 0.1 when out_channel <= 64 (mobilenet) and 0, i.e. ReLU, above.
//
// Every BatchNorm (eps 1e-5, running statistics) is folded into the conv before it at load:
// w' = w * g / sqrt(var + eps), b' = beta - mean * g / sqrt(var + eps). num_batches_tracked is
// ignored. The key set must be exactly the published one (for ResNet-50:
// ../shared/reference/retinaface_resnet50.keys.tsv); a missing, unexpected or mis-shaped tensor is
// a gpen::Error naming the key. A `module.` prefix is removed by the weights loader.
//
// The graph's input is "input" [N, 3, H, W] f32: the photo in B, G, R channel order minus
// (104, 117, 123), not scaled (see retinaface_input()). Any H, W >= 1 works; the graph is built
// per size. Outputs, in Graph::outputs() order, are one tensor per level l = 0, 1, 2 (strides
// 8, 16, 32), "head<l>" [N, 32, ceil(H/s), ceil(W/s)]: the three heads fused into one 1x1 conv,
// channels [0,4) class logits (anchor a: 2a = background, 2a+1 = face), [4,12) box deltas (anchor a:
// 4 + 4a .. 4 + 4a + 3 = dx, dy, dw, dh), [12,32) landmark deltas (anchor a: 12 + 10a .. +9 =
// dx1, dy1, ..., dx5, dy5). Anchor a of a cell has min_size config().min_sizes[l][a].
#pragma once
#include <array>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/backend.h"
#include "core/graph.h"
#include "core/models/conv_table.h"
#include "core/image.h"
#include "core/tensor.h"
#include "core/thread_pool.h"
#include "weights/state_dict.h"

namespace gpen {

enum class RetinaFaceBody { MobileNet025, ResNet50 };
const char* retinaface_body_name(RetinaFaceBody b);  // "mobilenet0.25", "resnet50"

struct RetinaFaceConfig {
  RetinaFaceBody body = RetinaFaceBody::MobileNet025;
  int out_channel = 64;                       // FPN / SSH width
  std::array<int, 3> in_channels{64, 128, 256};  // body features fed to the FPN
  float neck_slope = 0.1f;                    // FPN / SSH leaky slope: 0.1 if out_channel <= 64, else 0
  std::array<std::array<int, 2>, 3> min_sizes{{{16, 32}, {64, 128}, {256, 512}}};
  std::array<int, 3> steps{8, 16, 32};
  std::array<float, 2> variance{0.1f, 0.2f};
  static constexpr int kAnchors = 2;          // per cell and level
  static constexpr int kHeadChannels = kAnchors * (2 + 4 + 10);
  std::string describe() const;               // "RetinaFace mobilenet0.25 (out_channel 64)"
};
RetinaFaceConfig retinaface_config(RetinaFaceBody body);

class RetinaFaceModel {
 public:
  static RetinaFaceModel from_state_dict(const StateDict& sd);
  static RetinaFaceModel load(const std::string& path);

  const RetinaFaceConfig& config() const { return cfg_; }
  int64_t parameter_count() const { return params_; }
  // Forward graph for `batch` images of height x width (see the header comment for in/outputs).
  Graph build_graph(int batch, int height, int width) const;
  // Feature-map size of level l for an input of `size` pixels (ceil(size / step)).
  static int level_size(int size, int level);
  // Every (key, shape) the published checkpoint of this body has, num_batches_tracked ({}) included.
  static std::vector<std::pair<std::string, Shape>> expected_layout(const RetinaFaceConfig& cfg);

 private:
  using Conv = PreparedConv;
  const Conv& conv(const std::string& name) const { return convs_.at(name); }
  RetinaFaceConfig cfg_;
  int64_t params_ = 0;
  ConvTable convs_{"RetinaFace"};  // by module prefix, e.g. "body.stage1.1.3", "fpn.merge1"
  friend struct RetinaFaceBuilder;
};

// The network input for an RGB (or gray / RGBA: converted) image: [1, 3, H, W], B, G, R order
// minus (104, 117, 123). Rows are converted in parallel on `pool` when given.
Tensor retinaface_input(const Image& rgb, ThreadPool* pool = nullptr);
// The same scaling as a backend's byte input (Executable::run_from_rgb_bytes): x - mean[c].
const RgbBytesIo& retinaface_rgb_bytes_io();

// A state dict with the published layout of `body` and seeded random values (BatchNorm running
// statistics included, running_var > 0), scaled so that activations stay O(1) through the net.
// For tests and benchmarks; the detections it gives are meaningless.
StateDict retinaface_random_state_dict(RetinaFaceBody body, uint64_t seed);

}  // namespace gpen
