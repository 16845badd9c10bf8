// The part of cuDNN that gpen's CUDA backend calls (core/cuda/cudnn_conv.cpp), on the CPU:
// tensor and filter descriptors (NCHW, NHWC or strided; f32 or f16), convolutions forward and
// backward-data (the transposed convolution) computed in f32 by gpen's CPU conv kernels on
// dense copies (f16 operands rounded on the way back), and the algorithm queries. Two "algorithms" are offered: 0 needs no workspace; 1 needs one and, found faster,
// is what the backend picks when its workspace cap allows -- it fills its workspace with NaN
// bytes, so a workspace that overlaps live tensors corrupts them visibly. Shapes that real cuDNN
// refuses (channel or size mismatches, mixed data types) are refused with CUDNN_STATUS_BAD_PARAM.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include <cuda_fp16.h>
#include <cudnn.h>

#include <chrono>
#include <cstring>
#include <vector>

#include "core/tensor.h"
#include "core/thread_pool.h"
#include "kernels/cpu/conv.h"
#include "kernels/cuda/emu/runtime_emu.h"

struct cudnnContext {
  cudaStream_t stream = nullptr;
};
struct cudnnTensorStruct {
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  int n = 0, c = 0, h = 0, w = 0;
  int64_t sn = 0, sc = 0, sh = 0, sw = 0;
};
struct cudnnFilterStruct {
  cudnnDataType_t type = CUDNN_DATA_FLOAT;
  cudnnTensorFormat_t format = CUDNN_TENSOR_NCHW;
  int k = 0, c = 0, h = 0, w = 0;
};
struct cudnnConvolutionStruct {
  int pad_h = 0, pad_w = 0, u = 1, v = 1, dil_h = 1, dil_w = 1, groups = 1;
  cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
};

namespace {

using Tensor = cudnnTensorStruct;
using Filter = cudnnFilterStruct;
using Conv = cudnnConvolutionStruct;

float load(cudnnDataType_t t, const void* p, int64_t i) {
  if (t == CUDNN_DATA_HALF) {
    __half_raw r;
    r.x = static_cast<const uint16_t*>(p)[i];
    return __half2float(__half(r));
  }
  return static_cast<const float*>(p)[i];
}
void store(cudnnDataType_t t, void* p, int64_t i, float v) {
  if (t == CUDNN_DATA_HALF)
    static_cast<uint16_t*>(p)[i] = __half_raw(__float2half_rn(v)).x;
  else
    static_cast<float*>(p)[i] = v;
}
bool supported(cudnnDataType_t t) { return t == CUDNN_DATA_FLOAT || t == CUDNN_DATA_HALF; }
int64_t at(const Tensor& d, int n, int c, int y, int x) { return n * d.sn + c * d.sc + y * d.sh + x * d.sw; }
int64_t at(const Filter& f, int k, int c, int y, int x) {
  return f.format == CUDNN_TENSOR_NHWC ? ((int64_t(k) * f.h + y) * f.w + x) * f.c + c
                                       : ((int64_t(k) * f.c + c) * f.h + y) * f.w + x;
}
int out_size(int in, int pad, int k, int dil, int stride) { return (in + 2 * pad - dil * (k - 1) - 1) / stride + 1; }

// x (forward input, C channels) and y (forward output, K channels) fit w and the convolution.
bool shapes_agree(const Tensor& x, const Filter& w, const Conv& c, const Tensor& y) {
  if (!supported(x.type) || x.type != y.type || x.type != w.type) return false;
  // Not emulated (gpen's backend never asks for them): dilation, true convolution, unequal pads
  // or strides.
  if (c.dil_h != 1 || c.dil_w != 1 || c.mode != CUDNN_CROSS_CORRELATION || c.pad_h != c.pad_w || c.u != c.v)
    return false;
  if (c.groups < 1 || x.c != w.c * c.groups || w.k % c.groups || y.c != w.k || x.n != y.n) return false;
  return y.h == out_size(x.h, c.pad_h, w.h, c.dil_h, c.u) && y.w == out_size(x.w, c.pad_w, w.w, c.dil_w, c.v) &&
         y.h > 0 && y.w > 0;
}

// Dense f32 NCHW copies of a tensor and back (any strides, f32 or f16).
std::vector<float> dense(const Tensor& d, const void* p) {
  std::vector<float> out(size_t(d.n) * d.c * d.h * d.w);
  size_t i = 0;
  for (int n = 0; n < d.n; ++n)
    for (int c = 0; c < d.c; ++c)
      for (int y = 0; y < d.h; ++y)
        for (int x = 0; x < d.w; ++x) out[i++] = load(d.type, p, at(d, n, c, y, x));
  return out;
}
// y = alpha * v + beta * y (y not read when beta is 0: it may hold anything).
void write_back(const Tensor& d, void* p, const std::vector<float>& v, float alpha, float beta) {
  size_t i = 0;
  for (int n = 0; n < d.n; ++n)
    for (int c = 0; c < d.c; ++c)
      for (int y = 0; y < d.h; ++y)
        for (int x = 0; x < d.w; ++x, ++i) {
          const int64_t j = at(d, n, c, y, x);
          store(d.type, p, j, alpha * v[i] + (beta != 0.f ? beta * load(d.type, p, j) : 0.f));
        }
}

// The convolution on gpen's own CPU kernels (as fast as they come here: the emulator's time goes
// to the convolutions): the filter in gpen's [out][in / groups][kh][kw] order, forward or
// transposed (backward data). Dilation and true convolution are not used by gpen's backend and
// are refused before this runs.
std::vector<float> cpu_conv(const Filter& w, const void* wp, const Conv& c, bool transposed, const Tensor& in,
                            const void* inp, const Tensor& out) {
  gpen::cpu::ConvDesc d;
  d.kh = w.h, d.kw = w.w, d.stride = c.u, d.pad = c.pad_h, d.groups = c.groups, d.transposed = transposed;
  d.C = in.c, d.K = out.c;
  gpen::Tensor weight = gpen::Tensor::empty(gpen::DType::F32, {d.K, d.C / d.groups, d.kh, d.kw});
  float* wt = weight.data<float>();
  const int khkw = d.kh * d.kw;
  for (int kf = 0; kf < w.k; ++kf)
    for (int cf = 0; cf < w.c; ++cf)
      for (int r = 0; r < khkw; ++r) {
        int64_t dst;  // cuDNN's filter is [K_fwd][C_fwd / g]; transposed, K_fwd is our input
        if (!transposed) {
          dst = (int64_t(kf) * w.c + cf) * khkw + r;
        } else {
          const int cpg = d.C / d.groups, kpg = d.K / d.groups, grp = kf / cpg;
          dst = (int64_t(grp * kpg + cf) * cpg + kf % cpg) * khkw + r;
        }
        wt[dst] = load(w.type, wp, at(w, kf, cf, r / d.kw, r % d.kw));
      }
  gpen::cpu::KernelOptions opt;
  opt.isa = gpen::cpu::active_isa();
  opt.map_h = in.h, opt.map_w = in.w;
  const auto kernel = gpen::cpu::make_conv_kernel(d, weight, opt);
  std::vector<float> x = dense(in, inp), y(size_t(out.n) * out.c * out.h * out.w);
  static gpen::ThreadPool pool(2);
  gpen::cpu::ConvRun run;
  run.x = gpen::cpu::make_view(x.data(), in.n, in.c, in.h, in.w);
  run.y = gpen::cpu::make_view(y.data(), out.n, out.c, out.h, out.w);
  run.pool = &pool;
  kernel->run(run);
  return y;
}

constexpr int kAlgos = 2;
size_t workspace_for(int algo, const Tensor& x) {
  return algo == 1 ? 4096 + size_t(x.n) * x.c * x.h * x.w * (x.type == CUDNN_DATA_HALF ? 2 : 4) / 4 : 0;
}
float scale_of(const void* p) { return *static_cast<const float*>(p); }

template <class Perf, class AlgoT>
void list_algos(const Conv& c, const Tensor& x, Perf* perf, int requested, int* returned, size_t cap, bool timed) {
  int n = 0;
  for (int algo = kAlgos - 1; algo >= 0 && n < requested; --algo, ++n) {
    Perf p{};
    p.algo = AlgoT(algo);
    p.memory = workspace_for(algo, x);
    p.status = timed && p.memory > cap ? CUDNN_STATUS_NOT_SUPPORTED : CUDNN_STATUS_SUCCESS;
    p.time = algo == 1 ? 0.5f : 1.0f;  // the workspace algorithm is "faster"
    p.determinism = CUDNN_DETERMINISTIC;
    p.mathType = c.math;
    perf[n] = p;
  }
  *returned = n;
}

// The API's create/destroy pairs: a handle is a plain object of ours.
template <class T>
cudnnStatus_t create(T** out) {
  *out = new T();
  return CUDNN_STATUS_SUCCESS;
}
template <class T>
cudnnStatus_t destroy(T* p) {
  delete p;
  return CUDNN_STATUS_SUCCESS;
}

// Scribbles over an algorithm's workspace, as real kernels use it.
void use_workspace(void* ws, size_t bytes) {
  if (ws && bytes) std::memset(ws, 0xFF, bytes);
}

}  // namespace

extern "C" {

size_t cudnnGetVersion(void) { return 90000; }
const char* cudnnGetErrorString(cudnnStatus_t s) {
  switch (s) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM (emulated cuDNN)";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED (emulated cuDNN)";
    default: return "cuDNN error (emulated)";
  }
}
cudnnStatus_t cudnnCreate(cudnnHandle_t* out) { return create(out); }
cudnnStatus_t cudnnDestroy(cudnnHandle_t p) { return destroy(p); }
cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t s) {
  h->stream = s;
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t* out) { return create(out); }
cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t p) { return destroy(p); }
cudnnStatus_t cudnnSetTensor4dDescriptorEx(cudnnTensorDescriptor_t d, cudnnDataType_t t, int n, int c, int h, int w,
                                           int sn, int sc, int sh, int sw) {
  if (!supported(t) || n < 1 || c < 1 || h < 1 || w < 1 || sn < 1 || sc < 1 || sh < 1 || sw < 1)
    return CUDNN_STATUS_BAD_PARAM;
  *d = cudnnTensorStruct{t, n, c, h, w, sn, sc, sh, sw};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t f, cudnnDataType_t t, int n,
                                         int c, int h, int w) {
  if (f == CUDNN_TENSOR_NHWC) return cudnnSetTensor4dDescriptorEx(d, t, n, c, h, w, h * w * c, 1, w * c, c);
  if (f == CUDNN_TENSOR_NCHW) return cudnnSetTensor4dDescriptorEx(d, t, n, c, h, w, c * h * w, h * w, w, 1);
  return CUDNN_STATUS_NOT_SUPPORTED;
}
cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t* out) { return create(out); }
cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t p) { return destroy(p); }
cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t t, cudnnTensorFormat_t f, int k,
                                         int c, int h, int w) {
  if (!supported(t) || (f != CUDNN_TENSOR_NCHW && f != CUDNN_TENSOR_NHWC) || k < 1 || c < 1 || h < 1 || w < 1)
    return CUDNN_STATUS_BAD_PARAM;
  *d = cudnnFilterStruct{t, f, k, c, h, w};
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t* out) { return create(out); }
cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t p) { return destroy(p); }
cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h, int pad_w, int u, int v,
                                              int dil_h, int dil_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t compute) {
  if (pad_h < 0 || pad_w < 0 || u < 1 || v < 1 || dil_h < 1 || dil_w < 1 || compute != CUDNN_DATA_FLOAT)
    return CUDNN_STATUS_BAD_PARAM;
  d->pad_h = pad_h, d->pad_w = pad_w, d->u = u, d->v = v, d->dil_h = dil_h, d->dil_w = dil_w, d->mode = mode;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionGroupCount(cudnnConvolutionDescriptor_t d, int groups) {
  if (groups < 1) return CUDNN_STATUS_BAD_PARAM;
  d->groups = groups;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m) {
  d->math = m;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolution2dForwardOutputDim(const cudnnConvolutionDescriptor_t c,
                                                    const cudnnTensorDescriptor_t x, const cudnnFilterDescriptor_t w,
                                                    int* n, int* k, int* h, int* wo) {
  if (x->c != w->c * c->groups) return CUDNN_STATUS_BAD_PARAM;
  *n = x->n, *k = w->k;
  *h = out_size(x->h, c->pad_h, w->h, c->dil_h, c->u);
  *wo = out_size(x->w, c->pad_w, w->w, c->dil_w, c->v);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnGetConvolutionForwardAlgorithmMaxCount(cudnnHandle_t, int* count) {
  *count = kAlgos;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithmMaxCount(cudnnHandle_t, int* count) {
  *count = kAlgos;
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t, const cudnnTensorDescriptor_t x,
                                                     const cudnnFilterDescriptor_t w,
                                                     const cudnnConvolutionDescriptor_t c,
                                                     const cudnnTensorDescriptor_t y, const int requested,
                                                     int* returned, cudnnConvolutionFwdAlgoPerf_t* perf) {
  if (!shapes_agree(*x, *w, *c, *y)) return CUDNN_STATUS_BAD_PARAM;
  list_algos<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(*c, *x, perf, requested, returned, 0, false);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(cudnnHandle_t, const cudnnFilterDescriptor_t w,
                                                          const cudnnTensorDescriptor_t dy,
                                                          const cudnnConvolutionDescriptor_t c,
                                                          const cudnnTensorDescriptor_t dx, const int requested,
                                                          int* returned, cudnnConvolutionBwdDataAlgoPerf_t* perf) {
  if (!shapes_agree(*dx, *w, *c, *dy)) return CUDNN_STATUS_BAD_PARAM;
  list_algos<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(*c, *dx, perf, requested, returned, 0,
                                                                               false);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionForwardWorkspaceSize(cudnnHandle_t, const cudnnTensorDescriptor_t x,
                                                      const cudnnFilterDescriptor_t w,
                                                      const cudnnConvolutionDescriptor_t c,
                                                      const cudnnTensorDescriptor_t y, cudnnConvolutionFwdAlgo_t algo,
                                                      size_t* bytes) {
  if (!shapes_agree(*x, *w, *c, *y)) return CUDNN_STATUS_BAD_PARAM;
  if (int(algo) < 0 || int(algo) >= kAlgos) return CUDNN_STATUS_NOT_SUPPORTED;
  *bytes = workspace_for(int(algo), *x);
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnGetConvolutionBackwardDataWorkspaceSize(cudnnHandle_t, const cudnnFilterDescriptor_t w,
                                                           const cudnnTensorDescriptor_t dy,
                                                           const cudnnConvolutionDescriptor_t c,
                                                           const cudnnTensorDescriptor_t dx,
                                                           cudnnConvolutionBwdDataAlgo_t algo, size_t* bytes) {
  if (!shapes_agree(*dx, *w, *c, *dy)) return CUDNN_STATUS_BAD_PARAM;
  if (int(algo) < 0 || int(algo) >= kAlgos) return CUDNN_STATUS_NOT_SUPPORTED;
  *bytes = workspace_for(int(algo), *dx);
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void* alpha, const cudnnTensorDescriptor_t x,
                                      const void* xp, const cudnnFilterDescriptor_t w, const void* wp,
                                      const cudnnConvolutionDescriptor_t c, cudnnConvolutionFwdAlgo_t algo, void* ws,
                                      size_t ws_bytes, const void* beta, const cudnnTensorDescriptor_t y, void* yp) {
  if (!shapes_agree(*x, *w, *c, *y)) return CUDNN_STATUS_BAD_PARAM;
  if (int(algo) < 0 || int(algo) >= kAlgos) return CUDNN_STATUS_NOT_SUPPORTED;
  const size_t need = workspace_for(int(algo), *x);
  if (ws_bytes < need || (need && !ws)) return CUDNN_STATUS_BAD_PARAM;
  gpen::cuda::emu::enqueue(h->stream, [X = *x, xp, W = *w, wp, C = *c, Y = *y, yp, a = scale_of(alpha),
                                       b = scale_of(beta), ws, need] {
    use_workspace(ws, need);
    write_back(Y, yp, cpu_conv(W, wp, C, false, X, xp, Y), a, b);
  });
  return CUDNN_STATUS_SUCCESS;
}
cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void* alpha, const cudnnFilterDescriptor_t w,
                                           const void* wp, const cudnnTensorDescriptor_t dy, const void* dyp,
                                           const cudnnConvolutionDescriptor_t c, cudnnConvolutionBwdDataAlgo_t algo,
                                           void* ws, size_t ws_bytes, const void* beta,
                                           const cudnnTensorDescriptor_t dx, void* dxp) {
  if (!shapes_agree(*dx, *w, *c, *dy)) return CUDNN_STATUS_BAD_PARAM;
  if (int(algo) < 0 || int(algo) >= kAlgos) return CUDNN_STATUS_NOT_SUPPORTED;
  const size_t need = workspace_for(int(algo), *dx);
  if (ws_bytes < need || (need && !ws)) return CUDNN_STATUS_BAD_PARAM;
  gpen::cuda::emu::enqueue(h->stream, [W = *w, wp, DY = *dy, dyp, C = *c, DX = *dx, dxp, a = scale_of(alpha),
                                       b = scale_of(beta), ws, need] {
    use_workspace(ws, need);
    write_back(DX, dxp, cpu_conv(W, wp, C, true, DY, dyp, DX), a, b);
  });
  return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(cudnnHandle_t h, const cudnnTensorDescriptor_t x, const void* xp,
                                                     const cudnnFilterDescriptor_t w, const void* wp,
                                                     const cudnnConvolutionDescriptor_t c,
                                                     const cudnnTensorDescriptor_t y, void* yp, const int requested,
                                                     int* returned, cudnnConvolutionFwdAlgoPerf_t* perf, void* ws,
                                                     size_t ws_bytes) {
  if (!shapes_agree(*x, *w, *c, *y)) return CUDNN_STATUS_BAD_PARAM;
  list_algos<cudnnConvolutionFwdAlgoPerf_t, cudnnConvolutionFwdAlgo_t>(*c, *x, perf, requested, returned, ws_bytes,
                                                                       true);
  const float one = 1.f, zero = 0.f;  // the search runs the convolution into y, as cuDNN's does
  return cudnnConvolutionForward(h, &one, x, xp, w, wp, c, CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM, ws, ws_bytes,
                                 &zero, y, yp);
}
cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(cudnnHandle_t h, const cudnnFilterDescriptor_t w,
                                                          const void* wp, const cudnnTensorDescriptor_t dy,
                                                          const void* dyp, const cudnnConvolutionDescriptor_t c,
                                                          const cudnnTensorDescriptor_t dx, void* dxp,
                                                          const int requested, int* returned,
                                                          cudnnConvolutionBwdDataAlgoPerf_t* perf, void* ws,
                                                          size_t ws_bytes) {
  if (!shapes_agree(*dx, *w, *c, *dy)) return CUDNN_STATUS_BAD_PARAM;
  list_algos<cudnnConvolutionBwdDataAlgoPerf_t, cudnnConvolutionBwdDataAlgo_t>(*c, *dx, perf, requested, returned,
                                                                               ws_bytes, true);
  const float one = 1.f, zero = 0.f;
  return cudnnConvolutionBackwardData(h, &one, w, wp, dy, dyp, c, CUDNN_CONVOLUTION_BWD_DATA_ALGO_0, ws, ws_bytes, &zero,
                                      dx, dxp);
}

}  // extern "C"
