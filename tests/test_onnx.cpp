// ONNX import: the wire-format reader refuses malformed files with a clear error, and GPEN exports
// of the tiny reference checkpoint (tests/fixtures/onnx_tiny/, made from gpen_tiny.pth by
// tools/reference/make_onnx_fixtures.py) map back onto that checkpoint and give its output.
#include <catch2/catch.hpp>

#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <unistd.h>

#include "core/error.h"
#include "core/models/gpen.h"
#include "tests/test_util.h"
#include "weights/onnx.h"
#include "weights/onnx_gpen.h"
#include "weights/safetensors.h"

using namespace gpen;
namespace fs = std::filesystem;

namespace {

const std::string kPth = "tests/fixtures/gpen_tiny/gpen_tiny.pth";
const std::string kNamed = "tests/fixtures/onnx_tiny/gpen_tiny.named.onnx";
const std::string kAnonymous = "tests/fixtures/onnx_tiny/gpen_tiny.anonymous.onnx";

std::string src(const std::string& rel) { return test::source_path(rel); }

// ---- a few protobuf writers, to build malformed files byte by byte ----------------------------------
std::string varint(uint64_t v) {
  std::string s;
  do {
    uint8_t b = v & 0x7f;
    v >>= 7;
    s += char(b | (v ? 0x80 : 0));
  } while (v);
  return s;
}
std::string field_varint(int number, uint64_t v) { return varint(uint64_t(number) << 3 | 0) + varint(v); }
std::string field_bytes(int number, const std::string& payload) {
  return varint(uint64_t(number) << 3 | 2) + varint(payload.size()) + payload;
}
// TensorProto with raw_data; `extra` is appended as further fields.
std::string tensor_proto(const std::string& name, std::vector<int64_t> dims, int data_type, size_t raw_bytes,
                         const std::string& extra = "") {
  std::string t;
  for (int64_t d : dims) t += field_varint(1, uint64_t(d));
  t += field_varint(2, uint64_t(data_type)) + field_bytes(8, name) + field_bytes(9, std::string(raw_bytes, '\0'));
  return t + extra;
}
// ModelProto { ir_version: 8, graph { initializer: tensor } }
std::string model_with_initializer(const std::string& tensor) {
  return field_varint(1, 8) + field_bytes(7, field_bytes(5, tensor));
}
OnnxModel parse(const std::string& bytes) {
  return parse_onnx_buffer(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), nullptr, "test.onnx");
}

std::string read_bytes(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

Tensor run(const StateDict& sd, const Tensor& x) {
  auto model = std::make_shared<GpenModel>(GpenModel::from_state_dict(sd));
  GpenRunner runner(model, std::shared_ptr<Backend>(make_cpu_backend()), CompileOptions{});
  return runner.forward(x);
}

double max_rel_diff(const Tensor& a, const Tensor& b) {
  const Tensor fa = a.to(DType::F32), fb = b.to(DType::F32);
  const double scale = std::max(test::max_abs(fb.data<float>(), size_t(fb.numel())), 1e-12);
  return test::max_abs_diff(fa.data<float>(), fb.data<float>(), size_t(fa.numel())) / scale;
}

// Index of the first initializer-consuming node of `op` whose constant input has `ndim` dims.
size_t node_consuming(const OnnxModel& m, const std::string& op, int ndim, std::string* constant_name) {
  for (size_t i = 0; i < m.nodes.size(); ++i) {
    if (m.nodes[i].op_type != op) continue;
    for (const auto& in : m.nodes[i].inputs) {
      auto it = m.initializers.find(in);
      if (it != m.initializers.end() && it->second.ndim() == ndim) {
        *constant_name = in;
        return i;
      }
    }
  }
  FAIL("no " << op << " node with a " << ndim << "-D initializer");
  return 0;
}

}  // namespace

TEST_CASE("ONNX reader: graph, initializers and inputs of an export", "[onnx]") {
  OnnxModel m = read_onnx(src(kAnonymous));
  REQUIRE(m.ir_version >= 7);
  REQUIRE(m.producer.rfind("pytorch", 0) == 0);
  REQUIRE(m.initializers.size() == 78);
  REQUIRE(m.nodes.size() == 541);
  REQUIRE(m.inputs.size() == 1);
  REQUIRE(m.inputs[0].name == "input");
  REQUIRE(m.inputs[0].dims == std::vector<int64_t>{1, 3, 32, 32});
  REQUIRE(m.inputs[0].elem_type == 1);
  REQUIRE(m.outputs.at(0).name == "output");
  int convs = 0, gemm_trans_b = 0;
  for (const auto& n : m.nodes) {
    convs += n.op_type == "Conv";
    gemm_trans_b += n.op_type == "Gemm" && n.int_attribute("transB", 0) == 1;
  }
  REQUIRE(convs == 21);
  REQUIRE(gemm_trans_b == 11);  // the modulations: F.linear with a bias
}

TEST_CASE("ONNX named export maps by name onto the exact .pth tensors", "[onnx]") {
  StateDict pth = load_weights(src(kPth));
  StateDict onnx = load_onnx_gpen(src(kNamed));
  REQUIRE(onnx.metadata.at("gpen.onnx.mapping") == "names");
  REQUIRE(onnx.keys() == pth.keys());
  for (const auto& [k, t] : pth.tensors) {
    INFO(k);
    const Tensor& o = onnx.at(k);
    REQUIRE(o.shape() == t.shape());
    REQUIRE(o.dtype() == DType::F32);
    REQUIRE(std::memcmp(o.raw(), t.raw(), t.nbytes()) == 0);
  }
}

TEST_CASE("ONNX folded, anonymised export maps by graph structure onto the .pth tensors", "[onnx]") {
  StateDict pth = load_weights(src(kPth));
  StateDict onnx = load_onnx_gpen(src(kAnonymous));
  REQUIRE(onnx.metadata.at("gpen.onnx.mapping") == "graph");
  REQUIRE(onnx.keys() == pth.keys());
  for (const auto& [k, t] : pth.tensors) {
    INFO(k);
    REQUIRE(onnx.at(k).shape() == t.shape());
    // The folded values are parameter * scale in f32: dividing the scale out is exact to ~1 ulp.
    REQUIRE(max_rel_diff(onnx.at(k), t) < 1e-6);
  }
}

TEST_CASE("ONNX-imported GPEN gives the output of the .pth it was exported from", "[onnx]") {
  StateDict golden = load_safetensors(src("tests/fixtures/gpen_tiny/gpen_tiny.golden.safetensors"));
  const Tensor x = golden.f32("input");
  const Tensor want = run(load_weights(src(kPth)), x);
  // load_weights recognises ONNX by its first bytes, as gpen enhance/convert/info do.
  const Tensor named = run(load_weights(src(kNamed)), x);
  const Tensor anonymous = run(load_weights(src(kAnonymous)), x);
  REQUIRE(named.shape() == want.shape());
  REQUIRE(std::memcmp(named.raw(), want.raw(), want.nbytes()) == 0);
  REQUIRE(anonymous.shape() == want.shape());
  INFO("max abs diff " << test::max_abs_diff(anonymous.data<float>(), want.data<float>(), size_t(want.numel())));
  REQUIRE(test::max_abs_diff(anonymous.data<float>(), want.data<float>(), size_t(want.numel())) < 1e-5);
  // And both match PyTorch's output for that input.
  REQUIRE(test::max_abs_diff(named.data<float>(), golden.f32("output").data<float>(), size_t(want.numel())) < 1e-4);
}

TEST_CASE("ONNX reader refuses malformed files with a clear error", "[onnx]") {
  const std::string good = read_bytes(src(kAnonymous));
  SECTION("truncated") {
    REQUIRE_THROWS_WITH(parse(good.substr(0, good.size() / 2)), Catch::Contains("malformed ONNX") && Catch::Contains("runs past"));
  }
  SECTION("bad varint") {
    REQUIRE_THROWS_WITH(parse(std::string("\x08") + std::string(11, '\xff')), Catch::Contains("bad varint"));
    REQUIRE_THROWS_WITH(parse(std::string("\x08\xff\xff", 3)), Catch::Contains("truncated varint"));
  }
  SECTION("group wire type") {
    REQUIRE_THROWS_WITH(parse(std::string("\x08\x08\x0b", 3)), Catch::Contains("unsupported wire type 3"));
  }
  SECTION("empty, and no graph") {
    REQUIRE_THROWS_WITH(parse(""), Catch::Contains("empty"));
    REQUIRE_THROWS_WITH(parse(field_varint(1, 8)), Catch::Contains("no graph"));
  }
  SECTION("unsupported data type") {
    REQUIRE_THROWS_WITH(parse(model_with_initializer(tensor_proto("w", {2}, 8, 0))),
                        Catch::Contains("tensor 'w' has unsupported data type STRING"));
    REQUIRE_THROWS_WITH(parse(model_with_initializer(tensor_proto("w", {2}, 99, 8))),
                        Catch::Contains("unknown data type 99"));
  }
  SECTION("external data") {
    const std::string location = field_varint(14, 1);
    REQUIRE_THROWS_WITH(parse(model_with_initializer(tensor_proto("w", {2}, 1, 0, location))),
                        Catch::Contains("'w' keeps its data in an external file"));
  }
  SECTION("raw_data size disagrees with the shape") {
    REQUIRE_THROWS_WITH(parse(model_with_initializer(tensor_proto("w", {2, 3}, 1, 20))),
                        Catch::Contains("raw_data has 20 bytes, shape 2x3 needs 24"));
  }
  SECTION("dimension overflow") {
    REQUIRE_THROWS_WITH(parse(model_with_initializer(tensor_proto("w", {1 << 30, 1 << 30, 1 << 30}, 1, 0))),
                        Catch::Contains("too large"));
  }
  SECTION("a well-formed tensor reads back") {
    OnnxModel m = parse(model_with_initializer(tensor_proto("w", {2, 3}, 1, 24)));
    REQUIRE(m.initializers.at("w").shape() == Shape{2, 3});
    REQUIRE(m.initializers.at("w").data<float>()[5] == 0.f);
  }
}

TEST_CASE("ONNX graphs that do not map onto GPEN are refused naming what is wrong", "[onnx]") {
  const OnnxModel good = read_onnx(src(kAnonymous));
  SECTION("a constant with the wrong shape") {
    OnnxModel m = good;
    std::string name;
    node_consuming(m, "Mul", 5, &name);  // conv1's modulated weight, 1x16x16x3x3
    m.initializers[name] = Tensor::zeros(DType::F32, {1, 16, 15, 3, 3});
    REQUIRE_THROWS_WITH(gpen_state_dict_from_onnx(m, "x.onnx"),
                        Catch::Contains("'" + name + "' (read as generator.conv1.conv.weight)") &&
                            Catch::Contains("expected shape 1x16x16x3x3, got 1x16x15x3x3"));
  }
  SECTION("a layer missing") {
    OnnxModel m = good;
    std::string name;
    m.nodes.erase(m.nodes.begin() + long(node_consuming(m, "Mul", 5, &name)));
    REQUIRE_THROWS_WITH(gpen_state_dict_from_onnx(m, "x.onnx"),
                        Catch::Contains("found 10 modulated convolution weights, expected 11") &&
                            Catch::Contains("nothing for 'generator.to_rgbs.2.conv.weight'") &&
                            !Catch::Contains("constant folding"));
  }
  SECTION("an input size other than the weights'") {
    OnnxModel m = good;
    m.inputs[0].dims = {1, 3, 64, 64};
    REQUIRE_THROWS_WITH(gpen_state_dict_from_onnx(m, "x.onnx"), Catch::Contains("graph input 'input' is 1x3x64x64 but the weights are GPEN-32"));
  }
  SECTION("neither folded nor named") {
    OnnxModel m = read_onnx(src(kNamed));
    std::map<std::string, std::string> renames;
    std::map<std::string, Tensor> renamed;
    for (const auto& [name, t] : m.initializers) {
      renames[name] = "w" + std::to_string(renames.size());
      renamed[renames[name]] = t;
    }
    m.initializers = renamed;
    for (auto& n : m.nodes)
      for (auto& in : n.inputs)
        if (renames.count(in)) in = renames[in];
    REQUIRE_THROWS_WITH(gpen_state_dict_from_onnx(m, "x.onnx"),
                        Catch::Contains("not a GPEN generator graph") && Catch::Contains("without constant folding"));
  }
  SECTION("not a GPEN graph") {
    OnnxModel m;
    REQUIRE_THROWS_WITH(gpen_state_dict_from_onnx(m, "x.onnx"), Catch::Contains("not a GPEN generator graph"));
  }
}

TEST_CASE("gpen convert reads an ONNX export", "[onnx][cli]") {
  const fs::path dir = fs::temp_directory_path() / ("gpen_onnx_test_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string out = (dir / "tiny.safetensors").string();
  const std::string cmd = std::string(GPEN_CLI_PATH) + " convert " + src(kAnonymous) + " " + out + " >/dev/null 2>&1";
  REQUIRE(std::system(cmd.c_str()) == 0);
  StateDict converted = load_safetensors(out);
  StateDict pth = load_weights(src(kPth));
  REQUIRE(converted.keys() == pth.keys());
  for (const auto& [k, t] : pth.tensors) REQUIRE(max_rel_diff(converted.at(k), t) < 1e-6);
  REQUIRE(converted.metadata.at("gpen.size") == "32");
  fs::remove_all(dir);
}

TEST_CASE("ONNX exports of GPEN-256 (official layout) give the .pth's weights and output", "[onnx][large]") {
  const char* dir = std::getenv("GPEN_FIXTURES");
  const std::string base = (dir ? std::string(dir) : test::binary_path("fixtures")) + "/gpen_random_256";
  REQUIRE(fs::exists(base + ".pth"));  // tools/reference/make_fixtures.sh makes these
  REQUIRE(fs::exists(base + ".named.onnx"));
  REQUIRE(fs::exists(base + ".anonymous.onnx"));
  const StateDict pth = load_weights(base + ".pth");
  const StateDict named = load_weights(base + ".named.onnx");
  const StateDict anonymous = load_weights(base + ".anonymous.onnx");
  REQUIRE(named.keys() == pth.keys());
  REQUIRE(anonymous.keys() == pth.keys());
  for (const auto& [k, t] : pth.tensors) {
    INFO(k);
    REQUIRE(std::memcmp(named.at(k).raw(), t.raw(), t.nbytes()) == 0);
    REQUIRE(max_rel_diff(anonymous.at(k), t) < 1e-6);
  }
  const Tensor x = load_safetensors(base + ".golden.safetensors").f32("input");
  const Tensor want = run(pth, x), got = run(anonymous, x);
  INFO("max abs diff " << test::max_abs_diff(got.data<float>(), want.data<float>(), size_t(want.numel())));
  REQUIRE(test::max_abs_diff(got.data<float>(), want.data<float>(), size_t(want.numel())) < 1e-4);
}
