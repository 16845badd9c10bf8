#include "weights/onnx.h"

#include <cstring>

#include "core/error.h"
#include "weights/mapped_file.h"

namespace gpen {
namespace {

constexpr int kMaxDims = 8;
constexpr int64_t kMaxDim = int64_t(1) << 40;

enum WireType { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

// One field as read from the wire: its number, wire type and value (a number or a byte span).
struct Field {
  uint32_t number = 0;
  int wire_type = 0;
  uint64_t value = 0;                  // varint / fixed value
  const uint8_t* bytes = nullptr;      // length-delimited payload
  size_t size = 0;
};

// Reads the fields of one message in [begin, end). Every read is bounds-checked; errors give the
// byte offset from the start of the file (`base`) and the message being read.
class WireReader {
 public:
  WireReader(const uint8_t* begin, const uint8_t* end, const uint8_t* base, const std::string& file,
             const char* message)
      : p_(begin), end_(end), base_(base), file_(file), message_(message) {}

  bool done() const { return p_ >= end_; }

  Field next() {
    Field f;
    const uint64_t tag = varint();
    f.number = uint32_t(tag >> 3);
    f.wire_type = int(tag & 7);
    if (f.number == 0 || (tag >> 3) > 0x1fffffff) error("invalid field number");
    switch (f.wire_type) {
      case kVarint: f.value = varint(); break;
      case kFixed64: f.value = fixed(8); break;
      case kFixed32: f.value = fixed(4); break;
      case kLengthDelimited: {
        const uint64_t n = varint();
        if (n > uint64_t(end_ - p_)) error("field ", f.number, " length ", n, " runs past the end of the ", message_);
        f.bytes = p_;
        f.size = size_t(n);
        p_ += n;
        break;
      }
      default: error("unsupported wire type ", f.wire_type, " (field ", f.number, ")");
    }
    return f;
  }

  // A sub-message reader for a length-delimited field.
  WireReader sub(const Field& f, const char* message) const {
    expect_bytes(f, message);
    return WireReader(f.bytes, f.bytes + f.size, base_, file_, message);
  }

  void expect_bytes(const Field& f, const char* what) const {
    if (f.wire_type != kLengthDelimited) error(what, " (field ", f.number, ") must be length-delimited");
  }
  void expect_varint(const Field& f, const char* what) const {
    if (f.wire_type != kVarint) error(what, " (field ", f.number, ") must be a varint");
  }

  // Repeated integer field, packed (one length-delimited run of varints) or not (one varint).
  void append_varints(const Field& f, std::vector<int64_t>& out) const {
    if (f.wire_type == kVarint) {
      out.push_back(int64_t(f.value));
      return;
    }
    WireReader r = sub(f, message_);
    while (!r.done()) out.push_back(int64_t(r.varint()));
  }

  // Repeated fixed-width field (float 4 bytes, double 8 bytes), packed or not.
  template <class T>
  void append_fixed(const Field& f, std::vector<T>& out) const {
    const int want = sizeof(T) == 4 ? kFixed32 : kFixed64;
    if (f.wire_type == want) {
      T v;
      uint64_t bits = f.value;
      std::memcpy(&v, &bits, sizeof(T));  // little-endian host
      out.push_back(v);
      return;
    }
    expect_bytes(f, "packed repeated field");
    if (f.size % sizeof(T) != 0) error("packed field ", f.number, " has ", f.size, " bytes, not a multiple of ", sizeof(T));
    const size_t n = f.size / sizeof(T);
    const size_t old = out.size();
    out.resize(old + n);
    std::memcpy(out.data() + old, f.bytes, f.size);
  }

  std::string string(const Field& f) const {
    expect_bytes(f, "string");
    return std::string(reinterpret_cast<const char*>(f.bytes), f.size);
  }

  template <class... Args>
  [[noreturn]] void error(const Args&... args) const {
    fail("'", file_, "': malformed ONNX at byte ", size_t(p_ - base_), " in ", message_, ": ", args...);
  }

 private:
  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 70; shift += 7) {
      if (p_ >= end_) error("truncated varint");
      const uint8_t b = *p_++;
      if (shift == 63 && b > 1) error("bad varint (more than 64 bits)");
      v |= uint64_t(b & 0x7f) << shift;
      if (!(b & 0x80)) return v;
    }
    error("bad varint (longer than 10 bytes)");
  }
  uint64_t fixed(int n) {
    if (end_ - p_ < n) error("truncated fixed-width value");
    uint64_t v = 0;
    std::memcpy(&v, p_, size_t(n));
    p_ += n;
    return v;
  }

  const uint8_t* p_;
  const uint8_t* end_;
  const uint8_t* base_;
  const std::string& file_;
  const char* message_;
};

// ---- tensors --------------------------------------------------------------------------------------

struct DataTypeInfo {
  int onnx;
  const char* name;
  bool supported;
  DType dtype;
};

const DataTypeInfo kDataTypes[] = {
    {1, "FLOAT", true, DType::F32},      {2, "UINT8", true, DType::U8},       {3, "INT8", false, DType::F32},
    {4, "UINT16", false, DType::F32},    {5, "INT16", false, DType::F32},     {6, "INT32", true, DType::I32},
    {7, "INT64", true, DType::I64},      {8, "STRING", false, DType::F32},    {9, "BOOL", true, DType::Bool},
    {10, "FLOAT16", true, DType::F16},   {11, "DOUBLE", true, DType::F64},    {12, "UINT32", false, DType::F32},
    {13, "UINT64", false, DType::F32},   {14, "COMPLEX64", false, DType::F32}, {15, "COMPLEX128", false, DType::F32},
    {16, "BFLOAT16", true, DType::BF16},
};

DType onnx_dtype(int data_type, const std::string& tensor, const WireReader& r) {
  for (const auto& d : kDataTypes)
    if (d.onnx == data_type) {
      if (!d.supported) r.error("tensor '", tensor, "' has unsupported data type ", d.name);
      return d.dtype;
    }
  r.error("tensor '", tensor, "' has unknown data type ", data_type);
}

// The TensorProto fields as read, before they become a Tensor.
struct TensorFields {
  std::string name;
  Shape dims;
  int data_type = 0;
  const uint8_t* raw = nullptr;
  size_t raw_size = 0;
  bool has_raw = false, external = false;
  std::vector<float> floats;
  std::vector<int64_t> int32s, int64s;  // int32_data is a varint field too
  std::vector<double> doubles;
};

TensorFields read_tensor_fields(WireReader r) {
  TensorFields t;
  while (!r.done()) {
    Field f = r.next();
    switch (f.number) {
      case 1: r.append_varints(f, t.dims); break;
      case 2: r.expect_varint(f, "data_type"); t.data_type = int(f.value); break;
      case 4: r.append_fixed(f, t.floats); break;
      case 5: r.append_varints(f, t.int32s); break;
      case 7: r.append_varints(f, t.int64s); break;
      case 8: t.name = r.string(f); break;
      case 9: r.expect_bytes(f, "raw_data"); t.raw = f.bytes; t.raw_size = f.size; t.has_raw = true; break;
      case 10: r.append_fixed(f, t.doubles); break;
      case 13: t.external = true; break;
      case 14: r.expect_varint(f, "data_location"); t.external = t.external || f.value == 1; break;
      case 3: r.error("tensor segments (field 3) are not supported");
      default: break;
    }
  }
  return t;
}

// The values of the typed field that holds `dtype` in ONNX (FLOAT16/BFLOAT16/UINT8/BOOL go in
// int32_data), with its name, for the count check made before anything is allocated.
size_t typed_count(const TensorFields& t, DType dtype, const char** field) {
  switch (dtype) {
    case DType::F32: *field = "float_data"; return t.floats.size();
    case DType::F64: *field = "double_data"; return t.doubles.size();
    case DType::I64: *field = "int64_data"; return t.int64s.size();
    default: *field = "int32_data"; return t.int32s.size();
  }
}

Tensor copy_typed(const TensorFields& t, DType dtype, const Shape& shape, const WireReader& r) {
  const int64_t n = shape_numel(shape);
  const char* field = "";
  const size_t have = typed_count(t, dtype, &field);
  if (int64_t(have) != n) r.error("tensor '", t.name, "': ", field, " has ", have, " values for shape ", shape_str(shape));
  Tensor out = Tensor::empty(dtype, shape);
  for (int64_t i = 0; i < n; ++i) {
    const size_t k = size_t(i);
    switch (dtype) {
      case DType::F32: out.data<float>()[i] = t.floats[k]; break;
      case DType::F64: out.data<double>()[i] = t.doubles[k]; break;
      case DType::I64: out.data<int64_t>()[i] = t.int64s[k]; break;
      case DType::I32: out.data<int32_t>()[i] = int32_t(t.int32s[k]); break;
      case DType::U8: case DType::Bool: out.data<uint8_t>()[i] = uint8_t(t.int32s[k]); break;
      case DType::F16: case DType::BF16: out.data<uint16_t>()[i] = uint16_t(t.int32s[k]); break;  // the bit pattern
    }
  }
  return out;
}

Tensor to_tensor(const TensorFields& t, const std::shared_ptr<void>& keepalive, const WireReader& r) {
  if (t.external)
    r.error("tensor '", t.name, "' keeps its data in an external file, which is not supported; inline it with "
            "onnx.save_model(onnx.load(path), out, save_as_external_data=False)");
  if (t.dims.size() > size_t(kMaxDims)) r.error("tensor '", t.name, "' has ", t.dims.size(), " dims (max ", kMaxDims, ")");
  for (int64_t d : t.dims)
    if (d < 0 || d > kMaxDim) r.error("tensor '", t.name, "' has a bad dimension ", d);
  const DType dtype = onnx_dtype(t.data_type, t.name, r);
  const Shape& shape = t.dims;
  // Each dim is <= 2^40 but their product may still overflow: check it step by step.
  uint64_t numel = 1;
  for (int64_t d : shape) {
    if (d && numel > (uint64_t(1) << 50) / uint64_t(d)) r.error("tensor '", t.name, "' is too large: ", shape_str(shape));
    numel *= uint64_t(d);
  }
  if (!t.has_raw) return copy_typed(t, dtype, shape, r);
  const size_t esize = dtype_size(dtype);
  if (t.raw_size != numel * esize)
    r.error("tensor '", t.name, "': raw_data has ", t.raw_size, " bytes, shape ", shape_str(shape), " needs ", numel * esize);
  const bool aligned = reinterpret_cast<uintptr_t>(t.raw) % esize == 0;
  if (keepalive && aligned && numel) return Tensor::wrap(dtype, shape, const_cast<uint8_t*>(t.raw), keepalive);
  Tensor out = Tensor::empty(dtype, shape);
  if (numel) std::memcpy(out.raw(), t.raw, t.raw_size);
  return out;
}

// ---- graph ------------------------------------------------------------------------------------------

OnnxAttribute read_attribute(WireReader r, const std::shared_ptr<void>& keepalive) {
  OnnxAttribute a;
  while (!r.done()) {
    Field f = r.next();
    switch (f.number) {
      case 1: a.name = r.string(f); break;
      case 2: {
        std::vector<float> v;
        r.append_fixed(f, v);
        if (v.size() != 1) r.error("attribute f must hold one float");
        a.f = v[0];
        a.has_f = true;
        break;
      }
      case 3: r.expect_varint(f, "attribute i"); a.i = int64_t(f.value); a.has_i = true; break;
      case 5: {
        WireReader tr = r.sub(f, "TensorProto");
        a.t = to_tensor(read_tensor_fields(tr), keepalive, tr);
        a.has_t = true;
        break;
      }
      case 8: r.append_varints(f, a.ints); break;
      default: break;  // strings, sub-graphs, type protos: not needed
    }
  }
  return a;
}

OnnxNode read_node(WireReader r, const std::shared_ptr<void>& keepalive) {
  OnnxNode n;
  while (!r.done()) {
    Field f = r.next();
    switch (f.number) {
      case 1: n.inputs.push_back(r.string(f)); break;
      case 2: n.outputs.push_back(r.string(f)); break;
      case 3: n.name = r.string(f); break;
      case 4: n.op_type = r.string(f); break;
      case 5: n.attributes.push_back(read_attribute(r.sub(f, "AttributeProto"), keepalive)); break;
      default: break;
    }
  }
  return n;
}

void read_shape(WireReader r, OnnxValueInfo& v) {
  while (!r.done()) {
    Field f = r.next();
    if (f.number != 1) continue;
    WireReader dim = r.sub(f, "TensorShapeProto.Dimension");
    int64_t value = -1;
    while (!dim.done()) {
      Field d = dim.next();
      if (d.number == 1 && d.wire_type == kVarint) value = int64_t(d.value);
    }
    if (v.dims.size() >= size_t(kMaxDims)) r.error("value '", v.name, "' has more than ", kMaxDims, " dims");
    v.dims.push_back(value);
  }
}

OnnxValueInfo read_value_info(WireReader r) {
  OnnxValueInfo v;
  while (!r.done()) {
    Field f = r.next();
    if (f.number == 1) v.name = r.string(f);
    if (f.number != 2) continue;
    WireReader type = r.sub(f, "TypeProto");
    while (!type.done()) {
      Field tf = type.next();
      if (tf.number != 1) continue;  // only tensor types
      WireReader tensor_type = type.sub(tf, "TypeProto.Tensor");
      while (!tensor_type.done()) {
        Field tt = tensor_type.next();
        if (tt.number == 1 && tt.wire_type == kVarint) v.elem_type = int(tt.value);
        if (tt.number == 2) read_shape(tensor_type.sub(tt, "TensorShapeProto"), v);
      }
    }
  }
  return v;
}

void read_graph(WireReader r, const std::shared_ptr<void>& keepalive, OnnxModel& m) {
  while (!r.done()) {
    Field f = r.next();
    switch (f.number) {
      case 1: m.nodes.push_back(read_node(r.sub(f, "NodeProto"), keepalive)); break;
      case 5: {
        WireReader tr = r.sub(f, "TensorProto");
        TensorFields t = read_tensor_fields(tr);
        if (t.name.empty()) tr.error("initializer without a name");
        if (m.initializers.count(t.name)) tr.error("duplicate initializer '", t.name, "'");
        m.initializers.emplace(t.name, to_tensor(t, keepalive, tr));
        break;
      }
      case 11: m.inputs.push_back(read_value_info(r.sub(f, "ValueInfoProto"))); break;
      case 12: m.outputs.push_back(read_value_info(r.sub(f, "ValueInfoProto"))); break;
      case 15: r.error("sparse initializers are not supported");
      default: break;
    }
  }
}

}  // namespace

const OnnxAttribute* OnnxNode::attribute(const std::string& attr_name) const {
  for (const auto& a : attributes)
    if (a.name == attr_name) return &a;
  return nullptr;
}

int64_t OnnxNode::int_attribute(const std::string& attr_name, int64_t fallback) const {
  const OnnxAttribute* a = attribute(attr_name);
  return a && a->has_i ? a->i : fallback;
}

float OnnxNode::float_attribute(const std::string& attr_name, float fallback) const {
  const OnnxAttribute* a = attribute(attr_name);
  return a && a->has_f ? a->f : fallback;
}

OnnxModel parse_onnx_buffer(const uint8_t* data, size_t size, std::shared_ptr<void> keepalive, const std::string& name) {
  if (size == 0) fail("'", name, "': empty file, not an ONNX model");
  OnnxModel m;
  bool has_graph = false;
  std::string producer_name, producer_version;
  WireReader r(data, data + size, data, name, "ModelProto");
  while (!r.done()) {
    Field f = r.next();
    switch (f.number) {
      case 1: r.expect_varint(f, "ir_version"); m.ir_version = int64_t(f.value); break;
      case 2: producer_name = r.string(f); break;
      case 3: producer_version = r.string(f); break;
      case 7:
        if (has_graph) r.error("more than one graph");
        read_graph(r.sub(f, "GraphProto"), keepalive, m);
        has_graph = true;
        break;
      default: break;
    }
  }
  if (!has_graph) fail("'", name, "': ONNX model has no graph");
  m.producer = producer_name + (producer_version.empty() ? "" : " " + producer_version);
  return m;
}

OnnxModel read_onnx(const std::string& path) {
  auto file = MappedFile::open(path);
  return parse_onnx_buffer(file->data(), file->size(), file, path);
}

bool looks_like_onnx(const std::string& head) {
  return head.size() >= 2 && uint8_t(head[0]) == 0x08 && uint8_t(head[1]) >= 1 && uint8_t(head[1]) < 64;
}

}  // namespace gpen
