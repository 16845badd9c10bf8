// libFuzzer target: arbitrary bytes as an .onnx file image. What parses is then offered to the GPEN
// mapping (graph walk, shape checks, unfolding), and every tensor's bytes are read, so a length
// check that lets a tensor reach past the buffer shows up under ASan.
#include <cstddef>
#include <cstdint>
#include <vector>

#include "core/error.h"
#include "weights/onnx.h"
#include "weights/onnx_gpen.h"

volatile uint8_t g_sink;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // Own copy, exactly `size` bytes long, so reads past the end are caught.
  std::vector<uint8_t> copy(data, data + size);
  try {
    gpen::OnnxModel m = gpen::parse_onnx_buffer(copy.data(), copy.size());
    uint8_t sum = 0;
    for (const auto& [name, t] : m.initializers) {
      const uint8_t* p = static_cast<const uint8_t*>(t.raw());
      for (size_t i = 0; i < t.nbytes(); ++i) sum ^= p[i];
    }
    g_sink = sum;
    gpen::StateDict sd = gpen::gpen_state_dict_from_onnx(m);
    g_sink = uint8_t(sd.tensors.size());
  } catch (const gpen::Error&) {
  }
  return 0;
}
