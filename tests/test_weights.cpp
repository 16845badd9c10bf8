// PyTorch checkpoint readers (zip and legacy) and load_weights' format sniffing, on fixtures made
// by real torch (tools/reference/make_weights_fixtures.py) and on the shared RetinaFace detector.
#include <catch2/catch.hpp>
#include <cstdio>
#include <filesystem>

#include "tests/test_weights_util.h"
#include "weights/pth.h"
#include "weights/state_dict.h"

using Catch::Matchers::Contains;
using gpen::DType;
using gpen::Shape;
using gpen::StateDict;
using namespace weights_test;

TEST_CASE("weights: legacy .pth of the shared RetinaFace detector", "[weights]") {
  const std::string path = shared("weights/retinaface_mobilenet0.25.pth");
  if (!std::filesystem::exists(path)) {
    WARN("skipped: " << path << " not found");
    return;
  }
  StateDict sd = gpen::load_weights(path);
  CHECK(sd.tensors.size() == 300);
  const gpen::Tensor& w = sd.expect("body.stage1.0.0.weight", {8, 3, 3, 3});
  CHECK(w.dtype() == DType::F32);
  CHECK(w.data<float>()[0] == Approx(-0.13596665859222412).epsilon(1e-7));
  CHECK(w.data<float>()[2] == Approx(-0.007020126096904278).epsilon(1e-7));
  double sum = 0;
  for (int64_t i = 0; i < w.numel(); ++i) sum += w.data<float>()[i];
  CHECK(sum == Approx(3.45035033847671).epsilon(1e-9));

  const gpen::Tensor& n = sd.at("body.stage1.0.1.num_batches_tracked");
  CHECK(n.dtype() == DType::I64);
  CHECK(n.shape() == Shape{});
  CHECK(n.data<int64_t>()[0] == 190840);

  sd.expect("ClassHead.0.conv1x1.weight", {4, 64, 1, 1});
  sd.expect("fpn.output1.0.weight", {64, 64, 1, 1});
  sd.expect("LandmarkHead.2.conv1x1.bias", {20});
  int i64 = 0;
  int64_t elements = 0;
  for (const auto& [key, t] : sd.tensors) {
    i64 += t.dtype() == DType::I64;
    elements += t.numel();
    CHECK(reinterpret_cast<uintptr_t>(t.raw()) % gpen::dtype_size(t.dtype()) == 0);
  }
  CHECK(i64 == 47);
  CHECK(elements == 433343);
  // the same through the explicit readers
  CHECK(gpen::load_pth(path).tensors.size() == 300);
  CHECK(gpen::load_pth_legacy(path).tensors.size() == 300);
}

TEST_CASE("weights: zip and legacy .pth written by torch match torch.load", "[weights]") {
  for (const char* name : {"zip_nested.pth", "legacy_nested.pth", "zip_noncontiguous.pth", "legacy_noncontiguous.pth", "legacy_view.pth",
                           "zip_archive_little.pth"}) {
    INFO(name);
    check_against_expected(gpen::load_weights(fixture(name)), name);
  }
}

TEST_CASE("weights: nested checkpoints unwrap params_ema and strip 'module.'", "[weights]") {
  for (const char* name : {"zip_nested.pth", "legacy_nested.pth"}) {
    INFO(name);
    StateDict sd = gpen::load_weights(fixture(name));
    // params (scale -1) and params_ema (scale +1) hold the same keys; params_ema must win.
    CHECK(sd.at("base").item_as_double(1) == 1.0);
    CHECK(sd.has("conv.weight"));
    CHECK_FALSE(sd.has("module.conv.weight"));
    CHECK_FALSE(sd.has("iter"));
    CHECK(sd.at("half").dtype() == DType::F16);
    CHECK(sd.at("bf16").dtype() == DType::BF16);
    CHECK(sd.at("double").dtype() == DType::F64);
    CHECK(sd.at("long").data<int64_t>()[3] == (int64_t(1) << 40));
    CHECK(sd.at("int").dtype() == DType::I32);
    CHECK(sd.at("byte").dtype() == DType::U8);
    CHECK(sd.at("flags").dtype() == DType::Bool);
    CHECK(sd.at("bn.num_batches_tracked").shape() == Shape{});
    CHECK(sd.at("empty").shape() == (Shape{0, 3}));
    // a slice saved with its storage offset; base and slice come from one storage
    CHECK(sd.at("slice").shape() == Shape{10});
    CHECK(sd.at("slice").data<float>()[0] == 5.0f);
    // f32() converts, and shares f32 tensors instead of copying
    gpen::Tensor h = sd.f32("half");
    CHECK(h.dtype() == DType::F32);
    CHECK(h.data<float>()[0] == gpen::f16_to_f32(sd.at("half").data<uint16_t>()[0]));
    CHECK(sd.f32("base").raw() == sd.at("base").raw());
  }
}

TEST_CASE("weights: non-contiguous tensors are materialised row-major", "[weights]") {
  for (const char* name : {"zip_noncontiguous.pth", "legacy_noncontiguous.pth"}) {
    INFO(name);
    StateDict sd = gpen::load_weights(fixture(name));
    const gpen::Tensor& t = sd.expect("transposed", {4, 3});  // arange(12).reshape(3,4).t()
    for (int r = 0; r < 4; ++r)
      for (int c = 0; c < 3; ++c) CHECK(t.data<float>()[r * 3 + c] == float(c * 4 + r));
    const gpen::Tensor& e = sd.expect("expanded", {2, 3});
    CHECK(std::vector<float>(e.data<float>(), e.data<float>() + 6) == std::vector<float>{1, 2, 3, 1, 2, 3});
    // arange(60).reshape(3,4,5).permute(2,0,1)[1:] : element [a][b][c] = b*20 + c*5 + (a+1)
    const gpen::Tensor& p = sd.expect("permuted", {4, 3, 4});
    for (int a = 0; a < 4; ++a)
      for (int b = 0; b < 3; ++b)
        for (int c = 0; c < 4; ++c) CHECK(p.data<float>()[(a * 3 + b) * 4 + c] == float(b * 20 + c * 5 + a + 1));
  }
}

TEST_CASE("weights: StateDict lookups explain what is wrong", "[weights]") {
  StateDict sd = gpen::load_weights(fixture("zip_nested.pth"));
  CHECK_THAT(error_of([&] { sd.at("nope"); }), Contains("missing key 'nope'"));
  CHECK_THAT(error_of([&] { sd.expect("conv.weight", {4, 3, 3}); }), Contains("key 'conv.weight': expected shape 4x3x3, got 4x3x3x3"));
  CHECK(sd.keys().size() == sd.tensors.size());
}

TEST_CASE("weights: malicious pickles are refused and run nothing", "[weights]") {
  std::ifstream f(fixture("expected.json"));
  const std::string pwned = nlohmann::json::parse(f)["pwned_path"].get<std::string>();
  std::remove(pwned.c_str());
  for (const char* name : {"malicious_system_p2.pth", "malicious_system_p4.pth", "malicious_system_zip.pth"}) {
    INFO(name);
    std::string msg = error_of([&] { gpen::load_weights(fixture(name)); });
    CHECK_THAT(msg, Contains("refusing to call 'posix.system'"));
    CHECK_THAT(msg, Contains(" at byte "));
    CHECK_THAT(msg, Contains(name));
    CHECK_FALSE(std::filesystem::exists(pwned));
  }
}

TEST_CASE("weights: broken zip checkpoints", "[weights]") {
  CHECK_THAT(error_of([] { gpen::load_weights(fixture("zip_short_storage.pth")); }),
             Contains("tensor 'w': storage '0' holds 40 bytes, but 16 f32 elements need 16 x 4"));
  CHECK_THAT(error_of([] { gpen::load_weights(fixture("zip_shape_beyond_storage.pth")); }),
             Contains("tensor 'w': shape 100 with strides (1) at offset 0 needs 100 elements but storage '0' has 10"));
  CHECK_THAT(error_of([] { gpen::load_weights(fixture("zip_big_endian.pth")); }), Contains("big-endian checkpoints are not supported"));
  CHECK_THAT(error_of([] { gpen::load_weights(fixture("zip_broadcast_bomb.pth")); }),
             Contains("tensor 'w': shape 1048576x1048576 with strides (0, 0) repeats its 1 stored elements"));

  // Cut anywhere, the central directory is gone or damaged: an error, never a crash.
  const std::vector<uint8_t> bytes = read_bytes(fixture("zip_nested.pth"));
  REQUIRE(bytes.size() > 1000);
  for (size_t cut = 0; cut < bytes.size(); cut += (cut < 64 || cut + 64 > bytes.size()) ? 1 : 97) {
    INFO("cut at " << cut);
    CHECK_THAT(error_of([&] { gpen::load_pth_zip_buffer(bytes.data(), cut, "cut.pth"); }), Contains("'cut.pth': "));
  }
  const std::string path = scratch("truncated_zip.pth");
  write_bytes(path, bytes.data(), bytes.size() / 2);
  CHECK_THAT(error_of([&] { gpen::load_weights(path); }), Contains("not a readable zip archive"));
  // the same checks from memory
  const std::vector<uint8_t> short_storage = read_bytes(fixture("zip_short_storage.pth"));
  CHECK_THAT(error_of([&] { gpen::load_pth_zip_buffer(short_storage.data(), short_storage.size()); }), Contains("holds 40 bytes"));
}

TEST_CASE("weights: a zip whose CRC does not match is refused", "[weights]") {
  std::vector<uint8_t> bytes = read_bytes(fixture("zip_noncontiguous.pth"));
  std::string s(bytes.begin(), bytes.end());
  size_t at = s.find(std::string("\x00\x00\x30\x41", 4));  // 11.0f, in the 'transposed' storage
  REQUIRE(at != std::string::npos);
  bytes[at + 3] ^= 0x01;
  CHECK_THAT(error_of([&] { gpen::load_pth_zip_buffer(bytes.data(), bytes.size()); }), Contains("truncated or corrupt"));
}

TEST_CASE("weights: truncated legacy checkpoints", "[weights]") {
  for (const char* name : {"legacy_nested.pth", "legacy_view.pth"}) {
    const std::vector<uint8_t> bytes = read_bytes(fixture(name));
    REQUIRE(bytes.size() > 100);
    for (size_t cut = 0; cut < bytes.size(); cut += (cut < 300 || cut + 300 > bytes.size()) ? 1 : 31) {
      INFO(name << " cut at " << cut);
      CHECK_THAT(error_of([&] { gpen::load_pth_legacy_buffer(bytes.data(), cut, "cut.pth"); }), Contains("'cut.pth': "));
    }
    const std::string path = scratch(std::string("truncated_") + name);
    write_bytes(path, bytes.data(), bytes.size() - 5);
    CHECK_THAT(error_of([&] { gpen::load_weights(path); }), Contains("runs past the end"));
  }
}

TEST_CASE("weights: unknown formats and missing files", "[weights]") {
  const std::string text = scratch("notes.txt");
  write_bytes(text, std::string("hello, these are not weights\n"));
  std::string msg = error_of([&] { gpen::load_weights(text); });
  CHECK_THAT(msg, Contains("unrecognised weights format"));
  CHECK_THAT(msg, Contains(text));
  const std::string empty = scratch("empty.pth");
  write_bytes(empty, std::string());
  CHECK_THAT(error_of([&] { gpen::load_weights(empty); }), Contains("the file is empty"));
  CHECK_THAT(error_of([&] { gpen::load_pth_legacy(empty); }), Contains("file is empty"));
  CHECK_THAT(error_of([] { gpen::load_weights("/nonexistent/gpen/weights.pth"); }), Contains("cannot open '/nonexistent/gpen/weights.pth'"));
  CHECK_THAT(error_of([] { gpen::load_pth_zip("/nonexistent/gpen/weights.pth"); }), Contains("cannot open"));
  // a pickle of something that is not a dict of tensors
  const std::string list = scratch("list.pth");
  write_bytes(list, std::string("\x80\x02]K\x01" "a.", 7));
  CHECK_THAT(error_of([&] { gpen::load_weights(list); }), Contains("not a legacy torch checkpoint"));
}
