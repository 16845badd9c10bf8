#include "kernels/cuda/f16_nhwc.cuh"
#include "kernels/cuda/f16_nhwc_access.cuh"

namespace gpen::cuda {
namespace {

// Launches kernel<2> when every view moves channel pairs, else kernel<1>; `shape` gives the
// grid (its n, pixels, channels).
#define GPEN_LAUNCH_NHWC(kernel, shape, pairs_ok, stream, ...)                                      \
  do {                                                                                              \
    const bool two_ = (pairs_ok);                                                                   \
    const NhwcGrid g_ = nhwc_grid((shape).n, (shape).plane(), two_ ? (shape).c / 2 : (shape).c);  \
    if (two_)                                                                                       \
      GPEN_LAUNCH(g_.grid, g_.block, 0, stream, kernel<2>)(__VA_ARGS__);                            \
    else                                                                                            \
      GPEN_LAUNCH(g_.grid, g_.block, 0, stream, kernel<1>)(__VA_ARGS__);                            \
  } while (0)

bool empty(const DevView16& v) { return v.n == 0 || v.c == 0 || v.plane() == 0; }
bool same_shape(const DevView16& a, const DevView16& b) {
  return a.n == b.n && a.c == b.c && a.h == b.h && a.w == b.w;
}
// A packed f16 buffer of v's shape, NHWC or NCHW, as a view (the convolution operands).
DevView16 packed_like(const DevView16& v, uint16_t* data, ScratchLayout layout) {
  DevView16 p = v;
  p.data = data;
  const bool nhwc = layout == ScratchLayout::NHWC;
  p.pixel_stride = nhwc ? v.c : 1;
  p.channel_stride = nhwc ? 1 : int(v.plane());
  p.batch_stride = v.plane() * v.c;
  return p;
}

// --- edges ---
template <int V>
__global__ void from_f32_nchw(const float* __restrict__ x, DevView16 y) {
  const int g = GPEN_NHWC_GROUP(), n = blockIdx.z, P = int(y.plane());
  if (g * V >= y.c) return;
  const float* xs = x + int64_t(n) * y.c * P;
  GPEN_NHWC_PIXEL_LOOP(p, P) {
    float v[V];
#pragma unroll
    for (int j = 0; j < V; ++j) v[j] = xs[int64_t(g * V + j) * P + p];
    store_f16<V>(at(y, n, p, g * V), v);
  }
}

template <int V>
__global__ void to_f32_nchw(DevView16 x, float* __restrict__ y) {
  const int g = GPEN_NHWC_GROUP(), n = blockIdx.z, P = int(x.plane());
  if (g * V >= x.c) return;
  float* ys = y + int64_t(n) * x.c * P;
  GPEN_NHWC_PIXEL_LOOP(p, P) {
    float v[V];
    load_f16<V>(at(x, n, p, g * V), v);
#pragma unroll
    for (int j = 0; j < V; ++j) ys[int64_t(g * V + j) * P + p] = v[j];
  }
}

// One thread per pixel: three bytes in, three halves out.
__global__ void from_rgb_bytes(const uint8_t* __restrict__ in, const float* __restrict__ levels, bool reverse,
                               DevView16 y) {
  const int n = blockIdx.z, P = int(y.plane());
  for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < P; p += gridDim.x * blockDim.x) {
    const uint8_t* px = in + (int64_t(n) * P + p) * 3;
    const uint8_t first = reverse ? px[2] : px[0], last = reverse ? px[0] : px[2];
    const float v[3] = {levels[first], levels[256 + px[1]], levels[512 + last]};
    for (int c = 0; c < 3; ++c) store_f16<1>(at(y, n, p, c), v + c);
  }
}

// As rgb_bytes.cu's to_byte: two roundings (no fused multiply-add), clip, * 255, truncate.
__device__ __forceinline__ uint8_t to_byte(float y, float scale, float offset) {
  float v = __fadd_rn(__fmul_rn(y, scale), offset);
  v = v < 0.f ? 0.f : (v > 1.f ? 1.f : v);
  return uint8_t(int(__fmul_rn(v, 255.f)));
}

__global__ void to_rgb_bytes(DevView16 x, float scale, float offset, uint8_t* __restrict__ out) {
  const int n = blockIdx.z, P = int(x.plane());
  for (int p = blockIdx.x * blockDim.x + threadIdx.x; p < P; p += gridDim.x * blockDim.x) {
    uint8_t* px = out + (int64_t(n) * P + p) * 3;
    for (int c = 0; c < 3; ++c) {
      float v;
      load_f16<1>(at(x, n, p, c), &v);
      px[c] = to_byte(v, scale, offset);
    }
  }
}

// --- modulated convolution ---
// y = then(ep(acc * scale[n][c])): the conv epilogue, and with neither ep nor then the prepare
// pass (x * style).
template <int V>
__global__ void scaled_epilogue(DevView16 acc, const float* __restrict__ out_scale, DevEpilogue ep, DevThen then,
                                DevView16 y) {
  const int g = GPEN_NHWC_GROUP(), n = blockIdx.z, P = int(y.plane());
  if (g * V >= y.c) return;
  float s[V];
#pragma unroll
  for (int j = 0; j < V; ++j) s[j] = out_scale ? out_scale[int64_t(n) * y.c + g * V + j] : 1.f;
  GPEN_NHWC_PIXEL_LOOP(p, P) {
    float v[V];
    load_f16<V>(at(acc, n, p, g * V), v);
#pragma unroll
    for (int j = 0; j < V; ++j) v[j] = apply_then(then, apply_epilogue(ep, v[j] * s[j], g * V + j), g * V + j);
    store_f16<V>(at(y, n, p, g * V), v);
  }
}

// --- elementwise ---
template <int V>
__global__ void scale_bias_act(DevView16 x, DevView16 y, float scale, DevEpilogue ep) {
  const int g = GPEN_NHWC_GROUP(), n = blockIdx.z, P = int(y.plane());
  if (g * V >= y.c) return;
  GPEN_NHWC_PIXEL_LOOP(p, P) {
    float v[V];
    load_f16<V>(at(x, n, p, g * V), v);
#pragma unroll
    for (int j = 0; j < V; ++j) v[j] = apply_epilogue(ep, v[j] * scale, g * V + j);
    store_f16<V>(at(y, n, p, g * V), v);
  }
}

template <int V>
__global__ void add(DevView16 a, DevView16 b, DevView16 y) {
  const int g = GPEN_NHWC_GROUP(), n = blockIdx.z, P = int(y.plane());
  if (g * V >= y.c) return;
  GPEN_NHWC_PIXEL_LOOP(p, P) {
    float u[V], v[V];
    load_f16<V>(at(a, n, p, g * V), u);
    load_f16<V>(at(b, n, p, g * V), v);
#pragma unroll
    for (int j = 0; j < V; ++j) u[j] += v[j];
    store_f16<V>(at(y, n, p, g * V), u);
  }
}

template <int V>
__global__ void broadcast(const uint16_t* __restrict__ param, DevView16 y) {
  const int g = GPEN_NHWC_GROUP(), n = blockIdx.z, P = int(y.plane());
  if (g * V >= y.c) return;
  GPEN_NHWC_PIXEL_LOOP(p, P) {
    float v[V];
    load_f16<V>(param + int64_t(p) * y.c + g * V, v);
    store_f16<V>(at(y, n, p, g * V), v);
  }
}

// Pixel-per-thread grid for the byte kernels (three channels).
dim3 pixel_blocks(int64_t P) {
  const int64_t b = (P + kThreads - 1) / kThreads;
  return dim3(unsigned(b < 1 ? 1 : b > 16384 ? 16384 : b));
}

}  // namespace

cudaError_t launch_f16_nhwc_from_f32_nchw(const float* x, const DevView16& y, cudaStream_t stream) {
  if (empty(y)) return cudaSuccess;
  GPEN_LAUNCH_NHWC(from_f32_nchw, y, y.pairs(), stream, x, y);
  return cudaGetLastError();
}

cudaError_t launch_f16_nhwc_to_f32_nchw(const DevView16& x, float* y, cudaStream_t stream) {
  if (empty(x)) return cudaSuccess;
  GPEN_LAUNCH_NHWC(to_f32_nchw, x, x.pairs(), stream, x, y);
  return cudaGetLastError();
}

cudaError_t launch_f16_nhwc_from_rgb_bytes(const uint8_t* in, const float* levels, bool reverse_channels,
                                           const DevView16& y, cudaStream_t stream) {
  if (y.c != 3) return cudaErrorInvalidValue;
  if (empty(y)) return cudaSuccess;
  dim3 grid = pixel_blocks(y.plane());
  grid.z = unsigned(y.n);
  GPEN_LAUNCH(grid, kThreads, 0, stream, from_rgb_bytes)(in, levels, reverse_channels, y);
  return cudaGetLastError();
}

cudaError_t launch_f16_nhwc_to_rgb_bytes(const DevView16& x, float scale, float offset, uint8_t* out,
                                         cudaStream_t stream) {
  if (x.c != 3) return cudaErrorInvalidValue;
  if (empty(x)) return cudaSuccess;
  dim3 grid = pixel_blocks(x.plane());
  grid.z = unsigned(x.n);
  GPEN_LAUNCH(grid, kThreads, 0, stream, to_rgb_bytes)(x, scale, offset, out);
  return cudaGetLastError();
}

cudaError_t launch_f16_nhwc_prepare_conv_input(const DevView16& x, const float* in_scale, uint16_t* out,
                                               ScratchLayout layout, cudaStream_t stream) {
  if (empty(x)) return cudaSuccess;
  const DevView16 o = packed_like(x, out, layout);
  GPEN_LAUNCH_NHWC(scaled_epilogue, x, x.pairs() && o.pairs(), stream, x, in_scale, DevEpilogue{}, DevThen{}, o);
  return cudaGetLastError();
}

cudaError_t launch_f16_nhwc_conv_epilogue(const uint16_t* acc, ScratchLayout layout, const float* out_scale,
                                          const DevEpilogue& ep, const DevThen& then, const DevView16& y,
                                          cudaStream_t stream) {
  if (empty(y)) return cudaSuccess;
  const DevView16 a = packed_like(y, const_cast<uint16_t*>(acc), layout);
  GPEN_LAUNCH_NHWC(scaled_epilogue, y, y.pairs() && a.pairs(), stream, a, out_scale, ep, then, y);
  return cudaGetLastError();
}

cudaError_t launch_f16_nhwc_scale_bias_act(const DevView16& x, const DevView16& y, float scale,
                                           const DevEpilogue& ep, cudaStream_t stream) {
  if (!same_shape(x, y)) return cudaErrorInvalidValue;
  if (empty(y)) return cudaSuccess;
  GPEN_LAUNCH_NHWC(scale_bias_act, y, x.pairs() && y.pairs(), stream, x, y, scale, ep);
  return cudaGetLastError();
}

cudaError_t launch_f16_nhwc_add(const DevView16& a, const DevView16& b, const DevView16& y, cudaStream_t stream) {
  if (!same_shape(a, y) || !same_shape(b, y)) return cudaErrorInvalidValue;
  if (empty(y)) return cudaSuccess;
  GPEN_LAUNCH_NHWC(add, y, a.pairs() && b.pairs() && y.pairs(), stream, a, b, y);
  return cudaGetLastError();
}

cudaError_t launch_f16_nhwc_broadcast(const uint16_t* param, const DevView16& y, cudaStream_t stream) {
  if (empty(y)) return cudaSuccess;
  const bool aligned = y.c % 2 == 0 && (uintptr_t(param) & 3) == 0;
  GPEN_LAUNCH_NHWC(broadcast, y, y.pairs() && aligned, stream, param, y);
  return cudaGetLastError();
}

}  // namespace gpen::cuda
