// GPEN's FullGenerator exported to ONNX (facefusion's gpen_bfr_256/512/1024/2048.onnx, or any
// torch.onnx.export of the official model or of tools/reference/gpen_model.py) -> the official
// state dict, so that GpenModel, `gpen convert` and `gpen info` read it like a .pth.
//
// Two ways to recover the weights, tried in this order:
//  1. By name: an export without constant folding keeps every parameter as an initializer named
//     after its state-dict key, holding the parameter unchanged. Used when the file has
//     "ecd0.0.0.weight", "final_linear.0.weight" and "generator.conv1.conv.weight".
//  2. By graph structure, whatever the names: with do_constant_folding=True, torch replaces each
//     parameter by its folded "effective" value (equal-lr scale multiplied in, linear weights
//     transposed for MatMul, biases reshaped) under an anonymous name such as "onnx::Mul_926".
//     Each constant is identified by the node that consumes it, in graph (= forward) order:
//       Conv weight, not 4x4             encoder conv ecd0..ecdL            (x 1/sqrt(fan_in))
//       Conv weight 4x4                  blur kernel: skipped, regenerated
//       Expand/Tile/Conv data input      generator.input.input              (first C channels)
//       Gemm B (+C) / MatMul B (+Add)    final_linear, style MLP, then each modulation, in order
//       Mul with a 5-D constant          modulated conv weights conv1, to_rgb1, convs.0, ...
//       Mul with one value -> Concat     noise (feature injection) weights
//       Add with a constant (>1 value)   encoder biases, then activate / ToRGB biases, in order
//     The folding is undone (divided by the same scales GpenModel multiplies in), then every
//     tensor's shape is checked against GpenModel::expected_layout of the configuration that the
//     encoder and modulated-conv shapes imply; a mismatch names the ONNX initializer and the key.
// Blur kernels are fixed buffers ([1,3,3,1] outer product, normalised; x4 where they follow an
// upsampling) in every GPEN checkpoint, so those not in the file are generated.
// Graphs exported without constant folding *and* with anonymous names cannot be mapped: the error
// says so. Nor can a named export of a model whose parameters have equal values (e.g. untrained
// zero biases): torch merges equal initializers into one, so keys go missing (GpenModel names
// them); trained checkpoints do not have equal tensors. In folded graphs merged constants are
// harmless, since roles come from the consuming nodes. External data is refused (weights/onnx.h).
#pragma once
#include <string>

#include "weights/onnx.h"
#include "weights/state_dict.h"

namespace gpen {

// `name` (the file) is used in errors. Tensors may borrow the model's memory.
StateDict gpen_state_dict_from_onnx(const OnnxModel& model, const std::string& name = "<onnx>");
// read_onnx + gpen_state_dict_from_onnx; metadata "gpen.onnx.mapping" = "names" or "graph".
StateDict load_onnx_gpen(const std::string& path);

}  // namespace gpen
