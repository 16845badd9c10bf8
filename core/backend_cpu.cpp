// The CPU backend: each graph node becomes a step that calls a kernel from kernels/cpu, with
// convolution kernels made (and their weights prepacked) once here at compile time.
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <sstream>

#include "core/backend.h"
#include "core/dtype.h"
#include "core/error.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/generic.h"
#include "kernels/cpu/ops.h"
#include "kernels/cpu/photo_rows.h"

namespace gpen {
namespace {

using cpu::View;

struct Step {
  std::function<void(float* arena)> run;
  NodeProfile prof;
};

// Conv kernels by node name (plus everything that selects the kernel), shared by the executables
// of one model: a batch size compiled later reuses the packed weights of the first.
class CpuKernelCache final : public KernelCache {
 public:
  std::shared_ptr<cpu::ConvKernel> find(const std::string& key) const {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = convs_.find(key);
    return it == convs_.end() ? nullptr : it->second;
  }
  void put(const std::string& key, std::shared_ptr<cpu::ConvKernel> k) {
    std::lock_guard<std::mutex> lock(mu_);
    convs_.emplace(key, std::move(k));
  }

 private:
  mutable std::mutex mu_;
  std::map<std::string, std::shared_ptr<cpu::ConvKernel>> convs_;
};

std::string conv_cache_key(const Node& n, const cpu::KernelOptions& k) {
  const cpu::ConvDesc& d = n.conv;
  std::ostringstream s;
  s << n.name << '|' << d.C << ',' << d.K << ',' << d.kh << 'x' << d.kw << ",s" << d.stride << ",p" << d.pad << ",g"
    << d.groups << ",t" << d.transposed << "|map " << k.map_h << 'x' << k.map_w << "|isa " << int(k.isa) << ",prec "
    << int(k.precision) << ",lean " << k.lean_memory << ",wino " << int(k.winograd_weights);
  return s.str();
}

class CpuExecutable final : public Executable {
 public:
  // The executable keeps the graph without its weights: every step holds what it needs (conv
  // kernels their packed copy), so the caller may free the original weights once this returns.
  CpuExecutable(const Graph& g, const CompileOptions& opt)
      : graph_(g.without_weights()), pool_(opt.threads),
        cache_(std::dynamic_pointer_cast<CpuKernelCache>(opt.kernel_cache)), round_f16_(opt.round_images_to_f16) {
    cpu::KernelOptions kopt;
    kopt.isa = std::min(opt.max_isa, cpu::active_isa());
    kopt.precision = opt.precision;
    kopt.lean_memory = opt.lean_memory;
    kopt.winograd_weights = opt.winograd_weights;
    std::vector<int64_t> scratch(g.nodes().size(), 0);  // per node, elements (the kernels say)
    std::vector<std::shared_ptr<cpu::ConvKernel>> packed = pack_convs(g, kopt);
    for (size_t t = 0; t < g.nodes().size(); ++t)
      steps_.push_back(make_step(g.nodes()[t], int(t), kopt, std::move(packed[t]), &scratch[t]));
    const std::vector<std::pair<int, int>> extra_reads = fuse_depthwise_pointwise(g, kopt);
    plan_ = g.plan_memory(scratch, extra_reads);
    shared_arena_ = opt.shared_arena;
    if (!shared_arena_) arena_ = Tensor::empty(DType::F32, {plan_.arena_elems});  // after packing: weights peak first
  }

  void run(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) override {
    float* arena = arena_for_run();
    const auto ins = graph_.inputs();
    if (inputs.size() != ins.size()) fail("executable: expected ", ins.size(), " inputs, got ", inputs.size());
    for (size_t i = 0; i < ins.size(); ++i) {
      const Value& v = graph_.value(ins[i]);
      if (inputs[i].shape() != v.shape || inputs[i].dtype() != DType::F32)
        fail("executable: input '", v.name, "' must be f32 ", shape_str(v.shape), ", got ",
             dtype_name(inputs[i].dtype()), " ", shape_str(inputs[i].shape()));
      std::memcpy(arena + plan_.offset[size_t(ins[i])], inputs[i].data<float>(), inputs[i].nbytes());
      round_if_image(arena, ins[i]);
    }
    run_steps(arena, outputs);
  }

  // The photo's bytes scaled straight into the arena: no f32 copy of the photo is made (at
  // 1920x1080 a fresh 25 MB tensor, whose page faults and copy cost RetinaFace ~8 % of its run).
  bool run_from_rgb_bytes(const RgbBytesIo& io, const uint8_t* const* in, int n, std::vector<Tensor>& outputs) override {
    const auto ins = graph_.inputs();
    if (ins.size() != 1) return false;
    const Shape& shape = graph_.value(ins[0]).shape;
    if (shape.size() != 4 || shape[0] != n || shape[1] != 3) return false;
    float* arena = arena_for_run();
    const View x = view(arena, ins[0]);
    for (int i = 0; i < n; ++i) write_rgb_planes(io, in[i], x, i);
    round_if_image(arena, ins[0]);
    run_steps(arena, outputs);
    return true;
  }

  size_t arena_bytes() const override { return size_t(plan_.arena_elems) * sizeof(float); }
  size_t weight_bytes() const override { return weight_bytes_; }
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
  View view(float* arena, int v) const { return view_of(graph_, plan_, arena, v); }

  float* arena_for_run() { return shared_arena_ ? shared_arena_->reserve(plan_.arena_elems) : arena_.data<float>(); }

  void run_steps(float* arena, std::vector<Tensor>& outputs) {
    for (size_t t = 0; t < steps_.size(); ++t) {
      Step& s = steps_[t];
      if (!profiling_) {
        s.run(arena);
      } else {
        auto t0 = std::chrono::steady_clock::now();
        s.run(arena);
        s.prof.ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
      }
      round_if_image(arena, graph_.nodes()[t].output);
    }
    const auto outs = graph_.outputs();
    outputs.resize(outs.size());
    for (size_t i = 0; i < outs.size(); ++i) {
      const Value& v = graph_.value(outs[i]);
      if (!outputs[i].defined() || outputs[i].shape() != v.shape || outputs[i].dtype() != DType::F32)
        outputs[i] = Tensor::empty(DType::F32, v.shape);
      std::memcpy(outputs[i].data<float>(), arena + plan_.offset[size_t(outs[i])], outputs[i].nbytes());
    }
  }

  // Sample i of x (3 planes) from H x W RGB bytes through io's tables. Tables of the form
  // float(v) + offset (RetinaFace: v - mean, exact) take the vectorised row kernel; any other
  // table is looked up value by value.
  void write_rgb_planes(const RgbBytesIo& io, const uint8_t* rgb, const View& x, int i) {
    float offset[3];
    bool affine = true;
    for (int p = 0; p < 3; ++p) {
      offset[p] = io.in_levels[size_t(p) * 256];
      for (int v = 0; v < 256; ++v) affine &= io.in_levels[size_t(p) * 256 + size_t(v)] == float(v) + offset[p];
    }
    // Pixel channel k feeds plane k, or plane 2 - k when the planes are B, G, R.
    auto plane_of = [&](int k) { return io.reverse_channels ? 2 - k : k; };
    const float mean[3] = {-offset[plane_of(0)], -offset[plane_of(1)], -offset[plane_of(2)]};
    const auto to_planes = cpu::photo_row_kernels().rgb_to_planes;
    const int64_t plane = int64_t(x.h) * x.w;
    float* base = x.data + int64_t(i) * x.batch_stride;
    pool_.parallel_for(x.h, 16, [&](int64_t y0, int64_t y1) {
      for (int64_t y = y0; y < y1; ++y) {
        const uint8_t* row = rgb + y * x.w * 3;
        float* dst[3];
        for (int k = 0; k < 3; ++k) dst[k] = base + plane_of(k) * plane + y * x.w;
        if (affine) {
          to_planes(row, x.w, mean, dst[0], dst[1], dst[2]);
          continue;
        }
        for (int xx = 0; xx < x.w; ++xx)
          for (int k = 0; k < 3; ++k) dst[k][xx] = io.in_levels[size_t(plane_of(k)) * 256 + row[3 * xx + k]];
      }
    });
  }

  // CompileOptions::round_images_to_f16: value v, when an image, to f16 precision in place.
  void round_if_image(float* arena, int v) const {
    if (!round_f16_ || graph_.value(v).shape.size() != 4) return;
    const View x = view(arena, v);
    const int64_t plane = int64_t(x.h) * x.w;
    for (int n = 0; n < x.n; ++n)
      for (int64_t i = 0; i < x.c * plane; ++i) {
        float& e = x.data[n * x.batch_stride + i];
        e = f16_to_f32(f32_to_f16(e));
      }
  }

  // Kernel options for conv node n: its input's size decides the algorithm.
  cpu::KernelOptions sized_options(const Node& n, const cpu::KernelOptions& kopt) const {
    const Shape& xs = graph_.value(n.inputs[0]).shape;
    cpu::KernelOptions sized = kopt;
    sized.map_h = int(xs[2]);
    sized.map_w = int(xs[3]);
    return sized;
  }

  // Every conv's kernel (weights packed, Winograd-transformed) made at once, the layers spread
  // over the pool: packing is most of a compile (GPEN-512: hundreds of MB of weights re-laid
  // out). Indexed by node; null for other ops. The first failure is rethrown here.
  std::vector<std::shared_ptr<cpu::ConvKernel>> pack_convs(const Graph& g, const cpu::KernelOptions& kopt) {
    std::vector<std::shared_ptr<cpu::ConvKernel>> packed(g.nodes().size());
    std::vector<size_t> convs;
    for (size_t t = 0; t < g.nodes().size(); ++t)
      if (g.nodes()[t].op == OpType::Conv2d) convs.push_back(t);
    std::vector<std::exception_ptr> failed(convs.size());
    pool_.parallel_for(int64_t(convs.size()), 1, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) {
        const Node& n = g.nodes()[convs[size_t(i)]];
        try {
          packed[convs[size_t(i)]] = conv_kernel(n, sized_options(n, kopt));
        } catch (...) {  // a worker thread must not throw: kept, rethrown by the caller
          failed[size_t(i)] = std::current_exception();
        }
      }
    });
    for (const std::exception_ptr& f : failed)
      if (f) std::rethrow_exception(f);
    return packed;
  }

  std::shared_ptr<cpu::ConvKernel> conv_kernel(const Node& n, const cpu::KernelOptions& kopt) {
    const std::string key = cache_ ? conv_cache_key(n, kopt) : std::string();
    if (cache_)
      if (std::shared_ptr<cpu::ConvKernel> k = cache_->find(key)) return k;
    if (!n.weight.defined())
      fail("cpu backend: conv '", n.name, "' has no weights (released after packing, and not in the kernel cache)");
    std::shared_ptr<cpu::ConvKernel> k = cpu::make_conv_kernel(n.conv, n.weight, kopt);
    if (cache_) cache_->put(key, k);
    return k;
  }

  // MobileNet's conv_dw blocks: a depthwise conv whose output only the next node, a plain 1x1
  // conv, reads runs inside that node's step as one row-by-row kernel (cpu::make_conv_dw_pw)
  // where its map would leave the caches (kFusedMinBytes); its own step then does nothing.
  // Returns the reads this adds (the 1x1 node reads the depthwise input), for the memory plan:
  // without them the 1x1's output could be placed over that input. The arena keeps the unused
  // depthwise value. GPEN_CPU_FUSE=0 turns this off (A/B runs).
  static constexpr int64_t kFusedMinBytes = int64_t(1) << 20;
  std::vector<std::pair<int, int>> fuse_depthwise_pointwise(const Graph& g, const cpu::KernelOptions& kopt) {
    std::vector<std::pair<int, int>> extra_reads;
    if (round_f16_) return extra_reads;  // the emulated f16 storage rounds every value, the depthwise one too
    if (const char* e = std::getenv("GPEN_CPU_FUSE"); e && std::strcmp(e, "0") == 0) return extra_reads;
    // Readers of each buffer: a value read through a view (a slice, a reshape) counts for its root.
    std::vector<int> readers(g.values().size(), 0);
    auto root = [&](int v) { return g.value(v).root >= 0 ? g.value(v).root : v; };
    for (const Node& n : g.nodes())
      for (int v : n.inputs) ++readers[size_t(root(v))];
    for (int v : g.outputs()) ++readers[size_t(root(v))];
    for (size_t t = 0; t + 1 < g.nodes().size(); ++t) {
      const Node &dw = g.nodes()[t], &pw = g.nodes()[t + 1];
      const cpu::ConvDesc &a = dw.conv, &b = pw.conv;
      const bool pair = dw.op == OpType::Conv2d && pw.op == OpType::Conv2d && dw.inputs.size() == 1 &&
                        pw.inputs.size() == 1 && pw.inputs[0] == dw.output && root(dw.output) == dw.output &&
                        readers[size_t(dw.output)] == 1 &&
                        a.groups > 1 && a.groups == a.C && a.groups == a.K && !a.transposed && b.kh == 1 && b.kw == 1 &&
                        b.stride == 1 && b.pad == 0 && b.groups == 1 && !b.transposed && dw.weight.defined() &&
                        pw.weight.defined();
      if (!pair || shape_numel(g.value(dw.output).shape) * int64_t(sizeof(float)) < kFusedMinBytes) continue;
      std::shared_ptr<cpu::ConvKernel> k = cpu::make_conv_dw_pw(a, dw.weight, epilogue(dw.epi), b, pw.weight, kopt);
      if (!k) continue;
      Step &first = steps_[t], &second = steps_[t + 1];
      first.run = [](float*) {};
      first.prof.kernel = "fused into " + pw.name;
      second.prof.kernel = k->name();
      second.prof.flops += first.prof.flops;
      const cpu::Epilogue ep = epilogue(pw.epi);
      const int in = dw.inputs[0], out = pw.output;
      ThreadPool* pool = &pool_;
      second.run = [this, k, ep, in, out, pool](float* arena) {
        cpu::ConvRun r;
        r.x = view(arena, in);
        r.y = view(arena, out);
        r.ep = ep;
        r.pool = pool;
        k->run(r);
      };
      extra_reads.emplace_back(int(t + 1), in);
    }
    return extra_reads;
  }

  static cpu::Epilogue epilogue(const EpilogueSpec& e) {
    cpu::Epilogue ep;
    ep.bias = e.bias.defined() && e.bias.numel() ? e.bias.data<float>() : nullptr;
    ep.slope = e.slope;
    ep.gain = e.gain;
    return ep;
  }

  // `packed`: a conv node's kernel from pack_convs. `scratch` receives the elements of arena
  // scratch the node's kernel needs while it runs.
  Step make_step(const Node& n, int index, const cpu::KernelOptions& kopt, std::shared_ptr<cpu::ConvKernel> packed,
                 int64_t* scratch) {
    Step s;
    s.prof.name = n.name;
    s.prof.op = op_name(n.op);
    s.prof.kernel = "ref";
    ThreadPool* pool = &pool_;
    const cpu::Epilogue ep = epilogue(n.epi);
    const int in0 = n.inputs.empty() ? -1 : n.inputs[0], out = n.output;
    weight_bytes_ += n.weight.shape().empty() ? 0 : n.weight.nbytes();  // shape-only too: counted as f32
    switch (n.op) {
      case OpType::Broadcast: {
        const Tensor p = n.weight;
        s.run = [this, p, out](float* a) {
          View y = view(a, out);
          for (int b = 0; b < y.n; ++b) std::memcpy(y.data + b * y.batch_stride, p.data<float>(), p.nbytes());
        };
        break;
      }
      case OpType::Linear: {
        const Tensor w = n.weight;
        const int rows = int(graph_.value(in0).shape[0]), in = int(w.dim(1)), outd = int(w.dim(0));
        s.prof.flops = 2 * int64_t(rows) * w.numel();
        s.prof.kernel = cpu::vector_op_kernel_name("linear");
        s.run = [this, w, ep, rows, in, outd, in0, out, pool](float* a) {
          cpu::linear(view(a, in0).data, w.data<float>(), view(a, out).data, rows, in, outd, ep, pool);
        };
        break;
      }
      case OpType::PixelNorm: {
        const Shape xs = graph_.value(in0).shape;
        const int64_t hw = xs.size() > 2 ? xs[2] * xs[3] : 1;
        const float eps = n.eps;
        s.run = [this, xs, hw, eps, in0, out](float* a) {
          cpu::ref::pixel_norm(view(a, in0).data, view(a, out).data, int(xs[0]), int(xs[1]), hw, eps);
        };
        break;
      }
      case OpType::Conv2d: {
        const Shape xs = graph_.value(in0).shape;
        std::shared_ptr<cpu::ConvKernel> k = std::move(packed);  // pack_convs made every conv's (or threw)
        s.prof.kernel = k->name();
        s.prof.flops = n.conv.flops(int(xs[0]), int(xs[2]), int(xs[3]));
        const int sin = n.inputs.size() > 1 ? n.inputs[1] : -1, sout = n.inputs.size() > 2 ? n.inputs[2] : -1;
        *scratch = int64_t((k->scratch_bytes(int(xs[0]), int(xs[2]), int(xs[3])) + sizeof(float) - 1) / sizeof(float));
        s.run = [this, k, ep, in0, out, sin, sout, pool, index](float* a) {
          cpu::ConvRun r;
          r.x = view(a, in0);
          r.y = view(a, out);
          r.in_scale = sin >= 0 ? view(a, sin).data : nullptr;
          r.out_scale = sout >= 0 ? view(a, sout).data : nullptr;
          r.ep = ep;
          r.pool = pool;
          const int64_t so = plan_.scratch_offset[size_t(index)];
          r.scratch = so >= 0 ? a + so : nullptr;
          k->run(r);
        };
        break;
      }
      case OpType::Upfirdn2d: {
        const Tensor kern = n.weight;
        const int up = n.up, down = n.down, p0 = n.pad0, p1 = n.pad1;
        s.prof.kernel = cpu::upfirdn2d_kernel_name(kern.data<float>(), int(kern.dim(0)), int(kern.dim(1)), up, down);
        s.run = [this, kern, ep, up, down, p0, p1, in0, out, pool](float* a) {
          cpu::upfirdn2d(view(a, in0), view(a, out), kern.data<float>(), int(kern.dim(0)), int(kern.dim(1)), up,
                         down, p0, p1, ep, pool);
        };
        break;
      }
      case OpType::ScaleBiasAct: {
        const float scale = n.scalar;
        s.prof.kernel = cpu::vector_op_kernel_name("scale_bias_act");
        s.run = [this, scale, ep, in0, out, pool](float* a) {
          cpu::scale_bias_act(view(a, in0), view(a, out), scale, ep, pool);
        };
        break;
      }
      case OpType::Add: {
        const int in1 = n.inputs[1];
        s.prof.kernel = cpu::vector_op_kernel_name("add");
        s.run = [this, in0, in1, out, pool](float* a) { cpu::add(view(a, in0), view(a, in1), view(a, out), pool); };
        break;
      }
      case OpType::DemodFactors: {
        const Tensor wsq = n.weight;
        const float eps = n.eps;
        s.prof.kernel = cpu::vector_op_kernel_name("demod_factors");
        s.run = [this, wsq, eps, in0, out, pool](float* a) {
          View st = view(a, in0);
          cpu::demod_factors(st.data, wsq.data<float>(), view(a, out).data, st.n, int(wsq.dim(1)), int(wsq.dim(0)),
                             eps, pool);
        };
        break;
      }
      case OpType::UpsampleNearest:
        s.prof.kernel = "f32_upsample_nearest_rows";
        s.run = [this, in0, out, pool](float* a) { cpu::upsample_nearest(view(a, in0), view(a, out), pool); };
        break;
      case OpType::MaxPool2d: {
        const int k = n.conv.kh, stride = n.conv.stride, pad = n.conv.pad;
        s.run = [this, k, stride, pad, in0, out, pool](float* a) {
          cpu::ref::max_pool2d(view(a, in0), view(a, out), k, stride, pad, pool);
        };
        break;
      }
      case OpType::ReflectPad2d: {
        const int pad = n.pad0;
        s.prof.kernel = "f32_reflect_pad2d_rows";
        s.run = [this, pad, in0, out, pool](float* a) { cpu::reflect_pad2d(view(a, in0), view(a, out), pad, pool); };
        break;
      }
      case OpType::PixelUnshuffle: {
        const int r = n.down;
        s.run = [this, r, in0, out, pool](float* a) { cpu::ref::pixel_unshuffle(view(a, in0), view(a, out), r, pool); };
        break;
      }
      case OpType::Count:
        fail("cpu backend: node '", n.name, "' has no op");
    }
    return s;
  }

  Graph graph_;
  MemoryPlan plan_;
  ThreadPool pool_;
  std::shared_ptr<CpuKernelCache> cache_;
  const bool round_f16_;  // CompileOptions::round_images_to_f16
  std::shared_ptr<SharedArena> shared_arena_;  // when set, used instead of arena_
  Tensor arena_;
  std::vector<Step> steps_;
  size_t weight_bytes_ = 0;
  bool profiling_ = false;
};

class CpuBackend final : public Backend {
 public:
  std::string name() const override { return "cpu"; }
  std::unique_ptr<Executable> compile(const Graph& g, const CompileOptions& opt) override {
    return std::make_unique<CpuExecutable>(g, opt);
  }
  std::shared_ptr<KernelCache> make_kernel_cache() const override { return std::make_shared<CpuKernelCache>(); }
};

}  // namespace

std::unique_ptr<Backend> make_cpu_backend() { return std::make_unique<CpuBackend>(); }

}  // namespace gpen
