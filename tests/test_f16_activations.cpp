// The CUDA backend's f16 activation mode decides on the graph alone which values become NHWC f16
// views (core/f16_activations.h); its kernels run on a GPU only, its plan is checked here.
#include <catch2/catch.hpp>

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
