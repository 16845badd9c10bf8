// `gpen bench`: whole-model timing (median, min, max over runs), peak RSS, per-layer profile.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>

#include "core/error.h"
#include "core/json_text.h"
#include "core/models/gpen.h"
#include "core/thread_pool.h"
#include "tools/bench_cuda.h"
#include "tools/bench_report.h"
#include "tools/commands.h"
#include "weights/model_cache.h"

namespace gpen::cli {
namespace {

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;  // Linux reports KiB
}

// Resident memory now (MiB), to show where the peak comes from: load, packing or running.
double current_rss_mb() {
  long pages = 0, resident = 0;
  if (FILE* f = std::fopen("/proc/self/statm", "r")) {
    if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) resident = 0;
    std::fclose(f);
  }
  return double(resident) * double(sysconf(_SC_PAGESIZE)) / 1048576.0;
}

struct BenchOpts {
  std::string model;
  int size = 512, threads = 0, runs = 5, warmup = 1, batch = 1, top = 15, streams = 1;
  std::string precision = "fp32", isa, device = "cpu", batch_list = "1", winograd_weights = "auto";
  bool json = false, profile = false, low_memory = false, heuristic_algos = false;
  ModelFetchOptions fetch;
  // --report
  bool report = false;
  std::string images = "../shared/images", devices = "cpu", detector;
};

std::shared_ptr<GpenModel> load_or_make(const BenchOpts& o) {
  return std::make_shared<GpenModel>(GpenModel::load(o.model.empty() ? "random:" + std::to_string(o.size) : o.model));
}

}  // namespace

Runner register_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand("bench", "Time the GPEN generator (random weights unless --model)");
  auto o = std::make_shared<BenchOpts>();
  cmd->add_option("--model", o->model, "checkpoint or registered name; default: random weights of the official layout");
  cmd->add_option("--size", o->size, "model size for random weights (256, 512, 1024, 2048)");
  cmd->add_option("--threads", o->threads, "CPU threads (0: all)");
  cmd->add_option("--device", o->device, "cpu (default), cuda, cuda:N or auto");
  cmd->add_option("--precision", o->precision, "fp32 or bf16 (CPU); with --device, a list of fp32, tf32, fp16");
  cmd->add_option("--isa", o->isa, "cap the instruction set: generic, avx2, avx512, avx512bf16");
  cmd->add_option("--runs", o->runs, "timed runs")->check(CLI::PositiveNumber);
  cmd->add_option("--streams", o->streams, "with --device: also time this many runners forwarding at once (GPU streams)")
      ->check(CLI::Range(1, 8));
  cmd->add_option("--warmup", o->warmup, "untimed runs first");
  cmd->add_option("--batch-size,--batch", o->batch_list, "faces per forward; with --device, a list like 1,4,8,16");
  cmd->add_flag("--json", o->json, "print one JSON object");
  cmd->add_flag("--profile", o->profile, "per-layer times (slower: timing every node)");
  cmd->add_flag("--low-memory", o->low_memory, "every Winograd layer transforms its weights per run (least memory)");
  cmd->add_option("--winograd-weights", o->winograd_weights,
                  "CPU: Winograd weights transformed at load, per run, or auto (per run where they pass 8 MiB or outweigh the output)")
      ->check(CLI::IsMember({"auto", "load", "run"}));
  cmd->add_flag("--heuristic-algos", o->heuristic_algos,
                "with --device cuda: cuDNN's heuristic algorithms, as gpen enhance compiles first (default: timed)");
  cmd->add_option("--top", o->top, "layers shown by --profile");
  cmd->add_flag("--report", o->report, "the seed-style Markdown report: whole photos on each of --devices");
  cmd->add_option("--images", o->images, "--report: folder of photos, each made 1920x1080 (default ../shared/images)");
  cmd->add_option("--devices", o->devices, "--report: comma-separated devices, e.g. cpu,cuda");
  cmd->add_option("--detector", o->detector, "--report: RetinaFace checkpoint or registered name");
  add_model_fetch_options(cmd, o->fetch);
  return [o]() {
    if (!o->model.empty()) o->model = resolve_model(o->model, o->fetch);
    if (o->report) {
      SeedReportOptions r;
      r.images_dir = o->images;
      r.model = o->model.empty() ? "random:" + std::to_string(o->size) : o->model;
      r.detector = o->detector.empty() ? "" : resolve_model(o->detector, o->fetch);
      r.devices = split_list(o->devices);
      r.threads = o->threads;
      return run_seed_report(r);
    }
    if (o->device != "cpu") {
      DeviceBenchOptions d;
      d.model = o->model;
      d.size = o->size;
      d.device = o->device;
      d.batches = parse_int_list(o->batch_list, "--batch-size");
      d.precisions = split_list(o->precision);
      d.runs = o->runs;
      d.warmup = o->warmup;
      d.threads = o->threads;
      d.json = o->json;
      d.streams = o->streams;
      d.heuristic_algos = o->heuristic_algos;
      d.profile = o->profile;
      d.top = o->top;
      return run_device_bench(d);
    }
    const std::vector<int> batches = parse_int_list(o->batch_list, "--batch-size");
    if (batches.size() != 1) fail("--batch-size on the CPU is one number (a list needs --device)");
    o->batch = batches[0];
    if (o->precision != "fp32" && o->precision != "bf16") fail("--precision on the CPU is fp32 or bf16");
    CompileOptions copt;
    copt.threads = o->threads;
    copt.lean_memory = o->low_memory;
    copt.winograd_weights = o->winograd_weights == "load"  ? cpu::WinogradWeights::AtLoad
                            : o->winograd_weights == "run" ? cpu::WinogradWeights::PerRun
                                                           : cpu::WinogradWeights::Auto;
    cpu::parse_precision(o->precision, &copt.precision);
    if (!o->isa.empty() && !cpu::parse_isa(o->isa, &copt.max_isa)) fail("unknown --isa '", o->isa, "'");
    auto t0 = std::chrono::steady_clock::now();
    // The runner alone holds the model, so it frees the f32 conv weights once they are packed.
    GpenRunner runner(load_or_make(*o), std::shared_ptr<Backend>(make_cpu_backend()), copt);
    const double load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double rss_loaded = current_rss_mb();
    t0 = std::chrono::steady_clock::now();
    Executable& exe = runner.executable(o->batch);
    const double compile_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double rss_compiled = current_rss_mb();
    const double peak_prepared = peak_rss_mb();  // the peak of loading and compiling, before any run
    const GpenModel* model = &runner.model();
    const int S = model->config().size;
    Tensor x = Tensor::empty(DType::F32, {o->batch, 3, S, S});
    std::mt19937 rng(7);
    std::uniform_real_distribution<float> u(-1.f, 1.f);
    for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = u(rng);
    std::vector<Tensor> outs;
    for (int i = 0; i < o->warmup; ++i) exe.run({x}, outs);
    exe.enable_profiling(o->profile);
    std::vector<double> times;
    for (int i = 0; i < o->runs; ++i) {
      auto a = std::chrono::steady_clock::now();
      exe.run({x}, outs);
      times.push_back(std::chrono::duration<double>(std::chrono::steady_clock::now() - a).count());
    }
    std::vector<double> sorted = times;
    std::sort(sorted.begin(), sorted.end());
    const double median = sorted[sorted.size() / 2], mn = sorted.front(), mx = sorted.back();
    const double gflop = double(model->build_graph(o->batch).flops()) / 1e9;
    const int threads = o->threads > 0 ? o->threads : ThreadPool::hardware_threads();
    const char* isa = cpu::isa_name(std::min(copt.max_isa, cpu::active_isa()));
    // What the kernels ran: bf16 without AVX-512-BF16 runs f32 (said, so that no one reports it as bf16).
    const char* ran = cpu::precision_name(cpu::precision_in_effect(copt.precision, copt.max_isa));
    const std::string precision_text = o->precision == ran ? o->precision : o->precision + " asked, " + ran + " ran (needs avx512bf16)";
    if (o->json) {
      nlohmann::json j = {{"model", model->config().describe()}, {"size", S}, {"batch", o->batch},
                          {"threads", threads}, {"precision", o->precision}, {"precision_in_effect", ran}, {"isa", isa}, {"low_memory", o->low_memory}, {"winograd_weights", o->winograd_weights},
                          {"runs", o->runs}, {"median_s", median}, {"min_s", mn}, {"max_s", mx},
                          {"times_s", times}, {"gflop", gflop}, {"gflops_per_s", gflop / median},
                          {"faces_per_s", o->batch / median}, {"peak_rss_mb", peak_rss_mb()},
                          {"rss_after_load_mb", rss_loaded}, {"rss_after_compile_mb", rss_compiled},
                          {"peak_rss_before_runs_mb", peak_prepared},
                          {"weights_mb", double(exe.weight_bytes()) / 1048576},
                          {"arena_mb", double(exe.arena_bytes()) / 1048576}, {"load_s", load_s},
                          {"compile_s", compile_s}};
      std::printf("%s\n", json_text(j).c_str());
    } else {
      std::printf("%s, batch %d, %d threads, %s, isa %s\n", model->config().describe().c_str(), o->batch, threads,
                  precision_text.c_str(), isa);
      std::printf("median %.3f s  min %.3f s  max %.3f s  (%d runs)  %.1f GFLOP  %.1f GFLOP/s  %.2f faces/s\n",
                  median, mn, mx, o->runs, gflop, gflop / median, o->batch / median);
      std::printf(
          "peak RSS %.0f MB (after load %.0f, after compile %.0f, peak before the runs %.0f)  arena %.0f MB  load %.2f s  "
          "compile %.2f s\n",
          peak_rss_mb(), rss_loaded, rss_compiled, peak_prepared, double(exe.arena_bytes()) / 1048576, load_s, compile_s);
      if (o->profile) print_profile(exe.profile(), o->runs, o->top);
    }
    return 0;
  };
}

}  // namespace gpen::cli
