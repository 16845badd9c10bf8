// Where graphs run. A Backend compiles a Graph into an Executable: it chooses kernels, prepares
// weights once (prepacks them on CPU; a GPU backend uploads them), and allocates the memory plan's
// arena. Models only build graphs and never see a backend's internals, so a CUDA backend plugs in
// here without touching them.
#pragma once
#include <array>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/graph.h"
#include "core/tensor.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/kernel_types.h"

namespace gpen {

struct NodeProfile {
  std::string name, op, kernel;
  double ms = 0;      // summed over profiled runs
  int64_t flops = 0;  // per run
};

// Byte images in (and out) of a graph whose one input is [N, 3, H, W]: input plane c at a pixel
// is in_levels[c * 256 + byte], the byte being the pixel's channel c, or 2 - c with
// reverse_channels (RetinaFace's planes are B, G, R); GPEN: x / 127.5 - 1, RetinaFace: x - mean.
// An output [N, 3, H, W] back to bytes is trunc(clip(y * out_scale + out_offset, 0, 1) * 255),
// each float operation rounded on its own (core/face_tensor.cpp does the same on the host).
struct RgbBytesIo {
  std::array<float, 3 * 256> in_levels{};
  bool reverse_channels = false;
  float out_scale = 1.f, out_offset = 0.f;
};

class Executable {
 public:
  virtual ~Executable() = default;
  // Host f32 tensors in and out, in the order of Graph::inputs() / Graph::outputs().
  // A backend may run asynchronously inside, but run() returns with the outputs filled.
  virtual void run(const std::vector<Tensor>& inputs, std::vector<Tensor>& outputs) = 0;
  // The same forward on `n` RGB byte images in and out (in[i], out[i]: H x W x 3, interleaved),
  // the scaling done by the backend: on a GPU a quarter of the bytes cross the bus and the host
  // runs no float pass. False when the backend has no such path or the graph is not of that form
  // (the caller then converts on the host and calls run()).
  virtual bool run_rgb_bytes(const RgbBytesIo& io, const uint8_t* const* in, int n, uint8_t* const* out) {
    (void)io, (void)in, (void)n, (void)out;
    return false;
  }
  // Bytes in only (the detector's photo: a quarter of its float input), f32 outputs as run()
  // gives them. False when the backend has no such path.
  virtual bool run_from_rgb_bytes(const RgbBytesIo& io, const uint8_t* const* in, int n, std::vector<Tensor>& outputs) {
    (void)io, (void)in, (void)n, (void)outputs;
    return false;
  }
  virtual size_t arena_bytes() const = 0;
  virtual size_t weight_bytes() const = 0;  // weights as the backend holds them (prepacked)
  virtual void enable_profiling(bool on) = 0;
  virtual std::vector<NodeProfile> profile() const = 0;
  // Whether some choice was made without timing it (CompileOptions::quick_algorithms), so that a
  // timed compile of the same graph could run faster.
  virtual bool has_untimed_algorithms() const { return false; }
};

// Prepared kernels (prepacked / uploaded weights) that several executables of one model share,
// keyed by node name: compiling the same model for another batch size then reuses them instead
// of packing the weights again, and the model may drop its own copy of those weights after the
// first compile (see GpenRunner). Each backend keeps its own kind of entries.
class KernelCache {
 public:
  virtual ~KernelCache() = default;
};

// Activation memory that several executables share because their owner runs them one at a time
// (GpenRunner: one executable per batch size): sized to the largest of them instead of one arena
// each. Growing discards the contents, which never outlive a run.
class SharedArena {
 public:
  float* reserve(int64_t elems) {
    if (buf_.numel() < elems) buf_ = Tensor::empty(DType::F32, {elems});
    return buf_.data<float>();
  }

 private:
  Tensor buf_;
};

struct CompileOptions {
  int threads = 0;                                  // 0: all hardware threads
  cpu::Isa max_isa = cpu::Isa::AVX512_BF16;         // capped further by what the CPU has
  cpu::Precision precision = cpu::Precision::F32;
  // Trade speed for peak memory where an algorithm's prepacked weights are much larger than the
  // data they serve (CPU: see cpu::KernelOptions::lean_memory).
  bool lean_memory = false;
  // CPU: where Winograd layers keep their transformed weights (cpu::KernelOptions::winograd_weights).
  cpu::WinogradWeights winograd_weights = cpu::WinogradWeights::Auto;
  // Optional: made by Backend::make_kernel_cache(); shared by the executables compiled with it.
  // A node found here needs no weights in the graph (its weight tensor may be a shape-only one).
  std::shared_ptr<KernelCache> kernel_cache;
  // Optional: host backends then run in this arena instead of one of their own; the executables
  // sharing it must never run concurrently.
  std::shared_ptr<SharedArena> shared_arena;
  // CPU only, for accuracy studies: every [N, C, H, W] value is rounded to f16 precision where it
  // is written (graph inputs and node outputs), as a GPU's f16 activation storage does
  // (GPEN_CUDA_NHWC16); the arithmetic stays f32. Overflow becomes inf, as it would there.
  bool round_images_to_f16 = false;
  // Device backends that time convolution algorithms (cudnnFind, milliseconds a shape): take each
  // new shape's algorithm from the library's heuristics instead (microseconds). For graphs compiled
  // per photo size (the detector), where a folder of differently sized photos would otherwise time
  // every shape of every size. A shape already timed (in this process or the algorithm cache file)
  // keeps its measured algorithm. Ignored where times_algorithms() is false.
  bool quick_algorithms = false;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  virtual std::unique_ptr<Executable> compile(const Graph& g, const CompileOptions& opt) = 0;
  // A cache for CompileOptions::kernel_cache, or null when this backend does not share kernels.
  virtual std::shared_ptr<KernelCache> make_kernel_cache() const { return nullptr; }
  // Whether compiling times algorithms, so that CompileOptions::quick_algorithms changes anything.
  virtual bool times_algorithms() const { return false; }
};

std::unique_ptr<Backend> make_cpu_backend();

// For a caller that compiled with CompileOptions::quick_algorithms and now uses `exe` often enough
// to time it: replaces `exe` by what `compile_timed` makes, when `exe` has untimed choices. Only an
// optimisation: a failure (no device memory for a second arena, say) keeps `exe`, with a note
// naming `what`.
inline void retime_executable(std::unique_ptr<Executable>& exe,
                              const std::function<std::unique_ptr<Executable>()>& compile_timed,
                              const std::string& what) {
  if (!exe->has_untimed_algorithms()) return;
  try {
    exe = compile_timed();
  } catch (const Error& e) {
    std::fprintf(stderr, "gpen: note: %s: keeping heuristic algorithms (%s)\n", what.c_str(), e.what());
  }
}

}  // namespace gpen
