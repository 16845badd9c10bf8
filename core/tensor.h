// Host tensor: a dtype, a shape (row-major, contiguous) and shared storage.
// Storage is either owned (64-byte aligned heap block) or borrowed from something that must stay
// alive, e.g. a memory-mapped safetensors file: `keepalive` holds it, so tensors are zero-copy.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace gpen {

using Shape = std::vector<int64_t>;

int64_t shape_numel(const Shape& s);
std::string shape_str(const Shape& s);  // "1x512x4x4"; "scalar" for {}

class Tensor {
 public:
  Tensor() = default;

  static Tensor empty(DType dtype, Shape shape);  // uninitialised, owned
  static Tensor zeros(DType dtype, Shape shape);
  // Borrow `data`; `keepalive` is held for as long as any tensor shares this storage.
  static Tensor wrap(DType dtype, Shape shape, void* data, std::shared_ptr<void> keepalive);
  static Tensor from_floats(Shape shape, const std::vector<float>& values);
  // Dtype and shape without storage (defined() is false unless empty): stands for a weight whose
  // values now live elsewhere, e.g. only in a prepacked kernel.
  static Tensor shape_only(DType dtype, Shape shape) { return wrap(dtype, std::move(shape), nullptr, nullptr); }

  bool defined() const { return data_ != nullptr || numel() == 0; }
  DType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int ndim() const { return int(shape_.size()); }
  int64_t dim(int i) const { return shape_.at(size_t(i < 0 ? i + ndim() : i)); }
  int64_t numel() const { return shape_numel(shape_); }
  size_t nbytes() const { return size_t(numel()) * dtype_size(dtype_); }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  template <class T> T* data() { return static_cast<T*>(data_); }
  template <class T> const T* data() const { return static_cast<const T*>(data_); }

  // Same storage, new shape (element count must match).
  Tensor reshape(Shape shape) const;
  // Converted copy (or the same tensor when the dtype already matches).
  Tensor to(DType dtype) const;
  // Deep copy into owned storage.
  Tensor clone() const;
  // Owns its storage and no other tensor shares it: safe to overwrite and hand out again (buffers
  // reused across calls instead of a fresh large allocation, and its page faults, every time).
  bool unshared() const { return storage_ && storage_.use_count() == 1; }
  // Element `i` as double, whatever the dtype (for tests and small scalars).
  double item_as_double(int64_t i = 0) const;

 private:
  DType dtype_ = DType::F32;
  Shape shape_;
  void* data_ = nullptr;
  std::shared_ptr<void> storage_;
};

}  // namespace gpen
