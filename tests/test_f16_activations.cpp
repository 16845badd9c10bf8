// The CUDA backend's f16 activation mode decides on the graph alone which values become NHWC f16
// views (core/f16_activations.h); its kernels run on a GPU only, its plan is checked here.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>

#include "core/backend.h"
#include "core/f16_activations.h"
#include "core/models/gpen.h"
#include "core/models/retinaface.h"
#include "tests/test_util.h"

using namespace gpen;

TEST_CASE("f16 activations: GPEN's images become NHWC f16 views, its vectors stay f32", "[f16-activations]") {
  const GpenModel m = GpenModel::from_state_dict(gpen_random_state_dict(gpen_official_config(256), 2));
  const Graph g = m.build_graph(2);
  const F16ActivationPlan plan = plan_f16_activations(g);
  REQUIRE(plan.why == "");
  REQUIRE(plan.supported);
  int images = 0, vectors = 0, flattened = 0, slices = 0;
  for (size_t v = 0; v < g.values().size(); ++v) {
    const Value& val = g.value(int(v));
    switch (plan.form[v]) {
      case ActivationForm::F16Nhwc: {
        ++images;
        REQUIRE(val.shape.size() == 4);
        const NhwcPlacement p = nhwc_placement(g, int(v));
        const Shape& root = g.value(val.root).shape;
        REQUIRE(p.root == val.root);
        REQUIRE(p.pixel_stride == root[1]);
        REQUIRE(p.batch_stride == root[1] * root[2] * root[3]);
        REQUIRE(p.c0 + val.shape[1] <= root[1]);
        if (val.root != int(v)) {
          ++slices;
          REQUIRE(int64_t(p.c0) * root[2] * root[3] == val.offset);
        }
        break;
      }
      case ActivationForm::F32:
        ++vectors;
        REQUIRE(val.shape.size() == 2);
        break;
      case ActivationForm::Flattened:
        ++flattened;
        REQUIRE(g.value(val.root).shape.size() == 4);
        break;
    }
  }
  // The encoder's 4x4 output reshaped for final_linear; both halves of every StyledConv's concat.
  CHECK(flattened == 1);
  CHECK(slices > 0);
  CHECK(slices % 2 == 0);
  CHECK(images > vectors);
  // The upper half of a concat starts at its lower half's channel count.
  const int hi = g.find("generator.conv1.noise");
  REQUIRE(hi >= 0);
  CHECK(nhwc_placement(g, hi).c0 == g.value(hi).shape[1]);
  CHECK(nhwc_placement(g, hi).pixel_stride == 2 * g.value(hi).shape[1]);

  // Every upsampling StyledConv's demodulation moves from its transposed conv into its blur:
  // GPEN-256 upsamples 4 -> 256 in 6 steps.
  REQUIRE(plan.demod_fir.size() == g.nodes().size());
  int moved = 0;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    if (plan.demod_fir[i] < 0) continue;
    ++moved;
    const Node& conv = g.nodes()[i];
    const Node& fir = g.nodes()[size_t(plan.demod_fir[i])];
    INFO(conv.name << " -> " << fir.name);
    CHECK(conv.conv.transposed);
    CHECK(fir.op == OpType::Upfirdn2d);
    CHECK(fir.inputs[0] == conv.output);
    CHECK(conv.name.substr(0, conv.name.size() - 7) == fir.name.substr(0, fir.name.size() - 5));  // ".conv_t", ".blur"
  }
  CHECK(moved == 6);

  // Both top-resolution StyledConvs recompute the encoder feature (a 1x1 conv into the concat's
  // upper half) and scale it as noise in place right after: one pass each.
  int fused = 0;
  for (size_t i = 0; i < g.nodes().size(); ++i) {
    if (plan.fused_after[i] < 0) continue;
    ++fused;
    const Node &conv = g.nodes()[i], &sba = g.nodes()[size_t(plan.fused_after[i])];
    INFO(conv.name << " then " << sba.name);
    CHECK(plan.fused_after[i] == int(i + 1));
    CHECK(conv.op == OpType::Conv2d);
    CHECK(sba.op == OpType::ScaleBiasAct);
    CHECK(sba.inputs[0] == conv.output);
    CHECK(sba.output == conv.output);
  }
  CHECK(fused == 2);

  // Every style (13 StyledConvs, 7 ToRGBs, the last one as two halves) in one run of Linears, every
  // demodulation (13) in one run after it; the mapping network's chain of Linears is no run (each
  // reads the one before).
  std::vector<std::pair<std::string, int>> runs;
  for (size_t i = 0; i < g.nodes().size(); ++i)
    if (plan.run_end[i] >= 0) {
      runs.emplace_back(op_name(g.nodes()[i].op), plan.run_end[i] - int(i));
      for (int k = int(i) + 1; k < plan.run_end[i]; ++k) CHECK(plan.run_end[size_t(k)] == -2);
    }
  REQUIRE(runs.size() == 2);
  CHECK(runs[0] == std::make_pair(std::string("linear"), 21));
  CHECK(runs[1] == std::make_pair(std::string("demod_factors"), 13));
}

TEST_CASE("f16 activations: demodulation moves into a FIR only when nothing else reads the conv's output",
          "[f16-activations]") {
  const auto build = [](bool second_reader, bool bias) {
    Graph g;
    const int x = g.input("x", {1, 4, 5, 5}), s = g.input("s", {1, 4}), d = g.input("d", {1, 6});
    cpu::ConvDesc cd;
    cd.C = 4, cd.K = 6, cd.kh = cd.kw = 3, cd.stride = 2, cd.transposed = true;
    const Tensor w = test::random_tensor({6, 4, 3, 3}, 1);
    const int t = g.conv2d("up", x, cd, w, bias ? EpilogueSpec::with_bias(test::random_tensor({6}, 2)) : EpilogueSpec{},
                           s, d);
    g.mark_output(g.upfirdn2d("blur", t, test::random_tensor({4, 4}, 3), 1, 1, 1, 1, EpilogueSpec{}));
    if (second_reader) g.mark_output(g.scale_bias_act("also", t, 1.f, EpilogueSpec{}));
    return g;
  };
  CHECK(plan_f16_activations(build(false, false)).demod_fir[0] == 1);
  CHECK(plan_f16_activations(build(true, false)).demod_fir[0] == -1);  // "also" reads the demodulated values
  CHECK(plan_f16_activations(build(false, true)).demod_fir[0] == -1);  // the bias comes after the demodulation
}

TEST_CASE("f16 activations: graphs with other ops or layouts keep the f32 arena, saying why", "[f16-activations]") {
  SECTION("RetinaFace (nearest upsampling in its FPN)") {
    const RetinaFaceModel m =
        RetinaFaceModel::from_state_dict(retinaface_random_state_dict(RetinaFaceBody::MobileNet025, 4));
    const F16ActivationPlan plan = plan_f16_activations(m.build_graph(1, 64, 64));
    CHECK_FALSE(plan.supported);
    CHECK_THAT(plan.why, Catch::Contains("does not run on f16 NHWC activations"));
  }
  SECTION("a reshaped image read by something other than Linear") {
    Graph g;
    const int x = g.input("x", {1, 4, 2, 2});
    const int flat = g.reshape(x, {1, 16});
    g.mark_output(g.pixel_norm("norm", flat, 1e-8f));
    const F16ActivationPlan plan = plan_f16_activations(g);
    CHECK_FALSE(plan.supported);
    CHECK_THAT(plan.why, Catch::Contains("pixel_norm 'norm'"));
  }
  SECTION("a reshape between images") {
    Graph g;
    const int x = g.input("x", {1, 4, 2, 2});
    g.mark_output(g.scale_bias_act("s", g.reshape(x, {1, 1, 4, 4}), 2.f, EpilogueSpec{}));
    const F16ActivationPlan plan = plan_f16_activations(g);
    CHECK_FALSE(plan.supported);
    CHECK_THAT(plan.why, Catch::Contains("has no f16 NHWC form"));
  }
}

// What f16 storage of every image value does to GPEN's accuracy, measured on the CPU (the
// arithmetic stays f32, as in the CUDA kernels): the fp16 bounds must hold with room to
// spare for the f16 convolution operands the GPU adds, and nothing may overflow to inf.
TEST_CASE("f16 activations: GPEN-512 with every image value stored as f16 keeps fp16 accuracy (CPU emulation)",
          "[f16-activations][large]") {
  auto model = std::make_shared<GpenModel>(GpenModel::from_state_dict(gpen_random_state_dict(gpen_official_config(512), 11)));
  const Tensor x = test::random_tensor({1, 3, 512, 512}, 12, -1.f, 1.f);
  CompileOptions opt;
  opt.threads = 2;
  const Tensor want = GpenRunner(model, std::shared_ptr<Backend>(make_cpu_backend()), opt).forward(x);
  opt.round_images_to_f16 = true;
  const Tensor got = GpenRunner(model, std::shared_ptr<Backend>(make_cpu_backend()), opt).forward(x);
  const size_t n = size_t(want.numel());
  size_t finite = 0, close = 0;
  for (size_t i = 0; i < n; ++i) {
    const float g = got.data<float>()[i], w = want.data<float>()[i];
    finite += std::isfinite(g);
    const auto u8 = [](float v) { return int(std::lround(std::clamp((v + 1.f) * 127.5f, 0.f, 255.f))); };
    close += std::abs(u8(g) - u8(w)) <= 2;
  }
  const double rel = test::rel_l2(got.data<float>(), want.data<float>(), n);
  INFO("rel L2 " << rel << ", uint8 within 2: " << double(close) / double(n));
  REQUIRE(finite == n);
  CHECK(rel > 0);  // the rounding did act
  CHECK(rel <= 2e-3);
  CHECK(double(close) >= 0.999 * double(n));
}

// A run is computed at its first node, so it must stop before a node that would make that
// unsafe: one reading a run output, or any node once a value the run touches has died.
TEST_CASE("f16 activations: runs of vector ops stop where computing them early would be unsafe", "[f16-activations]") {
  const auto ends = [](const Graph& g) {
    std::vector<int> e;
    for (int v : plan_f16_activations(g).run_end) e.push_back(v);
    return e;
  };
  const Tensor w37 = test::random_tensor({6, 37}, 1), wsq = test::random_tensor({5, 6}, 2, 0.f, 1.f);
  SECTION("a style that dies inside the demodulation run") {
    Graph g;
    const int w = g.input("w", {2, 37});
    const int s1 = g.linear("s1", w, w37, EpilogueSpec{}), s2 = g.linear("s2", w, w37, EpilogueSpec{});
    g.mark_output(g.demod_factors("d1", s1, wsq, 1e-8f));  // s1's last reader
    g.mark_output(g.demod_factors("d2", s2, wsq, 1e-8f));
    g.mark_output(g.demod_factors("d3", s2, wsq, 1e-8f));
    // s1 and s2 (both read later) form a run; d1 stands alone; d2 and d3 form one.
    CHECK(ends(g) == std::vector<int>{2, -2, -1, 5, -2});
  }
  SECTION("a node reading an earlier run node's output") {
    Graph g;
    const int w = g.input("w", {2, 37});
    const int s = g.linear("s", w, w37, EpilogueSpec{});
    const int d1 = g.demod_factors("d1", s, wsq, 1e-8f);
    g.mark_output(d1);
    g.mark_output(g.demod_factors("d2", d1, test::random_tensor({4, 5}, 3, 0.f, 1.f), 1e-8f));
    g.mark_output(s);
    CHECK(ends(g) == std::vector<int>{-1, -1, -1});
  }
  SECTION("a Linear whose output nobody reads") {
    Graph g;
    const int w = g.input("w", {2, 37});
    g.linear("unused", w, w37, EpilogueSpec{});
    g.mark_output(g.linear("b", w, w37, EpilogueSpec{}));
    g.mark_output(g.linear("c", w, w37, EpilogueSpec{}));
    CHECK(ends(g) == std::vector<int>{-1, 3, -2});
  }
}
