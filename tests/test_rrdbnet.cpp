// RRDBNet (Real-ESRNet x2 / x4): the layout we expect is GPEN's realesrnet_x2 key for key, bad
// checkpoints are refused with the key named, the graph agrees with the PyTorch reference
// (tools/reference/rrdbnet_model.py) for x2 and x4, and the pixel-unshuffle kernel matches torch's
// definition.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <fstream>

#include "core/backend.h"
#include "core/error.h"
#include "core/models/rrdbnet.h"
#include "kernels/cpu/generic.h"
#include "tests/test_util.h"
#include "weights/safetensors.h"

using namespace gpen;

namespace {

const std::string kTinyDir = "tests/fixtures/rrdbnet_tiny/";

std::string large_fixture(const std::string& name) {
  const char* dir = std::getenv("GPEN_FIXTURES");
  return (dir ? std::string(dir) : test::binary_path("fixtures")) + "/" + name;
}

void check_parity(const std::string& pth, const std::string& golden, int expect_scale, double tol) {
  INFO("checkpoint " << pth);
  REQUIRE(std::ifstream(pth).good());
  const RrdbNetModel m = RrdbNetModel::load(pth);
  CHECK(m.config().scale == expect_scale);
  const StateDict gold = load_safetensors(golden);
  const Tensor x = gold.at("input").to(DType::F32), ref = gold.at("output").to(DType::F32);
  CompileOptions co;
  co.threads = 2;
  auto exe = make_cpu_backend()->compile(m.build_graph(int(x.dim(0)), int(x.dim(2)), int(x.dim(3))), co);
  std::vector<Tensor> outs;
  exe->run({x}, outs);
  REQUIRE(outs.size() == 1);
  REQUIRE(outs[0].shape() == ref.shape());
  CHECK(ref.dim(2) == x.dim(2) * expect_scale);
  const size_t n = size_t(ref.numel());
  const double err = test::max_abs_diff(outs[0].data<float>(), ref.data<float>(), n);
  const double scale = std::max(1.0, test::max_abs(ref.data<float>(), n));
  INFO("max |diff| " << err << ", max |ref| " << scale);
  CHECK(err / scale < tol);
}

std::string error_of(const StateDict& sd) {
  try {
    RrdbNetModel::from_state_dict(sd);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST_CASE("RRDBNet layout equals GPEN's realesrnet_x2 key list", "[rrdbnet]") {
  const auto official = test::read_keys_tsv(test::shared_path("reference/realesrnet_x2.keys.tsv"));
  const auto ours = RrdbNetModel::expected_layout(realesrnet_config(2));
  REQUIRE(ours.size() == official.size());
  for (const auto& [k, shape] : ours) {
    INFO(k);
    REQUIRE(official.count(k) == 1);
    CHECK(official.at(k) == shape);
  }
  for (int scale : {2, 4}) {  // the configuration comes back from the keys alone
    const RrdbNetModel m = RrdbNetModel::from_state_dict(rrdbnet_random_state_dict(realesrnet_config(scale), 1));
    CHECK(m.config().describe() == realesrnet_config(scale).describe());
  }
}

TEST_CASE("RRDBNet tiny x2 and x4 models match the PyTorch reference", "[rrdbnet][parity]") {
  check_parity(test::source_path(kTinyDir + "rrdbnet_tiny_x2.pth"),
               test::source_path(kTinyDir + "rrdbnet_tiny_x2.golden.safetensors"), 2, 1e-5);
  check_parity(test::source_path(kTinyDir + "rrdbnet_tiny_x4.pth"),
               test::source_path(kTinyDir + "rrdbnet_tiny_x4.golden.safetensors"), 4, 1e-5);
}

TEST_CASE("RRDBNet official layouts match the PyTorch reference (generated fixtures)", "[rrdbnet][parity][large]") {
  check_parity(large_fixture("realesrnet_random_x2.pth"), large_fixture("realesrnet_random_x2.golden.safetensors"), 2, 1e-4);
  check_parity(large_fixture("realesrnet_random_x4.pth"), large_fixture("realesrnet_random_x4.golden.safetensors"), 4, 1e-4);
}

TEST_CASE("RRDBNet refuses checkpoints that are not exactly the expected layout", "[rrdbnet]") {
  const StateDict good = load_weights(test::source_path(kTinyDir + "rrdbnet_tiny_x2.pth"));
  REQUIRE(error_of(good).empty());
  StateDict missing = good;
  missing.tensors.erase("body.1.rdb3.conv4.bias");
  CHECK_THAT(error_of(missing), Catch::Contains("body.1.rdb3.conv4.bias"));
  StateDict extra = good;
  extra.tensors["conv_up3.weight"] = good.at("conv_up2.weight");
  CHECK_THAT(error_of(extra), Catch::Contains("conv_up3.weight"));
  StateDict misshaped = good;
  misshaped.tensors["body.0.rdb2.conv5.weight"] = Tensor::zeros(DType::F32, {12, 30, 3, 3});
  CHECK_THAT(error_of(misshaped), Catch::Contains("body.0.rdb2.conv5.weight"));
  StateDict odd_input = good;
  odd_input.tensors["conv_first.weight"] = Tensor::zeros(DType::F32, {12, 5, 3, 3});
  CHECK_THAT(error_of(odd_input), Catch::Contains("conv_first takes 5 channels"));
  CHECK_THAT(error_of(StateDict{}), Catch::Contains("not an RRDBNet checkpoint"));
  const RrdbNetModel m = RrdbNetModel::from_state_dict(good);
  CHECK_THROWS_WITH(m.build_graph(1, 7, 8), Catch::Contains("must be even"));
}

TEST_CASE("pixel_unshuffle is torch's space-to-depth, into strided views", "[rrdbnet][kernels]") {
  const int N = 2, C = 3, r = 2, H = 6, W = 4;
  const auto x = test::random_floats(size_t(N * C * H * W), 21);
  const int OC = C * r * r, OH = H / r, OW = W / r, YC = OC + 2;  // y: the first OC channels of YC
  std::vector<float> ybuf(size_t(N * YC * OH * OW), -3.f);
  cpu::View xv = cpu::make_view(const_cast<float*>(x.data()), N, C, H, W);
  cpu::View yv{ybuf.data(), N, OC, OH, OW, int64_t(YC) * OH * OW};
  cpu::ref::pixel_unshuffle(xv, yv, r, nullptr);
  // torch: x.view(N, C, OH, r, OW, r).permute(0, 1, 3, 5, 2, 4).reshape(N, C*r*r, OH, OW)
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < C; ++c)
      for (int dy = 0; dy < r; ++dy)
        for (int dx = 0; dx < r; ++dx)
          for (int i = 0; i < OH; ++i)
            for (int j = 0; j < OW; ++j) {
              const float want = x[size_t(((n * C + c) * H + i * r + dy) * W + j * r + dx)];
              REQUIRE(yv.at(n, (c * r + dy) * r + dx)[i * OW + j] == want);
            }
  CHECK(ybuf[size_t(OC * OH * OW)] == -3.f);  // the channels after the view are not touched
  Graph g;
  const int in = g.input("x", {1, 3, 5, 4});
  CHECK_THROWS_WITH(g.pixel_unshuffle("u", in, 2), Catch::Contains("divisible"));
}
