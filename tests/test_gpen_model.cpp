// GPEN model structure: the layout we build matches the official checkpoints key for key, bad
// checkpoints are refused with the key named, and the forward runs at every size.
#include <catch2/catch.hpp>

#include <fstream>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/models/gpen.h"
#include "tests/test_util.h"

using namespace gpen;

TEST_CASE("expected layout equals the official key/shape lists", "[gpen]") {
  for (int size : {256, 512, 1024, 2048}) {
    auto official = test::read_keys_tsv(test::shared_path("reference/gpen_bfr_" + std::to_string(size) + ".keys.tsv"));
    auto ours = GpenModel::expected_layout(gpen_official_config(size));
    REQUIRE(ours.size() == official.size());
    for (const auto& [k, shape] : ours) {
      INFO(size << " " << k);
      REQUIRE(official.count(k) == 1);
      REQUIRE(official[k] == shape);
    }
  }
}

TEST_CASE("configuration is inferred from tensor shapes", "[gpen]") {
  for (int size : {256, 512}) {
    GpenModel m = GpenModel::from_state_dict(gpen_random_state_dict(gpen_official_config(size), 3));
    REQUIRE(m.config().size == size);
    REQUIRE(m.config().style_dim == 512);
    REQUIRE(m.config().n_mlp == 8);
    REQUIRE(m.config().channel_multiplier == (size == 256 ? 1 : 2));
    REQUIRE(m.config().narrow == (size == 256 ? 0.5 : 1));
  }
  GpenModel m512 = GpenModel::from_state_dict(gpen_random_state_dict(gpen_official_config(512), 3));
  REQUIRE(m512.parameter_count() > 70'000'000);
  REQUIRE(m512.parameter_count() < 73'000'000);
  // ~277 GFLOP per 512 face (the figure the speed goals are set against).
  REQUIRE(double(m512.build_graph(1).flops()) / 1e9 == Approx(277).epsilon(0.02));
}

TEST_CASE("bad GPEN checkpoints are refused naming the key", "[gpen]") {
  const GpenConfig cfg = gpen_official_config(256);
  {
    StateDict sd = gpen_random_state_dict(cfg, 1);
    sd.tensors.erase("generator.convs.3.noise.weight");
    REQUIRE_THROWS_WITH(GpenModel::from_state_dict(sd), Catch::Contains("generator.convs.3.noise.weight"));
  }
  {
    StateDict sd = gpen_random_state_dict(cfg, 1);
    sd.tensors["generator.to_rgbs.1.conv.modulation.bias"] = Tensor::zeros(DType::F32, {7});
    REQUIRE_THROWS_WITH(GpenModel::from_state_dict(sd), Catch::Contains("generator.to_rgbs.1.conv.modulation.bias"));
  }
  {
    StateDict sd = gpen_random_state_dict(cfg, 1);
    sd.tensors["generator.extra"] = Tensor::zeros(DType::F32, {1});
    REQUIRE_THROWS_WITH(GpenModel::from_state_dict(sd), Catch::Contains("unexpected key 'generator.extra'"));
  }
  {
    StateDict sd;
    sd.tensors["conv.weight"] = Tensor::zeros(DType::F32, {1});
    REQUIRE_THROWS_WITH(GpenModel::from_state_dict(sd), Catch::Contains("not a GPEN checkpoint"));
  }
  {
    StateDict sd = gpen_random_state_dict(cfg, 1);
    sd.tensors["ecd0.0.1.bias"] = Tensor::zeros(DType::I64, {sd.tensors["ecd0.0.1.bias"].dim(0)});
    REQUIRE_THROWS_WITH(GpenModel::from_state_dict(sd), Catch::Contains("floating"));
  }
}

TEST_CASE("GPEN-256 forward is finite, batch-consistent and input-dependent", "[gpen]") {
  auto model = std::make_shared<GpenModel>(GpenModel::from_state_dict(gpen_random_state_dict(gpen_official_config(256), 5)));
  GpenRunner runner(model, std::shared_ptr<Backend>(make_cpu_backend()), CompileOptions{});
  Tensor x = test::random_tensor({2, 3, 256, 256}, 9);
  Tensor y = runner.forward(x);
  REQUIRE(y.shape() == Shape{2, 3, 256, 256});
  const float* p = y.data<float>();
  const int64_t per = 3 * 256 * 256;
  for (int64_t i = 0; i < y.numel(); ++i) REQUIRE(std::isfinite(p[i]));
  // Batch of one gives the same first sample (samples never mix).
  Tensor y1 = runner.forward(Tensor::from_floats({1, 3, 256, 256}, std::vector<float>(x.data<float>(), x.data<float>() + per)));
  REQUIRE(test::max_abs_diff(y1.data<float>(), p, size_t(per)) < 1e-5);
  // Different inputs give different outputs.
  REQUIRE(test::max_abs_diff(p, p + per, size_t(per)) > 1e-3);
}

TEST_CASE("GPEN runner packs conv weights once and frees its f32 copy", "[gpen]") {
  auto model = std::make_shared<GpenModel>(GpenModel::from_state_dict(gpen_random_state_dict(gpen_official_config(256), 5)));
  GpenRunner shared_runner(model, std::shared_ptr<Backend>(make_cpu_backend()), CompileOptions{});
  Tensor x = test::random_tensor({2, 3, 256, 256}, 9);
  const Tensor y2 = shared_runner.forward(x);
  // The caller's model is never modified: it still has every weight.
  REQUIRE(model->build_graph(1).nodes().front().weight.defined());
  // The runner's own copy has no conv weights now; batch 1 compiles from its kernel cache.
  const int64_t per = 3 * 256 * 256;
  Tensor x1 = Tensor::from_floats({1, 3, 256, 256}, std::vector<float>(x.data<float>(), x.data<float>() + per));
  const Tensor y1 = shared_runner.forward(x1);
  REQUIRE(test::max_abs_diff(y1.data<float>(), y2.data<float>(), size_t(per)) < 1e-5);
  int convs_without_weights = 0;
  const Graph g1 = shared_runner.model().build_graph(1);
  for (const Node& n : g1.nodes())
    if (n.op == OpType::Conv2d && !n.weight.defined()) ++convs_without_weights;
  REQUIRE(convs_without_weights > 20);
}
