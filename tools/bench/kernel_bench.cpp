// Google Benchmark of every GPEN-512 convolution layer shape for each ISA path and precision, on 1
// and 2 threads, reporting FLOP/s (counter "FLOPS", a rate). Plus a whole-model estimate mode:
//
//   gpen_kernel_bench                                  # all benchmarks (slow: every layer x path)
//   gpen_kernel_bench --benchmark_filter='avx512/.*t2' # the usual Google Benchmark flags
//   gpen_kernel_bench --estimate [--threads=2] [--reps=3] [--paths=avx512,avx512bf16] [--generic]
//
// --estimate times each layer (median of --reps runs after a warm-up) on each path and prints a
// markdown table with the per-layer GFLOP/s and the summed model time (convolutions only).
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "core/thread_pool.h"
#include "kernels/cpu/conv.h"
#include "kernels/cpu/isa.h"
#include "kernels/cpu/ops.h"

using namespace gpen;
using namespace gpen::cpu;

namespace {

struct Layer {
  std::string name;
  ConvDesc d;
  int h, w;
  bool in_scale, out_scale, lrelu, slice;  // modulation, demodulation, bias+lrelu epilogue, concat output
};

ConvDesc desc(int C, int K, int k, int s, int p, bool t) {
  ConvDesc d;
  d.C = C, d.K = K, d.kh = d.kw = k, d.stride = s, d.pad = p, d.transposed = t;
  return d;
}

// Every convolution of GPEN-512 (channel_multiplier 2, narrow 1), N = 1.
std::vector<Layer> gpen512_layers() {
  std::vector<Layer> L;
  // Encoder: 1x1 3->64 at 512, then blur + stride-2 3x3 (input sizes after the blur's pad 2,2).
  L.push_back({"enc0_1x1_3-64@512", desc(3, 64, 1, 1, 0, false), 512, 512, false, false, true, false});
  const int enc[][3] = {{64, 128, 513}, {128, 256, 257}, {256, 512, 129}, {512, 512, 65},
                        {512, 512, 33}, {512, 512, 17},  {512, 512, 9}};
  for (auto& e : enc)
    L.push_back({"enc_s2_" + std::to_string(e[0]) + "-" + std::to_string(e[1]) + "@" + std::to_string(e[2]),
                 desc(e[0], e[1], 3, 2, 0, false), e[2], e[2], false, false, true, false});
  // Decoder: conv1 at 4x4, then per resolution a transposed (upsampling) conv and a 3x3 conv.
  L.push_back({"dec_3x3_512-512@4", desc(512, 512, 3, 1, 1, false), 4, 4, true, true, true, true});
  const int dec[][3] = {{1024, 512, 8},  {1024, 512, 16}, {1024, 512, 32}, {1024, 512, 64},
                        {1024, 256, 128}, {512, 128, 256}, {256, 64, 512}};
  for (auto& e : dec) {
    const int cin = e[0], cout = e[1], res = e[2];
    L.push_back({"dec_up_" + std::to_string(cin) + "-" + std::to_string(cout) + "@" + std::to_string(res / 2),
                 desc(cin, cout, 3, 2, 0, true), res / 2, res / 2, true, true, false, false});
    L.push_back({"dec_3x3_" + std::to_string(2 * cout) + "-" + std::to_string(cout) + "@" + std::to_string(res),
                 desc(2 * cout, cout, 3, 1, 1, false), res, res, true, true, true, true});
  }
  // ToRGB: modulated 1x1 (no demodulation) at every resolution.
  const int rgb[][2] = {{1024, 4}, {1024, 8}, {1024, 16}, {1024, 32}, {1024, 64}, {512, 128}, {256, 256}, {128, 512}};
  for (auto& e : rgb)
    L.push_back({"torgb_" + std::to_string(e[0]) + "-3@" + std::to_string(e[1]), desc(e[0], 3, 1, 1, 0, false), e[1],
                 e[1], true, false, false, false});
  return L;
}

// Every upfirdn2d of GPEN-512 (the [1,3,3,1] blur): channels, input size, up, pad0, pad1.
struct Blur {
  std::string name;
  int c, h, up, pad0, pad1;
};
std::vector<Blur> gpen512_blurs() {
  std::vector<Blur> B;
  const int enc[][2] = {{64, 512}, {128, 256}, {256, 128}, {512, 64}, {512, 32}, {512, 16}, {512, 8}};
  for (auto& e : enc)
    B.push_back({"blur_enc_" + std::to_string(e[0]) + "@" + std::to_string(e[1]), e[0], e[1], 1, 2, 2});
  const int dec[][2] = {{512, 9}, {512, 17}, {512, 33}, {512, 65}, {256, 129}, {128, 257}, {64, 513}};
  for (auto& e : dec)
    B.push_back({"blur_up_" + std::to_string(e[0]) + "@" + std::to_string(e[1]), e[0], e[1], 1, 1, 1});
  for (int r = 4; r <= 256; r *= 2) B.push_back({"rgb_up2_3@" + std::to_string(r), 3, r, 2, 2, 1});
  return B;
}

struct PathDef {
  std::string name;
  Isa isa;
  Precision prec;
  WinogradWeights winograd = WinogradWeights::AtLoad;
  bool winograd_allowed = true;  // false: the direct kernels only (A/B against Winograd)
};
std::vector<PathDef> all_paths(bool with_generic) {
  std::vector<PathDef> p;
  set_isa_cap(Isa::AVX512_BF16);
  auto detect_isa = [] { return active_isa(); };  // what the CPU has, capped by GPEN_ISA
  if (with_generic) p.push_back({"generic", Isa::Generic, Precision::F32});
  if (detect_isa() >= Isa::AVX2) p.push_back({"avx2", Isa::AVX2, Precision::F32});
  if (detect_isa() >= Isa::AVX512) p.push_back({"avx512", Isa::AVX512, Precision::F32});
  // Winograd layers with their weights transformed in every run (what GPEN's layers with large
  // weights use by default, and every Winograd layer with --low-memory); other layers as without.
  if (detect_isa() >= Isa::AVX2) p.push_back({"avx2_wt", Isa::AVX2, Precision::F32, WinogradWeights::PerRun});
  if (detect_isa() >= Isa::AVX512) p.push_back({"avx512_wt", Isa::AVX512, Precision::F32, WinogradWeights::PerRun});
  if (detect_isa() >= Isa::AVX512_BF16) p.push_back({"avx512bf16", Isa::AVX512_BF16, Precision::BF16});
  // The direct kernels on the layers Winograd takes (3x3 stride 1, transposed 3x3 stride 2).
  if (detect_isa() >= Isa::AVX2) p.push_back({"avx2_direct", Isa::AVX2, Precision::F32, WinogradWeights::AtLoad, false});
  if (detect_isa() >= Isa::AVX512)
    p.push_back({"avx512_direct", Isa::AVX512, Precision::F32, WinogradWeights::AtLoad, false});
  return p;
}

// Everything one layer run needs, with random data.
struct Bench {
  Layer l;
  std::unique_ptr<ConvKernel> kern;
  std::vector<float> x, y, is, os, bias, scratch;
  ConvRun run;

  Bench(const Layer& layer, const PathDef& p, ThreadPool* pool) : l(layer) {
    std::mt19937 rng(1);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    const ConvDesc& d = l.d;
    const int OH = d.out_h(l.h), OW = d.out_w(l.w), ktot = l.slice ? 2 * d.K : d.K;
    std::vector<float> wv(size_t(d.K) * d.C * d.kh * d.kw);
    for (float& v : wv) v = u(rng) * 0.05f;
    x.resize(size_t(d.C) * l.h * l.w);
    for (float& v : x) v = u(rng);
    y.assign(size_t(ktot) * OH * OW, 0.f);
    is.assign(size_t(d.C), 1.1f);
    os.assign(size_t(d.K), 0.9f);
    bias.assign(size_t(d.K), 0.1f);
    set_isa_cap(p.isa);
    KernelOptions opt;
    opt.isa = p.isa;
    opt.precision = p.prec;
    opt.winograd_weights = p.winograd;
    opt.winograd = p.winograd_allowed;
    kern = make_conv_kernel(d, Tensor::from_floats({d.K, d.C, d.kh, d.kw}, wv), opt);
    Epilogue ep;
    if (l.lrelu) ep.bias = bias.data(), ep.slope = 0.2f, ep.gain = std::sqrt(2.f);
    run = ConvRun{make_view(x.data(), 1, d.C, l.h, l.w),
                  View{y.data(), 1, d.K, OH, OW, int64_t(ktot) * OH * OW},
                  l.in_scale ? is.data() : nullptr,
                  l.out_scale ? os.data() : nullptr,
                  ep,
                  pool};
    // The scratch the CPU backend would plan in the activation arena (padded input copies,
    // per-run Winograd weights).
    scratch.resize((kern->scratch_bytes(1, l.h, l.w) + sizeof(float) - 1) / sizeof(float));
    run.scratch = scratch.empty() ? nullptr : scratch.data();
  }
  void once() { kern->run(run); }
  double flops() const { return double(l.d.flops(1, l.h, l.w)); }
};

// One upfirdn2d with random data on the path's ISA (ops dispatch by active_isa()).
struct BlurBench {
  Blur b;
  Isa isa;
  std::vector<float> x, y, k;
  int oh;
  ThreadPool* pool;
  BlurBench(const Blur& blur, const PathDef& p, ThreadPool* tp) : b(blur), isa(p.isa), pool(tp) {
    oh = (b.h * b.up + b.pad0 + b.pad1 - 4) + 1;
    x.assign(size_t(b.c) * b.h * b.h, 0.5f);
    y.assign(size_t(b.c) * oh * oh, 0.f);
    const float t[4] = {1, 3, 3, 1};
    for (int i = 0; i < 16; ++i) k.push_back(t[i / 4] * t[i % 4] / 64.f * float(b.up * b.up));
  }
  void once() {
    set_isa_cap(isa);
    upfirdn2d(make_view(x.data(), 1, b.c, b.h, b.h), make_view(y.data(), 1, b.c, oh, oh), k.data(), 4, 4, b.up, 1,
              b.pad0, b.pad1, Epilogue{}, pool);
  }
  double bytes() const { return 4.0 * double(x.size() + y.size()); }
};

void bm_blur(benchmark::State& st, Blur b, PathDef p, int threads) {
  ThreadPool pool(threads);
  BlurBench bb(b, p, &pool);
  bb.once();
  for (auto _ : st) bb.once();
  st.counters["bytes"] = benchmark::Counter(bb.bytes(), benchmark::Counter::kIsIterationInvariantRate);
}

void bm_layer(benchmark::State& st, Layer l, PathDef p, int threads) {
  ThreadPool pool(threads);
  Bench b(l, p, &pool);
  b.once();  // warm-up: scratch allocation and page faults
  for (auto _ : st) b.once();
  st.counters["FLOPS"] = benchmark::Counter(b.flops(), benchmark::Counter::kIsIterationInvariantRate);
  st.SetLabel(b.kern->name());
}

double process_cpu_seconds() {
  timespec t;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
  return double(t.tv_sec) + 1e-9 * double(t.tv_nsec);
}

// Median wall time and median process CPU time (all threads) of `reps` runs after a warm-up. On a
// shared machine the CPU time divided by the thread count is the better estimate of the
// uncontended wall time (the pool's idle workers block, they do not spin).
struct Timing {
  double wall, cpu;
};
template <class B>
Timing median_seconds(B& b, int reps) {
  b.once();
  std::vector<double> wall, cpu;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    const double c0 = process_cpu_seconds();
    b.once();
    cpu.push_back(process_cpu_seconds() - c0);
    wall.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(wall.begin(), wall.end());
  std::sort(cpu.begin(), cpu.end());
  return {wall[wall.size() / 2], cpu[cpu.size() / 2]};
}

int estimate(int threads, int reps, const std::vector<PathDef>& paths) {
  ThreadPool pool(threads);
  const auto layers = gpen512_layers();
  std::printf("%d thread(s); ms = median wall time, cpu-ms = median process CPU time / threads\n\n", threads);
  std::printf("| layer | GFLOP |");
  for (auto& p : paths) std::printf(" %s ms | cpu-ms | GFLOP/s (cpu) |", p.name.c_str());
  std::printf(" kernels |\n|---|---|");
  for (size_t i = 0; i < paths.size(); ++i) std::printf("---|---|---|");
  std::printf("---|\n");
  std::vector<double> total(paths.size(), 0.0), total_cpu(paths.size(), 0.0);
  double gflop_total = 0;
  for (const Layer& l : layers) {
    const double gf = double(l.d.flops(1, l.h, l.w)) * 1e-9;
    gflop_total += gf;
    std::printf("| %s | %.2f |", l.name.c_str(), gf);
    std::string names;
    for (size_t i = 0; i < paths.size(); ++i) {
      Bench b(l, paths[i], &pool);
      const Timing t = median_seconds(b, reps);
      const double c = t.cpu / threads;
      total[i] += t.wall;
      total_cpu[i] += c;
      std::printf(" %.2f | %.2f | %.1f |", t.wall * 1e3, c * 1e3, gf / c);
      std::string nm = b.kern->name();  // "a|b" (Winograd + fallback) must not split the table cell
      for (size_t pos = nm.find('|'); pos != std::string::npos; pos = nm.find('|', pos + 2)) nm.replace(pos, 1, "\\|");
      names += (i ? ", " : "") + nm;
      std::fflush(stdout);
    }
    std::printf(" %s |\n", names.c_str());
  }
  std::printf("| **total (convs)** | %.1f |", gflop_total);
  for (size_t i = 0; i < paths.size(); ++i)
    std::printf(" **%.1f** | **%.1f** | %.1f |", total[i] * 1e3, total_cpu[i] * 1e3, gflop_total / total_cpu[i]);
  std::printf(" |\n");
  // The blurs (upfirdn2d), GPEN's other per-pixel work of note; GB/s of input + output.
  std::vector<double> btotal(paths.size(), 0.0), btotal_cpu(paths.size(), 0.0);
  for (const Blur& bl : gpen512_blurs()) {
    std::printf("| %s | - |", bl.name.c_str());
    for (size_t i = 0; i < paths.size(); ++i) {
      BlurBench bb(bl, paths[i], &pool);
      const Timing t = median_seconds(bb, reps);
      btotal[i] += t.wall;
      btotal_cpu[i] += t.cpu / threads;
      std::printf(" %.2f | %.2f | %.1f GB/s |", t.wall * 1e3, t.cpu / threads * 1e3, bb.bytes() / (t.cpu / threads) * 1e-9);
      std::fflush(stdout);
    }
    std::printf(" upfirdn2d |\n");
  }
  std::printf("| **total (blurs)** | - |");
  for (size_t i = 0; i < paths.size(); ++i) std::printf(" **%.1f** | **%.1f** | |", btotal[i] * 1e3, btotal_cpu[i] * 1e3);
  std::printf(" |\n| **total (convs + blurs)** | - |");
  for (size_t i = 0; i < paths.size(); ++i)
    std::printf(" **%.1f** | **%.1f** | |", (total[i] + btotal[i]) * 1e3, (total_cpu[i] + btotal_cpu[i]) * 1e3);
  std::printf(" |\n");
  return 0;
}

bool take_flag(int& argc, char** argv, const char* prefix, std::string* value) {
  for (int i = 1; i < argc; ++i)
    if (std::strncmp(argv[i], prefix, std::strlen(prefix)) == 0) {
      if (value) *value = argv[i] + std::strlen(prefix);
      for (int j = i; j + 1 < argc; ++j) argv[j] = argv[j + 1];
      --argc;
      return true;
    }
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  std::string v;
  const bool generic = take_flag(argc, argv, "--generic", nullptr);
  std::vector<PathDef> paths = all_paths(generic);
  if (take_flag(argc, argv, "--paths=", &v)) {
    std::vector<PathDef> keep;
    for (auto& p : paths)
      if (("," + v + ",").find("," + p.name + ",") != std::string::npos) keep.push_back(p);
    paths = keep;
  }
  if (take_flag(argc, argv, "--estimate", nullptr)) {
    int threads = 2, reps = 3;
    if (take_flag(argc, argv, "--threads=", &v)) threads = std::stoi(v);
    if (take_flag(argc, argv, "--reps=", &v)) reps = std::stoi(v);
    return estimate(threads, reps, paths);
  }
  // A registration's MinTime overrides --benchmark_min_time, so the defaults below apply only when
  // the command line gives none (noisy machines need longer runs).
  bool min_time_given = false;
  for (int i = 1; i < argc; ++i) min_time_given |= std::string(argv[i]).rfind("--benchmark_min_time", 0) == 0;
  auto timed = [&](benchmark::internal::Benchmark* b, double min_time) {
    b->Unit(benchmark::kMillisecond)->UseRealTime();
    if (!min_time_given) b->MinTime(min_time);
  };
  for (const Layer& l : gpen512_layers())
    for (const PathDef& p : paths)
      for (int t : {1, 2})
        timed(benchmark::RegisterBenchmark((p.name + "/" + l.name + "/t" + std::to_string(t)).c_str(), bm_layer, l, p, t),
              0.2);
  for (const Blur& b : gpen512_blurs())
    for (const PathDef& p : paths)
      for (int t : {1, 2})
        timed(benchmark::RegisterBenchmark((p.name + "/" + b.name + "/t" + std::to_string(t)).c_str(), bm_blur, b, p, t),
              0.1);
  benchmark::Initialize(&argc, argv);
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
