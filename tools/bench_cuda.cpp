#include "tools/bench_cuda.h"

#include <algorithm>
#include <cstdlib>
#include <chrono>
#include <cstdio>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <atomic>
#include <thread>

#include "core/device.h"
#include "core/error.h"
#include "core/face_tensor.h"
#include "core/json_text.h"
#include "core/models/gpen.h"

namespace gpen::cli {
namespace {

struct Timing {
  double median_ms, min_ms, p90_ms;
};

Timing time_runs(Executable& exe, const Tensor& x, int warmup, int runs) {
  std::vector<Tensor> outs;
  for (int i = 0; i < warmup; ++i) exe.run({x}, outs);  // the first run also records the CUDA graph
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    exe.run({x}, outs);  // synchronous: copies in, forward, copies out
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  return {ms[ms.size() / 2], ms.front(), ms[std::min(ms.size() - 1, ms.size() * 9 / 10)]};
}

// The same forward with faces as bytes in and out (Executable::run_rgb_bytes: on a GPU a quarter
// of the transfers, the scaling on the device); false when the executable has no byte path.
bool time_byte_runs(Executable& exe, int batch, int size, int warmup, int runs, Timing* t) {
  std::vector<std::vector<uint8_t>> in(static_cast<size_t>(batch)), out(static_cast<size_t>(batch));
  std::vector<const uint8_t*> in_p;
  std::vector<uint8_t*> out_p;
  std::mt19937 rng(8);
  for (int i = 0; i < batch; ++i) {
    in[size_t(i)].resize(size_t(size) * size * 3);
    out[size_t(i)].resize(in[size_t(i)].size());
    for (uint8_t& v : in[size_t(i)]) v = uint8_t(rng());
    in_p.push_back(in[size_t(i)].data());
    out_p.push_back(out[size_t(i)].data());
  }
  const RgbBytesIo& io = gpen_rgb_bytes_io();
  for (int i = 0; i < std::max(1, warmup); ++i)
    if (!exe.run_rgb_bytes(io, in_p.data(), batch, out_p.data())) return false;
  std::vector<double> ms;
  for (int i = 0; i < runs; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    exe.run_rgb_bytes(io, in_p.data(), batch, out_p.data());
    ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(ms.begin(), ms.end());
  *t = {ms[ms.size() / 2], ms.front(), ms[std::min(ms.size() - 1, ms.size() * 9 / 10)]};
  return true;
}

Tensor random_faces(int batch, int size) {
  Tensor x = Tensor::empty(DType::F32, {batch, 3, size, size});
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (int64_t i = 0; i < x.numel(); ++i) x.data<float>()[i] = u(rng);
  return x;
}

// `streams` twins of `runner` each running `runs` forwards of `batch` faces at the same time, from
// their own threads (on a GPU: their own streams). Faces per second over the wall time of all,
// after one untimed forward each (compile, CUDA graph capture).
double concurrent_faces_per_s(const GpenRunner& runner, int streams, int batch, int size, int runs) {
  std::vector<std::shared_ptr<GpenRunner>> twins;
  for (int k = 0; k < streams; ++k) twins.push_back(runner.twin());
  const Tensor x = random_faces(batch, size);
  for (auto& t : twins) t->forward(x);
  std::atomic<int> ready{0};
  std::atomic<bool> go{false};
  std::vector<std::thread> threads;
  for (auto& t : twins)
    threads.emplace_back([&, t] {
      ++ready;
      while (!go) std::this_thread::yield();
      for (int i = 0; i < runs; ++i) t->forward(x);
    });
  while (ready < streams) std::this_thread::yield();
  const auto t0 = std::chrono::steady_clock::now();
  go = true;
  for (std::thread& th : threads) th.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  return double(streams) * runs * batch / s;
}

// The backend for one precision on the requested device.
SelectedDevice device_for(const DeviceBenchOptions& o, const std::string& precision, CompileOptions* copt) {
  const DeviceRequest req = parse_device(o.device);
  GpuPrecision gp = GpuPrecision::FP32;
  const bool gpu_precision = parse_gpu_precision(precision, &gp);
  SelectedDevice d = select_device(req, gp);
  copt->threads = o.threads;
  copt->quick_algorithms = o.heuristic_algos;
  if (d.is_cuda) {
    if (!gpu_precision) fail("--precision ", precision, " is not a CUDA precision (fp32, tf32, fp16)");
  } else if (!cpu::parse_precision(precision, &copt->precision)) {
    fail("--precision ", precision, " is not a CPU precision (fp32, bf16)");
  }
  return d;
}

}  // namespace

std::vector<std::string> split_list(const std::string& s) {
  std::vector<std::string> r;
  size_t start = 0;
  while (start <= s.size()) {
    const size_t comma = std::min(s.find(',', start), s.size());
    if (comma > start) r.push_back(s.substr(start, comma - start));
    start = comma + 1;
  }
  return r;
}

std::vector<int> parse_int_list(const std::string& s, const char* what) {
  std::vector<int> r;
  for (const std::string& item : split_list(s)) {
    char* end = nullptr;
    const long v = std::strtol(item.c_str(), &end, 10);
    if (*end || v < 1 || v > 4096) fail("bad ", what, " '", s, "': expected positive integers like 1,4,8,16");
    r.push_back(int(v));
  }
  if (r.empty()) fail("bad ", what, " '", s, "': expected positive integers like 1,4,8,16");
  return r;
}

void print_profile(const std::vector<NodeProfile>& prof, int runs, int top) {
  std::vector<NodeProfile> p = prof;
  double total = 0;
  for (const auto& n : p) total += n.ms;
  std::sort(p.begin(), p.end(), [](const NodeProfile& a, const NodeProfile& b) { return a.ms > b.ms; });
  std::printf("\n%-34s %-16s %-40s %9s %6s %9s\n", "layer", "op", "kernel", "ms", "%", "GFLOP/s");
  for (int i = 0; i < std::min<int>(top, int(p.size())); ++i) {
    const double ms = p[size_t(i)].ms / runs;
    const double gf = ms > 0 ? double(p[size_t(i)].flops) / (ms * 1e6) : 0;
    std::printf("%-34s %-16s %-40s %9.2f %6.1f %9.1f\n", p[size_t(i)].name.c_str(), p[size_t(i)].op.c_str(),
                p[size_t(i)].kernel.c_str(), ms, 100 * p[size_t(i)].ms / total, gf);
  }
  // Totals per op type show where the time goes beyond the top layers.
  std::map<std::string, double> by_op;
  for (const auto& n : p) by_op[n.op] += n.ms / runs;
  std::printf("\nper op:");
  for (const auto& [op, ms] : by_op) std::printf("  %s %.1f ms", op.c_str(), ms);
  std::printf("\n");
}

// The GPEN_CUDA_* switches set in the environment ("" when none): which CUDA paths a run took
// (f16 activations, per-sample filters, byte I/O, graphs) belongs beside its numbers.
std::string cuda_switches() {
  std::string s;
  for (const char* name : {"GPEN_CUDA_NHWC16", "GPEN_CUDA_PER_SAMPLE", "GPEN_CUDA_BYTES", "GPEN_CUDA_GRAPHS",
                           "GPEN_CUDA_WORKSPACE_MB", "GPEN_CUDA_QUICK_ALGOS"})
    if (const char* v = std::getenv(name)) s += (s.empty() ? "" : " ") + std::string(name) + "=" + v;
  return s;
}

int run_device_bench(const DeviceBenchOptions& o) {
  if (o.batches.empty() || o.precisions.empty() || o.runs < 1) fail("bench: need batch sizes, precisions and runs >= 1");
  // Fail on the device before loading anything: one line, no half-printed table.
  const CudaModule& cuda = CudaModule::instance();
  if (parse_device(o.device).kind == DeviceRequest::Kind::Cuda && !cuda.usable())
    fail(cuda_unavailable_message(cuda.why_unusable()));
  const std::string spec = o.model.empty() ? "random:" + std::to_string(o.size) : o.model;
  auto model = std::make_shared<const GpenModel>(GpenModel::load(spec));
  const int S = model->config().size;
  if (!o.json) {
    std::printf("%s on --device %s; CUDA module: %s\n", model->config().describe().c_str(), o.device.c_str(),
                cuda.usable() ? cuda.path().c_str() : ("unusable: " + cuda.why_unusable()).c_str());
    if (!cuda_switches().empty()) std::printf("CUDA switches: %s\n", cuda_switches().c_str());
    if (o.heuristic_algos) std::printf("cuDNN algorithms: heuristic, untimed (shapes timed earlier keep theirs)\n");
    std::printf("%-9s %5s %10s %10s %10s %10s %11s %11s %9s\n", "precision", "batch", "faces/s", "median ms",
                "min ms", "p90 ms", "gpu MiB", "device MiB", "compile s");
  }
  for (const std::string& precision : o.precisions) {
    CompileOptions copt;
    const SelectedDevice dev = device_for(o, precision, &copt);
    if (!dev.note.empty() && !o.json) std::printf("note: %s\n", dev.note.c_str());
    GpenRunner runner(model, dev.backend, copt);
    for (int batch : o.batches) {
      const auto t0 = std::chrono::steady_clock::now();
      Executable& exe = runner.executable(batch);
      const double compile_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const Timing t = time_runs(exe, random_faces(batch, S), o.warmup, o.runs);
      // All device memory is allocated at compile: what the module holds now is this runner's
      // footprint (weights once, plus the arena and scratch of every batch size so far).
      double gpu_mb = 0, device_mb = 0;
      if (dev.is_cuda) {
        const CudaMemoryStats m = cuda.memory_stats(dev.index);
        gpu_mb = double(m.allocated_bytes) / 1048576;
        device_mb = double(m.device_used_bytes) / 1048576;
      }
      const double fps = batch / (t.median_ms / 1000);
      const double streams_fps = o.streams > 1 ? concurrent_faces_per_s(runner, o.streams, batch, S, o.runs) : 0;
      Timing tb{};
      const bool bytes = time_byte_runs(exe, batch, S, o.warmup, o.runs, &tb);
      if (o.json) {
        nlohmann::json j = {{"model", model->config().describe()}, {"device", dev.description},
                            {"precision", precision}, {"batch", batch}, {"faces_per_s", fps},
                            {"median_ms", t.median_ms}, {"min_ms", t.min_ms}, {"p90_ms", t.p90_ms},
                            {"gpu_allocated_mb", gpu_mb}, {"device_used_mb", device_mb},
                            {"arena_mb", double(exe.arena_bytes()) / 1048576}, {"compile_s", compile_s},
                            {"runs", o.runs}, {"cuda_switches", cuda_switches()},
                            {"heuristic_algos", exe.has_untimed_algorithms()}};
        if (o.streams > 1) j["streams"] = o.streams, j["faces_per_s_streams"] = streams_fps;
        if (bytes) j["faces_per_s_bytes"] = batch / (tb.median_ms / 1000), j["median_ms_bytes"] = tb.median_ms;
        std::printf("%s\n", json_text(j).c_str());
      } else {
        std::printf("%-9s %5d %10.1f %10.3f %10.3f %10.3f %11.0f %11.0f %9.2f\n", precision.c_str(), batch, fps,
                    t.median_ms, t.min_ms, t.p90_ms, gpu_mb, device_mb, compile_s);
        if (o.streams > 1)
          std::printf("%-9s %5d %10.1f  (%d twin runners forwarding at once: faces/s over the wall time of all)\n",
                      "", batch, streams_fps, o.streams);
        if (bytes)
          std::printf("%-9s %5d %10.1f %10.3f %10.3f %10.3f  (faces in and out as bytes, scaled on the device)\n", "",
                      batch, batch / (tb.median_ms / 1000), tb.median_ms, tb.min_ms, tb.p90_ms);
      }
      if (o.profile && !o.json) {
        exe.enable_profiling(true);
        std::vector<Tensor> outs;
        const Tensor x = random_faces(batch, S);
        for (int i = 0; i < o.runs; ++i) exe.run({x}, outs);
        print_profile(exe.profile(), o.runs, o.top);  // before enable_profiling(false) clears it
        exe.enable_profiling(false);
      }
      std::fflush(stdout);
    }
    if (!o.json) std::printf("  (%s)\n", dev.description.c_str());
  }
  return 0;
}

}  // namespace gpen::cli
