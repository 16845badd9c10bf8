// GPEN's FullGenerator (GAN Prior Embedded Network, Yang et al., CVPR 2021) as an engine graph.
//
// The configuration is inferred from the checkpoint's tensor shapes, never from its file name:
// size from the number of encoder stages, channels per resolution from the conv weights, style
// width and MLP depth from the mapping network. The key set must be exactly the official one
// (../shared/reference/gpen_bfr_*.keys.tsv): a missing, unexpected or mis-shaped tensor is an
// error naming it. GPEN-BFR-256/512/1024/2048 and the colorization/inpainting 1024 checkpoints
// all load through here.
//
// Structure (N samples, S = size, L = log2(S) - 2 encoder downsamplings):
//   encoder:  e0 = lrelu(conv1x1(x)); e_i = lrelu(conv3x3_s2(blur(e_{i-1}))), i = 1..L (e_L is 4x4)
//   style:    w = MLP_8(pixel_norm(lrelu(linear(flatten(e_L)))))   -- one w for every layer
//   decoder:  StyleGAN2 synthesis from a learned 4x4 constant; every StyledConv concatenates its
//             modulated-conv output with noise_weight * (the encoder feature of its resolution),
//             then bias + leaky-ReLU(0.2) * sqrt(2); ToRGB outputs are summed through upsampling.
// Modulated convs use the input-scaling form: x * style -> conv with the shared weight ->
// * demodulation factor, so the weights stay shared across a batch.
#pragma once
#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "core/backend.h"
#include "core/forward_coalescer.h"
#include "core/graph.h"
#include "core/image.h"
#include "weights/state_dict.h"

namespace gpen {

struct GpenConfig {
  int size = 0;
  int style_dim = 0;
  int n_mlp = 0;
  double channel_multiplier = 0, narrow = 0;
  std::map<int, int> channels;  // resolution -> channels
  int log_size() const;
  std::string describe() const;  // "GPEN-512 (channel_multiplier=2 narrow=1 style_dim=512 n_mlp=8)"
  std::map<std::string, std::string> to_metadata() const;
};

class GpenModel {
 public:
  // Validates the state dict against the inferred configuration and prepares scaled f32 weights.
  static GpenModel from_state_dict(const StateDict& sd);
  static GpenModel load(const std::string& path);

  const GpenConfig& config() const { return cfg_; }
  int64_t parameter_count() const { return params_; }
  // The full forward graph for `batch` images: input "input" [N,3,S,S] in [-1,1] -> output "image".
  Graph build_graph(int batch) const;
  // The list of (key, shape) an official checkpoint of this configuration has.
  static std::vector<std::pair<std::string, Shape>> expected_layout(const GpenConfig& cfg);
  // A copy whose convolution weights are shape-only (the other tensors shared with this one).
  // Its graphs compile only from a kernel cache that already holds those convs' packed weights.
  GpenModel without_conv_weights() const;

 private:
  const Tensor& w(const std::string& key) const;
  GpenConfig cfg_;
  int64_t params_ = 0;
  std::map<std::string, Tensor> prepared_;  // effective (scaled) weights, f32
  std::vector<std::string> conv_keys_;       // the prepared_ entries only convolutions read
};

class OomFallbackForward;
class ThreadPool;

// Runs a GpenModel on a backend, compiling one executable per batch size on first use.
// Executables share one kernel cache, so the convolution weights are packed once; after the first
// compile a CPU runner keeps a copy of the model without its f32 conv weights, so they are freed
// when the caller holds no other reference to the model (peak memory: weights counted once).
// The executables also share one activation arena, sized to the largest batch compiled: forward()
// calls on one runner must not overlap (they never did: compiling is not thread-safe either).
class GpenRunner {
 public:
  GpenRunner(std::shared_ptr<const GpenModel> model, std::shared_ptr<Backend> backend, CompileOptions opt);
  // x: [N,3,S,S] f32 in [-1,1]; returns [N,3,S,S].
  Tensor forward(const Tensor& x);
  // Faces (S x S RGB) through GPEN with its scaling, restored faces out: what faces_into_tensor,
  // forward() and tensor_to_faces give. On a device whose executables take bytes
  // (Executable::run_rgb_bytes) the faces cross the bus as bytes and are scaled there; a shared
  // runner queues them as bytes too. The float path instead (`scratch`: its input tensor, reused
  // from call to call) on the CPU, once the out-of-memory fallback has cut the batch or moved to
  // the CPU, and when the device runs out of memory now (the fallback then takes over).
  std::vector<Image> forward_faces(const std::vector<const Image*>& faces, Tensor& scratch, ThreadPool* pool = nullptr);
  // The executable for `batch` faces, compiled at its first use. With CompileOptions::
  // quick_algorithms on a backend that times its algorithms (a GPU), the first compile takes the
  // library's heuristic choices (the first result comes seconds sooner: cudnnFind takes 6.9 s for
  // GPEN-512 fp16 batch 16) and the size is compiled again, timed, at its kTimedAfterUses-th use,
  // when some choice was untimed (shapes an earlier process timed come from the algorithm cache
  // file either way). Each call is a use.
  Executable& executable(int batch);
  static constexpr int kTimedAfterUses = 8;
  // The batch sizes compiled so far, ascending.
  std::vector<int> compiled_batches() const;
  const GpenModel& model() const { return *model_; }

  // The most faces a caller sends in one forward (its batch size; 0, the default: unknown). On a
  // backend that times its algorithms when it compiles (a GPU: cudnnFind, seconds for GPEN), the
  // byte path runs n faces padded up to a bucket: the next power of two, or this limit where
  // that is smaller. The sizes a run meets (partial batches at the end of a folder or of a group
  // photo, a shared runner's varying batches) then compile about log2(limit) + 2 executables, not
  // one per size. Thread-safe; a shared runner passes it to its stream twins.
  void set_batch_limit(int faces);
  // The batch an n-face forward of the byte path runs at: n where compiling is cheap (the CPU).
  int padded_batch(int n) const;
  // Whether the forwards run on the CPU (then they compete with the pipeline's CPU stages).
  bool runs_on_cpu() const { return backend_->name() == "cpu"; }

  // For a GPU backend: out of device memory (compiling or running) retries with half the batch,
  // down to 1, then runs this and every later forward on the CPU, each step reported through
  // `warn` (core/device.h, OomFallbackForward). The runner then keeps the host weights the CPU
  // needs. Call before the first forward.
  void enable_oom_fallback(std::function<void(const std::string&)> warn);

  // Another runner of this model on the same backend that shares the prepared weights (the
  // kernel cache: on a GPU they are uploaded once) but has executables, CUDA streams and
  // activation memory of its own, so that it can run forwards while this one does: on a GPU two
  // batches in flight overlap one's memory-bound passes and host-side tensor conversions with the
  // other's convolutions. Inherits the out-of-memory fallback. Call before the first forward (on
  // the CPU the runner then still has the weights the twin packs from; twins never compete for
  // them otherwise).
  std::shared_ptr<GpenRunner> twin() const;

  // Makes forward() safe to call from many threads at once: concurrent calls are coalesced into
  // batches of at most `max_batch` faces (core/forward_coalescer.h), run by `streams` dispatcher
  // threads, each on its own twin of this runner (the first on this one). For one device runner
  // shared by a server's workers. The runner then keeps the model's host weights. Call before
  // the first forward.
  void share_between_threads(int max_batch, int streams = 1);
  // The largest coalesced batch; for a shared runner only.
  void set_max_batch(int max_batch);
  // Batches run and faces through them; zeros for a runner that is not shared.
  ForwardCoalescer::Stats sharing_stats() const;

 private:
  std::unique_ptr<Executable> compile(int batch, bool quick);
  Tensor forward_here(const Tensor& x);
  Tensor forward_on_cpu(const Tensor& x);
  bool forward_bytes_here(const uint8_t* const* in, int n, uint8_t* const* out);
  Tensor forward_unshared(const Tensor& x);

  std::shared_ptr<const GpenModel> model_;
  std::shared_ptr<Backend> backend_;
  CompileOptions opt_;
  bool conv_weights_dropped_ = false;
  std::map<int, std::unique_ptr<Executable>> cache_;
  std::map<int, int> uses_;  // executable() calls per batch size
  std::map<int, Tensor> spare_outputs_;  // the last output per batch size, reused once unshared
  std::function<Tensor(const Tensor&)> oom_fallback_;  // set by enable_oom_fallback
  std::shared_ptr<OomFallbackForward> oom_policy_;     // its state (batch that fits, on the CPU)
  bool bytes_refused_ = false;                          // the backend has no byte path
  std::atomic<int> batch_limit_{0};                     // set_batch_limit
  std::vector<uint8_t> padding_out_;                    // padded slots' outputs, one face each
  bool padding_failed_ = false;                         // a padded size ran out of device memory
  std::unique_ptr<GpenRunner> cpu_runner_;              // made at the first fallback to the CPU
  std::function<void(const std::string&)> oom_warn_;    // kept for twins
  std::vector<std::shared_ptr<GpenRunner>> stream_twins_;  // share_between_threads' extra streams
  std::unique_ptr<ForwardCoalescer> coalescer_;         // set by share_between_threads; destroyed first
};

}  // namespace gpen

namespace gpen {
// Official configuration for a GPEN-BFR size (256: channel_multiplier 1, narrow 0.5; 512, 1024,
// 2048: channel_multiplier 2, narrow 1), style_dim 512, n_mlp 8.
GpenConfig gpen_official_config(int size);
// A state dict with the official layout of `cfg` and seeded random values (unit-variance weights,
// small biases, non-zero noise weights, the true [1,3,3,1] blur kernels). For benchmarks and
// pipeline tests where real weights are not needed; the speed does not depend on the values.
StateDict gpen_random_state_dict(const GpenConfig& cfg, uint64_t seed);
// A checkpoint path, or "random:SIZE[:SEED]" for gpen_random_state_dict of the official
// configuration (for trying the tool and benchmarking without real weights).
StateDict load_gpen_weights(const std::string& spec);
}  // namespace gpen
