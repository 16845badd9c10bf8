#include "weights/state_dict.h"

#include <cstring>
#include <set>

#include "core/error.h"
#include "weights/mapped_file.h"
#include "weights/onnx.h"
#include "weights/onnx_gpen.h"
#include "weights/pth.h"
#include "weights/safetensors.h"

namespace gpen {

const Tensor& StateDict::at(const std::string& key) const {
  auto it = tensors.find(key);
  if (it == tensors.end()) fail("missing key '", key, "'");
  return it->second;
}

const Tensor& StateDict::expect(const std::string& key, const Shape& shape) const {
  const Tensor& t = at(key);
  if (t.shape() != shape) fail("key '", key, "': expected shape ", shape_str(shape), ", got ", shape_str(t.shape()));
  return t;
}

int64_t StateDict::expect_exact_layout(const std::vector<std::pair<std::string, Shape>>& layout,
                                       const std::string& model) const {
  auto step_counter = [](const std::string& k) {
    static const std::string suffix = ".num_batches_tracked";
    return k.size() >= suffix.size() && k.compare(k.size() - suffix.size(), suffix.size(), suffix) == 0;
  };
  std::set<std::string> expected;
  int64_t params = 0;
  for (const auto& [k, shape] : layout) {
    expected.insert(k);
    if (step_counter(k)) continue;
    const Tensor& t = expect(k, shape);
    if (t.dtype() != DType::F32 && t.dtype() != DType::F16 && t.dtype() != DType::BF16 && t.dtype() != DType::F64)
      fail("key '", k, "' has dtype ", dtype_name(t.dtype()), ", expected a floating type");
    params += t.numel();
  }
  for (const auto& [k, t] : tensors)
    if (!expected.count(k)) fail("unexpected key '", k, "' for ", model);
  return params;
}

Tensor StateDict::f32(const std::string& key) const { return at(key).to(DType::F32); }

std::vector<std::string> StateDict::keys() const {
  std::vector<std::string> out;
  out.reserve(tensors.size());
  for (const auto& kv : tensors) out.push_back(kv.first);
  return out;
}

namespace {

enum class Format { PthZip, PthLegacy, Safetensors, Onnx, Unknown };

Format sniff(const std::string& head) {
  auto byte = [&](size_t i) { return uint8_t(head[i]); };
  if (head.size() >= 4 && std::memcmp(head.data(), "PK\x03\x04", 4) == 0) return Format::PthZip;
  // Before the pickle check: a safetensors header length of 128 + 256k also starts with 0x80.
  // Its byte 8 is '{', which a torch legacy file (magic number LONG1 at byte 2) never has there.
  if (head.size() >= 9 && byte(8) == '{') return Format::Safetensors;
  // A protobuf ModelProto starts with ir_version (field 1, varint): 0x08, then a small version.
  if (looks_like_onnx(head)) return Format::Onnx;
  // A pickle with a protocol >= 2 PROTO opcode, or torch's legacy magic number without one.
  if (head.size() >= 2 && byte(0) == 0x80) return Format::PthLegacy;
  if (head.size() >= 2 && byte(0) == 0x8a && byte(1) == 0x0a) return Format::PthLegacy;
  return Format::Unknown;
}

std::string hex_prefix(const std::string& head) {
  static const char hex[] = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < head.size() && i < 8; ++i) {
    uint8_t b = uint8_t(head[i]);
    s += (i ? " " : "");
    s += hex[b >> 4];
    s += hex[b & 15];
  }
  return s.empty() ? "none, the file is empty" : s;
}

}  // namespace

StateDict load_weights(const std::string& path) {
  const std::string head = read_file_prefix(path, 16);
  switch (sniff(head)) {
    case Format::PthZip: return load_pth_zip(path);
    case Format::PthLegacy: return load_pth_legacy(path);
    case Format::Safetensors: return load_safetensors(path);
    case Format::Onnx: return load_onnx_gpen(path);  // GPEN is the only ONNX model we read
    case Format::Unknown: break;
  }
  fail("'", path, "': unrecognised weights format (first bytes: ", hex_prefix(head),
       "); expected a PyTorch .pth (zip or legacy), a .safetensors or an .onnx file");
}

}  // namespace gpen
