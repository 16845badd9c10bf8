// A model's named tensors, whatever file they came from, plus the string metadata that
// safetensors files carry (`__metadata__`). Readers live beside this header:
//   weights/pth.h          PyTorch .pth, zip (torch >= 1.6) and legacy (pre-1.6) serialization
//   weights/safetensors.h  safetensors, read by mmap (zero-copy) and written
//   weights/onnx.h         ONNX graphs (GPEN exports, mapped onto the state dict by weights/onnx_gpen.h)
// load_weights() picks the reader from the file's first bytes, not from its name.
#pragma once
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace gpen {

struct StateDict {
  std::map<std::string, Tensor> tensors;
  std::map<std::string, std::string> metadata;

  bool has(const std::string& key) const { return tensors.count(key) != 0; }
  // Throws gpen::Error "missing key 'K'" when absent.
  const Tensor& at(const std::string& key) const;
  // at(key) after checking the shape; throws "key 'K': expected shape A, got B".
  const Tensor& expect(const std::string& key, const Shape& shape) const;
  // The tensor as contiguous f32 (converting f16/bf16/f64 copies; f32 is shared, not copied).
  Tensor f32(const std::string& key) const;
  std::vector<std::string> keys() const;
  // Checks that this holds exactly `layout`'s keys with its shapes, each of a floating type, and
  // returns the number of parameters. Keys ending in ".num_batches_tracked" (BatchNorm's step
  // counter, which inference ignores) may be absent. `model` names the configuration in errors.
  int64_t expect_exact_layout(const std::vector<std::pair<std::string, Shape>>& layout, const std::string& model) const;
};

// Any supported checkpoint: .pth (zip or legacy), .safetensors or a GPEN .onnx, detected by magic bytes.
StateDict load_weights(const std::string& path);

}  // namespace gpen
