// A file of cuDNN's convolution algorithm choices, so that a new process skips cudnnFind for the
// shapes an earlier one measured (the search takes ~7 s for GPEN-512 fp16 batch 16 on an H200,
// and ran at every start). Plain C++ (no CUDA): the CUDA module reads and extends it.
//
// Format: JSON {"version": 1, "algos": {KEY: {"algo", "workspace", "math", "ms"}}}, where KEY names
// the GPU, the cuDNN version and the convolution (shape, precision, layout). An entry is a hint:
// the module checks that cuDNN still accepts the algorithm for that shape before using it.
#pragma once
#include <cstdint>
#include <map>
#include <string>

namespace gpen {

struct CachedConvAlgo {
  int algo = -1;
  uint64_t workspace = 0;
  int math = 0;  // cudnnMathType_t
  float ms = 0;  // what cudnnFind measured
};
using ConvAlgoTable = std::map<std::string, CachedConvAlgo>;

// $GPEN_CUDA_ALGO_CACHE when set ("off" or empty: no file), else cudnn_algos.json in the model cache
// folder; "" when there is none.
std::string default_conv_algo_cache_path();
// The file's entries; a missing, unreadable or malformed file gives none (a cache problem costs a
// slower start, never a failure).
ConvAlgoTable read_conv_algo_cache(const std::string& path);
// Adds `entries` to what the file holds now (re-read, so another process's entries stay) and
// replaces it atomically. Errors (read-only folder, full disk) are ignored for the same reason.
void add_to_conv_algo_cache(const std::string& path, const ConvAlgoTable& entries);

}  // namespace gpen
