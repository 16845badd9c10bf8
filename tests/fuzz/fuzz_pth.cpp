// libFuzzer target: arbitrary bytes as a .pth checkpoint, zip ("PK\3\4...") or legacy (anything
// else), through the whole reader: unpickling, state-dict unwrapping, storage lookup, bounds checks
// and materialising strided tensors.
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "core/error.h"
#include "weights/pth.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const bool zip = size >= 4 && std::memcmp(data, "PK\x03\x04", 4) == 0;
    gpen::StateDict sd = zip ? gpen::load_pth_zip_buffer(data, size) : gpen::load_pth_legacy_buffer(data, size);
    volatile double sink = 0;
    for (const auto& [key, t] : sd.tensors)
      if (t.numel() > 0) sink = sink + t.item_as_double(t.numel() - 1);
  } catch (const gpen::Error&) {
  }
  return 0;
}
