// A restricted Python unpickler: enough of the pickle format to read what torch.save writes,
// and nothing that runs code.
//
// Pickle is a little stack machine: each opcode pushes values, or pops some and pushes a result.
// Python's own unpickler resolves GLOBAL names to real callables and REDUCE calls them, which is
// how a .pth file can run `os.system`. This one never resolves a name: GLOBAL / STACK_GLOBAL push an
// inert Global value holding "module.name", and REDUCE / NEWOBJ only *interpret* a fixed set of
// names (collections.OrderedDict and torch's tensor rebuild functions) by building our own values.
// Any other callable is refused with an error that names it and gives the byte offset.
//
// torch specifics handled here:
//  * BINPERSID with ('storage', torch.XStorage, key, location, numel[, view_metadata]) becomes a
//    Storage value: a reference to raw bytes the caller resolves (a zip entry, or a block that
//    follows the pickles in a legacy file). view_metadata = (view_key, offset, size), in elements.
//  * torch._utils._rebuild_tensor_v2 / _rebuild_tensor (storage, storage_offset, size, stride, ...)
//    becomes a Tensor value (a TensorRef: storage + offset + shape + strides; no bytes yet).
//  * torch._utils._rebuild_parameter[_with_state] and torch._tensor._rebuild_from_type_v2 unwrap
//    to the tensor inside; Parameter-ness, requires_grad, hooks and Python attributes are dropped.
//
// Resource limits (stack, memo, nesting depth, string length, op count) keep hostile input from
// exhausting memory or time. Every error is a gpen::Error "pickle: ... at byte N", N counted from
// `base_offset` so that callers parsing several pickles in one file report file offsets.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include "core/dtype.h"
#include "core/tensor.h"

namespace gpen::pickle {

// A torch storage named by a persistent id. `view_offset`/`view_numel` select the part of the root
// storage `key` that this value refers to (the whole of it unless legacy view_metadata says so).
struct StorageRef {
  DType dtype = DType::U8;
  std::string type_name;  // "torch.FloatStorage"
  std::string key;        // root storage key: zip entry data/<key>, or legacy storage key
  std::string location;   // "cpu", "cuda:0": ignored, everything loads to host memory
  int64_t root_numel = 0;
  int64_t view_offset = 0;
  int64_t view_numel = 0;
};

// A tensor as torch describes it: elements at storage[storage_offset + sum(i_k * stride_k)].
struct TensorRef {
  StorageRef storage;
  int64_t storage_offset = 0;
  Shape shape;
  std::vector<int64_t> stride;
  size_t pickle_offset = 0;  // where the rebuild call was, for error messages
};

struct Value {
  enum class Kind : uint8_t {
    None, Bool, Int, BigInt, Float, String, Bytes, Tuple, List, Dict, Global, Storage, Tensor
  };
  Kind kind = Kind::None;
  int depth = 0;        // containers nested inside this value (approximate once mutated)
  bool boolean = false;
  int64_t integer = 0;
  double real = 0;
  std::string text;     // String, Bytes, Global ("module.name"), BigInt (little-endian two's complement)
  std::vector<Value*> items;                       // Tuple, List
  std::vector<std::pair<Value*, Value*>> entries;  // Dict, in insertion order
  std::unordered_map<std::string, size_t> index;   // Dict: str/int key -> position in `entries`
  std::unique_ptr<StorageRef> storage;             // Storage
  std::unique_ptr<TensorRef> tensor;               // Tensor

  bool is(Kind k) const { return kind == k; }
  // Dict lookup by string key; nullptr when absent or not a dict.
  const Value* get(const std::string& key) const;
};

const char* kind_name(Value::Kind k);

struct Limits {
  size_t max_stack = size_t(1) << 20;    // values on the stack, and nested MARKs
  size_t max_memo = size_t(1) << 22;     // memo entries
  int max_depth = 64;                    // containers inside containers
  size_t max_string = size_t(64) << 20;  // bytes in one string / bytes object
  uint64_t max_ops = uint64_t(1) << 28;  // opcodes executed
};

// The result of one pickle: all values live in (and die with) this object; cycles are harmless.
class Pickle {
 public:
  const Value* root() const { return root_; }
  // Offset just past the STOP opcode (relative to the buffer passed in, not base_offset).
  size_t end() const { return end_; }
  // Every Storage value made from a persistent id, in order (legacy files need their dtypes).
  const std::vector<const Value*>& storages() const { return storages_; }

 private:
  friend class Unpickler;
  std::vector<std::unique_ptr<Value>> arena_;
  std::vector<const Value*> storages_;
  const Value* root_ = nullptr;
  size_t end_ = 0;
};

// Runs one pickle from `data` up to and including its STOP opcode; bytes after it are left alone.
Pickle unpickle(const uint8_t* data, size_t size, const Limits& limits = {}, size_t base_offset = 0);

// Storage class name ("torch.FloatStorage") -> dtype; false for anything else.
bool storage_type_dtype(const std::string& type_name, DType* out);

// `s` with non-printable bytes escaped and cut to `max_len`, safe to put in an error message.
std::string printable(const std::string& s, size_t max_len = 80);

}  // namespace gpen::pickle
