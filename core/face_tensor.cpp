#include "core/face_tensor.h"

#include <algorithm>

#include "core/error.h"

namespace gpen {

Tensor faces_to_tensor(const std::vector<const Image*>& faces) {
  if (faces.empty()) fail("no faces to convert");
  const int S = faces[0]->width;
  Tensor t = Tensor::empty(DType::F32, {int64_t(faces.size()), 3, S, S});
  float* p = t.data<float>();
  const int64_t plane = int64_t(S) * S;
  for (size_t n = 0; n < faces.size(); ++n) {
    const Image& f = *faces[n];
    if (f.width != S || f.height != S || f.channels != 3)
      fail("face ", n, " is ", f.width, "x", f.height, "x", f.channels, ", expected ", S, "x", S, "x3");
    float* base = p + int64_t(n) * 3 * plane;
    for (int64_t i = 0; i < plane; ++i)
      for (int c = 0; c < 3; ++c) base[c * plane + i] = (float(f.pixels[size_t(i * 3 + c)]) / 255.f - 0.5f) / 0.5f;
  }
  return t;
}

Image tensor_to_face(const Tensor& t, int n) {
  if (t.ndim() != 4 || t.dim(1) != 3 || t.dtype() != DType::F32 || n < 0 || n >= t.dim(0))
    fail("tensor_to_face: bad tensor ", shape_str(t.shape()), " or index ", n);
  const int H = int(t.dim(2)), W = int(t.dim(3));
  const int64_t plane = int64_t(H) * W;
  const float* base = t.data<float>() + int64_t(n) * 3 * plane;
  Image img(W, H, 3);
  for (int64_t i = 0; i < plane; ++i)
    for (int c = 0; c < 3; ++c) {
      const float v = std::clamp(base[c * plane + i] * 0.5f + 0.5f, 0.f, 1.f) * 255.f;
      img.pixels[size_t(i * 3 + c)] = uint8_t(v);  // truncation, as numpy's astype(uint8)
    }
  return img;
}

}  // namespace gpen
