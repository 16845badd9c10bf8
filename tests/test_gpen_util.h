// GPEN-tiny (the committed fixture), a batch of random faces and what the CPU makes of them: the
// reference the out-of-memory tests hold other runners of the same model to.
#pragma once
#include <memory>

#include "core/backend.h"
#include "core/models/gpen.h"
#include "tests/test_util.h"

namespace gpen::test {

struct TinyGpenFaces {
  std::shared_ptr<GpenModel> model =
      std::make_shared<GpenModel>(GpenModel::load(source_path("tests/fixtures/gpen_tiny/gpen_tiny.pth")));
  CompileOptions opt = [] {
    CompileOptions o;
    o.threads = 2;
    return o;
  }();
  GpenRunner on_cpu{model, std::shared_ptr<Backend>(make_cpu_backend()), opt};
  Tensor x, expected;  // [batch, 3, S, S] faces and the CPU's output for them

  TinyGpenFaces(int batch, uint32_t seed)
      : x(random_tensor({batch, 3, model->config().size, model->config().size}, seed)), expected(on_cpu.forward(x)) {}
};

}  // namespace gpen::test
