// ONNX models (.onnx): a strict reader for the part of the format that holds a graph's weights and
// its structure. The engine never runs ONNX graphs; weights/onnx_gpen.h maps a GPEN export onto
// the official state-dict layout using what this reader returns.
//
// Why a hand-written reader rather than libprotobuf: an ONNX file is one protobuf ModelProto, and we
// need ~25 of its fields. libprotobuf would need generated code (protoc in the build), would copy
// every raw_data blob (285 MB for GPEN-512) into a std::string, and still leave all the checks we
// need (dtype, dims against byte counts, external data) to us. Reading the wire format directly
// lets tensors borrow the memory-mapped file, like the safetensors reader, in ~300 lines with
// every length bounds-checked.
//
// Wire format read (https://protobuf.dev/programming-guides/encoding/): a message is a sequence of
// (tag, value); tag = varint (field_number << 3 | wire_type). Wire types: 0 varint (at most 10
// bytes), 1 fixed 8 bytes, 2 length-delimited (varint length, then that many bytes; also packed
// repeated scalars), 5 fixed 4 bytes. Groups (3, 4) are refused. Unknown fields are skipped by
// wire type. A length that reaches past its enclosing message, a varint longer than 10 bytes, or a
// field number of 0 is an error naming the byte offset.
//
// Messages and fields read (numbers from onnx/onnx.proto, checked against the onnx package):
//   ModelProto        ir_version=1 producer_name=2 producer_version=3 graph=7
//   GraphProto        node=1 initializer=5 input=11 output=12
//                     (sparse_initializer=15 is refused: GPEN exports never use it)
//   NodeProto         input=1 output=2 name=3 op_type=4 attribute=5
//   AttributeProto    name=1 f=2 i=3 t=5 ints=8   (sub-graphs g=6 / graphs=11 are skipped unread)
//   TensorProto       dims=1 data_type=2 float_data=4 int32_data=5 int64_data=7 name=8 raw_data=9
//                     double_data=10 external_data=13 data_location=14
//   ValueInfoProto    name=1 type=2 -> TypeProto tensor_type=1 -> elem_type=1 shape=2
//                     -> TensorShapeProto dim=1 -> dim_value=1 (dim_param=2 reads as -1)
// Nesting is fixed by this schema (no recursion into sub-graphs), so depth is bounded.
//
// Tensors: data types FLOAT(1) UINT8(2) INT32(6) INT64(7) BOOL(9) FLOAT16(10) DOUBLE(11)
// BFLOAT16(16); others are refused. Data comes from raw_data (little-endian, its size must be
// exactly numel * element size) or from the typed fields float_data (FLOAT), int32_data (INT32,
// UINT8, BOOL, FLOAT16, BFLOAT16, as ONNX stores them), int64_data (INT64), double_data (DOUBLE),
// whose element count must equal numel. External data (data_location = EXTERNAL or an external_data
// entry) is refused with a message saying how to inline it. At most 8 dims, each 0..2^40.
// raw_data tensors borrow the file's memory when suitably aligned, and are copied otherwise.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace gpen {

struct OnnxAttribute {
  std::string name;
  bool has_i = false, has_f = false, has_t = false;
  int64_t i = 0;
  float f = 0;
  std::vector<int64_t> ints;
  Tensor t;
};

struct OnnxNode {
  std::string name, op_type;
  std::vector<std::string> inputs, outputs;  // "" marks an omitted optional input
  std::vector<OnnxAttribute> attributes;
  const OnnxAttribute* attribute(const std::string& attr_name) const;  // nullptr when absent
  int64_t int_attribute(const std::string& attr_name, int64_t fallback) const;
  float float_attribute(const std::string& attr_name, float fallback) const;
};

struct OnnxValueInfo {
  std::string name;
  int elem_type = 0;          // TensorProto data type; 0 when not given
  std::vector<int64_t> dims;  // -1 for a symbolic (dim_param) or unknown dimension
};

struct OnnxModel {
  int64_t ir_version = 0;
  std::string producer;  // "pytorch 1.13.1"
  std::vector<OnnxNode> nodes;                   // in file order (topological for valid models)
  std::map<std::string, Tensor> initializers;
  std::vector<OnnxValueInfo> inputs, outputs;    // graph inputs may repeat initializer names
};

// Memory-maps `path`; initializers borrow the mapping. Errors name the file.
OnnxModel read_onnx(const std::string& path);
// Parses a whole .onnx image in memory. Tensors point into `data` (copied where misaligned) and
// hold `keepalive`; without one, every tensor is copied. `name` is used in errors.
OnnxModel parse_onnx_buffer(const uint8_t* data, size_t size, std::shared_ptr<void> keepalive = nullptr,
                            const std::string& name = "<memory>");

// True when the first bytes look like a serialized ModelProto: field 1 (ir_version) as a varint,
// with a plausible value 1..63, which is how every ONNX writer starts the file.
bool looks_like_onnx(const std::string& head);

}  // namespace gpen
