// libFuzzer target: arbitrary bytes as a safetensors file image. Tensors that parse are read
// end to end, so an offset check that lets a tensor reach past the buffer shows up under ASan.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "core/error.h"
#include "weights/safetensors.h"

volatile uint8_t g_sink;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Own copy, exactly `size` bytes long, so reads past the end are caught.
  std::vector<uint8_t> copy(data, data + size);
  try {
    gpen::StateDict sd = gpen::parse_safetensors_buffer(copy.data(), copy.size());
    uint8_t sum = 0;
    for (const auto& [name, t] : sd.tensors) {
      const uint8_t* p = static_cast<const uint8_t*>(t.raw());
      for (size_t i = 0; i < t.nbytes(); ++i) sum ^= p[i];
    }
    g_sink = sum;
  } catch (const gpen::Error&) {
  }
  return 0;
}
