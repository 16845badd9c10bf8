// `gpen bench --report`: the tables the seed wrote by hand, measured on the machine at hand, as
// Markdown: per-photo time on each device for 1920x1080 photos of the seed's categories (built
// from the images of a folder), the CPU-vs-CUDA speed-up, peak RAM / VRAM, first-result and total
// time for 10 photos with photos/min, and a GPEN batch-size sweep.
#pragma once
#include <string>
#include <vector>

namespace gpen::cli {

struct SeedReportOptions {
  std::string images_dir;               // each image becomes one 1920x1080 photo (scaled to fit, on grey)
  std::string model = "random:512";     // GPEN checkpoint, registered name (resolved by the caller) or random:SIZE
  std::string detector;                 // RetinaFace checkpoint (resolved by the caller)
  std::vector<std::string> devices{"cpu"};
  int threads = 0;
  std::vector<int> batch_sizes{1, 2, 4, 8};
  int photos_for_throughput = 10;
};

// Prints the report to stdout. Returns the exit code.
int run_seed_report(const SeedReportOptions& o);

}  // namespace gpen::cli
