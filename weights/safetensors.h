// safetensors: read (mmap, zero-copy) and write.
//
// File format (https://github.com/huggingface/safetensors):
//   bytes [0, 8)        N, the header length, unsigned 64-bit little-endian
//   bytes [8, 8+N)      the header: a UTF-8 JSON object, possibly padded at the end with spaces
//   bytes [8+N, end)    the byte buffer: every tensor's raw little-endian, row-major data
// The header maps each tensor name to
//   {"dtype": "F32", "shape": [64, 3, 3, 3], "data_offsets": [begin, end]}
// with offsets relative to the start of the byte buffer, plus an optional "__metadata__" object
// of string -> string. The tensors must cover the byte buffer exactly: no overlaps, no holes, no
// trailing bytes, and end - begin == numel(shape) * size(dtype).
//
// Reading validates all of that and throws a one-line gpen::Error naming the file and the tensor.
// Tensors borrow the mapped file (a private copy-on-write mapping kept alive by the tensors), so
// loading costs a header parse, not a copy. A tensor whose data is not aligned to its element size
// (legal in the format; other writers do not pad) is copied into aligned memory instead.
//
// Dtypes: F32 F16 BF16 F64 I64 I32 U8 BOOL; others (I8, I16, U16, F8_*, ...) are refused.
#pragma once
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "weights/state_dict.h"

namespace gpen {

StateDict load_safetensors(const std::string& path);

// Parses a whole safetensors image in memory. Tensors point into `data` (copied only where
// misaligned) and hold `keepalive`; without one, `data` must outlive them. `name` is used in errors.
StateDict parse_safetensors_buffer(const uint8_t* data, size_t size, std::shared_ptr<void> keepalive = nullptr,
                                   const std::string& name = "<memory>");

// Writes `sd` to `path` atomically (to `path + ".tmp"`, then rename). Tensors are stored sorted by
// name; the header is padded with spaces so the byte buffer starts 8-byte aligned. If
// `float_dtype` is set, floating tensors (f32/f16/bf16/f64) are converted to it; integer and bool
// tensors are stored as they are. Metadata: sd.metadata overlaid with `extra_metadata`.
void save_safetensors(const std::string& path, const StateDict& sd, std::optional<DType> float_dtype = std::nullopt,
                      const std::map<std::string, std::string>& extra_metadata = {});

}  // namespace gpen
