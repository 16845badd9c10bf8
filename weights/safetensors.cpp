#include "weights/safetensors.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"
#include "weights/mapped_file.h"

namespace gpen {

namespace {

using nlohmann::json;

// The reference implementation's limit; real headers are kilobytes.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;
constexpr int kMaxJsonDepth = 4;  // {name: {"shape": [..]}} is depth 3

const DType kAllDTypes[] = {DType::F32, DType::F16, DType::BF16, DType::F64,
                            DType::I64, DType::I32, DType::U8,   DType::Bool};

// Exact safetensors spelling only ("F32", not "float32" or "f32").
bool safetensors_dtype(const std::string& name, DType* out) {
  for (DType t : kAllDTypes)
    if (name == dtype_safetensors_name(t)) {
      *out = t;
      return true;
    }
  return false;
}

bool is_floating(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F64; }

struct Entry {
  std::string name;
  DType dtype;
  Shape shape;
  uint64_t begin, end;
};

class HeaderParser {
 public:
  explicit HeaderParser(const std::string& file) : file_(file) {}

  template <class... Args>
  [[noreturn]] void error(const Args&... args) const {
    fail("'", file_, "': safetensors: ", args...);
  }

  json parse_json(const char* begin, const char* end) const {
    auto limit_depth = [this](int depth, json::parse_event_t, json&) {
      if (depth > kMaxJsonDepth) error("header JSON nested deeper than ", kMaxJsonDepth);
      return true;
    };
    try {
      return json::parse(begin, end, limit_depth);
    } catch (const json::exception& e) {
      error("header is not valid JSON (", e.what(), ")");
    }
  }

  uint64_t offset(const json& v, const std::string& name) const {
    if (!v.is_number_unsigned()) error("tensor '", name, "': data_offsets must be non-negative integers");
    return v.get<uint64_t>();
  }

  Entry entry(const std::string& name, const json& v, uint64_t buffer_size) const {
    if (!v.is_object()) error("tensor '", name, "': header entry is not an object");
    Entry e;
    e.name = name;
    auto dtype = v.find("dtype");
    auto shape = v.find("shape");
    auto offsets = v.find("data_offsets");
    if (dtype == v.end() || shape == v.end() || offsets == v.end()) error("tensor '", name, "': needs dtype, shape and data_offsets");
    if (!dtype->is_string() || !safetensors_dtype(dtype->get<std::string>(), &e.dtype)) {
      error("tensor '", name, "': unsupported dtype ", dtype->dump());
    }
    if (!shape->is_array() || shape->size() > 32) error("tensor '", name, "': shape must be an array of at most 32 sizes");
    uint64_t numel = 1;
    for (const json& d : *shape) {
      if (!d.is_number_unsigned()) error("tensor '", name, "': shape ", shape->dump(), " has a non-integer or negative size");
      uint64_t n = d.get<uint64_t>();
      if (__builtin_mul_overflow(numel, n, &numel) || numel > uint64_t(INT64_MAX)) error("tensor '", name, "': shape ", shape->dump(), " is too large");
      e.shape.push_back(int64_t(n));
    }
    uint64_t nbytes;
    if (__builtin_mul_overflow(numel, uint64_t(dtype_size(e.dtype)), &nbytes)) error("tensor '", name, "': shape ", shape->dump(), " is too large");
    if (!offsets->is_array() || offsets->size() != 2) error("tensor '", name, "': data_offsets must be [begin, end]");
    e.begin = offset((*offsets)[0], name);
    e.end = offset((*offsets)[1], name);
    if (e.begin > e.end) error("tensor '", name, "': data_offsets [", e.begin, ", ", e.end, "] are reversed");
    if (e.end > buffer_size) error("tensor '", name, "': data_offsets end ", e.end, " is beyond the ", buffer_size, "-byte data buffer");
    if (e.end - e.begin != nbytes) {
      error("tensor '", name, "': ", dtype->get<std::string>(), " ", shape_str(e.shape), " needs ", nbytes, " bytes but data_offsets span ", e.end - e.begin);
    }
    return e;
  }

  std::map<std::string, std::string> metadata(const json& v) const {
    if (!v.is_object()) error("__metadata__ is not an object");
    std::map<std::string, std::string> out;
    for (auto it = v.begin(); it != v.end(); ++it) {
      if (!it.value().is_string()) error("__metadata__ value for '", it.key(), "' is not a string");
      out[it.key()] = it.value().get<std::string>();
    }
    return out;
  }

  // The tensors must tile the byte buffer: sorted by offset, each starts where the last ended.
  void check_coverage(std::vector<Entry>& entries, uint64_t buffer_size) const {
    std::sort(entries.begin(), entries.end(), [](const Entry& a, const Entry& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    uint64_t expected = 0;
    const Entry* prev = nullptr;
    for (const Entry& e : entries) {
      if (e.begin < expected) error("tensors '", prev->name, "' and '", e.name, "' overlap");
      if (e.begin > expected) error("gap of ", e.begin - expected, " bytes before tensor '", e.name, "'");
      expected = e.end;
      prev = &e;
    }
    if (expected != buffer_size) error(buffer_size - expected, " bytes after the last tensor in the data buffer");
  }

 private:
  std::string file_;
};

Tensor make_tensor(const Entry& e, uint8_t* buffer, const std::shared_ptr<void>& keepalive) {
  if (e.begin == e.end) return Tensor::empty(e.dtype, e.shape);
  uint8_t* p = buffer + e.begin;
  Tensor t = Tensor::wrap(e.dtype, e.shape, p, keepalive);
  // Misaligned element access is undefined behaviour; the format does not promise alignment.
  if (reinterpret_cast<uintptr_t>(p) % dtype_size(e.dtype) != 0) return t.clone();
  return t;
}

// ---- writing ----------------------------------------------------------------------------------

class TmpFile {
 public:
  explicit TmpFile(const std::string& path) : path_(path), f_(std::fopen(path.c_str(), "wb")) {
    if (!f_) fail("cannot create '", path, "': ", std::strerror(errno));
  }
  ~TmpFile() {
    if (f_) std::fclose(f_);
    if (!committed_) std::remove(path_.c_str());
  }
  void write(const void* p, size_t n) {
    if (n && std::fwrite(p, 1, n, f_) != n) fail("cannot write '", path_, "': ", std::strerror(errno));
  }
  void commit_as(const std::string& final_path) {
    bool ok = std::fflush(f_) == 0 && ::fsync(fileno(f_)) == 0;
    ok = (std::fclose(f_) == 0) && ok;
    f_ = nullptr;
    if (!ok) fail("cannot write '", path_, "': ", std::strerror(errno));
    if (std::rename(path_.c_str(), final_path.c_str()) != 0) fail("cannot rename '", path_, "' to '", final_path, "': ", std::strerror(errno));
    committed_ = true;
  }

 private:
  std::string path_;
  std::FILE* f_;
  bool committed_ = false;
};

std::string header_json(const std::map<std::string, Tensor>& tensors, const std::map<std::string, std::string>& metadata) {
  json header = json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const auto& [name, t] : tensors) {
    if (name == "__metadata__") fail("save_safetensors: a tensor cannot be named '__metadata__'");
    header[name] = {{"dtype", dtype_safetensors_name(t.dtype())},
                    {"shape", t.shape()},
                    {"data_offsets", {offset, offset + t.nbytes()}}};
    offset += t.nbytes();
  }
  std::string s;
  try {
    s = header.dump();
  } catch (const json::exception& e) {  // e.g. a name that is not valid UTF-8
    fail("save_safetensors: cannot encode header: ", e.what());
  }
  s.append((8 - s.size() % 8) % 8, ' ');  // byte buffer starts at 8 + s.size(), 8-byte aligned
  return s;
}

}  // namespace

StateDict parse_safetensors_buffer(const uint8_t* data, size_t size, std::shared_ptr<void> keepalive, const std::string& name) {
  HeaderParser p(name);
  if (size < 8) p.error("file is ", size, " bytes, too short for the 8-byte header length");
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(data[i]) << (8 * i);
  if (n > kMaxHeaderBytes) p.error("header length ", n, " exceeds the limit of ", kMaxHeaderBytes);
  if (n > size - 8) p.error("header length ", n, " runs past the end of the ", size, "-byte file");
  if (n < 2 || data[8] != '{') p.error("header does not start with '{'");
  const char* text = reinterpret_cast<const char*>(data + 8);
  json header = p.parse_json(text, text + n);
  if (!header.is_object()) p.error("header is not a JSON object");

  const uint64_t buffer_size = size - 8 - n;
  StateDict sd;
  std::vector<Entry> entries;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") {
      sd.metadata = p.metadata(it.value());
    } else {
      entries.push_back(p.entry(it.key(), it.value(), buffer_size));
    }
  }
  p.check_coverage(entries, buffer_size);
  uint8_t* buffer = const_cast<uint8_t*>(data) + 8 + n;
  for (const Entry& e : entries) sd.tensors[e.name] = make_tensor(e, buffer, keepalive);
  return sd;
}

StateDict load_safetensors(const std::string& path) {
  std::shared_ptr<MappedFile> file = MappedFile::open(path);
  return parse_safetensors_buffer(file->data(), file->size(), file, path);
}

void save_safetensors(const std::string& path, const StateDict& sd, std::optional<DType> float_dtype,
                      const std::map<std::string, std::string>& extra_metadata) {
  std::map<std::string, Tensor> tensors;
  for (const auto& [name, t] : sd.tensors) {
    if (!t.defined()) fail("save_safetensors: tensor '", name, "' has no data");
    tensors[name] = (float_dtype && is_floating(t.dtype())) ? t.to(*float_dtype) : t;
  }
  std::map<std::string, std::string> metadata = sd.metadata;
  for (const auto& [k, v] : extra_metadata) metadata[k] = v;

  const std::string header = header_json(tensors, metadata);
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = uint8_t(uint64_t(header.size()) >> (8 * i));
  TmpFile out(path + ".tmp");
  out.write(len, 8);
  out.write(header.data(), header.size());
  for (const auto& [name, t] : tensors) out.write(t.raw(), t.nbytes());
  out.commit_as(path);
}

}  // namespace gpen
