// RetinaFace model: the layouts we expect match the published checkpoints key for key, bad
// checkpoints are refused with the key named, both bodies build and run at odd sizes, and the
// graph agrees with the PyTorch reference (tools/reference/retinaface_model.py) when it can run.
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "core/backend.h"
#include "core/error.h"
#include "core/models/retinaface.h"
#include "tests/test_util.h"
#include "weights/safetensors.h"

using namespace gpen;

namespace {

const char* kMobilenet = "weights/retinaface_mobilenet0.25.pth";

std::vector<Tensor> run_graph(const RetinaFaceModel& m, const Tensor& x) {
  CompileOptions co;
  co.threads = 2;
  auto exe = make_cpu_backend()->compile(m.build_graph(int(x.dim(0)), int(x.dim(2)), int(x.dim(3))), co);
  std::vector<Tensor> outs;
  exe->run({x}, outs);
  return outs;
}

std::string error_of(const StateDict& sd) {
  try {
    RetinaFaceModel::from_state_dict(sd);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

bool have_torch() {
  static const bool ok = std::system("/usr/bin/python3 -c 'import torch, numpy' >/dev/null 2>&1") == 0;
  return ok;
}

// Runs the PyTorch reference forward on `weights` for a random HxW input; returns its tensors.
StateDict reference_forward(const std::string& weights, int h, int w, const std::string& name) {
  const std::string out = test::binary_path(name + ".reference.safetensors");
  const std::string cmd = "/usr/bin/python3 " + test::source_path("tools/reference/retinaface_model.py") +
                          " forward --weights " + weights + " --height " + std::to_string(h) + " --width " +
                          std::to_string(w) + " --seed 7 --out " + out + " >/dev/null";
  REQUIRE(std::system(cmd.c_str()) == 0);
  StateDict r = load_safetensors(out);
  for (auto& [k, t] : r.tensors) t = t.clone();  // own the data: the file is removed
  std::remove(out.c_str());
  return r;
}

void compare_heads(const std::vector<Tensor>& ours, const StateDict& ref, double tol) {
  REQUIRE(ours.size() == 3);
  for (int l = 0; l < 3; ++l) {
    const Tensor& r = ref.at("head" + std::to_string(l));
    INFO("level " << l);
    REQUIRE(ours[size_t(l)].shape() == r.shape());
    const size_t n = size_t(r.numel());
    const double err = test::max_abs_diff(ours[size_t(l)].data<float>(), r.data<float>(), n);
    const double scale = std::max(1.0, test::max_abs(r.data<float>(), n));
    INFO("max |diff| " << err << ", max |ref| " << scale);
    CHECK(err / scale < tol);
  }
}

}  // namespace

TEST_CASE("RetinaFace ResNet-50 layout equals the published key list", "[retinaface]") {
  const auto official = test::read_keys_tsv(test::shared_path("reference/retinaface_resnet50.keys.tsv"));
  const auto ours = RetinaFaceModel::expected_layout(retinaface_config(RetinaFaceBody::ResNet50));
  REQUIRE(ours.size() == official.size());
  for (const auto& [k, shape] : ours) {
    INFO(k);
    REQUIRE(official.count(k) == 1);
    CHECK(official.at(k) == shape);
  }
}

TEST_CASE("RetinaFace MobileNet-0.25 loads the shared checkpoint", "[retinaface]") {
  const StateDict sd = load_weights(test::shared_path(kMobilenet));
  REQUIRE(sd.tensors.size() == 300);
  const auto layout = RetinaFaceModel::expected_layout(retinaface_config(RetinaFaceBody::MobileNet025));
  REQUIRE(layout.size() == 300);
  for (const auto& [k, shape] : layout) {
    INFO(k);
    REQUIRE(sd.has(k));
    CHECK(sd.at(k).shape() == shape);
  }
  const RetinaFaceModel m = RetinaFaceModel::from_state_dict(sd);
  CHECK(m.config().body == RetinaFaceBody::MobileNet025);
  CHECK(m.config().out_channel == 64);
  CHECK(m.config().neck_slope == 0.1f);
  CHECK(m.parameter_count() > 400000);
  CHECK(m.parameter_count() < 500000);
}

TEST_CASE("RetinaFace graphs run at odd sizes with the right level sizes", "[retinaface]") {
  const RetinaFaceModel mb = RetinaFaceModel::load(test::shared_path(kMobilenet));
  const RetinaFaceModel rn = RetinaFaceModel::from_state_dict(retinaface_random_state_dict(RetinaFaceBody::ResNet50, 5));
  CHECK(rn.config().body == RetinaFaceBody::ResNet50);
  CHECK(rn.config().out_channel == 256);
  CHECK(rn.config().neck_slope == 0.f);
  const std::vector<std::pair<int, int>> sizes = {{37, 53}, {1, 1}, {64, 80}, {17, 100}};
  for (const RetinaFaceModel* m : {&mb, &rn})
    for (size_t i = 0; i < (m == &mb ? sizes.size() : 2); ++i) {  // resnet50: 2 sizes (compiles are slow)
      const auto [h, w] = sizes[i];
      INFO(m->config().describe() << " " << h << "x" << w);
      const auto outs = run_graph(*m, test::random_tensor({1, 3, h, w}, 3, -120.f, 150.f));
      REQUIRE(outs.size() == 3);
      for (int l = 0; l < 3; ++l) {
        CHECK(outs[size_t(l)].shape() ==
              Shape{1, RetinaFaceConfig::kHeadChannels, RetinaFaceModel::level_size(h, l), RetinaFaceModel::level_size(w, l)});
        const size_t n = size_t(outs[size_t(l)].numel());
        const double mx = test::max_abs(outs[size_t(l)].data<float>(), n);
        CHECK(std::isfinite(mx));
        CHECK(mx > 0);
      }
    }
}

TEST_CASE("RetinaFace checkpoints with a missing, unexpected or mis-shaped key are refused", "[retinaface]") {
  for (RetinaFaceBody body : {RetinaFaceBody::MobileNet025, RetinaFaceBody::ResNet50}) {
    const StateDict good = retinaface_random_state_dict(body, 1);
    REQUIRE(error_of(good).empty());
    const std::string victim =
        body == RetinaFaceBody::MobileNet025 ? "body.stage2.3.4.running_var" : "body.layer3.2.conv2.weight";
    {
      StateDict sd = good;
      sd.tensors.erase(victim);
      const std::string e = error_of(sd);
      INFO(e);
      CHECK(e.find(victim) != std::string::npos);
    }
    {
      StateDict sd = good;
      sd.tensors[victim] = Tensor::zeros(DType::F32, {3, 3});
      const std::string e = error_of(sd);
      INFO(e);
      CHECK(e.find(victim) != std::string::npos);
    }
    {
      StateDict sd = good;
      sd.tensors["ssh2.conv9X9.0.weight"] = Tensor::zeros(DType::F32, {1});
      const std::string e = error_of(sd);
      INFO(e);
      CHECK(e.find("ssh2.conv9X9.0.weight") != std::string::npos);
    }
    {
      StateDict sd = good;
      sd.tensors.erase("LandmarkHead.2.conv1x1.bias");
      CHECK(error_of(sd).find("LandmarkHead.2.conv1x1.bias") != std::string::npos);
    }
    {  // a DataParallel "module." prefix is accepted
      StateDict sd;
      for (const auto& [k, t] : good.tensors) sd.tensors["module." + k] = t;
      CHECK(error_of(sd).empty());
    }
    {  // num_batches_tracked is ignored: may be absent
      StateDict sd = good;
      for (auto it = sd.tensors.begin(); it != sd.tensors.end();)
        it = it->first.find("num_batches_tracked") != std::string::npos ? sd.tensors.erase(it) : std::next(it);
      CHECK(error_of(sd).empty());
    }
  }
  StateDict none;
  none.tensors["foo"] = Tensor::zeros(DType::F32, {1});
  CHECK(error_of(none).find("not a RetinaFace checkpoint") != std::string::npos);
}

TEST_CASE("RetinaFace BatchNorm folding matches a hand computation", "[retinaface]") {
  // One output channel of the first conv, checked against conv -> BN -> lrelu(0.1) computed here.
  StateDict sd = retinaface_random_state_dict(RetinaFaceBody::MobileNet025, 9);
  const RetinaFaceModel m = RetinaFaceModel::from_state_dict(sd);
  Graph g = m.build_graph(1, 8, 8);
  const int v = g.find("body.stage1.0");
  REQUIRE(v >= 0);
  g.mark_output(v);
  auto exe = make_cpu_backend()->compile(g, {});
  const Tensor x = test::random_tensor({1, 3, 8, 8}, 4, -100.f, 100.f);
  std::vector<Tensor> outs;
  exe->run({x}, outs);
  const Tensor* stage = nullptr;  // outputs come in value order: find it by its shape
  for (const Tensor& t : outs)
    if (t.shape() == Shape{1, 8, 4, 4}) stage = &t;
  REQUIRE(stage);
  const float* w = sd.at("body.stage1.0.0.weight").data<float>();
  const float* gm = sd.at("body.stage1.0.1.weight").data<float>();
  const float* bt = sd.at("body.stage1.0.1.bias").data<float>();
  const float* mu = sd.at("body.stage1.0.1.running_mean").data<float>();
  const float* var = sd.at("body.stage1.0.1.running_var").data<float>();
  double worst = 0;
  for (int k = 0; k < 8; ++k)
    for (int oy = 0; oy < 4; ++oy)
      for (int ox = 0; ox < 4; ++ox) {
        double acc = 0;
        for (int c = 0; c < 3; ++c)
          for (int ky = 0; ky < 3; ++ky)
            for (int kx = 0; kx < 3; ++kx) {
              const int iy = oy * 2 + ky - 1, ix = ox * 2 + kx - 1;
              if (iy < 0 || ix < 0 || iy >= 8 || ix >= 8) continue;
              acc += double(w[((k * 3 + c) * 3 + ky) * 3 + kx]) * x.data<float>()[(c * 8 + iy) * 8 + ix];
            }
        double bn = (acc - mu[k]) / std::sqrt(double(var[k]) + 1e-5) * gm[k] + bt[k];
        if (bn < 0) bn *= 0.1;
        worst = std::max(worst, std::fabs(bn - stage->data<float>()[(k * 4 + oy) * 4 + ox]));
      }
  CHECK(worst < 1e-3);
}

TEST_CASE("RetinaFace graphs match the PyTorch reference", "[retinaface][reference]") {
  if (!have_torch()) {
    WARN("skipped: /usr/bin/python3 with torch is not available");
    return;
  }
  SECTION("mobilenet0.25, shared weights") {
    const std::string w = test::shared_path(kMobilenet);
    const StateDict ref = reference_forward(w, 61, 83, "retinaface_mnet");
    const RetinaFaceModel m = RetinaFaceModel::load(w);
    compare_heads(run_graph(m, ref.at("input")), ref, 1e-4);
  }
  SECTION("resnet50, random weights") {
    const std::string w = test::binary_path("retinaface_r50_random.safetensors");
    const StateDict sd = retinaface_random_state_dict(RetinaFaceBody::ResNet50, 11);
    save_safetensors(w, sd);
    const StateDict ref = reference_forward(w, 64, 80, "retinaface_r50");
    std::remove(w.c_str());  // ~100 MB
    const RetinaFaceModel m = RetinaFaceModel::from_state_dict(sd);
    compare_heads(run_graph(m, ref.at("input")), ref, 1e-4);
  }
}
