// libFuzzer target: arbitrary bytes into the restricted unpickler. Any gpen::Error is a clean
// rejection; a crash, sanitizer report, other exception, leak or timeout is a bug.
#include <cstddef>
#include <cstdint>

#include "core/error.h"
#include "weights/pickle.h"

namespace {
// Touch what a reader would: walk dicts/lists a few levels deep. Values may share children or form
// cycles, so the walk has a budget of visits instead of exploring every path.
void walk(const gpen::pickle::Value* v, int depth, size_t* budget) {
  if (!v || depth > 8 || *budget == 0) return;
  --*budget;
  for (const auto* item : v->items) walk(item, depth + 1, budget);
  for (const auto& [k, val] : v->entries) {
    walk(k, depth + 1, budget);
    walk(val, depth + 1, budget);
  }
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    gpen::pickle::Pickle p = gpen::pickle::unpickle(data, size);
    size_t budget = 100000;
    walk(p.root(), 0, &budget);
  } catch (const gpen::Error&) {
  }
  return 0;
}
