// `gpen bench --report`: see bench_report.h. Every number printed is measured in this run.
#include "tools/bench_report.h"

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <set>

#include "core/device.h"
#include "core/error.h"
#include "core/face_detector.h"
#include "core/image.h"
#include "core/image_ops.h"
#include "core/models/gpen.h"
#include "core/pipeline/batch.h"
#include "core/pipeline/face_restorer.h"
#include "core/thread_pool.h"
#include "kernels/cpu/isa.h"

namespace fs = std::filesystem;

namespace gpen::cli {
namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

double peak_rss_mb() {
  rusage ru{};
  getrusage(RUSAGE_SELF, &ru);
  return double(ru.ru_maxrss) / 1024.0;
}

struct TestPhoto {
  std::string name;
  Image photo;  // 1920 x 1080
};

std::vector<TestPhoto> load_test_set(const std::string& dir) {
  std::set<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir)) {
    // Every format `gpen enhance` reads from a folder; GPEN's own outputs stored beside the inputs
    // are not test photos.
    if (e.is_regular_file() && has_image_extension(e.path().string()) &&
        e.path().stem().string().find("official") == std::string::npos)
      files.insert(e.path());
  }
  std::vector<TestPhoto> set;
  for (const fs::path& p : files) set.push_back({p.stem().string(), fit_on_noise(load_image(p.string()), 1920, 1080)});
  if (set.empty()) fail("--images ", dir, ": no photos (PNG, JPEG, WebP, TIFF, BMP, HEIF/AVIF)");
  return set;
}

// The CPU a report's cpu column was measured on: /proc/cpuinfo's model name and the kernels'
// instruction set (the report is shared as text; "cpu" alone would not say which machine).
std::string cpu_description() {
  std::ifstream info("/proc/cpuinfo");
  std::string line, model;
  while (std::getline(info, line))
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      model = line.substr(line.find(':') + 1);
      model.erase(0, model.find_first_not_of(" \t"));
      break;
    }
  const std::string isa = std::string(cpu::isa_name(cpu::active_isa())) + " kernels, " +
                          std::to_string(ThreadPool::hardware_threads()) + " hardware threads";
  return (model.empty() ? std::string("cpu") : model) + " (" + isa + ")";
}

struct DeviceRun {
  std::string device, description, note;
  bool available = false;
  std::vector<double> photo_s;   // per test photo
  std::vector<int> faces;
  double first_result_s = 0, total_s = 0;  // the throughput run, model load included in both
  int throughput_photos = 0;
  std::vector<std::pair<int, double>> sweep;  // batch size -> faces/s
  double vram_peak_mb = -1;
};

std::shared_ptr<GpenRunner> make_runner(const SeedReportOptions& o, const SelectedDevice& dev) {
  CompileOptions c;
  c.threads = o.threads;
  return std::make_shared<GpenRunner>(std::make_shared<GpenModel>(GpenModel::load(o.model)), dev.backend, c);
}

void measure_device(const SeedReportOptions& o, const std::vector<TestPhoto>& set, const SelectedDevice& dev,
                    DeviceRun& run) {
  ThreadPool pool(o.threads);
  CompileOptions dc;
  dc.threads = o.threads;
  auto detector = std::make_shared<FaceDetector>(FaceDetector::load(o.detector, dc));
  RestoreOptions ro;
  ro.controls.strength = 100;  // the whole restoration, as the seed timed it

  // First result and total for N photos, from a cold start (model load and compile included).
  const auto t0 = Clock::now();
  FaceRestorer restorer(detector, make_runner(o, dev), &pool);
  for (int i = 0; i < o.photos_for_throughput; ++i) {
    restorer.restore(set[size_t(i) % set.size()].photo, ro);
    if (i == 0) run.first_result_s = seconds_since(t0);
  }
  run.total_s = seconds_since(t0);
  run.throughput_photos = o.photos_for_throughput;

  // Per photo, warm: the median of three.
  for (const TestPhoto& p : set) {
    std::vector<double> t;
    int faces = 0;
    for (int k = 0; k < 3; ++k) {
      const auto a = Clock::now();
      faces = int(restorer.restore(p.photo, ro).faces.size());
      t.push_back(seconds_since(a));
    }
    std::sort(t.begin(), t.end());
    run.photo_s.push_back(t[1]);
    run.faces.push_back(faces);
  }

  // Batch sweep: GPEN alone on the faces of the photo with the most faces (repeated to fill).
  size_t best = 0;
  for (size_t i = 0; i < set.size(); ++i)
    if (run.faces[i] > run.faces[best]) best = i;
  if (run.faces[best] == 0) return;
  PhotoInProgress staged = restorer.detect_faces(set[best].photo, ro);
  for (int b : o.batch_sizes) {
    std::vector<FaceInProgress> faces;
    while (int(faces.size()) < std::max(2 * b, 8))
      for (const FaceInProgress& f : staged.faces) faces.push_back(f);
    std::vector<FaceInProgress*> ptrs;
    for (FaceInProgress& f : faces) ptrs.push_back(&f);
    RestoreOptions bo = ro;
    bo.batch_size = b;
    restorer.run_gpen(std::vector<FaceInProgress*>(ptrs.begin(), ptrs.begin() + b), bo);  // compile + warm
    const auto a = Clock::now();
    restorer.run_gpen(ptrs, bo);
    run.sweep.push_back({b, double(ptrs.size()) / seconds_since(a)});
  }
  if (dev.is_cuda) run.vram_peak_mb = double(CudaModule::instance().memory_stats(dev.index).peak_allocated_bytes) / 1048576;
}

void print_report(const SeedReportOptions& o, const std::vector<TestPhoto>& set, const std::vector<DeviceRun>& runs) {
  std::printf("# gpen seed-style report\n\nModel `%s`, detector `%s`, %d CPU threads, photos 1920x1080 made from `%s`, "
              "strength 100. Every figure measured in this run.\n\n",
              o.model.c_str(), fs::path(o.detector).filename().c_str(), o.threads > 0 ? o.threads : ThreadPool::hardware_threads(),
              o.images_dir.c_str());
  for (const DeviceRun& r : runs)
    std::printf("- %s: %s%s%s\n", r.device.c_str(), r.available ? r.description.c_str() : "not available",
                r.note.empty() ? "" : " - ", r.note.c_str());
  std::printf("\n## Time per photo (warm, median of 3)\n\n| photo | faces |");
  for (const DeviceRun& r : runs) std::printf(" %s |", r.device.c_str());
  const bool speedup = runs.size() == 2 && runs[0].available && runs[1].available;
  if (speedup) std::printf(" speed-up |");
  std::printf("\n|---|---:|");
  for (size_t i = 0; i < runs.size() + (speedup ? 1 : 0); ++i) std::printf("---:|");
  std::printf("\n");
  for (size_t p = 0; p < set.size(); ++p) {
    std::printf("| %s | %d |", set[p].name.c_str(), runs[0].available ? runs[0].faces[p] : 0);
    for (const DeviceRun& r : runs) {
      if (r.available) std::printf(" %.3f s |", r.photo_s[p]);
      else std::printf(" n/a |");
    }
    if (speedup) std::printf(" %.1fx |", runs[0].photo_s[p] / runs[1].photo_s[p]);
    std::printf("\n");
  }
  std::printf("\n## %d photos from a cold start (model load included)\n\n| device | first result | total | photos/min |\n|---|---:|---:|---:|\n",
              o.photos_for_throughput);
  for (const DeviceRun& r : runs)
    if (r.available)
      std::printf("| %s | %.2f s | %.2f s | %.1f |\n", r.device.c_str(), r.first_result_s, r.total_s,
                  60.0 * r.throughput_photos / r.total_s);
  std::printf("\n## GPEN batch-size sweep (faces/s, GPEN alone)\n\n| device |");
  for (int b : o.batch_sizes) std::printf(" batch %d |", b);
  std::printf("\n|---|");
  for (size_t i = 0; i < o.batch_sizes.size(); ++i) std::printf("---:|");
  std::printf("\n");
  for (const DeviceRun& r : runs) {
    if (!r.available || r.sweep.empty()) continue;
    std::printf("| %s |", r.device.c_str());
    for (const auto& [b, fps] : r.sweep) std::printf(" %.2f |", fps);
    std::printf("\n");
  }
  std::printf("\n## Memory\n\nPeak RAM of the whole run: %.0f MB.", peak_rss_mb());
  for (const DeviceRun& r : runs)
    if (r.vram_peak_mb >= 0) std::printf(" Peak VRAM held by gpen on %s: %.0f MB.", r.device.c_str(), r.vram_peak_mb);
  std::printf("\n");
}

}  // namespace

int run_seed_report(const SeedReportOptions& o) {
  if (o.detector.empty()) fail("--report needs --detector");
  if (o.photos_for_throughput < 1) fail("--report needs at least one photo for the throughput run");
  const std::vector<TestPhoto> set = load_test_set(o.images_dir);
  std::vector<DeviceRun> runs;
  for (const std::string& d : o.devices) {
    DeviceRun r;
    r.device = d;
    try {
      const SelectedDevice dev = select_device(parse_device(d), GpuPrecision::FP32);
      r.available = true;
      r.description = dev.is_cuda ? dev.description : cpu_description();
      r.note = dev.note;
      measure_device(o, set, dev, r);
    } catch (const Error& e) {
      if (r.available) throw;  // a failure while measuring is an error, not "not available"
      r.note = e.what();
    }
    runs.push_back(std::move(r));
  }
  print_report(o, set, runs);
  return 0;
}

}  // namespace gpen::cli
