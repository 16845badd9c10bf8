// PyTorch checkpoints (.pth / .pt / .ckpt as written by torch.save), read without Python and
// without executing anything: pickles go through the restricted unpickler in weights/pickle.h.
//
// Zip format (torch >= 1.6, the default since then): a zip archive, entries stored uncompressed:
//   <archive>/data.pkl      the pickled object; tensors refer to storages by persistent id
//                           ('storage', torch.FloatStorage, key, location, numel)
//   <archive>/data/<key>    each storage's raw bytes, numel * element size, native byte order
//   <archive>/byteorder     "little" or "big" (absent in files from torch < 1.10: little)
//   <archive>/version       serialization format version, e.g. "3"
// <archive> is the file's stem when it was saved ("archive" in newer torch), so we find the one
// folder holding data.pkl rather than assume its name. Big-endian archives are refused.
//
// Legacy format (torch < 1.6, or _use_new_zipfile_serialization=False): consecutive pickles
//   1. the magic number 0x1950a86a20f9469cfc6c
//   2. the protocol version, 1001
//   3. sys_info: {'protocol_version': 1001, 'little_endian': True, 'type_sizes': {...}}
//   4. the object; tensors refer to storages by persistent id
//      ('storage', torch.FloatStorage, key, location, numel, view_metadata) where view_metadata is
//      None or (view_key, offset, size) selecting a slice of the root storage, in elements
//   5. the list of storage keys
// then, for each key of (5) in that order: int64 little-endian element count, then the raw bytes.
// Big-endian files (sys_info little_endian False) are refused; the ancient tar format is not read.
//
// The state dict: if the object is a dict holding tensors, that dict; otherwise the first of
// params_ema, g_ema, state_dict, model_state_dict, model, params, net, generator, netG, module
// that does (nested up to a few levels), so {'params_ema': sd, 'params': sd2, 'iter': 5} gives sd.
// A leading "module." (from nn.DataParallel) is stripped from every key. Values that are not
// tensors (ints, nested dicts, ...) are left out. Tensors keep the checkpoint's dtype (f32, f16,
// bf16, f64, i64, i32, u8, bool). Non-contiguous tensors (saved views, e.g. a transpose) are
// materialised into contiguous memory; contiguous ones share the storage bytes read from the file.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

#include "weights/state_dict.h"

namespace gpen {

// Either format, chosen by the file's first bytes.
StateDict load_pth(const std::string& path);
StateDict load_pth_zip(const std::string& path);
StateDict load_pth_legacy(const std::string& path);

// The same from bytes in memory (tests, fuzzing). Nothing returned points into `data`.
StateDict load_pth_zip_buffer(const uint8_t* data, size_t size, const std::string& name = "<memory>");
StateDict load_pth_legacy_buffer(const uint8_t* data, size_t size, const std::string& name = "<memory>");

}  // namespace gpen
