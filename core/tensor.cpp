#include "core/tensor.h"

#include <cstdlib>
#include <cstring>
#include <sstream>

#include "core/error.h"
#include "core/memory.h"

namespace gpen {

int64_t shape_numel(const Shape& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}

std::string shape_str(const Shape& s) {
  if (s.empty()) return "scalar";
  std::ostringstream os;
  for (size_t i = 0; i < s.size(); ++i) os << (i ? "x" : "") << s[i];
  return os.str();
}

Tensor Tensor::empty(DType dtype, Shape shape) {
  for (int64_t d : shape)
    if (d < 0) fail("negative tensor dimension in ", shape_str(shape));
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  void* p = aligned_alloc_bytes(t.nbytes());
  t.storage_ = std::shared_ptr<void>(p, aligned_free);
  t.data_ = p;
  return t;
}

Tensor Tensor::zeros(DType dtype, Shape shape) {
  Tensor t = empty(dtype, std::move(shape));
  std::memset(t.data_, 0, t.nbytes());
  return t;
}

Tensor Tensor::wrap(DType dtype, Shape shape, void* data, std::shared_ptr<void> keepalive) {
  Tensor t;
  t.dtype_ = dtype;
  t.shape_ = std::move(shape);
  t.data_ = data;
  t.storage_ = std::move(keepalive);
  return t;
}

Tensor Tensor::from_floats(Shape shape, const std::vector<float>& values) {
  Tensor t = empty(DType::F32, std::move(shape));
  if (int64_t(values.size()) != t.numel()) fail("from_floats: ", values.size(), " values for shape ", shape_str(t.shape_));
  std::memcpy(t.data_, values.data(), t.nbytes());
  return t;
}

Tensor Tensor::reshape(Shape shape) const {
  if (shape_numel(shape) != numel()) fail("cannot reshape ", shape_str(shape_), " to ", shape_str(shape));
  Tensor t = *this;
  t.shape_ = std::move(shape);
  return t;
}

Tensor Tensor::clone() const {
  Tensor t = empty(dtype_, shape_);
  if (nbytes()) std::memcpy(t.data_, data_, nbytes());
  return t;
}

double Tensor::item_as_double(int64_t i) const {
  if (i < 0 || i >= numel()) fail("item index ", i, " out of range for ", shape_str(shape_));
  switch (dtype_) {
    case DType::F32: return data<float>()[i];
    case DType::F16: return f16_to_f32(data<uint16_t>()[i]);
    case DType::BF16: return bf16_to_f32(data<uint16_t>()[i]);
    case DType::F64: return data<double>()[i];
    case DType::I64: return double(data<int64_t>()[i]);
    case DType::I32: return data<int32_t>()[i];
    case DType::U8: return data<uint8_t>()[i];
    case DType::Bool: return data<uint8_t>()[i] ? 1 : 0;
  }
  return 0;
}

Tensor Tensor::to(DType target) const {
  if (target == dtype_) return *this;
  Tensor out = empty(target, shape_);
  const int64_t n = numel();
  const bool float_src = dtype_ == DType::F32 || dtype_ == DType::F16 || dtype_ == DType::BF16 || dtype_ == DType::F64;
  for (int64_t i = 0; i < n; ++i) {
    double v = item_as_double(i);
    switch (target) {
      case DType::F32: out.data<float>()[i] = float(v); break;
      case DType::F16: out.data<uint16_t>()[i] = f32_to_f16(float(v)); break;
      case DType::BF16: out.data<uint16_t>()[i] = f32_to_bf16(float(v)); break;
      case DType::F64: out.data<double>()[i] = v; break;
      case DType::I64: out.data<int64_t>()[i] = int64_t(v); break;
      case DType::I32: out.data<int32_t>()[i] = int32_t(v); break;
      case DType::U8: out.data<uint8_t>()[i] = uint8_t(v); break;
      case DType::Bool: out.data<uint8_t>()[i] = v != 0; break;
    }
  }
  (void)float_src;
  return out;
}

}  // namespace gpen
