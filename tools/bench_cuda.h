// `gpen bench --device ...`: GPEN throughput and latency on a chosen device (CUDA or CPU) over a
// grid of batch sizes and precisions, plus device memory. Called by tools/cmd_bench.cpp when a
// device is given; kept apart so the CUDA-specific reporting does not crowd the CPU bench.
#pragma once
#include <string>
#include <vector>

#include "core/backend.h"

namespace gpen::cli {

struct DeviceBenchOptions {
  std::string model;                           // checkpoint or random:SIZE[:SEED]; empty: random:size
  int size = 512;
  std::string device = "cuda";                 // auto, cpu, cuda, cuda:N
  std::vector<int> batches = {1};              // --batch-size 1,4,8,16
  std::vector<std::string> precisions = {"fp32"};  // --precision fp32,fp16 (CUDA: fp32 tf32 fp16; CPU: fp32 bf16)
  int runs = 20, warmup = 3, threads = 0;
  bool json = false;                           // one JSON object per line, per configuration
  bool profile = false;                        // per-layer times after each configuration (text mode)
  int top = 15;                                // layers shown by profile
  int streams = 1;  // > 1: also time this many twin runners (GpenRunner::twin) forwarding at once
  bool heuristic_algos = false;  // CompileOptions::quick_algorithms: cuDNN's heuristic choices, untimed
};

// "1,4,8,16" -> {1, 4, 8, 16}; an Error naming `what` on anything but positive integers.
std::vector<int> parse_int_list(const std::string& s, const char* what);
// "fp32,fp16" -> {"fp32", "fp16"} (empty items dropped).
std::vector<std::string> split_list(const std::string& s);

// The per-layer table of `gpen bench --profile` (times summed over `runs` profiled runs).
void print_profile(const std::vector<NodeProfile>& prof, int runs, int top);

// Prints one line (or JSON object) per (precision, batch): faces/s, median/min/p90 latency,
// device memory. Returns the exit code.
int run_device_bench(const DeviceBenchOptions& o);

}  // namespace gpen::cli
