#include <catch2/catch.hpp>

#include <cstdlib>

#include "core/backend.h"
#include "core/error.h"
#include "core/graph.h"
#include "kernels/cpu/isa.h"
#include "tests/test_util.h"

using namespace gpen;

namespace {
// A chain x -> conv -> conv -> ... where each buffer dies after the next conv reads it.
Graph chain(int layers, int C, int H) {
  Graph g;
  int x = g.input("x", {1, C, H, H});
  cpu::ConvDesc d;
  d.C = d.K = C, d.kh = d.kw = 3, d.pad = 1;
  Tensor w = test::random_tensor({C, C, 3, 3}, 1, -0.1f, 0.1f);
  for (int i = 0; i < layers; ++i) x = g.conv2d("c" + std::to_string(i), x, d, w, EpilogueSpec{});
  g.mark_output(x);
  return g;
}
}  // namespace

TEST_CASE("memory plan reuses buffers and never overlaps live ones", "[graph]") {
  Graph g = chain(10, 4, 8);
  MemoryPlan p = g.plan_memory();
  const int64_t one = 4 * 8 * 8;
  // 11 buffers of the same size, but at most two (the conv's input and output) live at once.
  REQUIRE(p.naive_elems == 11 * one);
  REQUIRE(p.arena_elems == 2 * one);
  // Check the invariant directly: a node's inputs and output never share memory.
  for (const Node& n : g.nodes())
    for (int in : n.inputs) {
      const int64_t a0 = p.offset[size_t(in)], a1 = a0 + shape_numel(g.value(in).shape);
      const int64_t b0 = p.offset[size_t(n.output)], b1 = b0 + shape_numel(g.value(n.output).shape);
      REQUIRE((a1 <= b0 || b1 <= a0));
    }
}

TEST_CASE("channel slices write halves of one buffer (concat in place)", "[graph]") {
  Graph g;
  const int N = 2, C = 3, H = 4;
  int a = g.input("a", {N, C, H, H});
  int b = g.input("b", {N, C, H, H});
  int buf = g.buffer("cat", {N, 2 * C, H, H});
  g.scale_bias_act("lo", a, 1.f, EpilogueSpec{}, g.channel_slice(buf, 0, C));
  g.scale_bias_act("hi", b, 2.f, EpilogueSpec{}, g.channel_slice(buf, C, 2 * C));
  int out = g.scale_bias_act("copy", buf, 1.f, EpilogueSpec{});
  g.mark_output(out);
  auto exe = make_cpu_backend()->compile(g, CompileOptions{});
  Tensor ta = test::random_tensor({N, C, H, H}, 1), tb = test::random_tensor({N, C, H, H}, 2);
  std::vector<Tensor> outs;
  exe->run({ta, tb}, outs);
  const float* y = outs[0].data<float>();
  for (int n = 0; n < N; ++n)
    for (int c = 0; c < 2 * C; ++c)
      for (int i = 0; i < H * H; ++i) {
        const float expect = c < C ? ta.data<float>()[(n * C + c) * H * H + i] : 2 * tb.data<float>()[(n * C + c - C) * H * H + i];
        REQUIRE(y[(n * 2 * C + c) * H * H + i] == expect);
      }
}

TEST_CASE("graph building rejects bad wiring with clear errors", "[graph]") {
  Graph g;
  int x = g.input("x", {1, 3, 8, 8});
  cpu::ConvDesc d;
  d.C = 4, d.K = 2;
  REQUIRE_THROWS_WITH(g.conv2d("bad", x, d, Tensor::zeros(DType::F32, {2, 4, 1, 1}), EpilogueSpec{}),
                      Catch::Contains("expects 4 input channels"));
  int buf = g.buffer("never_written", {1, 3, 8, 8});
  REQUIRE_THROWS_WITH(g.add("sum", x, buf), Catch::Contains("before anything writes it"));
  REQUIRE_THROWS_WITH(g.channel_slice(x, 2, 5), Catch::Contains("bad channel slice"));
  REQUIRE_THROWS(g.add("shape", x, g.input("y", {1, 3, 4, 4})));
}

TEST_CASE("executable checks its inputs", "[graph]") {
  Graph g = chain(1, 2, 4);
  auto exe = make_cpu_backend()->compile(g, CompileOptions{});
  std::vector<Tensor> outs;
  REQUIRE_THROWS_WITH(exe->run({Tensor::zeros(DType::F32, {1, 2, 5, 4})}, outs), Catch::Contains("must be f32 1x2x4x4"));
  REQUIRE_THROWS_WITH(exe->run({}, outs), Catch::Contains("expected 1 inputs"));
}

TEST_CASE("node scratch is planned like a value alive for its node only", "[graph]") {
  Graph g = chain(6, 4, 8);
  const int64_t one = 4 * 8 * 8;
  std::vector<int64_t> scratch(g.nodes().size(), 0);
  scratch[3] = 100;  // node 3 needs scratch while it runs
  MemoryPlan p = g.plan_memory(scratch);
  REQUIRE(p.scratch_offset.size() == g.nodes().size());
  for (size_t t = 0; t < scratch.size(); ++t) REQUIRE((p.scratch_offset[t] >= 0) == (t == 3));
  // It never overlaps what node 3 reads or writes.
  const Node& n = g.nodes()[3];
  const int64_t s0 = p.scratch_offset[3], s1 = s0 + 100;
  for (int v : {n.inputs[0], n.output}) {
    const int64_t a0 = p.offset[size_t(v)], a1 = a0 + one;
    REQUIRE((a1 <= s0 || s1 <= a0));
  }
  // Two live buffers plus the scratch at most; the scratch does not grow the other nodes' memory.
  REQUIRE(p.arena_elems <= 2 * one + 112);
  REQUIRE_THROWS_AS(g.plan_memory(std::vector<int64_t>(2, 0)), Error);
}

TEST_CASE("memory plan finds the live peak where largest-first placement fragments", "[graph]") {
  // x -> A (64) -> T (80, with 96 of scratch) -> B (144) -> y, in elements. Live: A + T + scratch
  // = 240 at the second node, T + B = 224 at the third. Largest-first puts B at 0, the scratch at
  // 0, T above B, and A no longer fits the 48 left between the scratch and B: 288. (GPEN's last
  // transposed conv, its input and scratch, and the last StyledConv's concat buffer.)
  Graph g;
  int v = g.input("x", {1, 16, 1, 1});
  int c = 16;
  for (int k : {64, 80, 144, 16}) {
    cpu::ConvDesc d;
    d.C = c, d.K = k;
    v = g.conv2d("c" + std::to_string(k) + "_" + std::to_string(g.nodes().size()), v, d,
                 Tensor::zeros(DType::F32, {k, c, 1, 1}), EpilogueSpec{});
    c = k;
  }
  g.mark_output(v);
  std::vector<int64_t> scratch(g.nodes().size(), 0);
  scratch[1] = 96;
  const MemoryPlan p = g.plan_memory(scratch);
  CHECK(p.arena_elems == 240);
  // Nothing live at the same time overlaps (the scratch included).
  struct Span { int64_t a, b; int first, last; };
  std::vector<Span> spans;
  for (size_t t = 0; t < g.nodes().size(); ++t) {
    const Node& n = g.nodes()[t];
    const int64_t o = p.offset[size_t(n.output)];
    spans.push_back({o, o + shape_numel(g.value(n.output).shape), int(t), int(t) + 1});
  }
  spans.push_back({p.scratch_offset[1], p.scratch_offset[1] + 96, 1, 1});
  for (size_t i = 0; i < spans.size(); ++i)
    for (size_t j = i + 1; j < spans.size(); ++j) {
      const bool together = spans[i].first <= spans[j].last && spans[j].first <= spans[i].last;
      if (together) CHECK((spans[i].b <= spans[j].a || spans[j].b <= spans[i].a));
    }
}

TEST_CASE("executables share packed kernels; a cached graph needs no weights", "[graph]") {
  auto backend = make_cpu_backend();
  CompileOptions opt;
  opt.kernel_cache = backend->make_kernel_cache();
  REQUIRE(opt.kernel_cache);
  Graph g = chain(3, 5, 9);
  auto first = backend->compile(g, opt);
  // Same graph without its weights: every conv comes from the cache, results identical.
  auto second = backend->compile(g.without_weights(), opt);
  Tensor x = test::random_tensor({1, 5, 9, 9}, 3);
  std::vector<Tensor> y1, y2;
  first->run({x}, y1);
  second->run({x}, y2);
  REQUIRE(test::max_abs_diff(y1[0].data<float>(), y2[0].data<float>(), size_t(y1[0].numel())) == 0);
  // Without the cache, a weightless graph is refused with a clear error, not run on garbage.
  REQUIRE_THROWS_WITH(backend->compile(g.without_weights(), CompileOptions{}), Catch::Contains("no weights"));
}

namespace {
// x -> 1x1 (3 -> C) -> depthwise 3x3 (stride s) -> 1x1 (C -> K) [-> also `tap`: a second reader
// of the depthwise map]. The first conv's output is dead once the depthwise conv read it, so
// without the fused kernel's extra read the plan may put the last conv's output there.
Graph mobilenet_block(int C, int K, int H, int W, int s, bool second_reader) {
  Graph g;
  const int x = g.input("x", {2, 3, H, W});
  cpu::ConvDesc in;
  in.C = 3, in.K = C;
  const int a = g.conv2d("in", x, in, test::random_tensor({C, 3, 1, 1}, 1, -1.f, 1.f), EpilogueSpec{});
  cpu::ConvDesc dw;
  dw.C = dw.K = dw.groups = C, dw.kh = dw.kw = 3, dw.pad = 1, dw.stride = s;
  EpilogueSpec dwe = EpilogueSpec::with_bias(test::random_tensor({C}, 2, -0.5f, 0.5f));
  dwe.slope = 0.1f;
  const int m = g.conv2d("dw", a, dw, test::random_tensor({C, 1, 3, 3}, 3, -1.f, 1.f), dwe);
  cpu::ConvDesc pw;
  pw.C = C, pw.K = K;
  EpilogueSpec pwe = EpilogueSpec::with_bias(test::random_tensor({K}, 4, -0.5f, 0.5f));
  pwe.slope = 0.1f;
  g.mark_output(g.conv2d("pw", m, pw, test::random_tensor({K, C, 1, 1}, 5, -1.f, 1.f), pwe));
  if (second_reader) {
    cpu::ConvDesc tap;
    tap.C = C, tap.K = 2;
    g.mark_output(g.conv2d("tap", m, tap, test::random_tensor({2, C, 1, 1}, 6, -1.f, 1.f), EpilogueSpec{}));
  }
  return g;
}

std::vector<Tensor> run_cpu(const Graph& g, const Tensor& x, bool fuse, std::vector<NodeProfile>* prof = nullptr) {
  if (!fuse) setenv("GPEN_CPU_FUSE", "0", 1);
  CompileOptions opt;
  opt.threads = 2;
  std::unique_ptr<Executable> exe = make_cpu_backend()->compile(g, opt);
  unsetenv("GPEN_CPU_FUSE");
  std::vector<Tensor> out;
  exe->enable_profiling(true);
  exe->run({x}, out);
  if (prof) *prof = exe->profile();
  return out;
}
}  // namespace

// The CPU backend runs a depthwise conv and the 1x1 conv after it as one kernel where the
// depthwise map is large (>= 1 MB) and read by nothing else; results equal the two convs'.
TEST_CASE("CPU backend fuses depthwise + pointwise blocks, same outputs", "[graph]") {
  const bool vector_isa = cpu::active_isa() >= cpu::Isa::AVX2;  // the fused kernel's; else none
  const int H = 81, W = 101;
  const Tensor x = test::random_tensor({2, 3, H, W}, 7, -1.f, 1.f);
  for (int s : {1, 2}) {
    INFO("stride " << s);
    const Graph g = mobilenet_block(32, 40, H, W, s, false);  // 32 x 81 x 101 floats: 1.05 MB at stride 1
    std::vector<NodeProfile> prof;
    const std::vector<Tensor> fused = run_cpu(g, x, true, &prof), plain = run_cpu(g, x, false);
    REQUIRE(fused.size() == 1);
    CHECK(test::max_abs_diff(fused[0].data<float>(), plain[0].data<float>(), size_t(plain[0].numel())) < 1e-5);
    const bool fused_here = vector_isa && s == 1;  // stride 2: not fused (cpu::make_conv_dw_pw)
    CHECK((prof[1].kernel == "fused into pw") == fused_here);
    CHECK((prof[2].kernel.find("depthwise_pointwise") != std::string::npos) == fused_here);
  }
  // A second reader of the depthwise map: not fused.
  const Graph g = mobilenet_block(32, 40, H, W, 1, true);
  std::vector<NodeProfile> prof;
  const std::vector<Tensor> fused = run_cpu(g, x, true, &prof), plain = run_cpu(g, x, false);
  CHECK(prof[1].kernel.find("fused") == std::string::npos);
  for (size_t i = 0; i < plain.size(); ++i)
    CHECK(test::max_abs_diff(fused[i].data<float>(), plain[i].data<float>(), size_t(plain[i].numel())) == 0);
}

TEST_CASE("memory plan: an extra read keeps a value live up to that node", "[graph]") {
  const Graph g = chain(3, 4, 8);  // x -> c0 -> c1 -> c2: x dies at node 0
  const MemoryPlan before = g.plan_memory();
  const MemoryPlan after = g.plan_memory({}, {{2, 0}});  // node 2 also reads x
  const int64_t one = 4 * 8 * 8;
  CHECK(before.arena_elems == 2 * one);
  CHECK(after.arena_elems == 3 * one);
  // x no longer shares space with c1's output (written at node 1) or c2's (node 2).
  for (int v = 2; v <= 3; ++v) CHECK(after.offset[size_t(v)] != after.offset[0]);
  REQUIRE_THROWS_AS(g.plan_memory({}, {{3, 0}}), Error);
}
