// The CUDA backend: every graph op on the GPU, the whole forward replayed as one CUDA graph.
//
// Compile (once per graph, i.e. per model and batch size):
//  - the memory plan's arena is allocated once on the device, in the graph's NCHW f32 layout with
//    the CPU backend's offsets, so channel-slice views (concat in place) work unchanged;
//  - weights are uploaded first (before the arena: see upload_weights), in the layout and type
//    their consumer wants, once per model: the runner's kernel cache shares them between the
//    executables of every batch size;
//  - convolutions get cuDNN descriptors and an algorithm found once per shape (cudnnFind, within
//    a workspace cap) and cached in the backend; an NHWC f16 convolution cuDNN cannot run falls
//    back to NCHW;
//  - pinned host buffers stage the inputs and outputs.
// Run: inputs are copied into pinned memory; the first run records copies-in + every node +
// copies-out on the executable's own stream as a CUDA graph, later runs replay it (one launch).
// If capture fails the executable warns once and runs node by node. Profiling runs node by node
// with events.
//
// A modulated convolution is three launches: x * style into the conv operand (f32 or f16, NCHW or
// NHWC), the cuDNN convolution, then the epilogue kernel (demodulation, bias, activation) that
// writes the destination view. Modulation and demodulation stay f32 in every precision.
//
// The f16 activation mode (GPEN_CUDA_NHWC16=1, fp16; core/f16_activations.h) keeps image values
// as NHWC f16 views of the same arena instead (f16_step and what it calls): no re-layout passes,
// half the bytes, per-sample modulated filters on large layers, and the fusions the plan allows.
//
// Each executable owns its stream and cuDNN/cuBLAS handles: executables used from different
// threads (detector, GPEN of different photos) run concurrently. One executable is not reentrant.
#include "core/cuda/backend_cuda.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

#include "core/conv_algo_cache.h"
#include "core/cuda/cudnn_conv.h"
#include "core/cuda/resources.h"
#include "core/dtype.h"
#include "core/f16_activations.h"
#include "core/graph.h"
#include "kernels/cuda/bias_act.cuh"
#include "kernels/cuda/conv1x1_direct.cuh"
#include "kernels/cuda/f16_modulated_filters.cuh"
#include "kernels/cuda/f16_nhwc.cuh"
#include "kernels/cuda/f16_nhwc_conv1x1_direct.cuh"
#include "kernels/cuda/f16_nhwc_upfirdn2d.cuh"
#include "kernels/cuda/grouped_vectors.cuh"
#include "kernels/cuda/modulation.cuh"
#include "kernels/cuda/pixel_norm.cuh"
#include "kernels/cuda/resample.cuh"
#include "kernels/cuda/rgb_bytes.cuh"
#include "kernels/cuda/upfirdn2d.cuh"

namespace gpen::cuda {
namespace {

constexpr int kMinComputeCapability = 80;       // the oldest architecture the module is built for
constexpr size_t kCublasWorkspace = 32u << 20;  // NVIDIA's recommendation for Hopper

size_t env_size(const char* name, size_t fallback) {
  const char* v = std::getenv(name);
  return v && *v ? size_t(std::strtoull(v, nullptr, 10)) : fallback;
}
// cuDNN workspace cap per convolution (GPEN_CUDA_WORKSPACE_MB, default 256 MiB).
size_t workspace_cap() { return env_size("GPEN_CUDA_WORKSPACE_MB", 256) << 20; }
// GPEN_CUDA_GRAPHS=0 runs node by node (for debugging a capture problem).
bool graphs_enabled() { return env_size("GPEN_CUDA_GRAPHS", 1) != 0; }
// GPEN_CUDA_BYTES=0: images always cross as floats (run_rgb_bytes / run_from_rgb_bytes decline),
// for comparing the two paths or ruling the byte path out.
bool bytes_enabled() { return env_size("GPEN_CUDA_BYTES", 1) != 0; }
// GPEN_CUDA_NHWC16=1: in fp16, image-like values live as NHWC f16 (core/f16_activations.h) where
// the graph allows it; 0 (the default until measured on a GPU): the f32 NCHW arena.
bool nhwc16_requested() { return env_size("GPEN_CUDA_NHWC16", 0) != 0; }
// GPEN_CUDA_PER_SAMPLE=0: in the f16 activation mode, no per-sample modulated filters (every
// modulated convolution then prepares x * style, as in the f32 arena).
bool per_sample_enabled() { return env_size("GPEN_CUDA_PER_SAMPLE", 1) != 0; }
// GPEN_CUDA_QUICK_ALGOS=0: CompileOptions::quick_algorithms is ignored (every shape timed), to
// compare the detector's start-up per photo size both ways.
bool quick_algorithms_enabled() { return env_size("GPEN_CUDA_QUICK_ALGOS", 1) != 0; }

// Algorithms chosen per convolution shape, shared by every executable of one backend.
class AlgoCache {
 public:
  bool find(const std::string& key, ConvAlgo* a) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = algos_.find(key);
    if (it == algos_.end()) return false;
    *a = it->second;
    return true;
  }
  void put(const std::string& key, const ConvAlgo& a) {
    std::lock_guard<std::mutex> lock(mu_);
    algos_[key] = a;
  }

 private:
  std::mutex mu_;
  std::map<std::string, ConvAlgo> algos_;
};

// Algorithms measured by earlier processes (core/conv_algo_cache.h), under keys that also name
// the GPU and the cuDNN version. Only hints: each is checked with CudnnConv::accepts before use.
class PersistedAlgos {
 public:
  explicit PersistedAlgos(const std::string& key_prefix)
      : path_(default_conv_algo_cache_path()), prefix_(key_prefix), table_(read_conv_algo_cache(path_)) {}
  bool find(const std::string& key, ConvAlgo* a) const {
    auto it = table_.find(prefix_ + key);
    if (it == table_.end()) return false;
    a->algo = it->second.algo;
    a->workspace = size_t(it->second.workspace);
    a->math = cudnnMathType_t(it->second.math);
    a->ms = it->second.ms;
    return true;
  }
  // Writes the algorithms cudnnFind chose in this compile to the file, for the next process.
  void save(const std::map<std::string, ConvAlgo>& found) {
    ConvAlgoTable add;
    for (const auto& [key, a] : found) {
      CachedConvAlgo c;
      c.algo = a.algo, c.workspace = a.workspace, c.math = int(a.math), c.ms = a.ms;
      add[prefix_ + key] = c;
      table_[prefix_ + key] = c;
    }
    add_to_conv_algo_cache(path_, add);
  }

 private:
  std::string path_, prefix_;
  ConvAlgoTable table_;
};

struct BackendState {
  BackendState(int device, GpuPrecision precision, const std::string& gpu_and_cudnn)
      : device(device), precision(precision), persisted(gpu_and_cudnn) {}
  const int device;
  const GpuPrecision precision;
  AlgoCache algos;           // chosen in this process
  std::mutex persisted_mu;   // executables compile on several threads (detector workers)
  PersistedAlgos persisted;  // chosen by earlier ones
};

// Uploaded weights by node name and form, shared by the executables of one model (one cache per
// GpenRunner, see CompileOptions::kernel_cache): every batch size uses one device copy, and the
// model may drop its host copy of the conv weights after the first compile.
class CudaKernelCache final : public KernelCache {
 public:
  std::shared_ptr<DeviceBuffer> find(const std::string& key) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = buffers_.find(key);
    return it == buffers_.end() ? nullptr : it->second;
  }
  void put(const std::string& key, std::shared_ptr<DeviceBuffer> b) {
    std::lock_guard<std::mutex> lock(mu_);
    buffers_.emplace(key, std::move(b));
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<DeviceBuffer>> buffers_;
};

// Host copies into and out of the pinned staging buffers: a batch of 16 GPEN-512 faces is 50 MB
// each way, about 10 ms for one thread, as long as the whole forward at a good batch size. Large
// copies are split over a few threads (memory bandwidth, not one core, is then the limit).
void staging_copy(void* dst, const void* src, size_t bytes) {
  constexpr size_t kChunk = 8u << 20;
  const size_t parts = std::min<size_t>({bytes / kChunk, 8, std::max(1u, std::thread::hardware_concurrency())});
  if (parts < 2) {
    std::memcpy(dst, src, bytes);
    return;
  }
  const size_t step = (bytes + parts - 1) / parts;
  std::vector<std::thread> helpers;
  for (size_t i = 1; i < parts; ++i) {
    const size_t off = i * step, n = std::min(step, bytes - off);
    helpers.emplace_back([=] { std::memcpy(static_cast<char*>(dst) + off, static_cast<const char*>(src) + off, n); });
  }
  std::memcpy(dst, src, step);
  for (std::thread& t : helpers) t.join();
}

std::vector<uint8_t> f32_bytes(const float* p, size_t n) {
  std::vector<uint8_t> b(n * sizeof(float));
  std::memcpy(b.data(), p, b.size());
  return b;
}

std::vector<uint8_t> f16_bytes(const std::vector<float>& v) {
  std::vector<uint8_t> b(v.size() * 2);
  for (size_t i = 0; i < v.size(); ++i) {
    const uint16_t h = f32_to_f16(v[i]);
    std::memcpy(b.data() + 2 * i, &h, 2);
  }
  return b;
}


class CudaExecutable final : public Executable {
 public:
  // allow_f16: the f16 activation mode may be used where requested (GPEN_CUDA_NHWC16).
  CudaExecutable(const Graph& g, const CompileOptions& opt, std::shared_ptr<BackendState> state, bool allow_f16)
      : graph_(g.without_weights()), plan_(g.plan_memory()), state_(std::move(state)), device_(state_->device),
        cache_(std::dynamic_pointer_cast<CudaKernelCache>(opt.kernel_cache)), quick_algorithms_(opt.quick_algorithms && quick_algorithms_enabled()) {
    check(cudaSetDevice(device_), "cudaSetDevice");  // before anything is created on the device
    if (allow_f16) choose_activation_form();
    stream_ = std::make_unique<Stream>();
    upload_weights(g);
    arena_ = DeviceBuffer(device_, std::max<size_t>(1, size_t(plan_.arena_elems) * sizeof(float)));
    // Everything goes through stream_, which (non-blocking) does not wait for the legacy default
    // stream: plain cudaMemset/cudaMemcpy could still be in flight when its kernels start.
    check(cudaMemsetAsync(arena_.get(), 0, arena_.bytes(), stream_->get()), "cudaMemset (arena)");
    cublas_ws_ = DeviceBuffer(device_, kCublasWorkspace);
    cudnn_ = std::make_unique<CudnnHandle>(stream_->get());
    cublas_ = std::make_unique<CublasHandle>(stream_->get(), cublas_ws_.get(), cublas_ws_.bytes());
    // Weights come from `g` (the caller's graph); graph_ keeps only their shapes.
    for (size_t i = 0; i < g.nodes().size(); ++i) steps_.push_back(make_step(g, g.nodes()[i], graph_.nodes()[i]));
    choose_conv_algorithms(g);
    stage_inputs_outputs();
  }

  ~CudaExecutable() override {
    for (cudaGraphExec_t g : graph_exec_)
      if (g) cudaGraphExecDestroy(g);
  }

  void run(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) override {
    check(cudaSetDevice(device_), "cudaSetDevice");
    copy_inputs_to_pinned(inputs);
    if (profiling_)
      run_profiled();
    else if (graphs_enabled() && !graph_failed_)
      run_graph(Io::Floats);
    else
      enqueue_all(stream_->get(), Io::Floats);
    check(cudaStreamSynchronize(stream_->get()), "forward (a kernel failed; see the CUDA error)");
    copy_outputs_from_pinned(outputs);
  }

  // Bytes cross the bus (a quarter of the floats) and are scaled on the device, before and after
  // the same steps run() runs; each way of I/O captured as a CUDA graph of its own.
  bool run_rgb_bytes(const RgbBytesIo& io, const uint8_t* const* in, int n, uint8_t* const* out) override {
    if (profiling_ || !bytes_enabled() || !byte_io_shape(n, true)) return false;
    run_bytes(io, in, n, Io::Bytes);
    const size_t image_bytes = byte_count_ / size_t(n);
    for (int i = 0; i < n; ++i)
      staging_copy(out[i], static_cast<const uint8_t*>(pinned_bytes_out_->get()) + size_t(i) * image_bytes,
                   image_bytes);
    return true;
  }
  bool run_from_rgb_bytes(const RgbBytesIo& io, const uint8_t* const* in, int n,
                          std::vector<Tensor>& outputs) override {
    if (profiling_ || !bytes_enabled() || !byte_io_shape(n, false)) return false;
    run_bytes(io, in, n, Io::BytesIn);
    copy_outputs_from_pinned(outputs);
    return true;
  }

  size_t arena_bytes() const override { return size_t(plan_.arena_elems) * sizeof(float); }
  bool has_untimed_algorithms() const override {
    for (const auto& c : convs_)
      if (!c->conv->algo().timed) return true;
    return false;
  }
  size_t weight_bytes() const override {
    size_t b = 0;
    for (const auto& [key, w] : weights_) b += w->bytes();
    return b;
  }
  void enable_profiling(bool on) override {
    profiling_ = on;
    for (Step& s : steps_) s.prof.ms = 0;
  }
  std::vector<NodeProfile> profile() const override {
    std::vector<NodeProfile> r;
    for (const Step& s : steps_) r.push_back(s.prof);
    return r;
  }

 private:
  struct Step {
    std::function<void(cudaStream_t)> run;
    NodeProfile prof;
  };
  struct ConvStep {
    const Node* node = nullptr;
    int n = 0, h = 0, w = 0;
    std::unique_ptr<CudnnConv> conv;
    std::shared_ptr<DeviceBuffer> weight;
    // Per-sample modulated filters (f16_per_sample_conv_step): `conv` is described for one
    // sample and runs `samples` times on one f16 filter per sample (the executable's
    // per_sample_filters_), made each run from `master` (f32, cuDNN's NHWC filter layout).
    // choose_conv_algorithms may turn it back into an ordinary convolution (per_sample false).
    bool per_sample = false;
    int samples = 1;
    std::shared_ptr<DeviceBuffer> master;
    size_t filter_elems = 0;  // per sample
  };
  struct Staged {
    int value;
    size_t pinned_offset, bytes;
  };
  // What crosses the bus: run(), run_rgb_bytes(), run_from_rgb_bytes().
  enum Io { Floats = 0, Bytes = 1, BytesIn = 2 };

  // --- views and uploads ---
  DevView view(int v) const {
    const cpu::View c = view_of(graph_, plan_, arena_.as<float>(), v);
    DevView d;
    d.data = c.data;
    d.n = c.n;
    d.c = c.c;
    d.h = c.h;
    d.w = c.w;
    d.batch_stride = c.batch_stride;
    return d;
  }
  const float* ptr(int v) const { return v < 0 ? nullptr : view(v).data; }

  // --- the f16 activation mode (GPEN_CUDA_NHWC16; core/f16_activations.h) ---
  void choose_activation_form() {
    if (state_->precision != GpuPrecision::FP16 || !nhwc16_requested()) return;
    act_ = plan_f16_activations(graph_);
    f16_ = act_.supported;
    if (!f16_) {
      static std::once_flag noted;
      std::call_once(noted, [&] {
        std::fprintf(stderr, "gpen: note: f16 NHWC activations not used for a graph: %s\n", act_.why.c_str());
      });
    }
  }
  bool is_f16(int v) const { return f16_ && v >= 0 && act_.form[size_t(v)] == ActivationForm::F16Nhwc; }
  bool is_flattened(int v) const { return f16_ && v >= 0 && act_.form[size_t(v)] == ActivationForm::Flattened; }
  // An F16Nhwc value: its root's f16 elements start where the f32 plan puts the root (the f32
  // plan's room is twice what they need, so every offset and lifetime of the plan holds).
  DevView16 view16(int v) const {
    const NhwcPlacement pl = nhwc_placement(graph_, v);
    const int64_t root_offset = plan_.offset[size_t(pl.root)];
    if (root_offset < 0) fail("cuda backend: value '", graph_.value(v).name, "' has no memory");
    const Shape& s = graph_.value(v).shape;
    DevView16 d;
    d.data = reinterpret_cast<uint16_t*>(arena_.as<float>() + root_offset) + pl.c0;
    d.n = int(s[0]);
    d.c = int(s[1]);
    d.h = int(s[2]);
    d.w = int(s[3]);
    d.pixel_stride = pl.pixel_stride;
    d.batch_stride = pl.batch_stride;
    return d;
  }
  // The f32 [N, C*H*W] copy of a flattened value (made by its reader, see linear_step).
  float* flat_buffer(int v) {
    DeviceBuffer& b = flat_[v];
    if (!b.get()) b = DeviceBuffer(device_, size_t(shape_numel(graph_.value(v).shape)) * sizeof(float));
    return b.as<float>();
  }

  // The device copy of node `node`'s tensor `host` in form `form`, from the kernel cache when
  // another executable of the model made it already, else made by `bytes` and uploaded now.
  std::shared_ptr<DeviceBuffer> upload(const std::string& node, const std::string& form, const Tensor& host,
                                       const std::function<std::vector<uint8_t>()>& bytes) {
    const std::string key = node + "|" + form + "|" + shape_str(host.shape());
    if (auto mine = weights_.find(key); mine != weights_.end()) return mine->second;
    std::shared_ptr<DeviceBuffer> buf = cache_ ? cache_->find(key) : nullptr;
    if (!buf) {
      if (!host.defined() || host.numel() == 0) fail("cuda backend: ", node, " ", form, " has no data");
      const std::vector<uint8_t> data = bytes();
      buf = std::make_shared<DeviceBuffer>(device_, data.size());
      check(cudaMemcpyAsync(buf->get(), data.data(), data.size(), cudaMemcpyHostToDevice, stream_->get()),
            "weight upload");
      check(cudaStreamSynchronize(stream_->get()), "weight upload");  // `data` goes out of scope
      if (cache_) cache_->put(key, buf);
    }
    weights_[key] = buf;
    return buf;
  }
  const float* upload_f32(const Tensor& t, const std::string& node, const std::string& form) {
    return upload(node, form, t, [&] {
             const Tensor f = t.to(DType::F32);
             return f32_bytes(f.data<float>(), size_t(f.numel()));
           })->as<float>();
  }
  std::shared_ptr<DeviceBuffer> upload_filter(const Node& n, const Tensor& weight, ScratchLayout layout) {
    const bool f16 = state_->precision == GpuPrecision::FP16;
    const std::string form = std::string(f16 ? "f16" : "f32") + (layout == ScratchLayout::NHWC ? " nhwc" : " nchw") +
                             " cudnn filter";
    const cpu::ConvDesc d = n.conv;
    return upload(n.name, form, weight, [&] {
      const Tensor w = weight.to(DType::F32);
      std::vector<float> f = cudnn_filter_layout(d, w.data<float>(), layout);
      return f16 ? f16_bytes(f) : f32_bytes(f.data(), f.size());
    });
  }
  // A Broadcast's per-sample [C][H][W] parameter as f16 [H*W][C] (the f16 mode's NHWC).
  const uint16_t* upload_param_f16_hwc(const Node& n) {
    const Shape& y = graph_.value(n.output).shape;
    const int64_t C = y[1], P = y[2] * y[3];
    if (n.weight.numel() != C * P) fail("cuda backend: broadcast '", n.name, "' size mismatch");
    return upload(n.name, "f16 hwc", n.weight, [&] {
             const Tensor f = n.weight.to(DType::F32);
             std::vector<float> hwc(size_t(C * P));
             for (int64_t c = 0; c < C; ++c)
               for (int64_t p = 0; p < P; ++p) hwc[size_t(p * C + c)] = f.data<float>()[c * P + p];
             return f16_bytes(hwc);
           })->as<uint16_t>();
  }
  ScratchLayout preferred_layout() const {
    return state_->precision == GpuPrecision::FP16 ? ScratchLayout::NHWC : ScratchLayout::NCHW;
  }

  // Every weight goes to the device (and the model's kernel cache) before the large allocations:
  // when the arena then does not fit, a retry with a smaller batch finds all weights cached even
  // if the model has dropped its host copies meanwhile.
  void upload_weights(const Graph& g) {
    for (size_t i = 0; i < g.nodes().size(); ++i) {
      const Node& n = g.nodes()[i];
      if (f16_ && n.op == OpType::Linear && act_.run_end[i] != -1) {  // only as its run's (grouped)
        if (act_.run_end[i] >= 0) grouped_linear_weights(run_nodes(g, i));
        continue;
      }
      if (n.epi.bias.defined() && n.epi.bias.numel()) upload_f32(n.epi.bias, n.name, "bias");
      if (n.op == OpType::Broadcast && is_f16(n.output)) {
        upload_param_f16_hwc(n);
        continue;
      }
      switch (n.op) {
        case OpType::Conv2d:
          if (direct_1x1(n.conv))
            upload_f32(n.weight, n.name, "f32");
          else if (per_sample_filters(n))
            upload_master_filter(n, n.weight), upload_filter(n, n.weight, ScratchLayout::NHWC);  // (the fallbacks')
          else
            upload_filter(n, n.weight, preferred_layout());
          break;
        case OpType::Broadcast:
        case OpType::Linear:
        case OpType::Upfirdn2d:
        case OpType::DemodFactors: upload_f32(n.weight, n.name, "f32"); break;
        default: break;
      }
    }
  }
  DevEpilogue epilogue(const EpilogueSpec& e, const std::string& node) {
    DevEpilogue d;
    if (e.bias.defined() && e.bias.numel()) d.bias = upload_f32(e.bias, node, "bias");
    d.slope = e.slope;
    d.gain = e.gain;
    return d;
  }
  static void launched(cudaError_t st, const char* kernel) { check(st, kernel); }

  // --- one step per node ---
  // `n` carries the weights; `kept` is the same node in graph_ (weights released), which steps
  // may refer to after compile.
  // `g` is the graph being compiled (with weights; a run of vector ops reads its other nodes').
  Step make_step(const Graph& g, const Node& n, const Node& kept) {
    Step s;
    s.prof.name = n.name;
    s.prof.op = op_name(n.op);
    s.prof.kernel = std::string("cuda_") + op_name(n.op);
    const int in0 = n.inputs.empty() ? -1 : n.inputs[0], out = n.output;
    const size_t index = size_t(&kept - graph_.nodes().data());
    if (f16_ && act_.run_end[index] != -1) {
      s.run = vector_run_step(g, index, s.prof);
      return s;
    }
    if (is_f16(out)) {
      s.run = f16_step(n, kept, s.prof);
      return s;
    }
    switch (n.op) {
      case OpType::Broadcast: {
        const float* p = upload_f32(n.weight, n.name, "f32");
        const DevView y = view(out);
        if (n.weight.numel() != int64_t(y.c) * y.plane()) fail("cuda backend: broadcast '", n.name, "' size mismatch");
        s.run = [p, y](cudaStream_t st) { launched(launch_broadcast(p, y, st), "broadcast"); };
        break;
      }
      case OpType::Linear: s.run = linear_step(n, s.prof); break;
      case OpType::PixelNorm: {
        const DevView x = view(in0), y = view(out);
        const float eps = n.eps;
        s.run = [x, y, eps](cudaStream_t st) {
          launched(launch_pixel_norm(x.data, y.data, x.n, x.c, x.plane(), eps, st), "pixel_norm");
        };
        break;
      }
      case OpType::Conv2d: s.run = conv_step(n, kept, s.prof); break;
      case OpType::Upfirdn2d: {
        const float* k = upload_f32(n.weight, n.name, "f32");
        const int kh = int(n.weight.dim(0)), kw = int(n.weight.dim(1)), up = n.up, down = n.down, pad0 = n.pad0;
        const DevView x = view(in0), y = view(out);
        const DevEpilogue ep = epilogue(n.epi, n.name);
        s.run = [=](cudaStream_t st) { launched(launch_upfirdn2d(x, y, k, kh, kw, up, down, pad0, ep, st), "upfirdn2d"); };
        break;
      }
      case OpType::ScaleBiasAct: {
        const DevView x = view(in0), y = view(out);
        const float scale = n.scalar;
        const DevEpilogue ep = epilogue(n.epi, n.name);
        s.run = [=](cudaStream_t st) { launched(launch_scale_bias_act(x, y, scale, ep, st), "scale_bias_act"); };
        break;
      }
      case OpType::Add: {
        const DevView a = view(in0), b = view(n.inputs[1]), y = view(out);
        s.run = [=](cudaStream_t st) { launched(launch_add(a, b, y, st), "add"); };
        break;
      }
      case OpType::DemodFactors: {
        const float* wsq = upload_f32(n.weight, n.name, "f32");
        const DevView style = view(in0), d = view(out);
        const int C = int(n.weight.dim(1)), K = int(n.weight.dim(0));
        const float eps = n.eps;
        s.run = [=](cudaStream_t st) {
          launched(launch_demod_factors(style.data, wsq, d.data, style.n, C, K, eps, st), "demod_factors");
        };
        break;
      }
      case OpType::UpsampleNearest: {
        const DevView x = view(in0), y = view(out);
        s.run = [=](cudaStream_t st) { launched(launch_upsample_nearest(x, y, st), "upsample_nearest"); };
        break;
      }
      case OpType::MaxPool2d: {
        const DevView x = view(in0), y = view(out);
        const int k = n.conv.kh, stride = n.conv.stride, pad = n.conv.pad;
        s.run = [=](cudaStream_t st) { launched(launch_max_pool2d(x, y, k, stride, pad, st), "max_pool2d"); };
        break;
      }
      case OpType::ReflectPad2d: {
        const DevView x = view(in0), y = view(out);
        const int pad = n.pad0;
        s.run = [=](cudaStream_t st) { launched(launch_reflect_pad2d(x, y, pad, st), "reflect_pad2d"); };
        break;
      }
      case OpType::PixelUnshuffle: {
        const DevView x = view(in0), y = view(out);
        const int r = n.down;
        s.run = [=](cudaStream_t st) { launched(launch_pixel_unshuffle(x, y, r, st), "pixel_unshuffle"); };
        break;
      }
      case OpType::Count: fail("cuda backend: node '", n.name, "' has no op");
    }
    return s;
  }

  bool fused_into_conv(size_t index) const { return index > 0 && act_.fused_after[index - 1] == int(index); }
  // The in-place ScaleBiasAct after convolution `index`, as its kernel's second stage.
  DevThen then_stage(size_t index) {
    DevThen t;
    if (act_.fused_after[index] < 0) return t;
    const Node& sba = graph_.nodes()[size_t(act_.fused_after[index])];
    t.on = true;
    t.scale = sba.scalar;
    t.ep = epilogue(sba.epi, sba.name);
    return t;
  }

  // A node whose output is an f16 NHWC image (plan_f16_activations has checked its inputs).
  std::function<void(cudaStream_t)> f16_step(const Node& n, const Node& kept, NodeProfile& prof) {
    prof.kernel = std::string("cuda_f16_nhwc_") + op_name(n.op);
    const size_t index = size_t(&kept - graph_.nodes().data());
    const int in0 = n.inputs.empty() ? -1 : n.inputs[0];
    const DevView16 y = view16(n.output);
    const DevEpilogue ep = epilogue(n.epi, n.name);
    switch (n.op) {
      case OpType::Broadcast: {
        const uint16_t* p = upload_param_f16_hwc(n);
        return [p, y](cudaStream_t st) { launched(launch_f16_nhwc_broadcast(p, y, st), "f16 broadcast"); };
      }
      case OpType::Conv2d: return f16_conv_step(n, kept, index, prof);
      case OpType::Upfirdn2d: {
        const float* k = upload_f32(n.weight, n.name, "f32");
        const int kh = int(n.weight.dim(0)), kw = int(n.weight.dim(1)), up = n.up, down = n.down, pad0 = n.pad0;
        const DevView16 x = view16(in0);
        // The demodulation of the convolution before, when it moved here (f16_conv_step).
        const auto moved = demod_copies_.find(index);
        const float* scale = moved == demod_copies_.end() ? nullptr : moved->second.as<float>();
        if (scale) prof.kernel += "+demod";
        return [=](cudaStream_t st) {
          launched(launch_f16_nhwc_upfirdn2d(x, y, k, kh, kw, up, down, pad0, scale, ep, st), "f16 upfirdn2d");
        };
      }
      case OpType::ScaleBiasAct: {
        if (fused_into_conv(index)) {  // the convolution before it did this (f16_conv_step)
          prof.kernel = "fused into " + graph_.nodes()[index - 1].name;
          return [](cudaStream_t) {};
        }
        const DevView16 x = view16(in0);
        const float scale = n.scalar;
        return [=](cudaStream_t st) { launched(launch_f16_nhwc_scale_bias_act(x, y, scale, ep, st), "f16 scale_bias_act"); };
      }
      case OpType::Add: {
        const DevView16 a = view16(in0), b = view16(n.inputs[1]);
        return [=](cudaStream_t st) { launched(launch_f16_nhwc_add(a, b, y, st), "f16 add"); };
      }
      default: fail("cuda backend: ", op_name(n.op), " '", n.name, "' has no f16 NHWC kernel");
    }
  }

  // --- runs of per-sample vector ops (F16ActivationPlan::run_end): one launch per run ---
  // The run's first node computes every node's output; the others are empty steps.
  std::function<void(cudaStream_t)> vector_run_step(const Graph& g, size_t index, NodeProfile& prof) {
    const int end = act_.run_end[index];
    if (end == -2) {
      prof.kernel = "computed with its run";
      return [](cudaStream_t) {};
    }
    const std::vector<const Node*> run = run_nodes(g, index);
    prof.kernel = std::string("grouped_") + op_name(run[0]->op) + " x" + std::to_string(run.size());
    return run[0]->op == OpType::Linear ? grouped_linear_step(run, prof) : grouped_demod_step(run);
  }

  std::vector<const Node*> run_nodes(const Graph& g, size_t first) const {
    std::vector<const Node*> run;
    for (size_t i = first; i < size_t(act_.run_end[first]); ++i) run.push_back(&g.nodes()[i]);
    return run;
  }

  // A run of Linears' weights and biases (null when none has one), one after another, uploaded
  // once per model (kernel cache; keyed by the run's first node and its row count).
  std::pair<const float*, const float*> grouped_linear_weights(const std::vector<const Node*>& run) {
    const Node& first = *run[0];
    int64_t rows = 0;
    bool any_bias = false;
    for (const Node* n : run) {
      rows += n->weight.dim(0);
      any_bias |= n->epi.bias.defined() && n->epi.bias.numel();
    }
    const std::string rows_form = " (" + std::to_string(rows) + " rows)";
    const float* weight = upload(first.name, "grouped linear weights" + rows_form, first.weight, [&] {
                            std::vector<uint8_t> b;
                            for (const Node* n : run) {
                              if (!n->weight.defined()) fail("cuda backend: ", n->name, " has no weights to group");
                              const Tensor w = n->weight.to(DType::F32);
                              const std::vector<uint8_t> part = f32_bytes(w.data<float>(), size_t(w.numel()));
                              b.insert(b.end(), part.begin(), part.end());
                            }
                            return b;
                          })->as<float>();
    const float* bias = !any_bias ? nullptr
                                  : upload(first.name, "grouped linear bias" + rows_form, first.weight, [&] {
                                      std::vector<float> all;
                                      for (const Node* n : run) {
                                        const bool has = n->epi.bias.defined() && n->epi.bias.numel();
                                        const Tensor b = has ? n->epi.bias.to(DType::F32) : Tensor();
                                        for (int64_t o = 0; o < n->weight.dim(0); ++o)
                                          all.push_back(has ? b.data<float>()[o] : 0.f);
                                      }
                                      return f32_bytes(all.data(), all.size());
                                    })->as<float>();
    return {weight, bias};
  }

  // Host vectors to a device buffer of this executable (the per-row tables of a run).
  template <class T>
  const T* device_table(const std::vector<T>& v) {
    tables_.emplace_back(device_, std::max<size_t>(1, v.size() * sizeof(T)));
    // On the executable's stream (non-blocking: a legacy-stream copy would not be ordered before
    // its kernels), finished before `v` may go.
    check(cudaMemcpyAsync(tables_.back().get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice, stream_->get()),
          "table upload");
    check(cudaStreamSynchronize(stream_->get()), "table upload");
    return tables_.back().as<T>();
  }

  std::function<void(cudaStream_t)> grouped_linear_step(const std::vector<const Node*>& run, NodeProfile& prof) {
    const Node& first = *run[0];
    const DevView x = view(first.inputs[0]);
    const int in = int(first.weight.dim(1));
    if (x.batch_stride != in) fail("cuda backend: linear '", first.name, "' needs contiguous rows");
    std::vector<float*> dst;  // every output row, in the order of the grouped weights
    std::vector<int> stride;
    for (const Node* n : run) {
      const DevView y = view(n->output);
      for (int o = 0; o < y.c; ++o) dst.push_back(y.data + o), stride.push_back(int(y.batch_stride));
    }
    const int64_t rows = int64_t(dst.size());
    const auto [weight, bias] = grouped_linear_weights(run);
    GroupedLinearRows t;
    t.weight = weight;
    t.bias = bias;
    t.dst = device_table(dst);
    t.dst_stride = device_table(stride);
    t.rows = int(rows);
    t.in = in;
    t.slope = first.epi.slope;
    t.gain = first.epi.gain;
    prof.flops = 2 * int64_t(x.n) * rows * in;
    return [x, t](cudaStream_t st) { launched(launch_grouped_linear(x.data, x.n, int(x.batch_stride), t, st), "grouped linear"); };
  }

  std::function<void(cudaStream_t)> grouped_demod_step(const std::vector<const Node*>& run) {
    std::vector<const float*> wsq, style;
    std::vector<int> C, style_stride, dst_stride;
    std::vector<float*> dst;
    int n = 0;
    for (const Node* node : run) {
      const float* w = upload_f32(node->weight, node->name, "f32");
      const DevView s = view(node->inputs[0]), d = view(node->output);
      const int K = int(node->weight.dim(0)), Cl = int(node->weight.dim(1));
      n = s.n;
      for (int k = 0; k < K; ++k) {
        wsq.push_back(w + int64_t(k) * Cl);
        style.push_back(s.data);
        C.push_back(Cl);
        style_stride.push_back(int(s.batch_stride));
        dst.push_back(d.data + k);
        dst_stride.push_back(int(d.batch_stride));
      }
    }
    GroupedDemodRows t;
    t.wsq = device_table(wsq);
    t.style = device_table(style);
    t.C = device_table(C);
    t.style_stride = device_table(style_stride);
    t.dst = device_table(dst);
    t.dst_stride = device_table(dst_stride);
    t.rows = int(dst.size());
    t.eps = run[0]->eps;
    return [n, t](cudaStream_t st) { launched(launch_grouped_demod(n, t, st), "grouped demodulation"); };
  }

  // y[n][o] = ep(sum_i x[n][i] w[o][i]): a cuBLAS SGEMM (row-major y = x w^T is column-major
  // y^T = w x^T, i.e. op(w) = T), then the epilogue in place.
  std::function<void(cudaStream_t)> linear_step(const Node& n, NodeProfile& prof) {
    const DevView x = view(n.inputs[0]), y = view(n.output);
    const int rows = x.n, in = int(n.weight.dim(1)), outd = int(n.weight.dim(0));
    if (x.batch_stride != in || y.batch_stride != outd)
      fail("cuda backend: linear '", n.name, "' needs contiguous rows");
    const float* w = upload_f32(n.weight, n.name, "f32");
    const DevEpilogue ep = epilogue(n.epi, n.name);
    const bool has_epilogue = ep.bias || ep.slope != 1.f || ep.gain != 1.f;
    prof.kernel = "cublas_sgemm";
    prof.flops = 2 * int64_t(rows) * n.weight.numel();
    cublasHandle_t h = cublas_->get();
    // A reshaped f16 image (f16 activation mode) is first flattened to f32 in NCHW order.
    const bool flatten = is_flattened(n.inputs[0]);
    const DevView16 image = flatten ? view16(graph_.value(n.inputs[0]).root) : DevView16{};
    const float* xs = flatten ? flat_buffer(n.inputs[0]) : x.data;
    return [=](cudaStream_t st) {
      if (flatten) launched(launch_f16_nhwc_to_f32_nchw(image, const_cast<float*>(xs), st), "flatten f16 image");
      const float one = 1.f, zero = 0.f;
      check(cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, outd, rows, in, &one, w, in, xs, in, &zero, y.data, outd),
            "cublasSgemm (linear)");
      if (has_epilogue) launched(launch_scale_bias_act(y, y, 1.f, ep, st), "linear epilogue");
    };
  }

  // 1x1 convolutions with a small side run in our own kernel (kernels/cuda/conv1x1_direct.cuh).
  static bool direct_1x1(const cpu::ConvDesc& d) {
    return d.kh == 1 && d.kw == 1 && d.stride == 1 && d.pad == 0 && d.groups == 1 && !d.transposed &&
           conv1x1_direct_fits(d.C, d.K);
  }
  std::function<void(cudaStream_t)> conv1x1_step(const Node& n, NodeProfile& prof) {
    const DevView x = view(n.inputs[0]), y = view(n.output);
    const float* w = upload_f32(n.weight, n.name, "f32");
    const float* in_scale = n.inputs.size() > 1 ? ptr(n.inputs[1]) : nullptr;
    const float* out_scale = n.inputs.size() > 2 ? ptr(n.inputs[2]) : nullptr;
    const DevEpilogue ep = epilogue(n.epi, n.name);
    prof.kernel = "f32_conv1x1_direct";
    prof.flops = n.conv.flops(x.n, x.h, x.w);
    return [=](cudaStream_t st) {
      launched(launch_f32_conv1x1_direct(x, in_scale, w, out_scale, ep, y, st), "conv1x1_direct");
    };
  }

  std::function<void(cudaStream_t)> conv_step(const Node& n, const Node& kept, NodeProfile& prof) {
    if (direct_1x1(n.conv)) return conv1x1_step(n, prof);
    auto cs = std::make_unique<ConvStep>();
    const DevView x = view(n.inputs[0]);
    cs->node = &kept;
    cs->n = x.n;
    cs->h = x.h;
    cs->w = x.w;
    try {
      describe_conv(*cs, n.weight, preferred_layout());
    } catch (const OutOfDeviceMemory&) {
      throw;
    } catch (const Error& e) {
      if (preferred_layout() != ScratchLayout::NHWC) throw;
      std::fprintf(stderr, "gpen: note: %s: cuDNN refuses NHWC f16 (%s); using NCHW\n", n.name.c_str(), e.what());
      describe_conv(*cs, n.weight, ScratchLayout::NCHW);
    }
    prof.flops = n.conv.flops(x.n, x.h, x.w);
    ConvStep* c = cs.get();
    convs_.push_back(std::move(cs));
    const DevView y = view(n.output);
    const float* in_scale = n.inputs.size() > 1 ? ptr(n.inputs[1]) : nullptr;
    const float* out_scale = n.inputs.size() > 2 ? ptr(n.inputs[2]) : nullptr;
    const DevEpilogue ep = epilogue(n.epi, n.name);
    return [this, c, x, y, in_scale, out_scale, ep](cudaStream_t st) {
      const CudnnConv& conv = *c->conv;
      const void* operand = x.data;
      if (conv.needs_prepared_input()) {
        launched(launch_prepare_conv_input(x, in_scale, scratch_in_.get(), conv.type(), conv.layout(), st),
                 "prepare_conv_input");
        operand = scratch_in_.get();
      }
      conv.run(cudnn_->get(), operand, c->weight->get(), scratch_out_.get(), workspace_.get());
      launched(launch_conv_epilogue(scratch_out_.get(), conv.type(), conv.layout(), out_scale, ep, y, st),
               "conv_epilogue");
    };
  }

  // (Re)describes a convolution in `layout` and uploads its filter in the matching form. An f16
  // image input that is a whole buffer already is cuDNN's NHWC f16 operand (not its NCHW one).
  void describe_conv(ConvStep& c, const Tensor& weight, ScratchLayout layout) {
    const Node& n = *c.node;
    const bool has_in_scale = n.inputs.size() > 1;
    const int x = n.inputs[0];
    const bool packed_f16 = is_f16(x) && view16(x).pixel_stride == view16(x).c && layout == ScratchLayout::NHWC;
    const int64_t x_batch_stride = is_f16(x) ? 0 : view(x).batch_stride;
    c.conv = std::make_unique<CudnnConv>(n.conv, c.n, c.h, c.w, x_batch_stride, has_in_scale, state_->precision,
                                         layout, packed_f16);
    c.weight = upload_filter(n, weight, layout);
  }

  // The f16 activation mode's convolution: a 1x1 with a small side directly; otherwise cuDNN on
  // the NHWC f16 view itself (a whole buffer, unmodulated) or on the prepared x * style, and the
  // epilogue kernel from cuDNN's packed output into the destination view.
  //
  // When the FIR after it applies the demodulation (F16ActivationPlan::demod_fir), the
  // convolution writes its raw result straight into its value, with no epilogue pass, and copies
  // the demodulation factors aside for the FIR: the memory plan lets their arena space be reused
  // once this node is done.
  std::function<void(cudaStream_t)> f16_conv_step(const Node& n, const Node& kept, size_t index, NodeProfile& prof) {
    if (per_sample_filters(n)) return f16_per_sample_conv_step(n, kept, index, prof);
    const DevView16 x = view16(n.inputs[0]), y = view16(n.output);
    const float* in_scale = n.inputs.size() > 1 ? ptr(n.inputs[1]) : nullptr;
    const float* out_scale = n.inputs.size() > 2 ? ptr(n.inputs[2]) : nullptr;
    const DevEpilogue ep = epilogue(n.epi, n.name);
    prof.flops = n.conv.flops(x.n, x.h, x.w);
    const int fir = act_.demod_fir[index];
    const float* demod_copy = nullptr;
    size_t demod_bytes = 0;
    if (fir >= 0) {
      demod_bytes = size_t(shape_numel(graph_.value(n.inputs[2]).shape)) * sizeof(float);
      demod_copy = demod_copies_.emplace(size_t(fir), DeviceBuffer(device_, demod_bytes)).first->second.as<float>();
      out_scale = nullptr;
    }
    const float* demod = ptr(n.inputs.size() > 2 ? n.inputs[2] : -1);
    const DevThen then = then_stage(index);
    // After the convolution: the demodulation factors to the FIR's copy.
    const auto hand_over = [demod_copy, demod, demod_bytes](cudaStream_t st) {
      if (demod_copy)
        check(cudaMemcpyAsync(const_cast<float*>(demod_copy), demod, demod_bytes, cudaMemcpyDeviceToDevice, st),
              "copy demodulation factors");
    };
    if (direct_1x1(n.conv)) {
      const float* w = upload_f32(n.weight, n.name, "f32");
      prof.kernel = "f16_nhwc_conv1x1_direct";
      return [=](cudaStream_t st) {
        launched(launch_f16_nhwc_conv1x1_direct(x, in_scale, w, out_scale, ep, then, y, st), "f16 conv1x1_direct");
        hand_over(st);
      };
    }
    auto cs = std::make_unique<ConvStep>();
    cs->node = &kept;
    cs->n = x.n;
    cs->h = x.h;
    cs->w = x.w;
    try {
      describe_conv(*cs, n.weight, ScratchLayout::NHWC);
    } catch (const OutOfDeviceMemory&) {
      throw;
    } catch (const Error& e) {
      std::fprintf(stderr, "gpen: note: %s: cuDNN refuses NHWC f16 (%s); using NCHW operands\n", n.name.c_str(),
                   e.what());
      describe_conv(*cs, n.weight, ScratchLayout::NCHW);
    }
    ConvStep* c = cs.get();
    convs_.push_back(std::move(cs));
    // y is then a whole buffer: cuDNN's packed NHWC output itself (checked per run: the layout
    // may still change to NCHW in choose_conv_algorithms).
    const bool raw = fir >= 0;
    return [this, c, x, y, in_scale, out_scale, ep, then, raw, hand_over](cudaStream_t st) {
      run_f16_conv(*c, x, in_scale, out_scale, ep, then, y, raw, st);
      hand_over(st);
    };
  }

  // One batched cuDNN convolution in the f16 mode: x * in_scale into the operand when cuDNN cannot
  // read x itself, the convolution, then the epilogue into y -- or, for a raw output (nothing
  // after the convolution, y a whole buffer) in NHWC, the convolution straight into y.
  void run_f16_conv(const ConvStep& c, const DevView16& x, const float* in_scale, const float* out_scale,
                    const DevEpilogue& ep, const DevThen& then, const DevView16& y, bool raw, cudaStream_t st) {
    const CudnnConv& conv = *c.conv;
    const ScratchLayout layout = conv.layout();
    const void* operand = x.data;
    if (conv.needs_prepared_input()) {
      launched(launch_f16_nhwc_prepare_conv_input(x, in_scale, scratch_in_.as<uint16_t>(), layout, st),
               "f16 prepare_conv_input");
      operand = scratch_in_.get();
    }
    const bool in_place = raw && layout == ScratchLayout::NHWC;
    conv.run(cudnn_->get(), operand, c.weight->get(), in_place ? static_cast<void*>(y.data) : scratch_out_.get(),
             workspace_.get());
    if (!in_place)  // (a raw output in NCHW still needs the re-layout; its epilogue is the identity)
      launched(launch_f16_nhwc_conv_epilogue(scratch_out_.as<uint16_t>(), layout, out_scale, ep, then, y, st),
               "f16 conv_epilogue");
  }

  // Whether a modulated convolution runs with one filter per sample: worth it where the x * style
  // pass it spares (a read and a write of the input) outweighs making the filters (a write and a
  // read of N filters), i.e. on large images with few outputs -- GPEN's 128-512 px layers --
  // with a margin for the per-sample cuDNN calls. Needs the input as a whole f16 buffer.
  bool per_sample_filters(const Node& n) const {
    // (Channels in multiples of 8, cuDNN's tensor-core NHWC f16 shapes: the path has no NCHW
    // fallback of its own.)
    if (!f16_ || !per_sample_enabled() || n.op != OpType::Conv2d || n.inputs.size() < 2 || direct_1x1(n.conv) ||
        n.conv.groups != 1 || n.conv.C % 8 || n.conv.K % 8)
      return false;
    const Shape& x = graph_.value(n.inputs[0]).shape;
    const bool whole = nhwc_placement(graph_, n.inputs[0]).pixel_stride == x[1];
    return whole && x[2] * x[3] >= 2 * int64_t(n.conv.K) * n.conv.kh * n.conv.kw;
  }
  // The f32 master of per-sample filters, in cuDNN's NHWC filter layout.
  std::shared_ptr<DeviceBuffer> upload_master_filter(const Node& n, const Tensor& weight) {
    return upload(n.name, "f32 nhwc cudnn filter", weight, [&] {
      const Tensor w = weight.to(DType::F32);
      const std::vector<float> f = cudnn_filter_layout(n.conv, w.data<float>(), ScratchLayout::NHWC);
      return f32_bytes(f.data(), f.size());
    });
  }

  // A modulated convolution with per-sample filters (style and demodulation folded into them):
  // the filters are made first, then cuDNN runs once per sample on the activation in place, its
  // output straight into y when nothing follows, else through the epilogue (bias, activation).
  // Should cuDNN refuse the per-sample shape (choose_conv_algorithms), the node runs as an
  // ordinary modulated convolution instead: x * style, cuDNN, epilogue with the demodulation.
  std::function<void(cudaStream_t)> f16_per_sample_conv_step(const Node& n, const Node& kept, size_t index,
                                                              NodeProfile& prof) {
    const DevView16 x = view16(n.inputs[0]), y = view16(n.output);
    const float* style = ptr(n.inputs[1]);
    const float* demod = n.inputs.size() > 2 ? ptr(n.inputs[2]) : nullptr;
    const DevEpilogue ep = epilogue(n.epi, n.name);
    const DevThen then = then_stage(index);
    prof.flops = n.conv.flops(x.n, x.h, x.w);
    const cpu::ConvDesc& d = n.conv;
    const int Kf = d.transposed ? d.C : d.K, Cf = d.transposed ? d.K : d.C, R = d.kh * d.kw;
    auto cs = std::make_unique<ConvStep>();
    cs->node = &kept;
    cs->n = 1;
    cs->h = x.h;
    cs->w = x.w;
    cs->per_sample = true;
    cs->samples = x.n;
    cs->conv = std::make_unique<CudnnConv>(d, 1, x.h, x.w, 0, false, state_->precision, ScratchLayout::NHWC, true);
    cs->master = upload_master_filter(n, n.weight);
    cs->filter_elems = size_t(Kf) * R * Cf;
    ConvStep* c = cs.get();
    convs_.push_back(std::move(cs));
    const bool identity = !ep.bias && ep.slope == 1.f && ep.gain == 1.f && !then.on;
    const bool in_place = identity && y.pixel_stride == y.c;  // y a whole buffer: cuDNN's output
    const int64_t y_sample = int64_t(y.c) * y.plane();         // elements per sample, packed
    const bool transposed = d.transposed;
    return [=](cudaStream_t st) {
      const CudnnConv& conv = *c->conv;
      uint16_t* scratch = scratch_out_.as<uint16_t>();
      if (!c->per_sample) {  // the ordinary way (see above)
        run_f16_conv(*c, x, style, demod, ep, then, y, false, st);
        return;
      }
      uint16_t* filters = per_sample_filters_.as<uint16_t>();
      launched(launch_f16_modulated_filters(c->master->as<float>(), Kf, R, Cf, transposed, style, demod, x.n, filters,
                                            st),
               "f16 modulated filters");
      uint16_t* out = in_place ? y.data : scratch;
      for (int s = 0; s < x.n; ++s)
        conv.run(cudnn_->get(), x.data + s * x.batch_stride, filters + size_t(s) * c->filter_elems, out + s * y_sample,
                 workspace_.get());
      if (!in_place)
        launched(launch_f16_nhwc_conv_epilogue(scratch, ScratchLayout::NHWC, nullptr, ep, then, y, st),
                 "f16 conv_epilogue");
    };
  }

  // A per-sample convolution cuDNN has no algorithm for becomes an ordinary one (its step keeps
  // both ways): described for the whole batch in `layout`, its f16 filter from the kernel cache.
  void per_sample_to_ordinary(ConvStep& c, const Tensor& weight, ScratchLayout layout) {
    c.per_sample = false;
    c.n = c.samples;
    c.samples = 1;
    describe_conv(c, weight, layout);
  }

  // Scratch operands sized for the largest convolution, then an algorithm per convolution
  // (cached per shape in the backend), then the workspace the chosen algorithms need.
  void choose_conv_algorithms(const Graph& g) {
    if (convs_.empty()) return;
    allocate_scratch();
    const size_t cap = workspace_cap();
    DeviceBuffer probe;  // only while searching: cudnnFind needs a workspace to try algorithms in
    size_t need = 0;
    std::map<std::string, ConvAlgo> found;  // by cudnnFind in this compile
    for (auto& c : convs_) {
      ConvAlgo a;
      for (;;) {
        try {
          refuse_for_test(*c);
          a = choose_algo(*c, cap, probe, found);
          break;
        } catch (const OutOfDeviceMemory&) {
          throw;
        } catch (const Error& e) {
          if (!fall_back(*c, g.nodes()[size_t(c->node - graph_.nodes().data())].weight, e)) throw;
          allocate_scratch();
        }
      }
      c->conv->use(a);
      need = std::max(need, a.workspace);
    }
    probe.reset();
    if (!found.empty()) {
      std::lock_guard<std::mutex> lock(state_->persisted_mu);
      state_->persisted.save(found);
    }
    workspace_ = DeviceBuffer(device_, need);
    for (size_t i = 0, ci = 0; i < steps_.size(); ++i)
      if (graph_.nodes()[i].op == OpType::Conv2d && !direct_1x1(graph_.nodes()[i].conv)) {
        const ConvStep& c = *convs_[ci++];
        steps_[i].prof.kernel = c.conv->kernel_name() + (c.per_sample ? "+per_sample" : "") +
                                (f16_ ? "+f16_nhwc_io" : "") + (c.conv->algo().timed ? "" : "+heuristic");
      }
  }

  // The algorithm for c's shape: chosen earlier in this process, by an earlier process (when cuDNN
  // still takes it), cuDNN's heuristic choice (quick_algorithms_; neither cached nor saved, so a
  // later timed compile still measures the shape), or found now with cudnnFind (then also added
  // to `found`).
  ConvAlgo choose_algo(const ConvStep& c, size_t cap, DeviceBuffer& probe, std::map<std::string, ConvAlgo>& found) {
    ConvAlgo a;
    if (state_->algos.find(c.conv->key(), &a)) return a;
    if (from_earlier_process(*c.conv, cap, &a)) {
      state_->algos.put(c.conv->key(), a);
      return a;
    }
    if (quick_algorithms_) {
      try {
        return c.conv->heuristic(cudnn_->get(), cap);
      } catch (const OutOfDeviceMemory&) {
        throw;
      } catch (const Error&) {
        // no heuristic choice fits: time them after all
      }
    }
    if (!probe.get() && cap) probe = DeviceBuffer(device_, cap);
    a = find_algo(c, probe);
    found[c.conv->key()] = a;
    return a;
  }

  // GPEN_CUDA_REFUSE=per_sample and/or nhwc (tests): act as if cuDNN had no algorithm for
  // per-sample filters / for NHWC f16 operands, so that the fallbacks below, which only a refusal
  // reaches, run and are checked against the CPU. Read at every compile (tests switch it).
  static void refuse_for_test(const ConvStep& c) {
    const char* env = std::getenv("GPEN_CUDA_REFUSE");
    if (!env || !*env) return;
    const std::string what = env;
    if (c.per_sample && what.find("per_sample") != std::string::npos)
      throw Error("refused for a test (GPEN_CUDA_REFUSE=per_sample)");
    if (!c.per_sample && c.conv->layout() == ScratchLayout::NHWC && what.find("nhwc") != std::string::npos)
      throw Error("refused for a test (GPEN_CUDA_REFUSE=nhwc)");
  }

  // When cuDNN has no algorithm for c: per-sample filters give way to x * style, NHWC f16
  // operands to NCHW ones (each with a note). False when nothing is left to try.
  bool fall_back(ConvStep& c, const Tensor& weight, const Error& why) {
    const char* name = c.node->name.c_str();
    if (c.per_sample) {
      std::fprintf(stderr, "gpen: note: %s: no per-sample algorithm (%s); modulating the input instead\n", name,
                   why.what());
      per_sample_to_ordinary(c, weight, ScratchLayout::NHWC);
      return true;
    }
    if (c.conv->layout() != ScratchLayout::NHWC) return false;
    std::fprintf(stderr, "gpen: note: %s: no NHWC f16 algorithm (%s); using NCHW\n", name, why.what());
    describe_conv(c, weight, ScratchLayout::NCHW);
    return true;
  }

  // An algorithm an earlier process measured for this shape, when cuDNN still takes it.
  bool from_earlier_process(CudnnConv& conv, size_t cap, ConvAlgo* a) {
    {
      std::lock_guard<std::mutex> lock(state_->persisted_mu);
      if (!state_->persisted.find(conv.key(), a)) return false;
    }
    return conv.accepts(cudnn_->get(), a, cap);
  }

  ConvAlgo find_algo(const ConvStep& c, const DeviceBuffer& probe) {
    const CudnnConv& conv = *c.conv;
    const int xv = c.node->inputs[0];
    const void* x = conv.needs_prepared_input() ? scratch_in_.get()
                    : is_f16(xv)                ? static_cast<const void*>(view16(xv).data)
                                                : static_cast<const void*>(ptr(xv));
    const void* w = c.per_sample ? per_sample_filters_.get() : c.weight->get();
    const ConvAlgo a = conv.find(cudnn_->get(), x, w, scratch_out_.get(), probe.get(), probe.bytes());
    check(cudaStreamSynchronize(stream_->get()), "cudnnFind");
    state_->algos.put(conv.key(), a);
    return a;
  }

  void allocate_scratch() {
    size_t in = 0, out = 0;
    size_t filters = 0;  // per-sample filters: one buffer, sized for the largest (steps run in turn)
    for (auto& c : convs_) {
      in = std::max(in, c->conv->input_scratch_bytes());
      out = std::max(out, c->conv->output_scratch_bytes() * size_t(c->samples));
      if (c->per_sample) filters = std::max(filters, size_t(c->samples) * c->filter_elems * sizeof(uint16_t));
    }
    if (in > scratch_in_.bytes()) scratch_in_ = zeroed(in);
    if (out > scratch_out_.bytes()) scratch_out_ = zeroed(out);
    if (filters > per_sample_filters_.bytes()) per_sample_filters_ = zeroed(filters);
  }
  DeviceBuffer zeroed(size_t bytes) {
    DeviceBuffer b(device_, bytes);
    check(cudaMemsetAsync(b.get(), 0, bytes, stream_->get()), "cudaMemset (scratch)");
    return b;
  }

  // --- staging through pinned host memory ---
  void stage_inputs_outputs() {
    size_t in = 0, out = 0;
    for (int v : graph_.inputs()) {
      const size_t bytes = size_t(shape_numel(graph_.value(v).shape)) * sizeof(float);
      inputs_.push_back({v, in, bytes});
      in += bytes;
    }
    for (int v : graph_.outputs()) {
      const size_t bytes = size_t(shape_numel(graph_.value(v).shape)) * sizeof(float);
      outputs_.push_back({v, out, bytes});
      out += bytes;
    }
    pinned_in_ = std::make_unique<PinnedBuffer>(in);
    pinned_out_ = std::make_unique<PinnedBuffer>(out);
    // f16 images cross as f32 (the host's tensors) and change layout on the device, through a
    // device copy of the staging area (inputs and outputs at their pinned offsets).
    bool any_f16 = false;
    for (int v : graph_.inputs()) any_f16 |= is_f16(v);
    for (int v : graph_.outputs()) any_f16 |= is_f16(v);
    if (any_f16) io_f32_ = DeviceBuffer(device_, std::max<size_t>({in, out, 1}));
  }

  void copy_inputs_to_pinned(const std::vector<Tensor>& inputs) {
    if (inputs.size() != inputs_.size()) fail("executable: expected ", inputs_.size(), " inputs, got ", inputs.size());
    for (size_t i = 0; i < inputs_.size(); ++i) {
      const Value& v = graph_.value(inputs_[i].value);
      if (inputs[i].shape() != v.shape || inputs[i].dtype() != DType::F32)
        fail("executable: input '", v.name, "' must be f32 ", shape_str(v.shape), ", got ",
             dtype_name(inputs[i].dtype()), " ", shape_str(inputs[i].shape()));
      staging_copy(static_cast<char*>(pinned_in_->get()) + inputs_[i].pinned_offset, inputs[i].data<float>(),
                   inputs_[i].bytes);
    }
  }

  void copy_outputs_from_pinned(std::vector<Tensor>& outputs) {
    outputs.resize(outputs_.size());
    for (size_t i = 0; i < outputs_.size(); ++i) {
      const Value& v = graph_.value(outputs_[i].value);
      if (!outputs[i].defined() || outputs[i].shape() != v.shape || outputs[i].dtype() != DType::F32)
        outputs[i] = Tensor::empty(DType::F32, v.shape);
      staging_copy(outputs[i].data<float>(), static_cast<char*>(pinned_out_->get()) + outputs_[i].pinned_offset,
                   outputs_[i].bytes);
    }
  }

  void copy_in(cudaStream_t st) {
    for (const Staged& s : inputs_) {
      float* to = is_f16(s.value) ? io_f32(s.pinned_offset) : const_cast<float*>(ptr(s.value));
      check(cudaMemcpyAsync(to, static_cast<char*>(pinned_in_->get()) + s.pinned_offset, s.bytes,
                            cudaMemcpyHostToDevice, st),
            "copy input to device");
      if (is_f16(s.value)) launched(launch_f16_nhwc_from_f32_nchw(to, view16(s.value), st), "input to f16 NHWC");
    }
  }
  void copy_out(cudaStream_t st) {
    for (const Staged& s : outputs_) {
      const float* from = ptr_or_f32_copy(s, st);
      check(cudaMemcpyAsync(static_cast<char*>(pinned_out_->get()) + s.pinned_offset, from, s.bytes,
                            cudaMemcpyDeviceToHost, st),
            "copy output to host");
    }
  }
  float* io_f32(size_t byte_offset) const { return reinterpret_cast<float*>(io_f32_.as<char>() + byte_offset); }
  // Output `s` as f32 NCHW on the device: the arena view itself, or (f16) its converted copy.
  const float* ptr_or_f32_copy(const Staged& s, cudaStream_t st) {
    if (!is_f16(s.value)) return ptr(s.value);
    float* f = io_f32(s.pinned_offset);
    launched(launch_f16_nhwc_to_f32_nchw(view16(s.value), f, st), "output from f16 NHWC");
    return f;
  }

  // --- byte images in and out (run_rgb_bytes) ---
  // Whether the graph is one [n, 3, H, W] input (and, for bytes out, one output of that shape).
  bool byte_io_shape(int n, bool bytes_out) const {
    if (inputs_.size() != 1) return false;
    const Shape& in = graph_.value(inputs_[0].value).shape;
    if (in.size() != 4 || in[0] != n || in[1] != 3) return false;
    return !bytes_out || (outputs_.size() == 1 && graph_.value(outputs_[0].value).shape == in);
  }
  void run_bytes(const RgbBytesIo& io, const uint8_t* const* in, int n, Io mode) {
    check(cudaSetDevice(device_), "cudaSetDevice");
    prepare_byte_io(io);
    const size_t image_bytes = byte_count_ / size_t(n);
    for (int i = 0; i < n; ++i)
      staging_copy(static_cast<uint8_t*>(pinned_bytes_in_->get()) + size_t(i) * image_bytes, in[i], image_bytes);
    if (graphs_enabled() && !graph_failed_)
      run_graph(mode);
    else
      enqueue_all(stream_->get(), mode);
    check(cudaStreamSynchronize(stream_->get()), "forward (a kernel failed; see the CUDA error)");
  }
  void prepare_byte_io(const RgbBytesIo& io) {
    if (!pinned_levels_) {  // all or nothing: an allocation that fails (out of memory) leaves none
      const size_t count = size_t(shape_numel(graph_.value(inputs_[0].value).shape));
      auto pinned_in = std::make_unique<PinnedBuffer>(count), pinned_out = std::make_unique<PinnedBuffer>(count);
      DeviceBuffer in(device_, count), out(device_, count), levels(device_, sizeof(io.in_levels));
      auto pinned_levels = std::make_unique<PinnedBuffer>(sizeof(io.in_levels));
      byte_count_ = count;
      pinned_bytes_in_ = std::move(pinned_in);
      pinned_bytes_out_ = std::move(pinned_out);
      bytes_in_ = std::move(in);
      bytes_out_ = std::move(out);
      levels_ = std::move(levels);
      pinned_levels_ = std::move(pinned_levels);
    }
    // The table is an operand of the captured graphs (by address): refreshed in place when the
    // caller's differs from the last one; the channel order, scale and offset are kernel
    // arguments, so a change of them needs new captures.
    if (!byte_io_ready_ || std::memcmp(&io.in_levels, &byte_io_.in_levels, sizeof(io.in_levels)) != 0) {
      std::memcpy(pinned_levels_->get(), io.in_levels.data(), sizeof(io.in_levels));
      check(cudaMemcpyAsync(levels_.get(), pinned_levels_->get(), sizeof(io.in_levels), cudaMemcpyHostToDevice,
                            stream_->get()),
            "copy the byte levels to the device");
    }
    if (byte_io_ready_ && (io.out_scale != byte_io_.out_scale || io.out_offset != byte_io_.out_offset ||
                           io.reverse_channels != byte_io_.reverse_channels))
      for (Io mode : {Io::Bytes, Io::BytesIn})
        if (graph_exec_[mode]) {
          cudaGraphExecDestroy(graph_exec_[mode]);
          graph_exec_[mode] = nullptr;
        }
    byte_io_ = io;
    byte_io_ready_ = true;
  }
  void copy_bytes_in(cudaStream_t st) {
    check(cudaMemcpyAsync(bytes_in_.get(), pinned_bytes_in_->get(), byte_count_, cudaMemcpyHostToDevice, st),
          "copy input bytes to device");
    const int in = inputs_[0].value;
    if (is_f16(in))
      launched(launch_f16_nhwc_from_rgb_bytes(bytes_in_.as<uint8_t>(), levels_.as<float>(), byte_io_.reverse_channels,
                                              view16(in), st),
               "rgb bytes to f16 NHWC");
    else
      launched(launch_rgb_bytes_to_planes(bytes_in_.as<uint8_t>(), levels_.as<float>(), byte_io_.reverse_channels,
                                          view(in), st),
               "rgb_bytes_to_planes");
  }
  void copy_bytes_out(cudaStream_t st) {
    const int out = outputs_[0].value;
    if (is_f16(out))
      launched(launch_f16_nhwc_to_rgb_bytes(view16(out), byte_io_.out_scale, byte_io_.out_offset,
                                            bytes_out_.as<uint8_t>(), st),
               "f16 NHWC to rgb bytes");
    else
      launched(launch_planes_to_rgb_bytes(view(out), byte_io_.out_scale, byte_io_.out_offset,
                                          bytes_out_.as<uint8_t>(), st),
               "planes_to_rgb_bytes");
    check(cudaMemcpyAsync(pinned_bytes_out_->get(), bytes_out_.get(), byte_count_, cudaMemcpyDeviceToHost, st),
          "copy output bytes to host");
  }

  // --- running ---
  void enqueue_all(cudaStream_t st, Io io) {
    if (io == Io::Floats)
      copy_in(st);
    else
      copy_bytes_in(st);
    for (Step& s : steps_) s.run(st);
    if (io == Io::Bytes)
      copy_bytes_out(st);
    else
      copy_out(st);
  }

  void run_graph(Io io) {
    if (!graph_exec_[io]) capture_graph(io);
    if (graph_exec_[io])
      check(cudaGraphLaunch(graph_exec_[io], stream_->get()), "cudaGraphLaunch");
    else
      enqueue_all(stream_->get(), io);
  }

  // Records the whole forward once. Any failure leaves the stream usable and this executable
  // running node by node (with one warning): slower, never wrong. Out of device memory is not such
  // a failure: it is rethrown (the OOM fallback halves the batch) and a later run captures again.
  void capture_graph(Io io) {
    cudaStream_t st = stream_->get();
    check(cudaStreamBeginCapture(st, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
    std::string why;
    std::exception_ptr oom;
    try {
      enqueue_all(st, io);
    } catch (const OutOfDeviceMemory&) {
      oom = std::current_exception();
    } catch (const std::exception& e) {
      why = e.what();
    }
    cudaGraph_t graph = nullptr;
    const cudaError_t end = cudaStreamEndCapture(st, &graph);
    if (oom) {
      if (graph) cudaGraphDestroy(graph);
      cudaGetLastError();  // capture errors are not sticky; clear them
      std::rethrow_exception(oom);
    }
    if (why.empty() && end != cudaSuccess) why = std::string("cudaStreamEndCapture: ") + cudaGetErrorString(end);
    if (why.empty()) {
      const cudaError_t inst = cudaGraphInstantiate(&graph_exec_[io], graph, 0);
      if (inst == cudaErrorMemoryAllocation) {
        graph_exec_[io] = nullptr;  // what the runtime leaves there on failure is unspecified
        cudaGraphDestroy(graph);
        check(inst, "cudaGraphInstantiate");
      }
      if (inst != cudaSuccess) {
        why = std::string("cudaGraphInstantiate: ") + cudaGetErrorString(inst);
        graph_exec_[io] = nullptr;
      }
    }
    if (graph) cudaGraphDestroy(graph);
    if (!why.empty()) {
      cudaGetLastError();  // capture errors are not sticky; clear them
      graph_failed_ = true;
      std::fprintf(stderr, "gpen: warning: CUDA graph capture failed (%s); running node by node\n", why.c_str());
    }
  }

  void run_profiled() {
    cudaStream_t st = stream_->get();
    std::vector<Event> marks(steps_.size() + 1);
    copy_in(st);
    check(cudaEventRecord(marks[0].get(), st), "cudaEventRecord");
    for (size_t i = 0; i < steps_.size(); ++i) {
      steps_[i].run(st);
      check(cudaEventRecord(marks[i + 1].get(), st), "cudaEventRecord");
    }
    copy_out(st);
    check(cudaStreamSynchronize(st), "forward (profiled)");
    for (size_t i = 0; i < steps_.size(); ++i) {
      float ms = 0;
      check(cudaEventElapsedTime(&ms, marks[i].get(), marks[i + 1].get()), "cudaEventElapsedTime");
      steps_[i].prof.ms += ms;
    }
  }

  // Declaration order is destruction order reversed: handles and buffers go before the stream.
  Graph graph_;
  MemoryPlan plan_;
  std::shared_ptr<BackendState> state_;
  int device_;
  std::shared_ptr<CudaKernelCache> cache_;
  bool quick_algorithms_;  // CompileOptions::quick_algorithms
  std::unique_ptr<Stream> stream_;
  DeviceBuffer arena_, cublas_ws_, scratch_in_, scratch_out_, workspace_, per_sample_filters_;
  // The f16 activation mode: which values are f16 NHWC, the f32 staging of f16 inputs and
  // outputs, and the f32 copies of flattened images (by value).
  F16ActivationPlan act_;
  bool f16_ = false;
  DeviceBuffer io_f32_;
  std::map<int, DeviceBuffer> flat_;
  std::map<size_t, DeviceBuffer> demod_copies_;  // by FIR node: its convolution's demodulation
  std::vector<DeviceBuffer> tables_;             // per-row tables of the vector runs
  std::unique_ptr<CudnnHandle> cudnn_;
  std::unique_ptr<CublasHandle> cublas_;
  std::map<std::string, std::shared_ptr<DeviceBuffer>> weights_;  // by upload key
  std::vector<std::unique_ptr<ConvStep>> convs_;
  std::vector<Step> steps_;
  std::vector<Staged> inputs_, outputs_;
  std::unique_ptr<PinnedBuffer> pinned_in_, pinned_out_;
  // run_rgb_bytes' buffers, made at its first call
  size_t byte_count_ = 0;
  std::unique_ptr<PinnedBuffer> pinned_bytes_in_, pinned_bytes_out_, pinned_levels_;
  DeviceBuffer bytes_in_, bytes_out_, levels_;
  RgbBytesIo byte_io_;
  bool byte_io_ready_ = false;
  cudaGraphExec_t graph_exec_[3] = {nullptr, nullptr, nullptr};  // per Io
  bool graph_failed_ = false, profiling_ = false;
};

class CudaBackend final : public Backend {
 public:
  CudaBackend(int device, GpuPrecision precision, const std::string& gpu_and_cudnn)
      : state_(std::make_shared<BackendState>(device, precision, gpu_and_cudnn)) {}
  std::string name() const override {
    return "cuda:" + std::to_string(state_->device) + " " + gpu_precision_name(state_->precision);
  }
  // A graph the f16 activation mode cannot compile (e.g. a convolution cuDNN refuses in NHWC f16)
  // compiles again in the f32 layout, with a note: slower, never a failure.
  std::unique_ptr<Executable> compile(const Graph& g, const CompileOptions& opt) override {
    if (state_->precision != GpuPrecision::FP16 || !nhwc16_requested())
      return std::make_unique<CudaExecutable>(g, opt, state_, false);
    try {
      return std::make_unique<CudaExecutable>(g, opt, state_, true);
    } catch (const OutOfDeviceMemory&) {
      throw;
    } catch (const Error& e) {
      std::fprintf(stderr, "gpen: note: f16 NHWC activations failed to compile (%s); using f32 activations\n",
                   e.what());
      return std::make_unique<CudaExecutable>(g, opt, state_, false);
    }
  }
  std::shared_ptr<KernelCache> make_kernel_cache() const override { return std::make_shared<CudaKernelCache>(); }
  bool times_algorithms() const override { return true; }

 private:
  std::shared_ptr<BackendState> state_;
};

}  // namespace

std::unique_ptr<Backend> make_cuda_backend(int device, GpuPrecision precision) {
  int count = 0;
  check(cudaGetDeviceCount(&count), "cudaGetDeviceCount");
  if (device < 0 || device >= count) fail("device cuda:", device, " does not exist (", count, " device(s))");
  cudaDeviceProp prop{};
  check(cudaGetDeviceProperties(&prop, device), "cudaGetDeviceProperties");
  if (prop.major * 10 + prop.minor < kMinComputeCapability)
    fail("cuda:", device, " (", prop.name, ") is sm_", prop.major, prop.minor, "; this build needs sm_",
         kMinComputeCapability, " or newer");
  check(cudaSetDevice(device), "cudaSetDevice");
  check(cudaFree(nullptr), "creating the CUDA context");
  // Algorithm cache keys name the GPU and the cuDNN version: another card or library measures anew.
  const std::string gpu_and_cudnn = std::string(prop.name) + "|cudnn " + std::to_string(cudnnGetVersion()) + "|";
  return std::make_unique<CudaBackend>(device, precision, gpu_and_cudnn);
}

}  // namespace gpen::cuda
