// safetensors: reading a file written by another writer, strict header validation, and our
// writer (atomic, aligned, sorted, with dtype conversion and metadata) round-tripping.
#include <catch2/catch.hpp>
#include <chrono>
#include <cmath>
#include <filesystem>

#include "tests/test_weights_util.h"
#include "weights/safetensors.h"
#include "weights/state_dict.h"

using Catch::Matchers::Contains;
using gpen::DType;
using gpen::Shape;
using gpen::StateDict;
using gpen::Tensor;
using namespace weights_test;

namespace {

// A safetensors image: length, header, then `data_bytes` zero bytes.
std::string image(const std::string& header, size_t data_bytes) {
  std::string s(8, '\0');
  for (int i = 0; i < 8; ++i) s[size_t(i)] = char(uint64_t(header.size()) >> (8 * i));
  return s + header + std::string(data_bytes, '\0');
}

std::string parse_error(const std::string& bytes) {
  return error_of([&] { gpen::parse_safetensors_buffer(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), nullptr, "t.safetensors"); });
}

std::string header_error(const std::string& header, size_t data_bytes) { return parse_error(image(header, data_bytes)); }

StateDict mixed_state_dict() {
  StateDict sd;
  sd.tensors["conv.weight"] = Tensor::from_floats({2, 3}, {0.1f, -2.5f, 3.14159f, 1e-3f, 65504.f, -0.0f});
  sd.tensors["half"] = Tensor::from_floats({3}, {1.5f, -0.25f, 7.f}).to(DType::F16);
  sd.tensors["brain"] = Tensor::from_floats({2}, {3.f, -1.f / 3.f}).to(DType::BF16);
  sd.tensors["double"] = Tensor::from_floats({2}, {2.f, 1e-4f}).to(DType::F64);
  Tensor counts = Tensor::empty(DType::I64, {});
  counts.data<int64_t>()[0] = (int64_t(1) << 53) + 1;  // not representable as float: must stay i64
  sd.tensors["bn.num_batches_tracked"] = counts;
  Tensor bytes = Tensor::empty(DType::U8, {3});
  bytes.data<uint8_t>()[0] = 1, bytes.data<uint8_t>()[1] = 200, bytes.data<uint8_t>()[2] = 255;
  sd.tensors["a.bytes"] = bytes;  // 3 bytes first: later tensors start misaligned
  sd.tensors["empty"] = Tensor::empty(DType::F32, {0, 4});
  sd.metadata["source"] = "unit test";
  sd.metadata["format"] = "pt";
  return sd;
}

void check_same_values(const Tensor& got, const Tensor& want, double tolerance) {
  REQUIRE(got.shape() == want.shape());
  for (int64_t i = 0; i < want.numel(); ++i) CHECK(got.item_as_double(i) == Approx(want.item_as_double(i)).epsilon(tolerance).margin(1e-30));
}

}  // namespace

TEST_CASE("safetensors: reads a file from another writer", "[weights][safetensors]") {
  StateDict sd = gpen::load_weights(fixture("small.safetensors"));
  check_against_expected(sd, "small.safetensors");
  CHECK(sd.metadata == std::map<std::string, std::string>{{"format", "pt"}, {"origin", "make_weights_fixtures.py"}});
  // 'b.f32' starts 3 bytes into the data buffer; it must come back aligned (copied), still right.
  const Tensor& b = sd.at("b.f32");
  CHECK(reinterpret_cast<uintptr_t>(b.raw()) % 4 == 0);
  for (const auto& [key, t] : sd.tensors) CHECK(reinterpret_cast<uintptr_t>(t.raw()) % gpen::dtype_size(t.dtype()) == 0);
  CHECK(sd.at("g.scalar").shape() == Shape{});
}

TEST_CASE("safetensors: round trip, exact and converted", "[weights][safetensors]") {
  const StateDict original = mixed_state_dict();
  const std::string path = scratch("round_trip.safetensors");

  gpen::save_safetensors(path, original, std::nullopt, {{"converted_by", "gpen"}, {"format", "gpen"}});
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  StateDict exact = gpen::load_weights(path);
  CHECK(exact.keys() == original.keys());
  for (const auto& [key, t] : original.tensors) {
    INFO(key);
    CHECK(exact.at(key).dtype() == t.dtype());
    check_same_values(exact.at(key), t, 0);
  }
  CHECK(exact.at("bn.num_batches_tracked").data<int64_t>()[0] == (int64_t(1) << 53) + 1);
  CHECK(exact.metadata == std::map<std::string, std::string>{{"converted_by", "gpen"}, {"format", "gpen"}, {"source", "unit test"}});

  // header length: a multiple of 8, so the byte buffer is 8-byte aligned
  std::vector<uint8_t> bytes = read_bytes(path);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= uint64_t(bytes[size_t(i)]) << (8 * i);
  CHECK(n % 8 == 0);
  CHECK(bytes[8] == '{');

  for (DType target : {DType::F16, DType::BF16}) {
    INFO(gpen::dtype_name(target));
    gpen::save_safetensors(path, original, target, {});
    StateDict converted = gpen::load_safetensors(path);
    for (const char* key : {"conv.weight", "half", "brain", "double", "empty"}) {
      INFO(key);
      CHECK(converted.at(key).dtype() == target);
      check_same_values(converted.at(key), original.at(key).to(target), 0);
    }
    CHECK(converted.at("bn.num_batches_tracked").dtype() == DType::I64);
    CHECK(converted.at("bn.num_batches_tracked").data<int64_t>()[0] == (int64_t(1) << 53) + 1);
    CHECK(converted.at("a.bytes").dtype() == DType::U8);
    CHECK(converted.at("a.bytes").data<uint8_t>()[1] == 200);
    CHECK(converted.metadata.at("source") == "unit test");
  }
  gpen::save_safetensors(path, original, DType::F32, {});
  CHECK(gpen::load_safetensors(path).at("half").dtype() == DType::F32);
}

TEST_CASE("safetensors: tensors borrow the mapping and may be edited privately", "[weights][safetensors]") {
  const std::string path = scratch("borrow.safetensors");
  StateDict sd;
  sd.tensors["w"] = Tensor::from_floats({4}, {1, 2, 3, 4});
  gpen::save_safetensors(path, sd, std::nullopt, {});
  Tensor w;
  {
    StateDict loaded = gpen::load_safetensors(path);
    w = loaded.at("w");
  }  // the StateDict is gone; the tensor keeps the mapping alive
  CHECK(w.data<float>()[3] == 4.f);
  w.data<float>()[3] = 40.f;  // copy-on-write: the file is untouched
  CHECK(gpen::load_safetensors(path).at("w").data<float>()[3] == 4.f);
}

TEST_CASE("safetensors: a header length starting with byte 0x80 is not mistaken for a pickle", "[weights][safetensors]") {
  StateDict sd;
  sd.tensors["x"] = Tensor::from_floats({1}, {42});
  const std::string path = scratch("x80.safetensors");
  std::vector<uint8_t> bytes;
  for (size_t pad = 0; pad < 128; ++pad) {  // grow the metadata until the header is 128 bytes
    gpen::save_safetensors(path, sd, std::nullopt, {{"pad", std::string(pad, 'p')}});
    bytes = read_bytes(path);
    if (bytes[0] == 0x80) break;
  }
  REQUIRE(bytes[0] == 0x80);
  CHECK(gpen::load_weights(path).at("x").data<float>()[0] == 42.f);
}

TEST_CASE("safetensors: lying headers are one-line errors", "[weights][safetensors]") {
  const std::string ok = R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}})";
  REQUIRE(header_error(ok, 24) == "<no gpen::Error thrown>");

  CHECK_THAT(parse_error("abc"), Contains("'t.safetensors': safetensors: file is 3 bytes, too short"));
  CHECK_THAT(parse_error(std::string("\xff\xff\xff\xff\xff\xff\xff\x7f{}", 10)), Contains("exceeds the limit"));
  CHECK_THAT(parse_error(std::string("\x00\x10\x00\x00\x00\x00\x00\x00{}", 10)), Contains("runs past the end"));
  CHECK_THAT(header_error("[1,2]", 0), Contains("does not start with '{'"));
  CHECK_THAT(header_error(R"({"w":)", 0), Contains("not valid JSON"));
  CHECK_THAT(header_error(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,24]}} x)", 24), Contains("not valid JSON"));
  CHECK_THAT(header_error(R"({"a":[[[[[[[[1]]]]]]]]})", 0), Contains("nested deeper"));

  // offsets
  CHECK_THAT(header_error(ok, 20), Contains("tensor 'w': data_offsets end 24 is beyond the 20-byte data buffer"));
  CHECK_THAT(header_error(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[24,0]}})", 24), Contains("reversed"));
  CHECK_THAT(header_error(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[-1,23]}})", 24), Contains("non-negative integers"));
  CHECK_THAT(header_error(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0]}})", 24), Contains("[begin, end]"));
  CHECK_THAT(header_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})", 12),
             Contains("tensors 'a' and 'b' overlap"));
  CHECK_THAT(header_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[12,20]}})", 20),
             Contains("gap of 4 bytes before tensor 'b'"));
  CHECK_THAT(header_error(ok, 32), Contains("8 bytes after the last tensor"));

  // shapes and dtypes
  CHECK_THAT(header_error(R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,20]}})", 20),
             Contains("tensor 'w': F32 2x3 needs 24 bytes but data_offsets span 20"));
  CHECK_THAT(header_error(R"({"w":{"dtype":"F32","shape":[-2,3],"data_offsets":[0,24]}})", 24), Contains("non-integer or negative"));
  CHECK_THAT(header_error(R"({"w":{"dtype":"F32","shape":[2.5],"data_offsets":[0,24]}})", 24), Contains("non-integer or negative"));
  CHECK_THAT(header_error(R"({"w":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,24]}})", 24), Contains("too large"));
  CHECK_THAT(header_error(R"({"w":{"dtype":"U8","shape":[9223372036854775807,2],"data_offsets":[0,24]}})", 24), Contains("too large"));
  CHECK_THAT(header_error(R"({"w":{"dtype":"F32","shape":"2x3","data_offsets":[0,24]}})", 24), Contains("shape must be an array"));
  for (const char* dtype : {"I8", "F8_E4M3", "float32", "f32", "U16", "C64"}) {
    INFO(dtype);
    std::string h = std::string(R"({"w":{"dtype":")") + dtype + R"(","shape":[1],"data_offsets":[0,4]}})";
    CHECK_THAT(header_error(h, 4), Contains("tensor 'w': unsupported dtype"));
  }
  CHECK_THAT(header_error(R"({"w":{"dtype":"F32","shape":[1]}})", 4), Contains("needs dtype, shape and data_offsets"));
  CHECK_THAT(header_error(R"({"w":[1,2]})", 0), Contains("not an object"));
  CHECK_THAT(header_error(R"({"__metadata__":{"a":1}})", 0), Contains("__metadata__ value for 'a' is not a string"));
  CHECK_THAT(header_error(R"({"__metadata__":[]})", 0), Contains("__metadata__ is not an object"));

  // an empty file list is valid; so is a zero-sized tensor
  CHECK(header_error("{}", 0) == "<no gpen::Error thrown>");
  CHECK(header_error(R"({"e":{"dtype":"BF16","shape":[0,7],"data_offsets":[0,0]}})", 0) == "<no gpen::Error thrown>");

  // the same through a file, with the file name in the message
  const std::string path = scratch("lying.safetensors");
  write_bytes(path, image(ok, 8));
  std::string msg = error_of([&] { gpen::load_weights(path); });
  CHECK_THAT(msg, Contains(path));
  CHECK_THAT(msg, Contains("beyond the 8-byte data buffer"));
  CHECK(msg.find('\n') == std::string::npos);
}

TEST_CASE("safetensors: truncated files", "[weights][safetensors]") {
  const std::vector<uint8_t> bytes = read_bytes(fixture("small.safetensors"));
  for (size_t cut = 0; cut < bytes.size(); ++cut) {
    INFO("cut at " << cut);
    std::string msg = error_of([&] { gpen::parse_safetensors_buffer(bytes.data(), cut); });
    CHECK_THAT(msg, Contains("safetensors: "));
  }
}

TEST_CASE("safetensors: writer errors", "[weights][safetensors]") {
  StateDict sd;
  sd.tensors["w"] = Tensor::from_floats({1}, {1});
  CHECK_THAT(error_of([&] { gpen::save_safetensors("/nonexistent/dir/x.safetensors", sd); }), Contains("cannot create '/nonexistent/dir/x.safetensors.tmp'"));
  sd.tensors["__metadata__"] = Tensor::from_floats({1}, {1});
  const std::string path = scratch("bad.safetensors");
  CHECK_THAT(error_of([&] { gpen::save_safetensors(path, sd); }), Contains("cannot be named '__metadata__'"));
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
  CHECK_FALSE(std::filesystem::exists(path));
}

// Not run by default, not even with "[weights]" (writes 284 MB): ./gpen_tests "[weights-perf]"
TEST_CASE("safetensors: loading 284 MB of f32 is zero-copy", "[.][weights-perf]") {
  const std::string path = scratch("big.safetensors");
  {
    StateDict sd;
    for (int i = 0; i < 71; ++i) sd.tensors["layer" + std::to_string(i)] = Tensor::zeros(DType::F32, {1000, 1000});
    gpen::save_safetensors(path, sd);
  }
  auto t0 = std::chrono::steady_clock::now();
  StateDict sd = gpen::load_weights(path);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  WARN("loaded " << std::filesystem::file_size(path) / 1e6 << " MB of safetensors in " << seconds * 1e3 << " ms");
  CHECK(sd.tensors.size() == 71);
  CHECK(seconds < 0.5);
  std::filesystem::remove(path);
}
