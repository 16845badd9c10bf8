#include "core/face_tensor.h"

#include <algorithm>
#include <array>

#include "core/error.h"
#include "core/thread_pool.h"

namespace gpen {
namespace {

// GPEN's input scaling, x / 255 * 2 - 1 as (x / 255 - 0.5) / 0.5 in float, for every byte.
const std::array<float, 256>& input_levels() {
  static const std::array<float, 256> lut = [] {
    std::array<float, 256> t{};
    for (int v = 0; v < 256; ++v) t[size_t(v)] = (float(v) / 255.f - 0.5f) / 0.5f;
    return t;
  }();
  return lut;
}

// One face (S x S x 3 bytes) into its [3][S][S] slot: a table lookup per byte, read in order,
// written per plane.
void face_to_planes(const uint8_t* px, float* base, int64_t plane) {
  const std::array<float, 256>& lut = input_levels();
  float* r = base;
  float* g = base + plane;
  float* b = base + 2 * plane;
  for (int64_t i = 0; i < plane; ++i, px += 3) {
    r[i] = lut[px[0]];
    g[i] = lut[px[1]];
    b[i] = lut[px[2]];
  }
}

// (y + 1) / 2 clipped to [0, 1], * 255, truncated (numpy's astype(uint8)), a row at a time: each
// plane's row in contiguous float lanes (vectorised), then interleaved.
void planes_to_face(const float* base, int64_t plane, int W, int H, uint8_t* img) {
  std::vector<uint8_t> rgb(size_t(W) * 3);
  for (int y = 0; y < H; ++y) {
    uint8_t* lanes = rgb.data();
    for (int c = 0; c < 3; ++c) {
      const float* src = base + c * plane + int64_t(y) * W;
      uint8_t* dst = lanes + size_t(c) * W;
      for (int x = 0; x < W; ++x) {
        const float v = src[x] * 0.5f + 0.5f;
        dst[x] = uint8_t(int((v < 0.f ? 0.f : v > 1.f ? 1.f : v) * 255.f));
      }
    }
    uint8_t* out = img + size_t(y) * W * 3;
    for (int x = 0; x < W; ++x) {
      out[3 * x] = lanes[x];
      out[3 * x + 1] = lanes[W + x];
      out[3 * x + 2] = lanes[2 * W + x];
    }
  }
}

}  // namespace

void faces_into_tensor(const std::vector<const Image*>& faces, Tensor& t, ThreadPool* pool) {
  if (faces.empty()) fail("no faces to convert");
  const int S = faces[0]->width;
  for (size_t n = 0; n < faces.size(); ++n) {
    const Image& f = *faces[n];
    if (f.width != S || f.height != S || f.channels != 3)
      fail("face ", n, " is ", f.width, "x", f.height, "x", f.channels, ", expected ", S, "x", S, "x3");
  }
  std::vector<const uint8_t*> bytes;
  for (const Image* f : faces) bytes.push_back(f->pixels.data());
  rgb_bytes_into_tensor(bytes.data(), int(faces.size()), S, t, pool);
}

void rgb_bytes_into_tensor(const uint8_t* const* in, int n, int S, Tensor& t, ThreadPool* pool) {
  const Shape shape = {int64_t(n), 3, S, S};
  if (!t.unshared() || t.shape() != shape || t.dtype() != DType::F32) t = Tensor::empty(DType::F32, shape);
  const int64_t plane = int64_t(S) * S;
  parallel_for(pool, int64_t(n), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) face_to_planes(in[i], t.data<float>() + i * 3 * plane, plane);
  });
}

void tensor_into_rgb_bytes(const Tensor& t, uint8_t* const* out, ThreadPool* pool) {
  if (t.ndim() != 4 || t.dim(1) != 3 || t.dtype() != DType::F32) fail("tensor_into_rgb_bytes: bad tensor ", shape_str(t.shape()));
  const int H = int(t.dim(2)), W = int(t.dim(3));
  const int64_t plane = int64_t(H) * W;
  parallel_for(pool, t.dim(0), 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) planes_to_face(t.data<float>() + i * 3 * plane, plane, W, H, out[i]);
  });
}

Tensor faces_to_tensor(const std::vector<const Image*>& faces, ThreadPool* pool) {
  Tensor t;
  faces_into_tensor(faces, t, pool);
  return t;
}

Image tensor_to_face(const Tensor& t, int n) {
  if (t.ndim() != 4 || t.dim(1) != 3 || t.dtype() != DType::F32 || n < 0 || n >= t.dim(0))
    fail("tensor_to_face: bad tensor ", shape_str(t.shape()), " or index ", n);
  const int H = int(t.dim(2)), W = int(t.dim(3));
  const int64_t plane = int64_t(H) * W;
  Image img(W, H, 3);
  planes_to_face(t.data<float>() + int64_t(n) * 3 * plane, plane, W, H, img.pixels.data());
  return img;
}

std::vector<Image> tensor_to_faces(const Tensor& t, ThreadPool* pool) {
  if (t.ndim() != 4 || t.dim(1) != 3 || t.dtype() != DType::F32) fail("tensor_to_faces: bad tensor ", shape_str(t.shape()));
  std::vector<Image> faces(size_t(t.dim(0)), Image(int(t.dim(3)), int(t.dim(2)), 3));
  std::vector<uint8_t*> out;
  for (Image& f : faces) out.push_back(f.pixels.data());
  tensor_into_rgb_bytes(t, out.data(), pool);
  return faces;
}

const RgbBytesIo& gpen_rgb_bytes_io() {
  static const RgbBytesIo io = [] {
    RgbBytesIo r;
    for (int c = 0; c < 3; ++c) std::copy(input_levels().begin(), input_levels().end(), r.in_levels.begin() + c * 256);
    r.out_scale = 0.5f;  // planes_to_face: (y * 0.5 + 0.5) clipped, * 255, truncated
    r.out_offset = 0.5f;
    return r;
  }();
  return io;
}

}  // namespace gpen
