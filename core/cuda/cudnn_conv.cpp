// cuDNN's legacy convolution API (still shipped in cuDNN 9, marked deprecated in favour of the
// graph API): descriptors plus Find, the simplest well-trodden path to tensor-core convolutions.
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#include "core/cuda/cudnn_conv.h"

#include <cstdio>
#include <sstream>
#include <vector>

namespace gpen::cuda {
namespace {

cudnnTensorFormat_t format(ScratchLayout l) { return l == ScratchLayout::NHWC ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW; }
cudnnDataType_t data_type(ScratchType t) { return t == ScratchType::F16 ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT; }
size_t elem_size(ScratchType t) { return t == ScratchType::F16 ? 2 : 4; }

cudnnMathType_t requested_math(GpuPrecision p) {
  switch (p) {
    case GpuPrecision::FP32: return CUDNN_FMA_MATH;  // no TF32: exact f32 parity with the CPU
    case GpuPrecision::TF32: return CUDNN_DEFAULT_MATH;  // cuDNN >= 8 may use TF32 tensor cores
    case GpuPrecision::FP16: return CUDNN_TENSOR_OP_MATH;
  }
  return CUDNN_DEFAULT_MATH;
}

// FP32 must not silently become TF32: only FMA (or default-math non-tensor) results qualify.
bool math_allowed(GpuPrecision p, cudnnMathType_t m) {
  return p != GpuPrecision::FP32 || m == CUDNN_FMA_MATH || m == CUDNN_DEFAULT_MATH;
}

// The algorithms cuDNN listed (fastest or most promising first) that fit the workspace cap and
// keep the precision. The same photo must give the same bytes on every run, so deterministic
// algorithms come first (some backward-data ones accumulate with atomics in a varying order);
// non-deterministic ones follow, for shapes that have no deterministic one.
template <class Perf>
std::vector<ConvAlgo> usable_algos(const Perf* perf, int count, size_t cap, GpuPrecision p) {
  std::vector<ConvAlgo> out;
  for (const bool deterministic : {true, false})
    for (int i = 0; i < count; ++i) {
      if (perf[i].status != CUDNN_STATUS_SUCCESS || perf[i].memory > cap || !math_allowed(p, perf[i].mathType)) continue;
      if ((perf[i].determinism == CUDNN_DETERMINISTIC) != deterministic) continue;
      ConvAlgo a;
      a.algo = int(perf[i].algo);
      a.workspace = perf[i].memory;
      a.math = p == GpuPrecision::FP32 ? CUDNN_FMA_MATH : perf[i].mathType;
      a.ms = perf[i].time;
      a.deterministic = deterministic;
      out.push_back(a);
    }
  return out;
}

template <class Perf>
std::string listed(const Perf* perf, int count) {
  std::ostringstream seen;
  for (int i = 0; i < count; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS) seen << " algo" << int(perf[i].algo) << ":" << perf[i].memory << "B";
  return seen.str().empty() ? " none" : seen.str();
}

void note_if_nondeterministic(const ConvAlgo& a, const std::string& key) {
  if (!a.deterministic)
    std::fprintf(stderr, "gpen: note: no deterministic cuDNN algorithm for convolution %s; its last bits may vary "
                 "between runs\n", key.c_str());
}

// The fastest algorithm cudnnFind ran that qualifies (usable_algos).
template <class Perf>
ConvAlgo pick(const Perf* perf, int count, size_t cap, GpuPrecision p, const std::string& key) {
  const std::vector<ConvAlgo> usable = usable_algos(perf, count, cap, p);
  if (usable.empty())
    fail("cuDNN has no usable algorithm for convolution ", key, " within a ", cap >> 20, " MiB workspace (ran:",
         listed(perf, count), ")");
  note_if_nondeterministic(usable.front(), key);
  return usable.front();
}

int max_fwd_algos(cudnnHandle_t h) {
  int n = 0;
  return cudnnGetConvolutionForwardAlgorithmMaxCount(h, &n) == CUDNN_STATUS_SUCCESS && n > 0
             ? n
             : int(CUDNN_CONVOLUTION_FWD_ALGO_COUNT);
}
int max_bwd_data_algos(cudnnHandle_t h) {
  int n = 0;
  return cudnnGetConvolutionBackwardDataAlgorithmMaxCount(h, &n) == CUDNN_STATUS_SUCCESS && n > 0
             ? n
             : int(CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT);
}

}  // namespace

std::vector<float> cudnn_filter_layout(const cpu::ConvDesc& d, const float* weight, ScratchLayout layout) {
  const int g = d.groups, khkw = d.kh * d.kw;
  const int Kf = d.transposed ? d.C : d.K, Cf = (d.transposed ? d.K : d.C) / g;
  std::vector<float> out(size_t(Kf) * Cf * khkw);
  for (int kf = 0; kf < Kf; ++kf)
    for (int cf = 0; cf < Cf; ++cf) {
      // Where filter element (kf, cf) lives in our [K][C/g][kh][kw] weight.
      int64_t src;
      if (!d.transposed) {
        src = (int64_t(kf) * Cf + cf) * khkw;
      } else {
        const int cpg = d.C / g, kpg = d.K / g, grp = kf / cpg;
        src = (int64_t(grp * kpg + cf) * cpg + kf % cpg) * khkw;
      }
      for (int r = 0; r < khkw; ++r) {
        const size_t dst = layout == ScratchLayout::NCHW ? (size_t(kf) * Cf + cf) * khkw + r
                                                          : (size_t(kf) * khkw + r) * Cf + cf;
        out[dst] = weight[src + r];
      }
    }
  return out;
}

CudnnConv::CudnnConv(const cpu::ConvDesc& d, int n, int h, int w, int64_t x_batch_stride, bool has_in_scale,
                     GpuPrecision precision, ScratchLayout layout, bool x_packed_operand)
    : d_(d), precision_(precision), layout_(layout),
      type_(precision == GpuPrecision::FP16 ? ScratchType::F16 : ScratchType::F32),
      prepared_(has_in_scale || (!x_packed_operand && (type_ != ScratchType::F32 || layout != ScratchLayout::NCHW))),
      n_(n), h_(h), w_(w), oh_(d.out_h(h)), ow_(d.out_w(w)) {
  const cudnnDataType_t dt = data_type(type_);
  if (prepared_ || x_packed_operand)
    check(cudnnSetTensor4dDescriptor(x_desc_.get(), format(layout_), dt, n, d.C, h, w), "input descriptor");
  else
    check(cudnnSetTensor4dDescriptorEx(x_desc_.get(), dt, n, d.C, h, w, int(x_batch_stride), h * w, w, 1),
          "input descriptor (strided view)");
  check(cudnnSetTensor4dDescriptor(y_desc_.get(), format(layout_), dt, n, d.K, oh_, ow_), "output descriptor");
  const int Kf = d.transposed ? d.C : d.K, Cf = (d.transposed ? d.K : d.C) / d.groups;
  check(cudnnSetFilter4dDescriptor(w_desc_.get(), dt, format(layout_), Kf, Cf, d.kh, d.kw), "filter descriptor");
  check(cudnnSetConvolution2dDescriptor(conv_desc_.get(), d.pad, d.pad, d.stride, d.stride, 1, 1,
                                        CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
        "convolution descriptor");
  check(cudnnSetConvolutionGroupCount(conv_desc_.get(), d.groups), "convolution group count");
  check(cudnnSetConvolutionMathType(conv_desc_.get(), requested_math(precision)), "convolution math type");
  // cuDNN's own idea of the sizes must be the graph's: a transposed convolution's output is the
  // input of the forward convolution it is the adjoint of.
  int on, oc, oh, ow;
  const cudnnTensorDescriptor_t fwd_in = d.transposed ? y_desc_.get() : x_desc_.get();
  check(cudnnGetConvolution2dForwardOutputDim(conv_desc_.get(), fwd_in, w_desc_.get(), &on, &oc, &oh, &ow),
        "output size");
  const int en = n, ec = d.transposed ? d.C : d.K, eh = d.transposed ? h : oh_, ew = d.transposed ? w : ow_;
  if (on != en || oc != ec || oh != eh || ow != ew)
    fail("cuDNN sizes a convolution ", on, "x", oc, "x", oh, "x", ow, " where the graph has ", en, "x", ec, "x", eh,
         "x", ew);
  std::ostringstream k;
  k << (d.transposed ? "bwd" : "fwd") << " n" << n << " c" << d.C << " " << h << "x" << w << " k" << d.K << " "
    << d.kh << "x" << d.kw << " s" << d.stride << " p" << d.pad << " g" << d.groups << " "
    << gpu_precision_name(precision) << (layout == ScratchLayout::NHWC ? " nhwc" : " nchw")
    << (prepared_ || x_packed_operand ? "" : " xs" + std::to_string(x_batch_stride));
  key_ = k.str();
}

size_t CudnnConv::input_scratch_bytes() const {
  return prepared_ ? size_t(n_) * d_.C * h_ * w_ * elem_size(type_) : 0;
}
size_t CudnnConv::output_scratch_bytes() const { return size_t(n_) * d_.K * oh_ * ow_ * elem_size(type_); }

std::string CudnnConv::kernel_name() const {
  std::ostringstream s;
  s << "cudnn_" << (d_.transposed ? "bwd_data" : "fwd") << "_algo" << algo_.algo << "_" << gpu_precision_name(precision_)
    << (layout_ == ScratchLayout::NHWC ? "_nhwc" : "_nchw") << (algo_.deterministic ? "" : "_nondet");
  return s.str();
}

ConvAlgo CudnnConv::find(cudnnHandle_t h, const void* x, const void* weight, void* y, void* workspace,
                         size_t workspace_cap) const {
  int got = 0;
  if (!d_.transposed) {
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(size_t(max_fwd_algos(h)));
    check(cudnnFindConvolutionForwardAlgorithmEx(h, x_desc_.get(), x, w_desc_.get(), weight, conv_desc_.get(),
                                                 y_desc_.get(), y, int(perf.size()), &got, perf.data(), workspace,
                                                 workspace_cap),
          "cudnnFindConvolutionForwardAlgorithmEx");
    return pick(perf.data(), got, workspace_cap, precision_, key_);
  }
  std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(size_t(max_bwd_data_algos(h)));
  check(cudnnFindConvolutionBackwardDataAlgorithmEx(h, w_desc_.get(), weight, x_desc_.get(), x, conv_desc_.get(),
                                                    y_desc_.get(), y, int(perf.size()), &got, perf.data(), workspace,
                                                    workspace_cap),
        "cudnnFindConvolutionBackwardDataAlgorithmEx");
  return pick(perf.data(), got, workspace_cap, precision_, key_);
}

ConvAlgo CudnnConv::heuristic(cudnnHandle_t h, size_t workspace_cap) {
  int got = 0;
  std::vector<ConvAlgo> usable;
  std::string seen;
  if (!d_.transposed) {
    std::vector<cudnnConvolutionFwdAlgoPerf_t> perf(size_t(max_fwd_algos(h)));
    check(cudnnGetConvolutionForwardAlgorithm_v7(h, x_desc_.get(), w_desc_.get(), conv_desc_.get(), y_desc_.get(),
                                                 int(perf.size()), &got, perf.data()),
          "cudnnGetConvolutionForwardAlgorithm_v7");
    usable = usable_algos(perf.data(), got, workspace_cap, precision_);
    seen = listed(perf.data(), got);
  } else {
    std::vector<cudnnConvolutionBwdDataAlgoPerf_t> perf(size_t(max_bwd_data_algos(h)));
    check(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, w_desc_.get(), x_desc_.get(), conv_desc_.get(),
                                                      y_desc_.get(), int(perf.size()), &got, perf.data()),
          "cudnnGetConvolutionBackwardDataAlgorithm_v7");
    usable = usable_algos(perf.data(), got, workspace_cap, precision_);
    seen = listed(perf.data(), got);
  }
  // The heuristics list an algorithm's expected workspace; the first one cuDNN confirms for this
  // shape (as an algorithm from the cache file is checked) is taken.
  for (ConvAlgo a : usable) {
    a.ms = 0;
    a.timed = false;
    if (!accepts(h, &a, workspace_cap)) continue;
    note_if_nondeterministic(a, key_);
    return a;
  }
  fail("cuDNN's heuristics list no algorithm for convolution ", key_, " that runs within a ", workspace_cap >> 20,
       " MiB workspace (listed:", seen, ")");
}

bool CudnnConv::accepts(cudnnHandle_t h, ConvAlgo* a, size_t workspace_cap) {
  if (a->algo < 0 || !math_allowed(precision_, a->math)) return false;
  if (cudnnSetConvolutionMathType(conv_desc_.get(), a->math) != CUDNN_STATUS_SUCCESS) return false;
  size_t need = 0;
  const cudnnStatus_t st =
      !d_.transposed
          ? cudnnGetConvolutionForwardWorkspaceSize(h, x_desc_.get(), w_desc_.get(), conv_desc_.get(), y_desc_.get(),
                                                    cudnnConvolutionFwdAlgo_t(a->algo), &need)
          : cudnnGetConvolutionBackwardDataWorkspaceSize(h, w_desc_.get(), x_desc_.get(), conv_desc_.get(),
                                                         y_desc_.get(), cudnnConvolutionBwdDataAlgo_t(a->algo), &need);
  // Back to the math type find() searches under; use() sets the chosen one.
  if (cudnnSetConvolutionMathType(conv_desc_.get(), requested_math(precision_)) != CUDNN_STATUS_SUCCESS) return false;
  if (st != CUDNN_STATUS_SUCCESS || need > workspace_cap) return false;
  a->workspace = need;
  return true;
}

void CudnnConv::use(const ConvAlgo& a) {
  algo_ = a;
  check(cudnnSetConvolutionMathType(conv_desc_.get(), a.math), "convolution math type");
}

void CudnnConv::run(cudnnHandle_t h, const void* x, const void* weight, void* y, void* workspace) const {
  const float one = 1.f, zero = 0.f;  // f32 scaling factors: the compute type is f32 in every mode
  if (!d_.transposed) {
    check(cudnnConvolutionForward(h, &one, x_desc_.get(), x, w_desc_.get(), weight, conv_desc_.get(),
                                  cudnnConvolutionFwdAlgo_t(algo_.algo), workspace, algo_.workspace, &zero,
                                  y_desc_.get(), y),
          "cudnnConvolutionForward");
  } else {
    check(cudnnConvolutionBackwardData(h, &one, w_desc_.get(), weight, x_desc_.get(), x, conv_desc_.get(),
                                       cudnnConvolutionBwdDataAlgo_t(algo_.algo), workspace, algo_.workspace, &zero,
                                       y_desc_.get(), y),
          "cudnnConvolutionBackwardData");
  }
}

}  // namespace gpen::cuda
